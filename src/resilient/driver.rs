//! The session's task: the live connection (and the next one around a rollover), the replay
//! buffer and the timeline, driven by one `select!` loop over the caller's commands, the
//! connections' events, the connect in flight and the next deadline (pacing, backoff,
//! rollover).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::replay::{Gap, ReplayBuffer, send_offset};
use super::timeline::{ConnClock, Mapped, Timeline, ms_to_samples, samples_to_ms};
use super::{Command, ResilientEvent, TokenProvider, is_transient};
use crate::audio::AudioChunk;
use crate::error::{Cause, Error, Result};
use crate::params::ConnectionParams;
use crate::protocol::{Begin, Termination, Turn, UpdateConfiguration};
use crate::retry::{JitterSource, RetryPolicy};
use crate::session::{AudioSink, EventStream, SessionHandle, StreamingSession, TurnEvent};
use crate::{StreamingClient, StreamingClientBuilder};

/// What every connection is made from.
pub(super) struct Settings {
    pub(super) client_builder: StreamingClientBuilder,
    pub(super) client: Option<StreamingClient>,
    pub(super) params: ConnectionParams,
    pub(super) token_provider: Option<TokenProvider>,
    pub(super) rate: u32,
}

/// Opens one session: a fresh token if there is a provider, then `connect`.
pub(super) async fn open(settings: &Settings) -> Result<StreamingSession> {
    let client = match (&settings.token_provider, &settings.client) {
        (Some(provider), _) => settings
            .client_builder
            .clone()
            .token(provider().await?)
            .build()?,
        (None, Some(client)) => client.clone(),
        (None, None) => return Err(Error::config("no client")),
    };
    client.connect(settings.params.clone()).await
}

/// Numbers of the reconnect and pacing policy (samples where audio is measured).
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// Reconnect budget (`retries()`) and backoff.
    pub(super) retry: RetryPolicy,
    pub(super) stable_after: Duration,
    pub(super) burst: u64,
    pub(super) rollover_lead: Duration,
    pub(super) frame_samples: u64,
    /// Replays start this long after the last final's last word ends.
    pub(super) replay_guard: u64,
    /// Stop taking audio from the sink while this much waits on a live connection.
    pub(super) backpressure_at: u64,
}

/// 3009 (legacy 4102): the account's concurrent-session limit.
fn too_many_sessions(error: &Error) -> bool {
    matches!(
        error,
        Error::Closed {
            kind: crate::error::CloseKind::TooManySessions,
            ..
        }
    )
}

