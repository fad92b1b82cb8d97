//! A live streaming session: a [`Sink`] for audio and a [`Stream`] of [`TurnEvent`]s.
//!
//! The session is a pure state machine (`core`: phases, deadlines, finals, re-chunking) and
//! the socket, behind one lock, driven by one task (`driver`). The sink writes a chunk itself
//! when nothing is queued before it and the socket is idle (no task hand-off per chunk);
//! otherwise chunks and control messages queue in order, at most
//! [`audio_buffer`](crate::StreamingClientBuilder::audio_buffer) of them, for the task
//! (backpressure from the socket). Events reach the consumer through a bounded queue that the
//! task never waits on, so the socket is always read by the task: pings are answered and
//! closes seen however slow the consumer is.
//!
//! Ending a session:
//! - [`StreamingSession::terminate`] (or closing the sink: `sink.close()`, or the end of
//!   [`StreamExt::forward`](futures::StreamExt::forward) — not `send_all`, which leaves the sink
//!   open; [`StreamingSession::stream_audio`] does it for you) sends the audio still buffered,
//!   padded to a valid frame, then `Terminate`; the stream yields every remaining turn and
//!   [`TurnEvent::Termination`], then ends. If `Termination` does not come within the terminate
//!   timeout, the stream's last item is [`Error::Timeout`].
//! - Any other end (a close — 1000 included — before `Termination`, an `Error` frame, a drop,
//!   a write that stalls past the write timeout) ends the stream with one [`Error`] item; after
//!   it, `send()` and `terminate()` return that same error.
//! - Dropping the event stream ends the session even while the sink lives: `Terminate` is sent
//!   if it can be, the socket closes, and the sink's next send fails.
//! - Dropping the session (or both halves after [`split`](StreamingSession::split)) stops the
//!   task and closes the socket.

mod core;
mod driver;
mod queue;
pub(crate) mod wire;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::{Sink, Stream};
use tracing::Instrument;

use crate::audio::AudioChunk;
use crate::error::{Error, Result, TimeoutKind};
use crate::handshake::Ws;
use crate::params::{ConnectionParams, Encoding};
use crate::protocol::{
    Begin, ClientMessage, Heartbeat, LlmGatewayResponse, ServerMessage, Silence, SpeakerRevision,
    SpeechStarted, Termination, Turn, UpdateConfiguration, Warning,
};
use crate::retry::RetryPolicy;

pub(crate) use self::core::{CLOSE_TIMEOUT, Core, End, Input};
use self::driver::{Driver, Shared};
use self::queue::EventQueue;

/// Per-session behaviour; every field has a documented default (see
/// [`StreamingClientBuilder`](crate::StreamingClientBuilder)).
#[derive(Debug, Clone)]
pub(crate) struct SessionOptions {
    pub connect_timeout: Duration,
    pub terminate_timeout: Duration,
    pub write_timeout: Duration,
    pub frame_duration: Duration,
    pub keep_alive_interval: Option<Duration>,
    pub retry: RetryPolicy,
    pub event_buffer: usize,
    pub audio_buffer: usize,
    pub format_wait: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            terminate_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            frame_duration: Duration::from_millis(100),
            keep_alive_interval: None,
            retry: RetryPolicy::new(2, Duration::from_millis(500), 1),
            event_buffer: 256,
            audio_buffer: 32,
            format_wait: Duration::from_secs(1),
        }
    }
}

/// Hard bound of the event queue, in events, as a multiple of the event buffer...
const HARD_EVENTS_FACTOR: usize = 16;

/// ...and at least this many.
const HARD_EVENTS_MIN: usize = 4096;

/// Hard bound of the event queue, in bytes of the server frames behind the events.
const HARD_EVENT_BYTES: usize = 32 * 1024 * 1024;

/// An event of a streaming session.
///
/// Turns arrive as [`Partial`](TurnEvent::Partial) while they grow, and exactly once as
/// [`Final`](TurnEvent::Final) per `turn_order`, whatever the formatting behaviour of the
/// service:
/// - without `format_turns`, or with formatting done in-model, the final is the message with
///   `end_of_turn: true`;
/// - under the older behaviour (an unformatted end-of-turn followed by a formatted Turn with
///   the same `turn_order`), the unformatted one arrives as a `Partial` and the formatted one
///   as the `Final`. If the formatted one does not come within the format wait (default 1 s),
///   or the next turn starts first, the unformatted one is delivered as the `Final`.
///
/// Serialized (serde) as `{"event": "<variant in snake_case>", "data": <the message>}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TurnEvent {
    /// The session began (always the first event).
    Begin(Begin),
    /// Voice activity started (Universal-3 Pro).
    SpeechStarted(SpeechStarted),
    /// A turn in progress.
    Partial(Turn),
    /// The final transcript of a turn: exactly once per `turn_order`.
    Final(Turn),
    /// The session ended normally; the stream ends after this.
    Termination(Termination),
    /// A non-fatal warning from the service.
    Warning(Warning),
    /// `Heartbeat` (with `session_heartbeat`).
    Heartbeat(Heartbeat),
    /// `Silence` (with `acknowledge_silence`).
    Silence(Silence),
    /// Diarization revised earlier turns.
    SpeakerRevision(SpeakerRevision),
    /// Result of the server-side `llm_gateway` prompt for a final turn.
    LlmGatewayResponse(LlmGatewayResponse),
    /// A message type this crate does not know yet, as raw JSON.
    Unknown(serde_json::Value),
}

