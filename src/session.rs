//! A live streaming session: a [`Sink`] for audio and a [`Stream`] of [`TurnEvent`]s.
//!
//! Each session is driven by one background task that owns the socket. The sink and the stream
//! talk to it through bounded channels, so a slow consumer or a fast producer gets real
//! backpressure instead of unbounded buffering.
//!
//! Ending a session:
//! - [`StreamingSession::terminate`] (or closing the sink: `sink.close()`, or the end of
//!   [`StreamExt::forward`](futures::StreamExt::forward) — not `send_all`, which leaves the sink
//!   open; [`StreamingSession::stream_audio`] does it for you) sends the audio still buffered,
//!   padded to a valid frame, then `Terminate`; the stream yields every remaining turn and
//!   [`TurnEvent::Termination`], then ends. If `Termination` does not come within the terminate
//!   timeout, the stream's last item is [`Error::Timeout`].
//! - A server error ends the stream with one [`Error`] item (an `Error` frame and the close
//!   that follows it are reported once).
//! - Dropping the session (or both halves after [`split`](StreamingSession::split)) stops the
//!   task and closes the socket.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;

use crate::audio::AudioChunk;
use crate::client::SessionOptions;
use crate::error::{Error, Result, TimeoutKind};
use crate::params::{ConnectionParams, Encoding, SpeechModel};
use crate::protocol::{
    Begin, ClientMessage, Heartbeat, LlmGatewayResponse, ServerMessage, Silence, SpeakerRevision,
    SpeechStarted, Termination, Turn, UpdateConfiguration, Warning,
};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long to wait for the close frame that follows an `Error` frame, to learn its code.
const ERROR_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// "Never" for deadlines: far enough, and small enough to add to any `Instant`.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// `at + d`, capped at a year from `at`: a setting of `Duration::MAX` ("no limit") must not
/// overflow the `Instant` (which panics).
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR)).unwrap_or(at)
}

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
/// ```no_run
/// use assemblyai_streaming::{AudioChunk, ConnectionParams, StreamingClient, TurnEvent};
/// use futures::{SinkExt, StreamExt};
///
/// # async fn run(audio: Vec<AudioChunk>) -> assemblyai_streaming::Result<()> {
/// let client = StreamingClient::from_env()?;
/// let session = client.connect(ConnectionParams::new()).await?;
/// let (mut sink, mut events) = session.split();
/// tokio::spawn(async move {
///     for chunk in audio {
///         if sink.send(chunk).await.is_err() { break; }
///     }
///     let _ = sink.close().await; // flush, then Terminate
/// });
/// while let Some(event) = events.next().await {
///     match event? {
///         TurnEvent::Partial(turn) => eprint!("\r{}", turn.transcript),
///         TurnEvent::Final(turn) => println!("\n{}", turn.transcript),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamingSession {
    sink: AudioSink,
    events: EventStream,
    control: mpsc::Sender<Command>,
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
        SessionHandle {
            tx: self.control.clone(),
        }
    }

    /// Splits into the audio sink and the event stream, both `Send + 'static`.
    /// Take a [`handle`](Self::handle) first if you need control messages.
    pub fn split(self) -> (AudioSink, EventStream) {
        (self.sink, self.events)
    }

    /// Ends the current turn now (`ForceEndpoint`).
    pub async fn force_endpoint(&self) -> Result<()> {
        self.handle().force_endpoint().await
    }

    /// Changes turn detection or formatting mid-session (`UpdateConfiguration`).
    pub async fn update_configuration(&self, update: UpdateConfiguration) -> Result<()> {
        self.handle().update_configuration(update).await
    }

    /// Sends `KeepAlive` (resets the service's inactivity timer).
    pub async fn keep_alive(&self) -> Result<()> {
        self.handle().keep_alive().await
    }

    /// Sends the buffered audio, then `Terminate`, and waits for `Termination` (bounded by the
    /// terminate timeout). Every event that arrives meanwhile stays available from the stream,
    /// in order, ending with [`TurnEvent::Termination`].
    pub async fn terminate(&mut self) -> Result<Termination> {
        let (done_tx, mut done_rx) = oneshot::channel();
        self.control
            .send(Command::Terminate(Some(done_tx)))
            .await
            .map_err(|_| Error::SessionClosed)?;
        // Keep draining events while waiting, so a full event buffer cannot stall the task.
        let mut drained = VecDeque::new();
        let outcome = loop {
            tokio::select! {
                biased;
                event = self.events.rx.recv() => match event {
                    Some(event) => drained.push_back(event),
                    None => break (&mut done_rx).await.unwrap_or(Err(Error::SessionClosed)),
                },
                outcome = &mut done_rx => break outcome.unwrap_or(Err(Error::SessionClosed)),
            }
        };
        self.events.stash.extend(drained);
        outcome
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
/// `poll_ready` waits while the buffer is full. Closing the sink sends the remaining audio
/// (padded with silence to 50 ms) and then `Terminate`; dropping it without closing does the
/// same once every handle is gone too. Sending after the session ended fails with
/// [`Error::SessionClosed`].
#[derive(Debug)]
pub struct AudioSink {
    tx: mpsc::Sender<Command>,
    ended: Arc<AtomicBool>,
    closing: bool,
}

impl AudioSink {
    fn check_open(&self) -> Result<()> {
        if self.ended.load(Ordering::Acquire) {
            Err(Error::SessionClosed)
        } else {
            Ok(())
        }
    }
}

impl Sink<AudioChunk> for AudioSink {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.check_open()?;
        self.tx.poll_ready(cx).map_err(|_| Error::SessionClosed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: AudioChunk) -> Result<()> {
        self.check_open()?;
        if item.is_empty() {
            return Ok(());
        }
        self.tx
            .start_send(Command::Audio(item.into_bytes()))
            .map_err(|_| Error::SessionClosed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        // Chunks go to the session task as soon as they are accepted; nothing waits here.
        Pin::new(&mut self.tx)
            .poll_flush(cx)
            .map_err(|_| Error::SessionClosed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.closing {
            if self.tx.is_closed() {
                return Poll::Ready(Ok(()));
            }
            match self.tx.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                // The task is gone: nothing left to terminate.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
            }
            let _ = self.tx.start_send(Command::Terminate(None));
            self.closing = true;
        }
        Pin::new(&mut self.tx).poll_close(cx).map(|_| Ok(()))
    }
}

/// The event half of a session: a `Stream<Item = Result<TurnEvent, Error>>`.
#[derive(Debug)]
pub struct EventStream {
    rx: tokio::sync::mpsc::Receiver<Result<TurnEvent>>,
    stash: VecDeque<Result<TurnEvent>>,
}

impl Stream for EventStream {
    type Item = Result<TurnEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = self.stash.pop_front() {
            return Poll::Ready(Some(event));
        }
        self.rx.poll_recv(cx)
    }
}

/// Sends control messages to a session from any task. Messages are queued behind the audio
/// already accepted, so they apply at that point of the stream.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
}

