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
//!   connection gets it first, so the interrupted turn is transcribed once, whole. The service's real-time rule is
//!   kept: `burst` of audio (default 500 ms) at once, then real time, catching up by skipping
//!   silence beyond `keep_silence` (default 1.5 s) in each pause — speech is never skipped. When
//!   the buffer bound (default 60 s) is passed, [`ResilientEvent::AudioGap`] says which audio
//!   will not be transcribed.
//! - **Keeps one timeline**: `turn_order` continues across connections, word `start`/`end` are
//!   milliseconds of the caller's audio (from the first sample given to the sink, silence
//!   skipped or not), and no final is delivered twice (a final whose words all end inside audio
//!   an earlier final covered is dropped). [`ResilientEvent::Reconnected`] tells what happened.
//! - **Rolls over before the session cap**: from `rollover_lead` (default 2 min, at most a
//!   quarter of the session's life) before `Begin.expires_at` (3 h, or a temporary token's
//!   `max_session_duration_seconds`), it opens the next session and switches at a turn
//!   boundary (after a final, before the next turn's first partial); by a quarter of the lead
//!   before the cap it switches whatever is being said (the replay carries the turn over). Each
//!   connection takes a fresh temporary token from the token provider, if one is set.
//! - **Carries settings over**: every new connection uses the same [`ConnectionParams`], then
//!   gets one `UpdateConfiguration` with every change made through
//!   [`ResilientHandle::update_configuration`] so far (later values win).
//!
//! What it does not do: it cannot recover audio the caller never gave it, or more than the
//! buffer holds (reported as gaps); a `ForceEndpoint` sent while no connection is up is
//! dropped; `Termination` reports the last connection's figures; during a rollover two
//! sessions are open at once for a moment (an account at its concurrency limit sees 3009 on
//! the new one, and the switch then happens by the cap's deadline without overlap).
//!
//! ```no_run
//! use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession};
//! use assemblyai_streaming::{AudioChunk, ConnectionParams, StreamingClient, TurnEvent};
//! use futures::{SinkExt, StreamExt};
//!
//! # async fn run(audio: Vec<AudioChunk>) -> assemblyai_streaming::Result<()> {
//! let session = ResilientSession::builder(StreamingClient::builder(), ConnectionParams::new())
//!     .connect()
//!     .await?;
//! let (mut sink, mut events) = session.split();
//! tokio::spawn(async move {
//!     for chunk in audio {
//!         if sink.send(chunk).await.is_err() { break; }
//!     }
//!     let _ = sink.close().await; // flush, then Terminate
//! });
//! while let Some(event) = events.next().await {
//!     match event? {
//!         ResilientEvent::Turn(TurnEvent::Final(turn)) => println!("{}", turn.transcript),
//!         ResilientEvent::Reconnected { downtime, .. } => eprintln!("reconnected after {downtime:?}"),
//!         ResilientEvent::AudioGap { duration, .. } => eprintln!("{duration:?} not transcribed"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod replay;
mod timeline;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::channel::{mpsc, oneshot};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::audio::AudioChunk;
use crate::error::{Error, Result, TimeoutKind};
use crate::params::ConnectionParams;
use crate::protocol::{Begin, Termination, Turn, UpdateConfiguration};
use crate::session::{AudioSink, EventStream, SessionHandle, StreamingSession, TurnEvent};
use crate::{StreamingClient, StreamingClientBuilder};

use replay::{Gap, ReplayBuffer, ReplayConfig, send_offset};
use timeline::{ConnClock, Mapped, Timeline, ms_to_samples, samples_to_ms};

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

