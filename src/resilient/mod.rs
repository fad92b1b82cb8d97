//! Sessions that outlive their connection: reconnect, replay and roll over without losing a
//! word (opt-in; [`StreamingSession`](crate::StreamingSession) itself is unchanged).
//!
//! A [`ResilientSession`] has the shape of a plain session — a [`Sink<AudioChunk>`] for audio
//! and a [`Stream`] of events — but one stream of audio may span many connections:
//!
//! - **Reconnects** when a connection fails in a way that a new one can fix (see
//!   [`is_transient`]: a TCP drop, closes 1001/1011/1012/1013, the service's 3005, a handshake
//!   timeout or refusal, 5xx/429 at the upgrade, a close before `Termination`), after a bounded
//!   exponential backoff with jitter. After `max_reconnects` failed tries in a row it gives up
//!   and the stream ends with the last error. Authentication (1008, HTTP 401/403), validation
//!   (3006, 3007) and concurrency (3009) failures end the stream at once.
//! - **Replays** the audio the service had not finalised: a bounded buffer keeps the audio
//!   since the end of the last final (by its words' `end` times, plus a 100 ms guard) and a new
//!   connection gets it first, so the interrupted turn is transcribed once, whole. The
//!   service's real-time rule (3007 for audio ahead of the clock) is kept: `burst` of audio
//!   (default 500 ms) at once, then real time, catching up by skipping silence beyond
//!   `keep_silence` (default 1.5 s) in each pause — speech is never skipped. When the buffer
//!   bound (default 60 s) is passed, [`ResilientEvent::AudioGap`] says which audio will not be
//!   transcribed. The sink accepts audio at any rate and paces it, so a file can be sent as
//!   fast as it is read (the sink waits while 30 s are queued on a live connection). While
//!   no connection is up the sink keeps taking audio (a live source cannot wait), so a fast
//!   producer can run past the bound during an outage.
//! - **Keeps one timeline**: `turn_order` continues across connections, word `start`/`end` are
//!   milliseconds of the caller's audio (from the first sample given to the sink, silence
//!   skipped or not), and no final is delivered twice (a final whose words all end inside audio
//!   an earlier final covered is dropped). [`ResilientEvent::Reconnected`] tells what happened.
//! - **Rolls over before the session cap**: from `rollover_lead` (default 2 min, at most a
//!   quarter of the session's life) before `Begin.expires_at` (3 h, or a temporary token's
//!   `max_session_duration_seconds`), it opens the next session (sending it `KeepAlive` while
//!   it waits) and switches at a turn boundary (after a final, before the next turn's first
//!   partial); by a quarter of the lead before the cap it switches whatever is being said (the
//!   replay carries the turn over). Each connection takes a fresh temporary token from the
//!   token provider, if one is set. If the account's concurrency limit refuses the session
//!   opened ahead (3009), the switch happens at that deadline without overlap: the live
//!   session is closed first.
//! - **Carries settings over**: every new connection uses the same [`ConnectionParams`], then
//!   gets one `UpdateConfiguration` with every change made through
//!   [`ResilientHandle::update_configuration`] so far (later values win).
//!
//! What it does not do: it cannot recover audio the caller never gave it, or more than the
//! buffer holds (reported as gaps); a `ForceEndpoint` sent while no connection is up is
//! dropped; `Termination` reports the last connection's figures; `Heartbeat` messages describe
//! their own connection. With `inactivity_timeout`, an idle close (3005 on the emulator) is
//! reconnected like any server error: to end the stream, close the sink. `expires_at` is read
//! against the local clock: a clock that is behind by more than the lead meets the cap (3008),
//! which is then reconnected (and replayed) like a drop.
//!
//! ```
//! use assemblyai_streaming::audio::paced;
//! use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession};
//! use assemblyai_streaming::{ConnectionParams, Encoding, StreamingClient, TurnEvent};
//! # use assemblyai_streaming::AudioChunk;
//! use futures::{SinkExt, StreamExt};
//! # use assemblyai_streaming::emulator::{Emulator, Faults, Script};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // The first connection drops (no close frame) 300 ms in, mid-turn.
//! # let emulator = Emulator::builder()
//! #     .script(Script::from_texts(["Hello, world."]))
//! #     .faults(Faults {
//! #         drop_after: Some(std::time::Duration::from_millis(300)),
//! #         faulty_sessions: Some(1),
//! #         ..Faults::default()
//! #     })
//! #     .start()
//! #     .await?;
//! let client = StreamingClient::builder(); // key from ASSEMBLYAI_API_KEY
//! # let client = client.api_key(emulator.api_key()).base_url(emulator.ws_url());
//! let session = ResilientSession::builder(client, ConnectionParams::new())
//!     .connect()
//!     .await?;
//! let (mut sink, mut events) = session.split();
//! // `chunks`: 16 kHz mono s16le audio (e.g. from `audio::read_wav`), sent at real time.
//! # // 600 ms of "speech", then 600 ms of silence.
//! # let tone: Vec<i16> = (0..9_600).map(|i| ((i as f32 * 0.2).sin() * 8e3) as i16).collect();
//! # let chunks = vec![AudioChunk::from_pcm16(&tone), AudioChunk::from_pcm16(&[0; 9_600])];
//! let mut audio = paced(chunks, 16_000, Encoding::PcmS16le);
//! tokio::spawn(async move {
//!     while let Some(chunk) = audio.next().await {
//!         if sink.send(chunk).await.is_err() { break; }
//!     }
//!     let _ = sink.close().await; // flush, then Terminate
//! });
//! # let (mut finals, mut reconnects) = (Vec::new(), 0);
//! while let Some(event) = events.next().await {
//!     match event? {
//!         ResilientEvent::Turn(TurnEvent::Final(turn)) => {
//!             println!("{}", turn.transcript);
//! #           finals.push(turn.transcript);
//!         }
//!         ResilientEvent::Reconnected { downtime, .. } => {
//!             eprintln!("reconnected after {downtime:?}");
//! #           reconnects += 1;
//!         }
//!         ResilientEvent::AudioGap { duration, .. } => eprintln!("{duration:?} not transcribed"),
//!         _ => {}
//!     }
//! }
//! # assert_eq!(reconnects, 1);
//! # // The dropped audio was replayed: one whole turn (unformatted).
//! # assert_eq!(finals, ["hello world"]);
//! # Ok(()) }
//! ```