impl SessionHandle {
    async fn send(&self, command: Command) -> Result<()> {
        self.tx
            .clone()
            .send(command)
            .await
            .map_err(|_| Error::SessionClosed)
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

    /// Sends the buffered audio and `Terminate`, then waits for `Termination` (bounded by the
    /// terminate timeout). The event stream must be consumed meanwhile, or it may fill up.
    pub async fn terminate(&self) -> Result<Termination> {
        let (done_tx, done_rx) = oneshot::channel();
        self.send(Command::Terminate(Some(done_tx))).await?;
        done_rx.await.unwrap_or(Err(Error::SessionClosed))
    }
}

/// Builds the error for a server-initiated end from a close frame and/or an `Error` frame.
/// Returns `None` for a normal close (1000 without an `Error` frame).
pub(crate) fn server_error(
    close: Option<(u16, String)>,
    error_frame: Option<(Option<i64>, String)>,
) -> Option<Error> {
    let close_code = close
        .as_ref()
        .map(|(c, _)| *c)
        .filter(|c| *c != 1000 && *c != 1005);
    let frame_code = error_frame
        .as_ref()
        .and_then(|(c, _)| *c)
        .and_then(|c| u16::try_from(c).ok());
    if close_code.is_none() && error_frame.is_none() {
        return None;
    }
    let reason = error_frame
        .map(|(_, text)| text)
        .filter(|t| !t.is_empty())
        .or_else(|| close.map(|(_, r)| r).filter(|r| !r.is_empty()))
        .unwrap_or_default();
    Some(match close_code.or(frame_code) {
        Some(code) => Error::closed(code, reason),
        None => Error::Server {
            message: if reason.is_empty() {
                "the server reported an error without a reason".into()
            } else {
                reason
            },
        },
    })
}

/// Starts the task of a session that has received `Begin`.
pub(crate) fn start(
    ws: Ws,
    begin: Begin,
    early: Vec<ServerMessage>,
    params: &ConnectionParams,
    options: &SessionOptions,
) -> StreamingSession {
    let (cmd_tx, cmd_rx) = mpsc::channel(options.audio_buffer);
    let (event_tx, event_rx) = tokio::sync::mpsc::channel(options.event_buffer);
    let ended = Arc::new(AtomicBool::new(false));
    let info = Arc::new(SessionInfo {
        begin: begin.clone(),
        sample_rate: params.get_sample_rate(),
        encoding: params.get_encoding(),
    });
    let span = tracing::info_span!("assemblyai.session", session_id = %begin.id);
    span.in_scope(|| tracing::info!(expires_at = begin.expires_at, "session began"));

    let mut worker = Worker::new(ws, cmd_rx, event_tx, ended.clone(), params, options);
    worker.outbox.push_back(Ok(TurnEvent::Begin(begin)));
    for message in early {
        worker.on_message(message);
    }
    tokio::spawn(worker.run().instrument(span));

    StreamingSession {
        sink: AudioSink {
            tx: cmd_tx.clone(),
            ended,
            closing: false,
        },
        events: EventStream {
            rx: event_rx,
            stash: VecDeque::new(),
        },
        control: cmd_tx,
        info,
    }
}

/// Re-cuts audio into frames of a fixed size.
#[derive(Debug)]
struct Rechunker {
    frame_bytes: usize,
    min_bytes: usize,
    sample_bytes: usize,
    silence: u8,
    pending: BytesMut,
}

impl Rechunker {
    fn new(sample_rate: u32, encoding: Encoding, frame: Duration) -> Self {
        let sample_bytes = encoding.bytes_per_sample();
        // Rounded up: at rates like 22 050 Hz, 50 ms is 1102.5 samples, and a frame of 1102
        // would be under the service's 50 ms minimum (close 3007).
        let samples = |ms: u128| (sample_rate as u128 * ms).div_ceil(1000).max(1) as usize;
        Self {
            frame_bytes: samples(frame.as_millis()) * sample_bytes,
            min_bytes: samples(50) * sample_bytes,
            sample_bytes,
            // μ-law encodes zero amplitude as 0xFF.
            silence: if encoding == Encoding::PcmMulaw {
                0xFF
            } else {
                0
            },
            pending: BytesMut::new(),
        }
    }