impl TurnEvent {
    /// The turn carried by a `Partial` or `Final`.
    pub fn turn(&self) -> Option<&Turn> {
        match self {
            TurnEvent::Partial(t) | TurnEvent::Final(t) => Some(t),
            _ => None,
        }
    }

    /// Whether this is the final of a turn.
    pub fn is_final(&self) -> bool {
        matches!(self, TurnEvent::Final(_))
    }

    /// The server message this event came from (partials and finals are both `Turn`s).
    pub fn into_message(self) -> ServerMessage {
        match self {
            TurnEvent::Begin(b) => ServerMessage::Begin(b),
            TurnEvent::SpeechStarted(s) => ServerMessage::SpeechStarted(s),
            TurnEvent::Partial(t) | TurnEvent::Final(t) => ServerMessage::Turn(t),
            TurnEvent::Termination(t) => ServerMessage::Termination(t),
            TurnEvent::Warning(w) => ServerMessage::Warning(w),
            TurnEvent::Heartbeat(h) => ServerMessage::Heartbeat(h),
            TurnEvent::Silence(s) => ServerMessage::Silence(s),
            TurnEvent::SpeakerRevision(r) => ServerMessage::SpeakerRevision(r),
            TurnEvent::LlmGatewayResponse(r) => ServerMessage::LlmGatewayResponse(r),
            TurnEvent::Unknown(v) => ServerMessage::Unknown(v),
        }
    }
}

/// What the sink and handles send to the session task. Audio and control share one channel so
/// they reach the service in the order they were given.
#[derive(Debug)]
pub(crate) enum Command {
    Audio(Bytes),
    Control(ClientMessage),
    /// Flush audio, send `Terminate`; report the outcome on `done`.
    Terminate(Option<oneshot::Sender<Result<Termination>>>),
}

/// Session facts from `Begin`.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The `Begin` message.
    pub begin: Begin,
    /// Sample rate of the audio the session expects, in Hz.
    pub sample_rate: u32,
    /// Encoding of the audio the session expects.
    pub encoding: Encoding,
}

/// A live session. It is a [`Sink<AudioChunk>`] for audio and a
/// [`Stream<Item = Result<TurnEvent, Error>>`](Stream) for events; [`split`](Self::split) it to
/// use the halves from different tasks.
///
/// A decode error of a single server frame is yielded as an `Err` item and the stream goes on;
/// any other `Err` is the last item.
///
/// ```
/// use assemblyai_streaming::audio::paced;
/// use assemblyai_streaming::{ConnectionParams, Encoding, StreamingClient, TurnEvent};
/// # use assemblyai_streaming::AudioChunk;
/// use futures::{SinkExt, StreamExt};
/// # use assemblyai_streaming::emulator::{Emulator, Script};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let script = Script::from_texts(["Hello, world."]);
/// # let emulator = Emulator::builder().script(script).start().await?;
/// let client = StreamingClient::builder() // key from ASSEMBLYAI_API_KEY
/// #   .api_key(emulator.api_key())
/// #   .base_url(emulator.ws_url())
///     .build()?;
/// let session = client.connect(ConnectionParams::new()).await?;
/// let (mut sink, mut events) = session.split();
/// // `chunks`: 16 kHz mono s16le audio (e.g. from `audio::read_wav`), sent at real time.
/// # // 600 ms of "speech", then 600 ms of silence.
/// # let tone: Vec<i16> = (0..9_600).map(|i| ((i as f32 * 0.2).sin() * 8e3) as i16).collect();
/// # let chunks = vec![AudioChunk::from_pcm16(&tone), AudioChunk::from_pcm16(&[0; 9_600])];
/// let mut audio = paced(chunks, 16_000, Encoding::PcmS16le);
/// tokio::spawn(async move {
///     while let Some(chunk) = audio.next().await {
///         if sink.send(chunk).await.is_err() { break; }
///     }
///     let _ = sink.close().await; // flush, then Terminate
/// });
/// # let mut finals = Vec::new();
/// while let Some(event) = events.next().await {
///     match event? {
///         TurnEvent::Partial(turn) => eprint!("\r{}", turn.transcript),
///         TurnEvent::Final(turn) => {
///             println!("\n{}", turn.transcript);
/// #           finals.push(turn.transcript);
///         }
///         _ => {}
///     }
/// }
/// # assert_eq!(finals, ["hello world"]); // unformatted: `format_turns` is off
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamingSession {
    sink: AudioSink,
    events: EventStream,
    handle: SessionHandle,
    info: Arc<SessionInfo>,
}