/// Whether a new connection can fix this failure — the one place the resilient session
/// classifies errors (to be replaced by the crate's retry classifier).
///
/// Transient: a dropped connection or websocket failure, a connect failure or timeout, HTTP
/// 5xx/408/429 at the upgrade (or from the token provider's request), an HTTP transport
/// failure, closes 1000 (before `Termination`), 1001, 1006, 1011, 1012, 1013, 3005 and 3008 (a
/// cap the rollover did not beat), and an `Error` frame without a code.
/// Never: 1008 and HTTP 401/403 (credentials), 3006 and 3007 (the client's messages or audio
/// are wrong — a new connection would get the same), 3009 (too many sessions: a retry makes
/// it worse), configuration and audio errors, and the terminate timeout.
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::ConnectionLost(_) | Error::Connect { .. } | Error::WebSocket(_) => true,
        Error::Server { .. } | Error::Http(_) => true,
        Error::Timeout { kind, .. } => *kind != TimeoutKind::Termination,
        Error::HandshakeRejected { status, .. } | Error::Api { status, .. } => {
            *status >= 500 || *status == 408 || *status == 429
        }
        Error::Closed { code, .. } => {
            matches!(code, 1000 | 1001 | 1006 | 1011 | 1012 | 1013 | 3005 | 3008)
        }
        _ => false,
    }
}

/// Supplies a fresh temporary token for each connection.
pub type TokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String>> + Send>> + Send + Sync>;

/// Builds a [`ResilientSession`].
///
/// Defaults: at most 5 reconnect tries in a row, backoff from 250 ms doubling to 10 s (each
/// delay jittered to 50–100 % of its value), a connection counts as healthy again after 30 s
/// up; 60 s replay buffer, replays from 100 ms after the last final's last word; 500 ms burst; 1.5 s of every pause kept when catching up; silence
/// below RMS 0.01 (−40 dBFS); rollover 2 min before the cap; 100 ms frames; 64 buffered audio
/// chunks; 256 buffered events; no token provider (the client's credentials for every
/// connection).
#[derive(Clone)]
pub struct ResilientSessionBuilder {
    client: StreamingClientBuilder,
    params: ConnectionParams,
    token_provider: Option<TokenProvider>,
    max_reconnects: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
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
            .field("max_reconnects", &self.max_reconnects)
            .field("replay_buffer", &self.replay_buffer)
            .field("rollover_lead", &self.rollover_lead)
            .finish_non_exhaustive()
    }
}

impl ResilientSessionBuilder {
    /// Gives up after this many failed reconnect tries in a row (default 5). A connection
    /// that stays up `stable_after` resets the count.
    pub fn max_reconnects(mut self, n: u32) -> Self {
        self.max_reconnects = n;
        self
    }