    /// Adds audio; returns the complete frames now available.
    fn push(&mut self, mut data: Bytes, out: &mut Vec<Bytes>) {
        if self.pending.is_empty() {
            // Fast path: whole frames straight from the caller's buffer, no copy.
            while data.len() >= self.frame_bytes {
                out.push(data.split_to(self.frame_bytes));
            }
            self.pending.extend_from_slice(&data);
            return;
        }
        self.pending.extend_from_slice(&data);
        while self.pending.len() >= self.frame_bytes {
            out.push(self.pending.split_to(self.frame_bytes).freeze());
        }
    }

    /// The remainder, completed to a whole sample and padded with silence to 50 ms.
    fn finish(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        let odd = self.pending.len() % self.sample_bytes;
        if odd != 0 {
            tracing::warn!("audio ended mid-sample; completing the last sample with silence");
        }
        let mut len = self.pending.len() + (self.sample_bytes - odd) % self.sample_bytes;
        len = len.max(self.min_bytes);
        self.pending.resize(len, self.silence);
        Some(self.pending.split().freeze())
    }
}

/// Decides which Turn is the final of its `turn_order` (see [`TurnEvent`]).
#[derive(Debug)]
struct FinalTracker {
    /// Whether an unformatted end-of-turn may be followed by a formatted one.
    expect_formatted: bool,
    legacy_capable: bool,
    pending: Option<Turn>,
    deadline: Option<Instant>,
    wait: Duration,
    last_final: Option<u64>,
}

impl FinalTracker {
    fn new(params: &ConnectionParams, wait: Duration) -> Self {
        // Only Universal-Streaming English ever sent the separate formatted Turn; other models
        // format in-model (or never), so waiting for them would only add delay.
        let legacy_capable = matches!(
            params.get_speech_model(),
            SpeechModel::UniversalStreamingEnglish
        );
        Self {
            expect_formatted: legacy_capable && params.get_format_turns(),
            legacy_capable,
            pending: None,
            deadline: None,
            wait,
            last_final: None,
        }
    }