mod driver;
mod replay;
mod timeline;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{Sink, SinkExt, Stream};

use crate::StreamingClientBuilder;
use crate::audio::AudioChunk;
use crate::error::{Error, Result, TimeoutKind};
use crate::params::ConnectionParams;
use crate::protocol::{Termination, Turn, UpdateConfiguration};
use crate::retry::{JitterSource, RetryPolicy};
use crate::session::TurnEvent;

use driver::{Driver, Policy, Settings, open};
use replay::{ReplayBuffer, ReplayConfig};

/// An event of a resilient session: the events of its connections on one timeline, and what
/// happened to the connections.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResilientEvent {
    /// A session event, rewritten onto the stream's timeline. `Begin` comes once (the first
    /// connection's), `Termination` once (the last one's, after a terminate); partials and
    /// finals have stream `turn_order`s and word times.
    Turn(TurnEvent),
    /// A failed connection was replaced.
    Reconnected {
        /// Failed connections and connect tries in a row, this outage included (1 after a
        /// single failure; reset once a connection stays up `stable_after`).
        attempt: u32,
        /// From the failure to the new session's `Begin`.
        downtime: Duration,
        /// Audio sent again because no final had covered it yet.
        replayed: Duration,
        /// The new session's id.
        session_id: String,
        /// The failure that caused it.
        cause: Error,
    },
    /// The session was replaced ahead of its cap (`expires_at`).
    RolledOver {
        /// Audio sent again (from the end of the last final).
        replayed: Duration,
        /// The new session's id.
        session_id: String,
    },
    /// Audio that will never be transcribed: it fell out of the replay buffer before a final
    /// covered it. `start` is on the stream's clock (from the first sample given to the sink).
    AudioGap {
        /// Where the gap starts.
        start: Duration,
        /// How long it is.
        duration: Duration,
    },
}

impl ResilientEvent {
    /// The turn of a `Partial` or `Final`.
    pub fn turn(&self) -> Option<&Turn> {
        match self {
            ResilientEvent::Turn(e) => e.turn(),
            _ => None,
        }
    }
}