    /// Backoff before reconnect try `n`: `initial · 2ⁿ⁻¹`, at most `max`, jittered to
    /// 50–100 % (default 250 ms, 10 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
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
            return Err(Error::Config(format!(
                "frame_duration must be 50–1000 ms, got {:?}",
                self.frame
            )));
        }
        let client_builder = self.client.clone().frame_duration(self.frame);
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
        let rate = self.params.sample_rate();
        let encoding = self.params.audio_encoding();
        let samples = |d: Duration| (u128::from(rate) * d.as_millis()).div_ceil(1000) as u64;
        let frame_samples = samples(self.frame).max(1);
        let settings = Arc::new(Settings {
            client_builder,
            client,
            params: self.params.clone(),
            token_provider: self.token_provider.clone(),
            rate,
        });
        let mut rng = Jitter::seeded();
        let mut failures = 0u32;
        let session = loop {
            match open(&settings).await {
                Ok(s) => break s,
                Err(e) if is_transient(&e) && failures < self.max_reconnects => {
                    failures += 1;
                    let delay = backoff(failures, self.backoff_initial, self.backoff_max, &mut rng);
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
        let mut driver = Driver {
            policy: Policy {
                max_reconnects: self.max_reconnects,
                backoff_initial: self.backoff_initial,
                backoff_max: self.backoff_max,
                stable_after: self.stable_after,
                burst: samples(self.burst),
                rollover_lead: self.rollover_lead,
                frame_samples,
                replay_guard: samples(self.replay_guard),
                backpressure_at: samples(self.replay_buffer) / 2,
            },
            settings,
            cmds: cmd_rx,
            cmds_open: true,
            out: event_tx,
            replay,
            timeline: Timeline::new(rate),
            live: None,
            standby: None,
            connecting: None,
            standby_retry_at: None,
            overlay: serde_json::Map::new(),
            failures: 0,
            down_since: None,
            last_error: None,
            retry_at: None,
            terminating: false,
            terminate_sent: false,
            waiters: Vec::new(),
            rng,
        };
        driver.install_first(session);
        let span = tracing::info_span!("assemblyai.resilient", first_session = %begin.id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _ = driver
                    .out
                    .send(Ok(ResilientEvent::Turn(TurnEvent::Begin(begin))))
                    .await;
                driver.run().await;
            },
            span,
        ));
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
    /// by the token provider's tokens, if one is set), `params` the parameters of every
    /// connection.
    pub fn builder(
        client: StreamingClientBuilder,
        params: ConnectionParams,
    ) -> ResilientSessionBuilder {
        ResilientSessionBuilder {
            client,
            params,
            token_provider: None,
            max_reconnects: 5,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
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

/// What every connection is made from.
struct Settings {
    client_builder: StreamingClientBuilder,
    client: Option<StreamingClient>,
    params: ConnectionParams,
    token_provider: Option<TokenProvider>,
    rate: u32,
}

/// Opens one session: a fresh token if there is a provider, then `connect`.
async fn open(settings: &Settings) -> Result<StreamingSession> {
    let client = match (&settings.token_provider, &settings.client) {
        (Some(provider), _) => settings
            .client_builder
            .clone()
            .token(provider().await?)
            .build()?,
        (None, Some(client)) => client.clone(),
        (None, None) => return Err(Error::Config("no client".into())),
    };
    client.connect(settings.params.clone()).await
}

/// Numbers of the reconnect and pacing policy (samples where audio is measured).
#[derive(Debug, Clone, Copy)]
struct Policy {
    max_reconnects: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    stable_after: Duration,
    burst: u64,
    rollover_lead: Duration,
    frame_samples: u64,
    /// Replays start this long after the last final's last word ends.
    replay_guard: u64,
    /// Stop taking audio from the sink while this much waits on a live connection.
    backpressure_at: u64,
}

/// Backoff before try `attempt` (1-based), jittered to 50–100 %.
fn backoff(attempt: u32, initial: Duration, max: Duration, rng: &mut Jitter) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max);
    d / 2 + d.mul_f64(rng.next_unit() / 2.0)
}

/// A small xorshift generator for backoff jitter (not for anything secret).
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Jitter(t | 1)
    }

    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Sessions said to live longer than this are not rolled over (the service's cap is 3 h).
const MAX_LIFE: Duration = Duration::from_secs(86_400 * 365);

/// One open connection.
struct Live {
    sink: AudioSink,
    events: EventStream,
    handle: SessionHandle,
    clock: ConnClock,
    /// When this connection started taking audio (the pacing origin).
    opened: Instant,
    id: String,
    /// Open the next session from here.
    rollover_at: Option<Instant>,
    /// Switch by here, at a turn boundary or not.
    switch_by: Option<Instant>,
    write_failed: bool,
}

impl Live {
    fn new(session: StreamingSession, lead: Duration) -> Self {
        let now = Instant::now();
        let begin: &Begin = &session.info().begin;
        let id = begin.id.clone();
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // `expires_at` is wall-clock seconds; the deadlines run on the runtime's clock.
        let life = u64::try_from(begin.expires_at - unix_now)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let (rollover_at, switch_by) = match life {
            // Capped: a server's far-future (or absurd) `expires_at` must not overflow the clock.
            Some(life) if life <= MAX_LIFE => {
                let lead = lead.min(life / 4);
                (
                    now.checked_add(life - lead),
                    now.checked_add(life - lead / 4),
                )
            }
            _ => (None, None),
        };
        let handle = session.handle();
        let (sink, events) = session.split();
        Live {
            sink,
            events,
            handle,
            clock: ConnClock::default(),
            opened: now,
            id,
            rollover_at,
            switch_by,
            write_failed: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Reconnect,
    Rollover,
}

/// How the loop should go on.
enum Flow {
    Continue,
    Stop,
}

/// The session's task: one connection at a time (two around a rollover), the replay buffer and
/// the timeline.
struct Driver {
    policy: Policy,
    settings: Arc<Settings>,
    cmds: mpsc::Receiver<Command>,
    cmds_open: bool,
    out: tokio::sync::mpsc::Sender<Result<ResilientEvent>>,
    replay: ReplayBuffer,
    timeline: Timeline,
    live: Option<Live>,
    standby: Option<Live>,
    connecting: Option<(Purpose, JoinHandle<Result<StreamingSession>>)>,
    standby_retry_at: Option<Instant>,
    /// Every `UpdateConfiguration` field set so far.
    overlay: serde_json::Map<String, serde_json::Value>,
    /// Failed tries in a row.
    failures: u32,
    down_since: Option<Instant>,
    last_error: Option<Error>,
    retry_at: Option<Instant>,
    terminating: bool,
    terminate_sent: bool,
    waiters: Vec<oneshot::Sender<Result<Termination>>>,
    rng: Jitter,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A session being opened for a stream that ended is not wanted.
        if let Some((_, task)) = self.connecting.take() {
            task.abort();
        }
    }
}

async fn next_event(live: &mut Option<Live>) -> Option<Result<TurnEvent>> {
    match live {
        Some(l) => l.events.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn install_first(&mut self, session: StreamingSession) {
        self.live = Some(Live::new(session, self.policy.rollover_lead));
    }

    async fn emit(&mut self, event: Result<ResilientEvent>) -> Flow {
        match self.out.send(event).await {
            Ok(()) => Flow::Continue,
            // The consumer is gone: the session ends (dropping the connections closes them).
            Err(_) => Flow::Stop,
        }
    }

    async fn emit_gap(&mut self) -> Flow {
        let Some(Gap { start, end }) = self.replay.take_gap() else {
            return Flow::Continue;
        };
        let rate = self.settings.rate;
        let ms = |s: u64| Duration::from_millis(samples_to_ms(s, rate) as u64);
        tracing::warn!(start = ?ms(start), duration = ?ms(end - start), "audio gap: not transcribed");
        self.emit(Ok(ResilientEvent::AudioGap {
            start: ms(start),
            duration: ms(end) - ms(start),
        }))
        .await
    }

    /// Ends the stream with `error` (and answers `terminate()` callers).
    async fn fail(&mut self, error: Error) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(error.duplicate()));
        }
        let _ = self.out.send(Err(error)).await;
    }

    async fn run(mut self) {
        loop {
            if let Flow::Stop = self.step().await {
                break;
            }
        }
        tracing::debug!("resilient session ended");
    }

    /// One turn of the loop: timers, sending, then one input.
    async fn step(&mut self) -> Flow {
        let now = Instant::now();
        // A reconnect whose backoff is over.
        if self.retry_at.is_some_and(|at| at <= now) && self.connecting.is_none() {
            self.retry_at = None;
            self.start_connect(Purpose::Reconnect);
        }
        // Rollover: open the next session ahead of the cap, switch at a turn boundary.
        let (due, forced) = match &self.live {
            Some(live) => (
                live.rollover_at.is_some_and(|at| at <= now),
                live.switch_by.is_some_and(|at| at <= now),
            ),
            None => (false, false),
        };
        if due
            && self.standby.is_none()
            && self.connecting.is_none()
            && self.standby_retry_at.is_none_or(|at| at <= now)
        {
            self.start_connect(Purpose::Rollover);
        }
        if self.standby.is_some() && (forced || (due && !self.timeline.turn_open())) {
            if let Flow::Stop = self.switch(None).await {
                return Flow::Stop;
            }
        } else if forced && self.standby.is_none() {
            // No next session in time: stop this one before the cap; the replay carries the
            // audio over to the session being opened.
            tracing::warn!("no next session before the cap; switching without overlap");
            self.live = None;
            self.down_since.get_or_insert(now);
            if self.connecting.is_none() {
                self.start_connect(Purpose::Rollover);
            }
        }
        if let Flow::Stop = self.send_ready().await {
            return Flow::Stop;
        }
        if let Flow::Stop = self.maybe_terminate().await {
            return Flow::Stop;
        }

        let unsent = self.replay.unsent();
        let take_audio =
            self.cmds_open && !(self.live.is_some() && unsent >= self.policy.backpressure_at);
        let pace_at = match &self.live {
            Some(l) if unsent > 0 && !l.write_failed => Some(
                l.opened
                    + send_offset(
                        l.clock.sent(),
                        self.policy.frame_samples,
                        self.policy.burst,
                        self.settings.rate,
                    ),
            ),
            _ => None,
        };
        let mut timers = vec![pace_at, self.retry_at];
        if let Some(l) = &self.live {
            if self.standby.is_none() && self.connecting.is_none() {
                timers.push(l.rollover_at.map(|at| match self.standby_retry_at {
                    Some(r) => at.max(r),
                    None => at,
                }));
            }
            timers.push(l.switch_by);
        }
        let wake = timers.into_iter().flatten().min();

        let connecting = &mut self.connecting;
        tokio::select! {
            // While pacing holds a backlog, audio (and commands behind it) wait in the channel.
            cmd = self.cmds.next(), if take_audio => match cmd {
                Some(cmd) => self.on_command(cmd).await,
                None => {
                    // Every sink and handle is gone: finish like a close.
                    self.cmds_open = false;
                    self.begin_terminate();
                    Flow::Continue
                }
            },
            event = next_event(&mut self.live) => self.on_live_event(event).await,
            event = next_event(&mut self.standby) => {
                // It has no audio yet: only its end matters (it failed before the switch; open
                // another a little later).
                match event {
                    Some(Ok(_)) | Some(Err(Error::Decode { .. })) => {}
                    ended => {
                        tracing::warn!(?ended, "the next session ended before the switch");
                        self.standby = None;
                        self.standby_retry_at = Some(Instant::now() + self.policy.backoff_initial * 4);
                    }
                }
                Flow::Continue
            }
            // Nobody reads the events any more: the session ends.
            _ = self.out.closed() => Flow::Stop,
            joined = async {
                match connecting {
                    Some((_, task)) => task.await,
                    None => std::future::pending().await,
                }
            } => {
                let purpose = self.connecting.take().map_or(Purpose::Reconnect, |(p, _)| p);
                let result = joined.unwrap_or_else(|e| Err(Error::ConnectionLost(format!("connect task failed: {e}"))));
                self.on_connected(purpose, result).await
            }
            _ = sleep_opt(wake) => Flow::Continue,
        }
    }

    fn start_connect(&mut self, purpose: Purpose) {
        let settings = self.settings.clone();
        tracing::info!(?purpose, "opening a session");
        self.connecting = Some((purpose, tokio::spawn(async move { open(&settings).await })));
    }

    async fn on_command(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Audio(chunk) => {
                if self.terminating {
                    tracing::warn!("audio after terminate is ignored");
                    return Flow::Continue;
                }
                self.replay.push(chunk.as_bytes());
                self.emit_gap().await
            }
            Command::Update(update) => {
                if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&update) {
                    self.overlay.extend(fields);
                }
                if let Some(live) = &self.live {
                    if let Err(e) = live.handle.update_configuration(update).await {
                        tracing::debug!(error = %e, "update not sent; the next connection gets it");
                    }
                }
                Flow::Continue
            }
            Command::ForceEndpoint => {
                match &self.live {
                    Some(live) => {
                        let _ = live.handle.force_endpoint().await;
                    }
                    None => tracing::warn!("ForceEndpoint while reconnecting: dropped"),
                }
                Flow::Continue
            }
            Command::Terminate(done) => {
                self.waiters.extend(done);
                self.begin_terminate();
                Flow::Continue
            }
        }
    }

    fn begin_terminate(&mut self) {
        if !self.terminating {
            self.terminating = true;
            self.replay.flush_pending();
        }
    }

    /// Once every frame is out, `Terminate` goes to the live connection.
    async fn maybe_terminate(&mut self) -> Flow {
        if !self.terminating || self.terminate_sent || self.replay.unsent() > 0 {
            return Flow::Continue;
        }
        if let Some(live) = &mut self.live {
            // Closing the sink flushes its last partial frame, then sends `Terminate`.
            let _ = live.sink.close().await;
            self.terminate_sent = true;
        }
        Flow::Continue
    }

    /// Sends every frame the pacing allows now.
    async fn send_ready(&mut self) -> Flow {
        loop {
            let Some(live) = &mut self.live else {
                return Flow::Continue;
            };
            if live.write_failed || self.terminate_sent {
                return Flow::Continue;
            }
            let Some(frame) = self.replay.next_frame() else {
                return Flow::Continue;
            };
            let at = live.opened
                + send_offset(
                    live.clock.sent(),
                    frame.samples,
                    self.policy.burst,
                    self.settings.rate,
                );
            if at > Instant::now() {
                return Flow::Continue;
            }
            if live
                .sink
                .send(AudioChunk::from_bytes(frame.data))
                .await
                .is_err()
            {
                // The event stream reports why; the frame stays for the next connection.
                live.write_failed = true;
                return Flow::Continue;
            }
            live.clock.record(frame.at, frame.samples);
            self.replay.mark_sent();
        }
    }

    async fn on_live_event(&mut self, event: Option<Result<TurnEvent>>) -> Flow {
        match event {
            Some(Ok(TurnEvent::Begin(_))) => Flow::Continue,
            Some(Ok(TurnEvent::Partial(turn))) => self.on_turn(turn, false).await,
            Some(Ok(TurnEvent::Final(turn))) => self.on_turn(turn, true).await,
            Some(Ok(TurnEvent::Termination(t))) if self.terminate_sent => {
                for w in self.waiters.drain(..) {
                    let _ = w.send(Ok(t.clone()));
                }
                let _ = self
                    .out
                    .send(Ok(ResilientEvent::Turn(TurnEvent::Termination(t))))
                    .await;
                Flow::Stop
            }
            Some(Ok(TurnEvent::Termination(_))) => {
                self.on_failure(Error::ConnectionLost(
                    "the session ended without being asked to".into(),
                ))
                .await
            }
            Some(Ok(other)) => {
                let event = self.map_other(other);
                self.emit(Ok(ResilientEvent::Turn(event))).await
            }
            Some(Err(e @ Error::Decode { .. })) => self.emit(Err(e)).await,
            Some(Err(e)) => self.on_failure(e).await,
            None => {
                self.on_failure(Error::ConnectionLost(
                    "the session ended before Termination".into(),
                ))
                .await
            }
        }
    }

    /// Puts the turn numbers and times of the other messages on the stream's timeline.
    /// `Heartbeat` keeps the connection's figures (they describe the connection).
    fn map_other(&self, event: TurnEvent) -> TurnEvent {
        let Some(live) = &self.live else {
            return event;
        };
        let tl = &self.timeline;
        match event {
            TurnEvent::SpeechStarted(mut s) => {
                s.timestamp = tl.map_ms(s.timestamp, &live.clock);
                TurnEvent::SpeechStarted(s)
            }
            TurnEvent::Silence(mut s) => {
                s.start_ms = tl.map_ms(s.start_ms, &live.clock);
                s.end_ms = tl.map_ms(s.end_ms, &live.clock);
                TurnEvent::Silence(s)
            }
            TurnEvent::LlmGatewayResponse(mut r) => {
                r.turn_order = tl.order(r.turn_order);
                TurnEvent::LlmGatewayResponse(r)
            }
            TurnEvent::SpeakerRevision(mut r) => {
                for rev in &mut r.revisions {
                    rev.turn_order = tl.order(rev.turn_order);
                    for w in &mut rev.words {
                        w.start = tl.map_ms(w.start, &live.clock);
                        w.end = tl.map_ms(w.end, &live.clock);
                    }
                }
                TurnEvent::SpeakerRevision(r)
            }
            other => other,
        }
    }

    async fn on_turn(&mut self, turn: Turn, is_final: bool) -> Flow {
        let Some(live) = &mut self.live else {
            return Flow::Continue;
        };
        let conn_end = turn.words.iter().map(|w| w.end).max();
        match self.timeline.map_turn(turn, is_final, &live.clock) {
            Mapped::Deliver(turn) => {
                if is_final {
                    if let Some(end) = self.timeline.delivered_end_samples() {
                        self.replay.finalised(end + self.policy.replay_guard);
                    }
                    if let Some(ms) = conn_end {
                        live.clock
                            .prune_before(ms_to_samples(ms, self.settings.rate));
                    }
                    self.emit(Ok(ResilientEvent::Turn(TurnEvent::Final(turn))))
                        .await
                } else {
                    self.emit(Ok(ResilientEvent::Turn(TurnEvent::Partial(turn))))
                        .await
                }
            }
            Mapped::Duplicate => {
                tracing::debug!("a final of replayed audio already delivered: dropped");
                Flow::Continue
            }
            Mapped::Stale => Flow::Continue,
        }
    }

    /// The live connection failed.
    async fn on_failure(&mut self, error: Error) -> Flow {
        let Some(live) = self.live.take() else {
            return Flow::Continue;
        };
        let now = Instant::now();
        if !is_transient(&error) {
            tracing::warn!(error = %error, "session failed; not retryable");
            self.fail(error).await;
            return Flow::Stop;
        }
        if now.duration_since(live.opened) >= self.policy.stable_after {
            self.failures = 0;
        }
        drop(live);
        tracing::warn!(error = %error, failures = self.failures, "connection lost; reconnecting");
        self.down_since.get_or_insert(now);
        self.terminate_sent = false;
        if let Some(next) = self.standby.take() {
            // The next session is already open: use it now.
            self.failures += 1;
            return self.adopt(next, Some(error)).await;
        }
        if self.failures >= self.policy.max_reconnects {
            tracing::warn!(error = %error, "reconnect budget spent; giving up");
            self.fail(error).await;
            return Flow::Stop;
        }
        self.failures += 1;
        self.last_error = Some(error);
        if self.connecting.is_none() {
            let delay = backoff(
                self.failures,
                self.policy.backoff_initial,
                self.policy.backoff_max,
                &mut self.rng,
            );
            self.retry_at = Some(now + delay);
        } else if let Some((purpose, _)) = &mut self.connecting {
            // A rollover connect in flight now serves as the reconnect.
            *purpose = Purpose::Reconnect;
        }
        Flow::Continue
    }

    async fn on_connected(&mut self, purpose: Purpose, result: Result<StreamingSession>) -> Flow {
        match result {
            Ok(session) => {
                let next = Live::new(session, self.policy.rollover_lead);
                match purpose {
                    Purpose::Rollover if self.live.is_some() => {
                        self.standby = Some(next);
                        self.standby_retry_at = None;
                        Flow::Continue
                    }
                    Purpose::Rollover => self.switch(Some(next)).await,
                    Purpose::Reconnect => {
                        let cause = self.last_error.take();
                        self.adopt(next, cause).await
                    }
                }
            }
            Err(e) if purpose == Purpose::Rollover && self.live.is_some() => {
                tracing::warn!(error = %e, "could not open the next session; trying again");
                if !is_transient(&e) {
                    // Credentials or settings went bad: the stream cannot go on past the cap.
                    self.fail(e).await;
                    return Flow::Stop;
                }
                self.standby_retry_at = Some(
                    Instant::now()
                        + backoff(
                            1,
                            self.policy.backoff_initial,
                            self.policy.backoff_max,
                            &mut self.rng,
                        ),
                );
                Flow::Continue
            }
            Err(e) => {
                if !is_transient(&e) || self.failures >= self.policy.max_reconnects {
                    tracing::warn!(error = %e, failures = self.failures, "reconnect failed; giving up");
                    self.fail(e).await;
                    return Flow::Stop;
                }
                self.failures += 1;
                let delay = backoff(
                    self.failures,
                    self.policy.backoff_initial,
                    self.policy.backoff_max,
                    &mut self.rng,
                );
                tracing::warn!(error = %e, failures = self.failures, ?delay, "reconnect failed; retrying");
                self.last_error = Some(e);
                self.retry_at = Some(Instant::now() + delay);
                Flow::Continue
            }
        }
    }

    /// Makes `next` the live connection after a failure: replay, settings, event.
    async fn adopt(&mut self, mut next: Live, cause: Option<Error>) -> Flow {
        let now = Instant::now();
        next.opened = now;
        let downtime = self.down_since.take().map_or(Duration::ZERO, |t| now - t);
        let attempt = self.failures;
        let session_id = next.id.clone();
        let replayed = self.start_on(next).await;
        if let Flow::Stop = self.emit_gap().await {
            return Flow::Stop;
        }
        tracing::info!(session_id, attempt, ?downtime, ?replayed, "reconnected");
        self.emit(Ok(ResilientEvent::Reconnected {
            attempt,
            downtime,
            replayed,
            session_id,
            cause: cause.unwrap_or_else(|| Error::ConnectionLost("connection lost".into())),
        }))
        .await
    }

    /// Switches to the next session (the standby one, or `next`) at a rollover.
    async fn switch(&mut self, next: Option<Live>) -> Flow {
        let Some(mut next) = next.or_else(|| self.standby.take()) else {
            return Flow::Continue;
        };
        // Whatever the old session still had to say is replayed to the new one.
        self.live = None;
        self.down_since = None;
        next.opened = Instant::now();
        let session_id = next.id.clone();
        let replayed = self.start_on(next).await;
        if let Flow::Stop = self.emit_gap().await {
            return Flow::Stop;
        }
        tracing::info!(session_id, ?replayed, "rolled over");
        self.emit(Ok(ResilientEvent::RolledOver {
            replayed,
            session_id,
        }))
        .await
    }

    /// Starts streaming on `next`: the settings changed so far, then the replay.
    async fn start_on(&mut self, next: Live) -> Duration {
        if !self.overlay.is_empty() {
            match serde_json::from_value::<UpdateConfiguration>(serde_json::Value::Object(
                self.overlay.clone(),
            )) {
                Ok(update) => {
                    let _ = next.handle.update_configuration(update).await;
                }
                Err(e) => tracing::warn!(error = %e, "could not rebuild the settings update"),
            }
        }
        self.timeline.new_connection();
        let replayed = self.replay.rewind();
        self.terminate_sent = false;
        self.live = Some(next);
        Duration::from_millis(samples_to_ms(replayed, self.settings.rate) as u64)
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
        assert!(is_transient(&Error::ConnectionLost("reset".into())));
        assert!(is_transient(&Error::Timeout {
            kind: TimeoutKind::Connect,
            after: Duration::from_secs(5)
        }));
        assert!(!is_transient(&Error::Timeout {
            kind: TimeoutKind::Termination,
            after: Duration::from_secs(5)
        }));
        assert!(!is_transient(&Error::Config("x".into())));
        // The token provider's request.
        assert!(is_transient(&Error::Http("reset".into())));
        let api = |status| Error::Api {
            status,
            message: String::new(),
            request_id: None,
            retry_after: None,
        };
        assert!(is_transient(&api(503)) && !is_transient(&api(401)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut rng = Jitter(42);
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            for _ in 0..50 {
                let d = backoff(attempt, initial, max, &mut rng);
                let full = Duration::from_millis(full);
                assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
            }
        }
    }
}