    fn set_format_turns(&mut self, on: bool) {
        self.expect_formatted = self.legacy_capable && on;
    }

    fn emit_final(&mut self, turn: Turn, out: &mut VecDeque<Result<TurnEvent>>) {
        self.last_final = Some(turn.turn_order);
        out.push_back(Ok(TurnEvent::Final(turn)));
    }

    fn on_turn(&mut self, turn: Turn, out: &mut VecDeque<Result<TurnEvent>>) {
        if let Some(pending) = self.pending.take() {
            self.deadline = None;
            if turn.turn_order == pending.turn_order && turn.end_of_turn && turn.turn_is_formatted {
                out.push_back(Ok(TurnEvent::Partial(pending)));
                self.emit_final(turn, out);
                return;
            }
            self.emit_final(pending, out);
        }
        let already_final = self.last_final.is_some_and(|l| turn.turn_order <= l);
        if turn.end_of_turn && already_final {
            tracing::warn!(
                turn_order = turn.turn_order,
                "end-of-turn for a turn already delivered as final; delivered as partial"
            );
            out.push_back(Ok(TurnEvent::Partial(turn)));
        } else if turn.end_of_turn && self.expect_formatted && !turn.turn_is_formatted {
            self.pending = Some(turn);
            self.deadline = Some(later(Instant::now(), self.wait));
        } else if turn.end_of_turn {
            self.emit_final(turn, out);
        } else {
            out.push_back(Ok(TurnEvent::Partial(turn)));
        }
    }

    fn flush(&mut self, out: &mut VecDeque<Result<TurnEvent>>) {
        self.deadline = None;
        if let Some(pending) = self.pending.take() {
            self.emit_final(pending, out);
        }
    }
}

/// A deadline that never comes, for timers with nothing to wait for.
fn far_future() -> Instant {
    later(Instant::now(), FAR)
}

/// How the session ended, for the task's final bookkeeping.
#[derive(Debug)]
enum End {
    Terminated(Termination),
    Error(Error),
    /// Closed normally without `Termination`, or nobody is listening any more.
    Quiet,
}

struct Worker {
    ws: Ws,
    cmd_rx: mpsc::Receiver<Command>,
    cmds_open: bool,
    event_tx: tokio::sync::mpsc::Sender<Result<TurnEvent>>,
    events_open: bool,
    ended: Arc<AtomicBool>,
    outbox: VecDeque<Result<TurnEvent>>,
    rechunker: Rechunker,
    frames: Vec<Bytes>,
    tracker: FinalTracker,
    keep_alive: Option<Duration>,
    last_sent: Instant,
    terminate_timeout: Duration,
    terminate_deadline: Option<Instant>,
    waiters: Vec<oneshot::Sender<Result<Termination>>>,
    error_frame: Option<(Option<i64>, String)>,
    error_deadline: Option<Instant>,
    write_failed: bool,
    /// Why the first failed write failed, reported if the read side never says more.
    write_error: Option<String>,
    end: Option<End>,
    /// Resolves when the event stream is dropped. Kept across loop turns: a fresh
    /// `Sender::closed()` per turn registered and unregistered a waiter under a lock each time.
    events_closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// One timer for the error, terminate and format deadlines, re-armed only when the earliest
    /// of them changes (a fresh `sleep_until` per deadline per loop turn was measurable churn).
    deadline_timer: Pin<Box<tokio::time::Sleep>>,
    deadline_armed: Option<Instant>,
    keep_alive_timer: Pin<Box<tokio::time::Sleep>>,
    keep_alive_armed: Option<Instant>,
}

impl Worker {
    fn new(
        ws: Ws,
        cmd_rx: mpsc::Receiver<Command>,
        event_tx: tokio::sync::mpsc::Sender<Result<TurnEvent>>,
        ended: Arc<AtomicBool>,
        params: &ConnectionParams,
        options: &SessionOptions,
    ) -> Self {
        let events_tx = event_tx.clone();
        Self {
            ws,
            cmd_rx,
            cmds_open: true,
            event_tx,
            events_open: true,
            ended,
            outbox: VecDeque::new(),
            rechunker: Rechunker::new(
                params.get_sample_rate(),
                params.get_encoding(),
                options.frame_duration,
            ),
            frames: Vec::new(),
            tracker: FinalTracker::new(params, options.format_wait),
            keep_alive: options.keep_alive_interval,
            last_sent: Instant::now(),
            terminate_timeout: options.terminate_timeout,
            terminate_deadline: None,
            waiters: Vec::new(),
            error_frame: None,
            error_deadline: None,
            write_failed: false,
            write_error: None,
            end: None,
            events_closed: Box::pin(async move { events_tx.closed().await }),
            deadline_timer: Box::pin(tokio::time::sleep_until(far_future())),
            deadline_armed: None,
            keep_alive_timer: Box::pin(tokio::time::sleep_until(far_future())),
            keep_alive_armed: None,
        }
    }