impl StreamingSession {
    /// The session id from `Begin`.
    pub fn id(&self) -> &str {
        &self.info.begin.id
    }

    /// Facts from `Begin` and the audio format.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// A cloneable handle for control messages from any task.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// Splits into the audio sink and the event stream, both `Send + 'static`.
    /// Take a [`handle`](Self::handle) first if you need control messages.
    pub fn split(self) -> (AudioSink, EventStream) {
        (self.sink, self.events)
    }

    /// How many partials were replaced by a newer message of the same turn because the
    /// consumer was behind (see [`EventStream::coalesced_partials`]).
    pub fn coalesced_partials(&self) -> u64 {
        self.events.coalesced_partials()
    }

    /// Ends the current turn now (`ForceEndpoint`).
    pub async fn force_endpoint(&self) -> Result<()> {
        self.handle.force_endpoint().await
    }

    /// Changes turn detection or formatting mid-session (`UpdateConfiguration`).
    pub async fn update_configuration(&self, update: UpdateConfiguration) -> Result<()> {
        self.handle.update_configuration(update).await
    }

    /// Sends `KeepAlive` (resets the service's inactivity timer).
    pub async fn keep_alive(&self) -> Result<()> {
        self.handle.keep_alive().await
    }

    /// Sends the buffered audio, then `Terminate`, and waits for `Termination`. The whole call,
    /// a full audio queue included, is bounded by the terminate timeout. Every event that
    /// arrives meanwhile stays available from the stream, in order, ending with
    /// [`TurnEvent::Termination`] (or the session's error).
    pub async fn terminate(&mut self) -> Result<Termination> {
        self.handle.terminate().await
    }
}

impl Sink<AudioChunk> for StreamingSession {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sink).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: AudioChunk) -> Result<()> {
        Pin::new(&mut self.sink).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sink).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.sink).poll_close(cx)
    }
}

impl Stream for StreamingSession {
    type Item = Result<TurnEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

/// The audio half of a session: a [`Sink<AudioChunk>`].
///
/// Chunks of any size are re-cut into frames of the configured duration (default 100 ms).
/// `poll_ready` waits while the buffer is full (the socket sets the pace). Closing the sink
/// sends the remaining audio (padded with silence to 50 ms) and then `Terminate`; dropping it
/// without closing does the same once every handle is gone too. Sending after the session
/// ended fails with the error it ended with, or [`Error::SessionClosed`] after a normal end.
#[derive(Debug)]
pub struct AudioSink {
    sender: Sender,
    closing: bool,
}

/// One sender's share of the session: the last one dropped ends the audio (see
/// [`Input::CommandsClosed`]).
#[derive(Debug)]
struct Sender(Arc<Shared>);

impl Sender {
    fn new(shared: Arc<Shared>) -> Self {
        shared.add_sender();
        Self(shared)
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        Self::new(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.remove_sender();
    }
}

impl AudioSink {
    fn shared(&self) -> &Shared {
        &self.sender.0
    }
}

impl Sink<AudioChunk> for AudioSink {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.closing {
            return Poll::Ready(Err(self.shared().closed_error()));
        }
        self.shared().poll_room(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: AudioChunk) -> Result<()> {
        if self.closing {
            return Err(self.shared().closed_error());
        }
        if !self.shared().accepting() {
            return Err(self.shared().closed_error());
        }
        if item.is_empty() {
            return Ok(());
        }
        self.shared().submit(Command::Audio(item.into_bytes()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // An accepted chunk is written at once or queued for the session task (a queue that
        // `poll_ready` bounds); nothing more can be pushed out from here.
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.closing {
            match self.shared().poll_room(cx) {
                Poll::Pending => return Poll::Pending,
                // The session is over: nothing left to terminate.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
            }
            let _ = self.shared().submit(Command::Terminate(None));
            self.closing = true;
        }
        Poll::Ready(Ok(()))
    }
}

/// The event half of a session: a `Stream<Item = Result<TurnEvent, Error>>`.
///
/// Dropping it ends the session, even while the [`AudioSink`] lives: `Terminate` is sent if
/// it can be, the socket closes, and the sink's next send fails.
#[derive(Debug)]
pub struct EventStream {
    shared: Arc<Shared>,
}

impl EventStream {
    /// How many partials were replaced by a newer partial or the final of the same
    /// `turn_order` because this stream was read too slowly (more than the event buffer
    /// waiting). Finals, `Begin`, errors, `Termination` and other kinds are never dropped.
    pub fn coalesced_partials(&self) -> u64 {
        self.shared.coalesced()
    }
}

impl Stream for EventStream {
    type Item = Result<TurnEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.poll_event(cx)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.shared.consumer_dropped();
    }
}

/// Sends control messages to a session from any task. Messages are queued behind the audio
/// already accepted, so they apply at that point of the stream; only audio the session holds
/// to complete a frame (less than one frame duration, 100 ms by default) goes out after them,
/// with the next audio or, padded to 50 ms, when the audio ends.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    sender: Sender,
    terminate_timeout: Duration,
    /// The runtime the session task runs on.
    runtime: tokio::runtime::Handle,
}

impl SessionHandle {
    fn shared(&self) -> &Shared {
        &self.sender.0
    }