/// Whether a new connection can fix this failure: the crate's one retry table
/// ([`Error::is_retryable`]), plus what only holds in the middle of a session.
///
/// Transient: everything [`Error::is_retryable`] retries (a dropped connection, a connect
/// failure or timeout, HTTP 5xx/408/429 at the upgrade or from the token provider's request,
/// closes 1006, 1012, 1013, 3005 and 3008 — a cap the rollover did not beat), and, mid
/// session, closes that name no error (1000, 1001, 1005: the service always sends
/// `Termination` on a graceful end, so these ended the connection, not the conversation),
/// 1011 (the server's internal error), an `Error` frame without a code, and websocket protocol
/// failures.
/// Never: 1008 and HTTP 401/403 (credentials), 3006 and 3007 (the client's messages or audio
/// are wrong — a new connection would get the same), 3009 (too many sessions: a retry makes
/// it worse), configuration, certificate and audio errors, and the terminate timeout.
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::Closed {
            code: 1000 | 1001 | 1005 | 1011,
            ..
        }
        | Error::Server { .. }
        | Error::WebSocket { .. } => true,
        Error::Timeout {
            kind: TimeoutKind::Termination,
            ..
        } => false,
        _ => error.is_retryable(),
    }
}

/// Supplies a fresh temporary token for each connection.
pub type TokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String>> + Send>> + Send + Sync>;

/// Builds a [`ResilientSession`].
///
/// Defaults: at most 5 reconnect tries in a row, backoff from 250 ms doubling to 10 s (each
/// delay jittered to 50–100 % of its value: the crate's [`RetryPolicy`] with equal jitter), a
/// connection counts as healthy again after 30 s
/// up; 60 s replay buffer, replays from 100 ms after the last final's last word; 500 ms burst; 1.5 s of every pause kept when catching up; silence
/// below RMS 0.01 (−40 dBFS); rollover 2 min before the cap; 100 ms frames; 64 buffered audio
/// chunks; 256 buffered events; no token provider (the client's credentials for every
/// connection).
#[derive(Clone)]
pub struct ResilientSessionBuilder {
    client: StreamingClientBuilder,
    params: ConnectionParams,
    token_provider: Option<TokenProvider>,
    /// Reconnect budget (`max_retries`) and backoff.
    retry: RetryPolicy,
    stable_after: Duration,
    replay_buffer: Duration,
    replay_guard: Duration,
    burst: Duration,
    keep_silence: Duration,
    silence_level: f32,
    rollover_lead: Duration,
    frame: Duration,
    audio_buffer: usize,
    event_buffer: usize,
}

impl std::fmt::Debug for ResilientSessionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientSessionBuilder")
            .field("client", &self.client)
            .field("params", &self.params)
            .field("token_provider", &self.token_provider.is_some())
            .field("retry", &self.retry)
            .field("replay_buffer", &self.replay_buffer)
            .field("rollover_lead", &self.rollover_lead)
            .finish_non_exhaustive()
    }
}

impl ResilientSessionBuilder {
    /// Gives up after this many failed reconnect tries in a row (default 5). A connection
    /// that stays up `stable_after` resets the count.
    pub fn max_reconnects(mut self, n: u32) -> Self {
        self.retry = self.retry.max_retries(n);
        self
    }