    /// Hands queued events to the consumer while its buffer has room, without a turn of the
    /// select loop per event. A full or closed channel is left to the loop's branches.
    fn deliver_ready(&mut self) {
        while self.events_open && !self.outbox.is_empty() {
            let Ok(permit) = self.event_tx.try_reserve() else {
                return;
            };
            if let Some(event) = self.outbox.pop_front() {
                permit.send(event);
            }
        }
    }

    /// Points the shared deadline timer at the earliest pending deadline, if it changed. The
    /// error deadline counts only while reading is possible: frames still queued behind a slow
    /// consumer (the rest of the turns, the close code) come first.
    fn arm_timers(&mut self, can_read: bool) {
        let next = [
            self.error_deadline.filter(|_| can_read),
            self.terminate_deadline,
            self.tracker.deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if next != self.deadline_armed {
            if let Some(at) = next {
                self.deadline_timer.as_mut().reset(at);
            }
            self.deadline_armed = next;
        }
        // No keep-alives once a write has failed: the timer would fire again at once (its
        // deadline is in the past) and spin until the error deadline ends the session.
        let keep_alive_at = match (self.keep_alive, self.terminate_deadline) {
            (Some(every), None) if !self.write_failed => Some(later(self.last_sent, every)),
            _ => None,
        };
        if keep_alive_at != self.keep_alive_armed {
            if let Some(at) = keep_alive_at {
                self.keep_alive_timer.as_mut().reset(at);
            }
            self.keep_alive_armed = keep_alive_at;
        }
    }

    /// The deadline timer fired: act on the expired deadline of highest priority (error, then
    /// terminate, then format wait), as separate timers polled in that order would.
    fn on_deadline(&mut self, can_read: bool) {
        // Re-armed on the next turn, for whatever deadline is still pending.
        self.deadline_armed = None;
        let now = Instant::now();
        let expired = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if can_read && expired(self.error_deadline) {
            let frame = self.error_frame.take();
            let error = server_error(None, frame)
                .or_else(|| self.write_error.take().map(Error::ConnectionLost));
            self.finish_with(error);
        } else if expired(self.terminate_deadline) {
            tracing::warn!(timeout = ?self.terminate_timeout, "no Termination in time");
            self.end = Some(End::Error(Error::Timeout {
                kind: TimeoutKind::Termination,
                after: self.terminate_timeout,
            }));
        } else if expired(self.tracker.deadline) {
            self.tracker.flush(&mut self.outbox);
        }
    }

    async fn run(mut self) {
        while self.end.is_none() {
            self.deliver_ready();
            let can_read = self.outbox.is_empty() || !self.events_open;
            self.arm_timers(can_read);
            tokio::select! {
                biased;
                _ = self.events_closed.as_mut(), if self.events_open => {
                    tracing::debug!("event stream dropped; discarding events");
                    self.events_open = false;
                    self.outbox.clear();
                    if !self.cmds_open {
                        self.end = Some(End::Quiet);
                    }
                }
                // The consumer's buffer was full: wait for room (a permit borrowing the sender
                // cannot outlive the select, so it is released and taken again at once; the
                // task is the only sender, so the room is still there).
                room = self.event_tx.reserve().map(|r| r.map(drop)), if self.events_open && !self.outbox.is_empty() => {
                    match room {
                        Ok(()) => self.deliver_ready(),
                        Err(_) => self.events_open = false,
                    }
                }
                frame = self.ws.next(), if can_read => self.on_frame(frame).await,
                _ = self.deadline_timer.as_mut(), if self.deadline_armed.is_some() => self.on_deadline(can_read),
                command = self.cmd_rx.next(), if self.cmds_open && !self.write_failed => match command {
                    Some(command) => self.on_command(command).await,
                    None => {
                        self.cmds_open = false;
                        if !self.events_open {
                            self.end = Some(End::Quiet);
                        } else if self.terminate_deadline.is_none() {
                            // Every sender is gone: the audio is over, end gracefully.
                            self.on_command(Command::Terminate(None)).await;
                        }
                    }
                },
                _ = self.keep_alive_timer.as_mut(), if self.keep_alive_armed.is_some() => {
                    self.keep_alive_armed = None;
                    self.send_json(&ClientMessage::KeepAlive).await;
                }
            }
        }
        self.shutdown().await;
    }

    async fn shutdown(mut self) {
        self.ended.store(true, Ordering::Release);
        self.cmd_rx.close();
        self.tracker.flush(&mut self.outbox);
        let end = self.end.take().unwrap_or(End::Quiet);
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(match &end {
                End::Terminated(t) => Ok(t.clone()),
                End::Error(e) => Err(e.duplicate()),
                End::Quiet => Err(Error::SessionClosed),
            });
        }
        match end {
            End::Terminated(t) => {
                tracing::info!(
                    audio_seconds = t.audio_duration_seconds,
                    session_seconds = t.session_duration_seconds,
                    "session terminated"
                );
                self.outbox.push_back(Ok(TurnEvent::Termination(t)));
            }
            End::Error(e) => {
                tracing::warn!(error = %e, kind = e.kind(), "session ended with an error");
                self.outbox.push_back(Err(e));
            }
            End::Quiet => tracing::debug!("session closed"),
        }
        // Close our side first (bounded: the peer may be gone), then deliver what is left.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
        if self.events_open {
            for event in self.outbox.drain(..) {
                if self.event_tx.send(event).await.is_err() {
                    break;
                }
            }
        }
    }