    async fn send(&self, command: Command) -> Result<()> {
        futures::future::poll_fn(|cx| self.shared().poll_room(cx)).await?;
        self.shared().submit(command)
    }

    /// Ends the current turn now (`ForceEndpoint`).
    pub async fn force_endpoint(&self) -> Result<()> {
        self.send(Command::Control(ClientMessage::ForceEndpoint))
            .await
    }

    /// Changes turn detection or formatting mid-session (`UpdateConfiguration`).
    pub async fn update_configuration(&self, update: UpdateConfiguration) -> Result<()> {
        self.send(Command::Control(ClientMessage::UpdateConfiguration(update)))
            .await
    }

    /// Sends `KeepAlive`.
    pub async fn keep_alive(&self) -> Result<()> {
        self.send(Command::Control(ClientMessage::KeepAlive)).await
    }

    /// Sends the buffered audio and `Terminate`, then waits for `Termination`. The whole call,
    /// a full audio queue included, is bounded by the terminate timeout; after the session
    /// ended with an error, that error is returned, and after a normal end,
    /// [`Error::SessionClosed`]. A call while the session is already ending (another
    /// `terminate()`, the sink closed) waits for that same outcome; `Terminate` is sent once.
    /// Dropping the future after it queued `Terminate` does not take it back. If the timeout
    /// passes before `Terminate` could even be queued (the socket drains that slowly), nothing
    /// was sent and the session goes on; drop it to close the socket. Callable from any thread,
    /// with or without a runtime.
    pub async fn terminate(&self) -> Result<Termination> {
        let timeout = self.terminate_timeout;
        let wait = async {
            let (done_tx, done_rx) = oneshot::channel();
            let mut done = Some(done_tx);
            futures::future::poll_fn(|cx| self.shared().poll_terminate(cx, &mut done)).await?;
            done_rx
                .await
                .unwrap_or_else(|_| Err(self.shared().closed_error()))
        };
        // The session's runtime keeps the time: the caller may be on a thread without one
        // (a plain executor, an audio callback thread).
        let timed = {
            let _runtime = self.runtime.enter();
            tokio::time::timeout(timeout, wait)
        };
        match timed.await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.shared().end_error().unwrap_or(Error::Timeout {
                kind: TimeoutKind::Termination,
                after: timeout,
            })),
        }
    }
}

/// Starts the task of a session whose `core` has seen `Begin`.
pub(crate) fn start(
    ws: Ws,
    core: Core,
    begin: Begin,
    params: &ConnectionParams,
    options: &SessionOptions,
) -> StreamingSession {
    let soft = options.event_buffer.max(1);
    let queue = EventQueue::new(
        soft,
        soft.saturating_mul(HARD_EVENTS_FACTOR).max(HARD_EVENTS_MIN),
        HARD_EVENT_BYTES,
    );
    let info = Arc::new(SessionInfo {
        begin: begin.clone(),
        sample_rate: params.get_sample_rate(),
        encoding: params.get_encoding(),
    });
    let span = tracing::info_span!("assemblyai.session", session_id = %begin.id);
    span.in_scope(|| tracing::info!(expires_at = begin.expires_at, "session began"));
    let shared = Shared::new(ws, core, queue, options.audio_buffer, span.clone());
    // The senders exist before the task runs: with none, it would end the audio at once.
    let sender = Sender::new(shared.clone());
    tokio::spawn(Driver::new(shared.clone()).instrument(span));
    StreamingSession {
        sink: AudioSink {
            sender: sender.clone(),
            closing: false,
        },
        events: EventStream { shared },
        handle: SessionHandle {
            sender,
            terminate_timeout: options.terminate_timeout,
            runtime: tokio::runtime::Handle::current(),
        },
        info,
    }
}