/// How often the next session, open ahead of a rollover, is sent `KeepAlive` (the service's
/// smallest `inactivity_timeout` is 5 s).
const STANDBY_KEEP_ALIVE: Duration = Duration::from_secs(4);

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
pub(super) struct Driver {
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
    /// The next `KeepAlive` for the waiting next session (against `inactivity_timeout`).
    standby_keep_alive_at: Option<Instant>,
    /// Every `UpdateConfiguration` field set so far.
    overlay: serde_json::Map<String, serde_json::Value>,
    /// Failed tries in a row.
    failures: u32,
    down_since: Option<Instant>,
    last_error: Option<Error>,
    retry_at: Option<Instant>,
    /// What the connect at `retry_at` is for.
    retry_purpose: Purpose,
    terminating: bool,
    terminate_sent: bool,
    waiters: Vec<oneshot::Sender<Result<Termination>>>,
    rng: JitterSource,
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
    pub(super) fn new(
        policy: Policy,
        settings: Arc<Settings>,
        cmds: mpsc::Receiver<Command>,
        out: tokio::sync::mpsc::Sender<Result<ResilientEvent>>,
        replay: ReplayBuffer,
        rng: JitterSource,
        first: StreamingSession,
    ) -> Self {
        let rate = settings.rate;
        Driver {
            live: Some(Live::new(first, policy.rollover_lead)),
            policy,
            settings,
            cmds,
            cmds_open: true,
            out,
            replay,
            timeline: Timeline::new(rate),
            standby: None,
            connecting: None,
            standby_retry_at: None,
            standby_keep_alive_at: None,
            overlay: serde_json::Map::new(),
            failures: 0,
            down_since: None,
            last_error: None,
            retry_at: None,
            retry_purpose: Purpose::Reconnect,
            terminating: false,
            terminate_sent: false,
            waiters: Vec::new(),
            rng,
        }
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
            let _ = w.send(Err(error.clone()));
        }
        let _ = self.out.send(Err(error)).await;
    }

    /// Delivers the first session's `Begin`, then runs until the stream ends.
    pub(super) async fn run(mut self, begin: Begin) {
        let first = Ok(ResilientEvent::Turn(TurnEvent::Begin(begin)));
        if let Flow::Continue = self.emit(first).await {
            while let Flow::Continue = self.step().await {}
        }
        tracing::debug!("resilient session ended");
    }

    /// One turn of the loop: timers, sending, then one input.
    async fn step(&mut self) -> Flow {
        let now = Instant::now();
        // A reconnect whose backoff is over.
        if self.retry_at.is_some_and(|at| at <= now) && self.connecting.is_none() {
            self.retry_at = None;
            self.start_connect(self.retry_purpose);
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
            && !forced
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
                // A moment for the service to release the session just closed (it may count
                // against the account's concurrency limit until then).
                self.retry_purpose = Purpose::Rollover;
                self.retry_at = Some(now + self.policy.retry.first_delay());
            }
        }
        // The next session gets no audio until the switch: keep it from an inactivity close.
        if let (Some(standby), Some(at)) = (&self.standby, self.standby_keep_alive_at) {
            if at <= now {
                let _ = standby.handle.keep_alive().await;
                self.standby_keep_alive_at = Some(now + STANDBY_KEEP_ALIVE);
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
        if self.standby.is_some() {
            timers.push(self.standby_keep_alive_at);
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
                        self.standby_retry_at = Some(Instant::now() + self.policy.retry.first_delay() * 4);
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
                let result = joined.unwrap_or_else(|e| Err(Error::ConnectionLost {
                    message: format!("connect task failed: {e}"),
                    source: Some(Cause::new(e)),
                }));
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
                self.on_failure(Error::connection_lost(
                    "the session ended without being asked to",
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
                self.on_failure(Error::connection_lost(
                    "the session ended before Termination",
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
        if self.failures >= self.policy.retry.retries() {
            tracing::warn!(error = %error, "reconnect budget spent; giving up");
            self.fail(error).await;
            return Flow::Stop;
        }
        self.failures += 1;
        self.last_error = Some(error);
        if self.connecting.is_none() {
            let delay = self.policy.retry.wait(self.failures - 1, &mut self.rng);
            self.retry_purpose = Purpose::Reconnect;
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
                        self.standby_keep_alive_at = Some(Instant::now() + STANDBY_KEEP_ALIVE);
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
                if too_many_sessions(&e) {
                    // The live session counts against the account's limit: no overlap; switch
                    // by the deadline instead (closing this one first).
                    tracing::warn!(error = %e, "no room for the next session; switching at the deadline without overlap");
                    self.standby_retry_at = self.live.as_ref().and_then(|l| l.switch_by);
                    return Flow::Continue;
                }
                tracing::warn!(error = %e, "could not open the next session; trying again");
                if !is_transient(&e) {
                    // Credentials or settings went bad: the stream cannot go on past the cap.
                    self.fail(e).await;
                    return Flow::Stop;
                }
                self.standby_retry_at =
                    Some(Instant::now() + self.policy.retry.wait(0, &mut self.rng));
                Flow::Continue
            }
            Err(e) => {
                // After a switch without overlap, the session just closed may still count
                // against the concurrency limit for a moment: 3009 is worth a retry there.
                let retry =
                    is_transient(&e) || (purpose == Purpose::Rollover && too_many_sessions(&e));
                if !retry || self.failures >= self.policy.retry.retries() {
                    tracing::warn!(error = %e, failures = self.failures, "reconnect failed; giving up");
                    self.fail(e).await;
                    return Flow::Stop;
                }
                self.failures += 1;
                let delay = self.policy.retry.wait(self.failures - 1, &mut self.rng);
                tracing::warn!(error = %e, failures = self.failures, ?delay, "reconnect failed; retrying");
                self.last_error = Some(e);
                self.retry_purpose = purpose;
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
            cause: cause.unwrap_or_else(|| Error::connection_lost("connection lost")),
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