    fn finish_with(&mut self, error: Option<Error>) {
        self.end = Some(match error {
            Some(e) => End::Error(e),
            None => End::Quiet,
        });
    }

    async fn on_frame(
        &mut self,
        frame: Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        match frame {
            Some(Ok(Message::Text(text))) => match ServerMessage::from_json(text.as_str()) {
                Ok(message) => self.on_message(message),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable server frame");
                    self.push(Err(Error::decode(e, text.as_str())));
                }
            },
            Some(Ok(Message::Binary(data))) => {
                self.push(Err(Error::decode(
                    "unexpected binary frame from the server",
                    &format!("<{} bytes>", data.len()),
                )));
            }
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queued the pong; flush it even if we have nothing else to send.
                let _ = self.ws.flush().await;
            }
            Some(Ok(Message::Close(frame))) => {
                let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                tracing::debug!(?close, "server closed");
                let frame = self.error_frame.take();
                self.finish_with(server_error(close, frame));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let frame = self.error_frame.take();
                self.finish_with(Some(
                    server_error(None, frame)
                        .unwrap_or_else(|| Error::ConnectionLost(e.to_string())),
                ));
            }
            None => {
                let frame = self.error_frame.take();
                self.finish_with(Some(server_error(None, frame).unwrap_or_else(|| {
                    Error::ConnectionLost("connection closed without a close frame".into())
                })));
            }
        }
    }

    fn push(&mut self, event: Result<TurnEvent>) {
        if self.events_open {
            self.outbox.push_back(event);
        }
    }

    fn on_message(&mut self, message: ServerMessage) {
        let event = match message {
            ServerMessage::Turn(turn) => {
                if self.events_open {
                    self.tracker.on_turn(turn, &mut self.outbox);
                }
                return;
            }
            ServerMessage::Termination(t) => {
                self.end = Some(End::Terminated(t));
                return;
            }
            ServerMessage::Error(f) => {
                self.on_error_frame(f.error_code, f.error);
                return;
            }
            ServerMessage::LegacyError { error } => {
                self.on_error_frame(None, error);
                return;
            }
            ServerMessage::Begin(b) => {
                tracing::warn!(id = %b.id, "second Begin ignored");
                return;
            }
            ServerMessage::SpeechStarted(s) => TurnEvent::SpeechStarted(s),
            ServerMessage::Warning(w) => {
                tracing::warn!(code = w.warning_code, warning = %w.warning, "service warning");
                TurnEvent::Warning(w)
            }
            ServerMessage::Heartbeat(h) => TurnEvent::Heartbeat(h),
            ServerMessage::Silence(s) => TurnEvent::Silence(s),
            ServerMessage::SpeakerRevision(r) => TurnEvent::SpeakerRevision(r),
            ServerMessage::LlmGatewayResponse(r) => TurnEvent::LlmGatewayResponse(r),
            ServerMessage::Unknown(v) => {
                tracing::debug!(kind = ?v.get("type"), "unknown message type");
                TurnEvent::Unknown(v)
            }
        };
        self.push(Ok(event));
    }

    fn on_error_frame(&mut self, code: Option<i64>, text: String) {
        tracing::warn!(?code, error = %text, "server sent an Error frame");
        // Wait briefly for the close that normally follows, to report both as one error.
        self.error_frame = Some((code, text));
        self.error_deadline = Some(Instant::now() + ERROR_CLOSE_GRACE);
    }

    async fn on_command(&mut self, command: Command) {
        if self.terminate_deadline.is_some() {
            match command {
                Command::Terminate(Some(done)) => self.waiters.push(done),
                Command::Terminate(None) => {}
                other => tracing::debug!(?other, "ignored: Terminate already sent"),
            }
            return;
        }
        match command {
            Command::Audio(data) => {
                let mut frames = std::mem::take(&mut self.frames);
                self.rechunker.push(data, &mut frames);
                for frame in frames.drain(..) {
                    if !self.send(Message::Binary(frame)).await {
                        break;
                    }
                }
                self.frames = frames;
            }
            Command::Control(message) => {
                if let ClientMessage::UpdateConfiguration(u) = &message {
                    if let Some(on) = u.format_turns {
                        self.tracker.set_format_turns(on);
                    }
                }
                self.send_json(&message).await;
            }
            Command::Terminate(done) => {
                if let Some(done) = done {
                    self.waiters.push(done);
                }
                if let Some(rest) = self.rechunker.finish() {
                    self.send(Message::Binary(rest)).await;
                }
                self.send_json(&ClientMessage::Terminate).await;
                self.ended.store(true, Ordering::Release);
                self.terminate_deadline = Some(later(Instant::now(), self.terminate_timeout));
                tracing::debug!("Terminate sent");
            }
        }
    }

    async fn send_json(&mut self, message: &ClientMessage) -> bool {
        self.send(Message::text(message.to_json())).await
    }

    async fn send(&mut self, message: Message) -> bool {
        if self.write_failed {
            return false;
        }
        match self.ws.send(message).await {
            Ok(()) => {
                self.last_sent = Instant::now();
                true
            }
            Err(e) => {
                // The read side reports why (close code or drop); stop writing meanwhile.
                tracing::debug!(error = %e, "write failed");
                self.write_failed = true;
                self.write_error = Some(format!("sending failed: {e}"));
                if self.error_deadline.is_none() {
                    self.error_deadline = Some(Instant::now() + ERROR_CLOSE_GRACE);
                }
                false
            }
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(order: u64, eot: bool, formatted: bool, text: &str) -> Turn {
        Turn {
            turn_order: order,
            turn_is_formatted: formatted,
            end_of_turn: eot,
            transcript: text.into(),
            end_of_turn_confidence: 0.5,
            words: vec![],
            utterance: None,
            language_code: None,
            language_confidence: None,
            speaker_label: None,
            emulator_sent_at_ns: None,
        }
    }

    fn kinds(out: &VecDeque<Result<TurnEvent>>) -> Vec<String> {
        out.iter()
            .map(|e| match e {
                Ok(TurnEvent::Partial(t)) => format!("P{}:{}", t.turn_order, t.transcript),
                Ok(TurnEvent::Final(t)) => format!("F{}:{}", t.turn_order, t.transcript),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn legacy_formatting_yields_the_formatted_turn_as_the_only_final() {
        let params = ConnectionParams::new().format_turns(true);
        let mut t = FinalTracker::new(&params, Duration::from_secs(1));
        let mut out = VecDeque::new();
        t.on_turn(turn(0, false, false, "hi"), &mut out);
        t.on_turn(turn(0, true, false, "hi there"), &mut out);
        assert_eq!(kinds(&out), ["P0:hi"], "unformatted end-of-turn is held");
        t.on_turn(turn(0, true, true, "Hi there."), &mut out);
        t.on_turn(turn(1, false, false, "next"), &mut out);
        assert_eq!(
            kinds(&out),
            ["P0:hi", "P0:hi there", "F0:Hi there.", "P1:next"]
        );
    }

    #[test]
    fn in_model_formatting_and_no_formatting_finalize_on_end_of_turn() {
        for params in [
            ConnectionParams::new().format_turns(true),
            ConnectionParams::new(),
        ] {
            let formatted = params.get_format_turns();
            let mut t = FinalTracker::new(&params, Duration::from_secs(1));
            let mut out = VecDeque::new();
            t.on_turn(turn(0, false, formatted, "Hi"), &mut out);
            t.on_turn(turn(0, true, formatted, "Hi there."), &mut out);
            assert_eq!(kinds(&out), ["P0:Hi", "F0:Hi there."]);
        }
    }

    #[test]
    fn a_held_end_of_turn_becomes_final_when_the_next_turn_starts() {
        let params = ConnectionParams::new().format_turns(true);
        let mut t = FinalTracker::new(&params, Duration::from_secs(1));
        let mut out = VecDeque::new();
        t.on_turn(turn(0, true, false, "hi"), &mut out);
        t.on_turn(turn(1, false, false, "next"), &mut out);
        assert_eq!(kinds(&out), ["F0:hi", "P1:next"]);
        t.on_turn(turn(1, true, false, "next one"), &mut out);
        t.flush(&mut out);
        assert_eq!(kinds(&out), ["F0:hi", "P1:next", "F1:next one"]);
    }

    #[test]
    fn other_models_never_wait_for_a_formatted_twin() {
        let params = ConnectionParams::new()
            .speech_model(SpeechModel::UniversalStreamingMultilingual)
            .format_turns(true);
        let mut t = FinalTracker::new(&params, Duration::from_secs(1));
        let mut out = VecDeque::new();
        t.on_turn(turn(0, true, false, "hola"), &mut out);
        assert_eq!(kinds(&out), ["F0:hola"]);
    }

    #[test]
    fn rechunker_cuts_exact_frames_and_pads_the_tail() {
        let mut r = Rechunker::new(16_000, Encoding::PcmS16le, Duration::from_millis(100));
        let mut out = Vec::new();
        r.push(Bytes::from(vec![1u8; 1]), &mut out);
        assert!(out.is_empty());
        r.push(Bytes::from(vec![2u8; 6400 + 99]), &mut out);
        assert_eq!(
            out.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [3200, 3200]
        );
        let tail = r.finish().unwrap();
        assert_eq!(tail.len(), 1600, "100 leftover bytes padded to 50 ms");
        assert!(tail[100..].iter().all(|b| *b == 0));
        assert!(r.finish().is_none());
        // A long chunk is split without copying into frames.
        r.push(Bytes::from(vec![0u8; 32_000 * 3]), &mut out);
        assert_eq!(out.len(), 2 + 30);
    }

    #[test]
    fn mulaw_pads_with_mulaw_silence() {
        let mut r = Rechunker::new(8_000, Encoding::PcmMulaw, Duration::from_millis(100));
        let mut out = Vec::new();
        r.push(Bytes::from(vec![7u8; 10]), &mut out);
        let tail = r.finish().unwrap();
        assert_eq!(tail.len(), 400);
        assert_eq!(tail[399], 0xFF);
    }

    #[test]
    fn error_frame_and_close_merge_into_one_error() {
        let e = server_error(
            Some((3007, "Input duration violation".into())),
            Some((
                Some(3007),
                "Input duration violation: 20 ms. Expected between 50 and 1000 ms".into(),
            )),
        )
        .unwrap();
        assert_eq!(e.code(), Some(3007));
        assert!(e.to_string().contains("20 ms"));
        assert!(server_error(Some((1000, String::new())), None).is_none());
        let e = server_error(Some((1008, String::new())), None).unwrap();
        assert_eq!(e.kind(), "unauthorized");
        let e = server_error(None, Some((None, "boom".into()))).unwrap();
        assert_eq!(e.kind(), "server_error");
    }
}