    /// Backoff before reconnect try `n`: `initial · 2ⁿ⁻¹`, at most `max`, jittered to
    /// 50–100 % (default 250 ms, 10 s). Sets the first delay and the cap of the
    /// [`retry_policy`](Self::retry_policy).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry = self
            .retry
            .retry_delay(initial)
            .max_retry_wait(max.max(initial));
        self
    }

    /// The whole reconnect policy at once (default
    /// `RetryPolicy::new(5, 250 ms, 2).max_retry_wait(10 s).jitter(true)`): its `max_retries`
    /// is [`max_reconnects`](Self::max_reconnects), its delays those of
    /// [`backoff`](Self::backoff) (with its own growth factor), jittered if it says so. Which
    /// failures are retried is this module's [`is_transient`], not the policy's table; a
    /// `Retry-After` is not consulted.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long a connection must stay up for its failure to start a new count of tries
    /// (default 30 s).
    pub fn stable_after(mut self, d: Duration) -> Self {
        self.stable_after = d;
        self
    }

    /// How much unfinalised audio is kept for a replay (default 60 s). Audio that falls out of
    /// it before a final covers it is reported as [`ResilientEvent::AudioGap`].
    pub fn replay_buffer(mut self, d: Duration) -> Self {
        self.replay_buffer = d;
        self
    }

    /// A replay starts this long after the last final's last word ends (default 100 ms).
    /// Word end times are estimates; a replay from a little before the speech really ended
    /// has the service transcribe the tail again, as a fragment of the next turn. A turn ends
    /// only after a silence (at least `min_end_of_turn_silence_when_confident`, 100–400 ms by
    /// model), so the guard skips silence, not speech — except after a `ForceEndpoint`
    /// in mid-word.
    pub fn replay_guard(mut self, d: Duration) -> Self {
        self.replay_guard = d;
        self
    }

    /// Audio sent at once on a new connection before real-time pacing (default 500 ms; keep it
    /// under the service's tolerance for audio ahead of the clock, 3007).
    pub fn burst(mut self, d: Duration) -> Self {
        self.burst = d;
        self
    }

    /// Silence kept in each pause while catching up after a replay (default 1.5 s; below the
    /// session's `max_turn_silence`, turns may merge).
    pub fn keep_silence(mut self, d: Duration) -> Self {
        self.keep_silence = d;
        self
    }

    /// RMS level (0–1) below which a frame counts as silence (default 0.01).
    pub fn silence_level(mut self, rms: f32) -> Self {
        self.silence_level = rms;
        self
    }

    /// How long before the session cap the next session is opened (default 2 min; at most a
    /// quarter of the session's life).
    pub fn rollover_lead(mut self, d: Duration) -> Self {
        self.rollover_lead = d;
        self
    }

    /// Duration of the frames sent, 50–1000 ms (default 100 ms; also set on the client).
    pub fn frame_duration(mut self, d: Duration) -> Self {
        self.frame = d;
        self
    }

    /// Audio chunks the sink buffers before `poll_ready` waits (default 64).
    pub fn audio_buffer(mut self, chunks: usize) -> Self {
        self.audio_buffer = chunks.max(1);
        self
    }

    /// Events buffered for a slow consumer (default 256).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Calls `provider` for a temporary token before each connection (tokens are single-use),
    /// instead of the client's own credentials.
    pub fn token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        self.token_provider = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// Opens the first session (transient failures are retried like a reconnect) and starts
    /// the session's task.
    pub async fn connect(self) -> Result<ResilientSession> {
        if self.frame < Duration::from_millis(50) || self.frame > Duration::from_secs(1) {
            return Err(Error::config(format!(
                "frame_duration must be 50–1000 ms, got {:?}",
                self.frame
            )));
        }
        // The session retries with its own backoff and budget; the client's handshake retries
        // would multiply the tries, and would reuse a single-use temporary token.
        let client_builder = self
            .client
            .clone()
            .frame_duration(self.frame)
            .retries(0, Duration::ZERO);
        // Checks the settings now; with a token provider, each connection builds its own.
        let client = match &self.token_provider {
            Some(_) => {
                client_builder
                    .clone()
                    .token("placeholder-checked-only")
                    .build()?;
                None
            }
            None => Some(client_builder.clone().build()?),
        };
        let rate = self.params.get_sample_rate();
        let encoding = self.params.get_encoding();
        let samples = |d: Duration| (u128::from(rate) * d.as_millis()).div_ceil(1000) as u64;
        let frame_samples = samples(self.frame).max(1);
        let settings = Arc::new(Settings {
            client_builder,
            client,
            params: self.params.clone(),
            token_provider: self.token_provider.clone(),
            rate,
        });
        let mut rng = JitterSource::new();
        let mut failures = 0u32;
        let session = loop {
            match open(&settings).await {
                Ok(s) => break s,
                Err(e) if is_transient(&e) && failures < self.retry.retries() => {
                    let delay = self.retry.wait(failures, &mut rng);
                    failures += 1;
                    tracing::warn!(error = %e, failures, ?delay, "connect failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        };
        let begin = session.info().begin.clone();
        let (cmd_tx, cmd_rx) = mpsc::channel(self.audio_buffer);
        let (event_tx, event_rx) = tokio::sync::mpsc::channel(self.event_buffer);
        let replay = ReplayBuffer::new(ReplayConfig {
            encoding,
            frame_samples,
            capacity_frames: (samples(self.replay_buffer) / frame_samples).max(1) as usize,
            keep_silence: samples(self.keep_silence),
            catch_up_after: samples(self.burst).max(frame_samples),
            silence_rms: self.silence_level,
        });
        let policy = Policy {
            retry: self.retry,
            stable_after: self.stable_after,
            burst: samples(self.burst),
            rollover_lead: self.rollover_lead,
            frame_samples,
            replay_guard: samples(self.replay_guard),
            backpressure_at: samples(self.replay_buffer) / 2,
        };
        let driver = Driver::new(policy, settings, cmd_rx, event_tx, replay, rng, session);
        let span = tracing::info_span!("assemblyai.resilient", first_session = %begin.id);
        tokio::spawn(tracing::Instrument::instrument(driver.run(begin), span));
        Ok(ResilientSession {
            sink: ResilientSink {
                tx: cmd_tx.clone(),
                closing: false,
            },
            events: ResilientEvents { rx: event_rx },
            handle: ResilientHandle { tx: cmd_tx },
        })
    }
}

/// A session that survives its connections (see the [module docs](self)): a
/// [`Sink<AudioChunk>`] for audio and a `Stream<Item = Result<ResilientEvent>>`.
///
/// A decode error of one server frame is yielded as an `Err` item and the stream goes on; any
/// other `Err` is the last item.
#[derive(Debug)]
pub struct ResilientSession {
    sink: ResilientSink,
    events: ResilientEvents,
    handle: ResilientHandle,
}

impl ResilientSession {
    /// A builder: `client` is the template for every connection (its credentials are replaced
    /// by the token provider's tokens, if one is set; its handshake retries are turned off, as
    /// the session retries with its own backoff and budget), `params` the parameters of every
    /// connection.
    pub fn builder(
        client: StreamingClientBuilder,
        params: ConnectionParams,
    ) -> ResilientSessionBuilder {
        ResilientSessionBuilder {
            client,
            params,
            token_provider: None,
            retry: RetryPolicy::new(5, Duration::from_millis(250), 2)
                .max_retry_wait(Duration::from_secs(10))
                .jitter(true),
            stable_after: Duration::from_secs(30),
            replay_buffer: Duration::from_secs(60),
            replay_guard: Duration::from_millis(100),
            burst: Duration::from_millis(500),
            keep_silence: Duration::from_millis(1500),
            silence_level: 0.01,
            rollover_lead: Duration::from_secs(120),
            frame: Duration::from_millis(100),
            audio_buffer: 64,
            event_buffer: 256,
        }
    }

    /// A cloneable handle for control messages.
    pub fn handle(&self) -> ResilientHandle {
        self.handle.clone()
    }

    /// Splits into the audio sink and the event stream.
    pub fn split(self) -> (ResilientSink, ResilientEvents) {
        (self.sink, self.events)
    }

    /// Sends the buffered audio, then `Terminate`, and waits for `Termination`; events that
    /// arrive meanwhile stay available from the stream. The event stream must be read
    /// meanwhile (from another task) or this waits for room in it.
    pub async fn terminate(&self) -> Result<Termination> {
        self.handle.terminate().await
    }
}

impl Sink<AudioChunk> for ResilientSession {
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

impl Stream for ResilientSession {
    type Item = Result<ResilientEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

/// What the sink and handles send to the session's task.
#[derive(Debug)]
enum Command {
    Audio(AudioChunk),
    Update(UpdateConfiguration),
    ForceEndpoint,
    Terminate(Option<oneshot::Sender<Result<Termination>>>),
}

/// The audio half of a [`ResilientSession`]. Closing it sends the buffered audio and then
/// `Terminate`; sending after the session ended fails with [`Error::SessionClosed`].
#[derive(Debug)]
pub struct ResilientSink {
    tx: mpsc::Sender<Command>,
    closing: bool,
}

impl Sink<AudioChunk> for ResilientSink {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.tx.poll_ready(cx).map_err(|_| Error::SessionClosed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: AudioChunk) -> Result<()> {
        if item.is_empty() {
            return Ok(());
        }
        self.tx
            .start_send(Command::Audio(item))
            .map_err(|_| Error::SessionClosed)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.tx)
            .poll_flush(cx)
            .map_err(|_| Error::SessionClosed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.closing {
            match self.tx.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
            }
            let _ = self.tx.start_send(Command::Terminate(None));
            self.closing = true;
        }
        Pin::new(&mut self.tx).poll_close(cx).map(|_| Ok(()))
    }
}

/// The event half of a [`ResilientSession`].
#[derive(Debug)]
pub struct ResilientEvents {
    rx: tokio::sync::mpsc::Receiver<Result<ResilientEvent>>,
}

impl Stream for ResilientEvents {
    type Item = Result<ResilientEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Control messages for a [`ResilientSession`] from any task, queued behind the audio already
/// given.
#[derive(Debug, Clone)]
pub struct ResilientHandle {
    tx: mpsc::Sender<Command>,
}

impl ResilientHandle {
    async fn send(&self, command: Command) -> Result<()> {
        self.tx
            .clone()
            .send(command)
            .await
            .map_err(|_| Error::SessionClosed)
    }

    /// Changes settings mid-stream (`UpdateConfiguration`); every later connection gets them
    /// too.
    pub async fn update_configuration(&self, update: UpdateConfiguration) -> Result<()> {
        self.send(Command::Update(update)).await
    }

    /// Ends the current turn now (`ForceEndpoint`); dropped while no connection is up.
    pub async fn force_endpoint(&self) -> Result<()> {
        self.send(Command::ForceEndpoint).await
    }

    /// Sends the buffered audio and `Terminate` (reconnecting if needed to finish), then waits
    /// for `Termination`.
    pub async fn terminate(&self) -> Result<Termination> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Terminate(Some(tx))).await?;
        rx.await.unwrap_or(Err(Error::SessionClosed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_the_ones_a_new_connection_can_fix() {
        let closed = |code| Error::closed(code, "");
        for code in [1000, 1001, 1006, 1011, 1012, 1013, 3005, 3008] {
            assert!(is_transient(&closed(code)), "{code}");
        }
        for code in [1008, 3006, 3007, 3009, 4001, 4002] {
            assert!(!is_transient(&closed(code)), "{code}");
        }
        let rejected = |status| Error::HandshakeRejected {
            status,
            body: String::new(),
        };
        for status in [500, 502, 503, 408, 429] {
            assert!(is_transient(&rejected(status)), "{status}");
        }
        for status in [400, 401, 403, 404] {
            assert!(!is_transient(&rejected(status)), "{status}");
        }
        assert!(is_transient(&Error::connection_lost("reset")));
        assert!(is_transient(&Error::Timeout {
            kind: TimeoutKind::Connect,
            after: Duration::from_secs(5)
        }));
        assert!(!is_transient(&Error::Timeout {
            kind: TimeoutKind::Termination,
            after: Duration::from_secs(5)
        }));
        assert!(!is_transient(&Error::config("x")));
        // The token provider's request.
        assert!(is_transient(&Error::Http {
            message: "reset".into(),
            source: None,
        }));
        let api = |status| Error::Api {
            status,
            message: String::new(),
            request_id: None,
            retry_after: None,
        };
        assert!(is_transient(&api(503)) && !is_transient(&api(401)));
    }

    #[test]
    fn the_builder_names_set_the_one_retry_policy() {
        let builder = || {
            ResilientSession::builder(
                crate::StreamingClient::builder().api_key("k"),
                ConnectionParams::new(),
            )
        };
        let default = builder().retry;
        assert_eq!(
            default,
            RetryPolicy::new(5, Duration::from_millis(250), 2)
                .max_retry_wait(Duration::from_secs(10))
                .jitter(true)
        );
        // Reconnect try n (from 1) waits within [½, 1] × 250 ms · 2ⁿ⁻¹, capped at 10 s.
        let mut rng = JitterSource::seeded(5);
        for (retry, full) in [(0, 250), (1, 500), (2, 1000), (6, 10_000), (9, 10_000)] {
            let full = Duration::from_millis(full);
            let d = default.wait(retry, &mut rng);
            assert!(d >= full / 2 && d <= full, "{retry}: {d:?}");
        }
        let set = builder()
            .max_reconnects(2)
            .backoff(Duration::from_millis(50), Duration::from_millis(10))
            .retry;
        assert_eq!(set.retries(), 2);
        assert_eq!(set.first_delay(), Duration::from_millis(50));
        assert_eq!(
            set.delay(3),
            Duration::from_millis(50),
            "max below initial: initial"
        );
        assert!(set.is_jittered());
        let fixed = RetryPolicy::new(3, Duration::from_millis(20), 1);
        assert_eq!(builder().retry_policy(fixed).retry, fixed);
    }
}
