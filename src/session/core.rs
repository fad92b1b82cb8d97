//! The session as a pure state machine: no socket, no tokio, no clock of its own.
//!
//! [`Core::handle`] takes one [`Input`] (a server frame, a command, a write that finished or
//! stalled, "the consumer went away", or just the time) with `now`, and leaves its outputs in
//! the core: frames to write ([`Core::next_write`]), events for the consumer
//! ([`Core::take_events`]), the next deadline ([`Core::next_deadline`]) and how the session
//! ended ([`Core::decided`], [`Core::is_ended`]). The tokio driver (`driver.rs`) and the
//! connect path (`client.rs`, up to `Begin`) only move bytes and time in and out.
//!
//! Phases, and the deadline that belongs to each:
//!
//! | phase | entered on | deadline |
//! |---|---|---|
//! | `Opening` | the socket opened | none here (the connect timeout is the caller's) |
//! | `Streaming` | `Begin` | keep-alive, format wait |
//! | `Terminating` | `Terminate` queued | terminate timeout |
//! | `Closing` | the end is decided | close handshake (1 s) |
//! | `Ended` | the close handshake done, or its deadline | — |
//!
//! Across phases: an `Error` frame waits up to 1 s for the close that normally follows (so both
//! are reported as one error), and a write that does not complete within the write timeout ends
//! the session ([`TimeoutKind::Write`]): a server that stopped reading cannot hang the client.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::{Cause, Error, PeerEnd, Result, TimeoutKind, server_end, server_text};
use crate::params::{ConnectionParams, Encoding, SpeechModel};
use crate::protocol::{ClientMessage, ServerMessage, Termination, Turn};
use crate::redact::Redactor;

use super::{SessionOptions, TurnEvent};

/// How long to wait for the close that follows an `Error` frame, to learn its code.
pub(crate) const ERROR_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bound on the closing handshake (our Close out, the server's Close or EOF in).
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// "Never" for deadlines: far enough, and small enough to add to any `Instant`.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// `at + d`, capped at a year from `at`: `Duration::MAX` ("no limit") must not overflow.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR)).unwrap_or(at)
}

/// Something that happened, fed to [`Core::handle`].
#[derive(Debug)]
pub(crate) enum Input {
    /// A text frame from the server (the websocket's own buffer: no copy).
    Text(Utf8Bytes),
    /// A binary frame from the server (the service never sends one): its length.
    Binary(usize),
    /// The server's Close frame: code and reason, `None` without a code.
    Close(Option<(u16, String)>),
    /// Reading failed (TCP reset, protocol error): why, and the error itself.
    ReadFailed(String, Option<Cause>),
    /// The connection ended without a close frame.
    Eof,
    /// Audio from the sink.
    Audio(Bytes),
    /// A control message from a handle.
    Control(ClientMessage),
    /// Flush the audio, send `Terminate`.
    Terminate,
    /// Every sender (sink, handles) is gone: the audio is over.
    CommandsClosed,
    /// The event stream was dropped: nobody listens any more.
    ConsumerGone,
    /// The consumer's queue is past its hard bound (events, bytes).
    Overflow(usize, usize),
    /// A write could not complete at once (the socket's send buffer is full).
    WriteBlocked,
    /// Everything handed to the socket is written.
    WriteDone,
    /// A write failed: why, and the error itself.
    WriteFailed(String, Option<Cause>),
    /// Our Close frame is written (or the socket is gone).
    CloseFlushed,
    /// Only time passed.
    Tick,
}

/// A frame for the driver to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outgoing {
    Binary(Bytes),
    Text(String),
    /// Start (or complete) the closing handshake and flush it.
    Close,
}

/// How a session ended.
#[derive(Debug, Clone)]
pub(crate) enum End {
    Terminated(Termination),
    Error(Error),
    /// Nobody is listening any more (the event stream was dropped).
    Quiet,
}

#[derive(Debug)]
enum Phase {
    Opening,
    Streaming,
    Terminating {
        deadline: Instant,
    },
    Closing {
        deadline: Instant,
        flushed: bool,
        peer_done: bool,
    },
    Ended,
}

/// The session state machine. See the module docs.
#[derive(Debug)]
pub(crate) struct Core {
    phase: Phase,
    end: Option<End>,
    rechunker: Rechunker,
    tracker: FinalTracker,
    redactor: Redactor,
    writes: VecDeque<Outgoing>,
    events: VecDeque<(Result<TurnEvent>, usize)>,
    terminate_timeout: Duration,
    write_timeout: Duration,
    write_deadline: Option<Instant>,
    keep_alive: Option<Duration>,
    last_sent: Instant,
    error_frame: Option<(Option<i64>, String)>,
    error_deadline: Option<Instant>,
    /// Why the first failed write failed, reported if the read side never says more.
    write_failed: Option<(String, Option<Cause>)>,
    socket_dead: bool,
}

impl Core {
    /// A core for a socket that just opened (phase `Opening`, waiting for `Begin`).
    pub(crate) fn new(
        params: &ConnectionParams,
        options: &SessionOptions,
        redactor: Redactor,
        now: Instant,
    ) -> Self {
        Self {
            phase: Phase::Opening,
            end: None,
            rechunker: Rechunker::new(
                params.get_sample_rate(),
                params.get_encoding(),
                options.frame_duration,
            ),
            tracker: FinalTracker::new(params, options.format_wait),
            redactor,
            writes: VecDeque::new(),
            events: VecDeque::new(),
            terminate_timeout: options.terminate_timeout,
            write_timeout: options.write_timeout,
            write_deadline: None,
            keep_alive: options.keep_alive_interval,
            last_sent: now,
            error_frame: None,
            error_deadline: None,
            write_failed: None,
            socket_dead: false,
        }
    }

    /// Whether `Begin` has arrived.
    pub(crate) fn began(&self) -> bool {
        !matches!(self.phase, Phase::Opening)
    }

    /// The `Begin` message, once it arrived and until the driver took the events.
    pub(crate) fn begin(&self) -> Option<crate::protocol::Begin> {
        self.events.iter().find_map(|(e, _)| match e {
            Ok(TurnEvent::Begin(b)) => Some(b.clone()),
            _ => None,
        })
    }

    /// How the session ended, once that is decided (from the `Closing` phase on).
    pub(crate) fn decided(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Whether the driver is done: the end is decided and the closing handshake is over.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// Whether audio and control messages are still accepted.
    pub(crate) fn accepts_commands(&self) -> bool {
        matches!(self.phase, Phase::Streaming)
    }

    /// Whether the driver should take another command now: accepted, and nothing is waiting
    /// to be written (the sink's backpressure comes from the socket).
    pub(crate) fn wants_commands(&self) -> bool {
        matches!(self.phase, Phase::Streaming | Phase::Terminating { .. })
            && self.writes.is_empty()
            && self.write_deadline.is_none()
            && self.write_failed.is_none()
    }

    /// Whether the socket should still be read.
    pub(crate) fn reads(&self) -> bool {
        !self.socket_dead && !matches!(self.phase, Phase::Ended)
    }

    /// The next frame to write, if any.
    pub(crate) fn next_write(&mut self) -> Option<Outgoing> {
        self.writes.pop_front()
    }

    /// Whether events wait to be taken.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Events for the consumer, in order, each with the size of the frame it came from.
    ///
    /// The buffer goes with them: a session holds no event capacity between messages (with
    /// thousands of sessions, a kept buffer of 4+ events is most of a session's memory).
    pub(crate) fn take_events(&mut self) -> impl Iterator<Item = (Result<TurnEvent>, usize)> {
        std::mem::take(&mut self.events).into_iter()
    }

    /// The earliest deadline the driver must wake up for.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Terminating { deadline } | Phase::Closing { deadline, .. } => Some(*deadline),
            _ => None,
        };
        let keep_alive = match (&self.phase, self.keep_alive) {
            // The same conditions as `on_time` sends one under: a deadline it would not act on
            // would fire again at once.
            (Phase::Streaming, Some(every))
                if self.write_deadline.is_none()
                    && self.write_failed.is_none()
                    && self.writes.is_empty() =>
            {
                Some(later(self.last_sent, every))
            }
            _ => None,
        };
        let live = !matches!(self.phase, Phase::Closing { .. } | Phase::Ended);
        [
            phase,
            keep_alive,
            self.write_deadline.filter(|_| live),
            self.error_deadline.filter(|_| live),
            self.tracker.deadline.filter(|_| live),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds one input.
    pub(crate) fn handle(&mut self, now: Instant, input: Input) {
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        match input {
            Input::Text(text) => self.on_text(now, text),
            Input::Binary(len) => self.push(
                Err(Error::decode(
                    "unexpected binary frame from the server",
                    &format!("<{len} bytes>"),
                )),
                len,
            ),
            Input::Close(close) => {
                self.socket_dead_on_read(false);
                let error = server_end(
                    PeerEnd::Close(close),
                    self.error_frame.take(),
                    &self.redactor,
                );
                self.finish(now, End::Error(error));
                self.peer_done();
            }
            Input::ReadFailed(why, cause) => {
                self.socket_dead_on_read(true);
                let error = server_end(
                    PeerEnd::Dropped(why, cause),
                    self.error_frame.take(),
                    &self.redactor,
                );
                self.finish(now, End::Error(error));
                self.peer_done();
            }
            Input::Eof => {
                self.socket_dead_on_read(true);
                let error = server_end(
                    PeerEnd::Dropped("connection closed without a close frame".into(), None),
                    self.error_frame.take(),
                    &self.redactor,
                );
                self.finish(now, End::Error(error));
                self.peer_done();
            }
            Input::Audio(data) => {
                if self.accepts_commands() {
                    let mut frames = Vec::new();
                    self.rechunker.push(data, &mut frames);
                    self.writes.extend(frames.into_iter().map(Outgoing::Binary));
                }
            }
            Input::Control(message) => {
                if self.accepts_commands() {
                    if let ClientMessage::UpdateConfiguration(u) = &message {
                        if let Some(on) = u.format_turns {
                            self.tracker.set_format_turns(on, now);
                        }
                    }
                    self.writes.push_back(Outgoing::Text(message.to_json()));
                }
            }
            Input::Terminate | Input::CommandsClosed => self.terminate(now),
            Input::ConsumerGone => {
                // Nobody will read what comes: say goodbye if we can and close.
                if matches!(self.phase, Phase::Streaming) {
                    self.writes
                        .push_back(Outgoing::Text(ClientMessage::Terminate.to_json()));
                }
                self.events.clear();
                self.finish(now, End::Quiet);
            }
            Input::Overflow(events, bytes) => {
                self.finish(now, End::Error(Error::EventOverflow { events, bytes }));
            }
            Input::WriteBlocked => {
                if self.write_deadline.is_none() {
                    self.write_deadline = Some(later(now, self.write_timeout));
                }
            }
            Input::WriteDone => {
                self.write_deadline = None;
                self.last_sent = now;
            }
            Input::WriteFailed(why, cause) => {
                self.write_deadline = None;
                self.writes.clear();
                if let Phase::Closing { flushed, .. } = &mut self.phase {
                    *flushed = true;
                    self.check_closed();
                } else {
                    // The read side usually says why (a close code, a reset): give it the
                    // error grace to do so.
                    tracing::debug!(error = %why, "write failed");
                    self.error_deadline
                        .get_or_insert(later(now, ERROR_CLOSE_GRACE));
                    self.write_failed = Some((why, cause));
                }
            }
            Input::CloseFlushed => {
                if let Phase::Closing { flushed, .. } = &mut self.phase {
                    *flushed = true;
                }
                self.check_closed();
            }
            Input::Tick => {}
        }
        self.on_time(now);
    }

    fn socket_dead_on_read(&mut self, dead: bool) {
        if dead {
            self.socket_dead = true;
        }
    }

    fn peer_done(&mut self) {
        if let Phase::Closing { peer_done, .. } = &mut self.phase {
            *peer_done = true;
        }
        if self.socket_dead {
            if let Phase::Closing { flushed, .. } = &mut self.phase {
                *flushed = true;
            }
        }
        self.check_closed();
    }

    fn check_closed(&mut self) {
        if let Phase::Closing {
            flushed: true,
            peer_done: true,
            ..
        } = self.phase
        {
            self.phase = Phase::Ended;
        }
    }

    fn terminate(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Streaming) {
            return;
        }
        if let Some(rest) = self.rechunker.finish() {
            self.writes.push_back(Outgoing::Binary(rest));
        }
        self.writes
            .push_back(Outgoing::Text(ClientMessage::Terminate.to_json()));
        self.phase = Phase::Terminating {
            deadline: later(now, self.terminate_timeout),
        };
        tracing::debug!("Terminate queued");
    }

    /// Decides the end (once) and starts the closing handshake.
    fn finish(&mut self, now: Instant, end: End) {
        if self.end.is_some() {
            return;
        }
        self.tracker.flush(&mut self.events);
        match &end {
            End::Terminated(t) => self.push_final(Ok(TurnEvent::Termination(t.clone()))),
            End::Error(e) => self.push_final(Err(e.clone())),
            End::Quiet => {}
        }
        self.end = Some(end);
        self.error_deadline = None;
        self.write_deadline = None;
        if self.socket_dead {
            self.writes.clear();
            self.phase = Phase::Ended;
            return;
        }
        // Nothing queued matters once the server ended the session; when the consumer left,
        // a queued Terminate still goes first, then the Close.
        if matches!(self.end, Some(End::Quiet)) {
            self.writes.retain(|w| matches!(w, Outgoing::Text(_)));
        } else {
            self.writes.clear();
        }
        self.writes.push_back(Outgoing::Close);
        self.phase = Phase::Closing {
            deadline: later(now, CLOSE_TIMEOUT),
            flushed: false,
            peer_done: false,
        };
    }

    fn push_final(&mut self, event: Result<TurnEvent>) {
        self.events.push_back((event, 0));
    }

    fn push(&mut self, event: Result<TurnEvent>, bytes: usize) {
        if self.end.is_none() {
            self.events.push_back((event, bytes));
        }
    }

    /// Acts on every deadline that has passed.
    fn on_time(&mut self, now: Instant) {
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        match self.phase {
            Phase::Closing { deadline, .. } if deadline <= now => {
                self.phase = Phase::Ended;
                return;
            }
            Phase::Closing { .. } | Phase::Ended => return,
            _ => {}
        }
        if due(self.write_deadline) {
            tracing::warn!(timeout = ?self.write_timeout, "socket write stalled");
            self.socket_dead = true;
            self.finish(
                now,
                End::Error(Error::Timeout {
                    kind: TimeoutKind::Write,
                    after: self.write_timeout,
                }),
            );
            return;
        }
        if due(self.error_deadline) {
            let error = match (self.error_frame.take(), self.write_failed.take()) {
                (None, Some((why, cause))) => Error::ConnectionLost {
                    message: format!("sending failed: {}", server_text(&why, &self.redactor)),
                    source: cause.and_then(|c| c.checked(&self.redactor)),
                },
                (frame, why) => {
                    // A socket we cannot write to cannot take a Close frame either.
                    self.socket_dead |= why.is_some();
                    server_end(PeerEnd::Silent, frame, &self.redactor)
                }
            };
            self.socket_dead |= matches!(error, Error::ConnectionLost { .. });
            self.finish(now, End::Error(error));
            return;
        }
        if let Phase::Terminating { deadline } = self.phase {
            if deadline <= now {
                tracing::warn!(timeout = ?self.terminate_timeout, "no Termination in time");
                self.finish(
                    now,
                    End::Error(Error::Timeout {
                        kind: TimeoutKind::Termination,
                        after: self.terminate_timeout,
                    }),
                );
                return;
            }
        }
        if due(self.tracker.deadline) {
            self.tracker.flush(&mut self.events);
        }
        if let (Phase::Streaming, Some(every)) = (&self.phase, self.keep_alive) {
            if self.write_deadline.is_none()
                && self.write_failed.is_none()
                && self.writes.is_empty()
                && later(self.last_sent, every) <= now
            {
                self.writes
                    .push_back(Outgoing::Text(ClientMessage::KeepAlive.to_json()));
                // Counted as sent now, so a slow write does not queue another.
                self.last_sent = now;
            }
        }
    }

    fn on_text(&mut self, now: Instant, text: Utf8Bytes) {
        let len = text.len();
        let message = match ServerMessage::from_json(text.as_str()) {
            Ok(message) => message,
            // serde_json's complaint quotes the values it could not read: server text.
            Err(e) if matches!(self.phase, Phase::Opening) => {
                let error = self.redactor.redact(&e.to_string()).into_owned();
                tracing::warn!(%error, "undecodable frame before Begin; ignored");
                return;
            }
            Err(e) => {
                let error = self.redactor.redact(&e.to_string()).into_owned();
                tracing::warn!(%error, "undecodable server frame");
                self.push(Err(Error::decode_redacted(e, &text, &self.redactor)), len);
                return;
            }
        };
        let event = match message {
            ServerMessage::Begin(b) => {
                if matches!(self.phase, Phase::Opening) {
                    self.phase = Phase::Streaming;
                    self.last_sent = now;
                    // Begin is always the first event, ahead of anything that came before it.
                    self.events.push_front((Ok(TurnEvent::Begin(b)), len));
                    return;
                } else {
                    let id = self.redactor.redact(&b.id);
                    tracing::warn!(%id, "second Begin ignored");
                    return;
                }
            }
            ServerMessage::Turn(turn) => {
                if self.end.is_none() {
                    let before = self.events.len();
                    self.tracker.on_turn(turn, now, &mut self.events);
                    if let Some(last) = self.events.iter_mut().skip(before).last() {
                        last.1 = len;
                    }
                }
                return;
            }
            ServerMessage::Termination(t) => {
                if self.error_frame.is_none() {
                    self.finish(now, End::Terminated(t));
                }
                return;
            }
            ServerMessage::Error(f) => {
                self.on_error_frame(now, f.error_code, f.error);
                return;
            }
            ServerMessage::LegacyError { error } => {
                self.on_error_frame(now, None, error);
                return;
            }
            ServerMessage::SpeechStarted(s) => TurnEvent::SpeechStarted(s),
            // Free server text, kept in events that are shown and logged: redacted like the
            // text of errors. (Turn transcripts are the speaker's words and are not.)
            ServerMessage::Warning(mut w) => {
                if let std::borrow::Cow::Owned(text) = self.redactor.redact(&w.warning) {
                    w.warning = text;
                }
                TurnEvent::Warning(w)
            }
            ServerMessage::Heartbeat(h) => TurnEvent::Heartbeat(h),
            ServerMessage::Silence(s) => TurnEvent::Silence(s),
            ServerMessage::SpeakerRevision(r) => TurnEvent::SpeakerRevision(r),
            ServerMessage::LlmGatewayResponse(mut r) => {
                self.redactor.redact_json(&mut r.data);
                TurnEvent::LlmGatewayResponse(r)
            }
            ServerMessage::Unknown(mut v) => {
                self.redactor.redact_json(&mut v);
                TurnEvent::Unknown(v)
            }
        };
        self.push(Ok(event), len);
    }

    fn on_error_frame(&mut self, now: Instant, code: Option<i64>, text: String) {
        let text = crate::error::server_text(&text, &self.redactor);
        tracing::warn!(?code, error = %text, "server sent an Error frame");
        self.error_frame = Some((code, text));
        self.error_deadline = Some(later(now, ERROR_CLOSE_GRACE));
    }
}

/// Re-cuts audio into frames of a fixed size.
#[derive(Debug)]
pub(crate) struct Rechunker {
    frame_bytes: usize,
    min_bytes: usize,
    sample_bytes: usize,
    silence: u8,
    pending: BytesMut,
}

impl Rechunker {
    pub(crate) fn new(sample_rate: u32, encoding: Encoding, frame: Duration) -> Self {
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

    /// Adds audio; appends the complete frames now available.
    pub(crate) fn push(&mut self, mut data: Bytes, out: &mut Vec<Bytes>) {
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
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
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

type Events = VecDeque<(Result<TurnEvent>, usize)>;

/// Decides which Turn is the final of its `turn_order` (see [`TurnEvent`]).
#[derive(Debug)]
pub(crate) struct FinalTracker {
    /// Whether an unformatted end-of-turn may be followed by a formatted one.
    expect_formatted: bool,
    legacy_capable: bool,
    pending: Option<Turn>,
    deadline: Option<Instant>,
    wait: Duration,
    last_final: Option<u64>,
}

impl FinalTracker {
    pub(crate) fn new(params: &ConnectionParams, wait: Duration) -> Self {
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

    fn set_format_turns(&mut self, on: bool, _now: Instant) {
        self.expect_formatted = self.legacy_capable && on;
    }

    fn emit_final(&mut self, turn: Turn, out: &mut Events) {
        self.last_final = Some(turn.turn_order);
        out.push_back((Ok(TurnEvent::Final(turn)), 0));
    }

    pub(crate) fn on_turn(&mut self, turn: Turn, now: Instant, out: &mut Events) {
        if let Some(pending) = self.pending.take() {
            self.deadline = None;
            if turn.turn_order == pending.turn_order && turn.end_of_turn && turn.turn_is_formatted {
                out.push_back((Ok(TurnEvent::Partial(pending)), 0));
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
            out.push_back((Ok(TurnEvent::Partial(turn)), 0));
        } else if turn.end_of_turn && self.expect_formatted && !turn.turn_is_formatted {
            self.pending = Some(turn);
            self.deadline = Some(later(now, self.wait));
        } else if turn.end_of_turn {
            self.emit_final(turn, out);
        } else {
            out.push_back((Ok(TurnEvent::Partial(turn)), 0));
        }
    }

    pub(crate) fn flush(&mut self, out: &mut Events) {
        self.deadline = None;
        if let Some(pending) = self.pending.take() {
            self.emit_final(pending, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Begin, ClientMessage};

    const BEGIN: &str = r#"{"type":"Begin","id":"s","expires_at":1}"#;
    const TERMINATION: &str =
        r#"{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":1}"#;

    fn turn(order: u64, eot: bool, formatted: bool, text: &str) -> String {
        serde_json::json!({"type": "Turn", "turn_order": order, "turn_is_formatted": formatted,
            "end_of_turn": eot, "transcript": text, "end_of_turn_confidence": 0.5, "words": []})
        .to_string()
    }

    fn options() -> SessionOptions {
        SessionOptions {
            terminate_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(2),
            ..SessionOptions::default()
        }
    }

    fn core_with(params: ConnectionParams, options: SessionOptions, t0: Instant) -> Core {
        Core::new(
            &params,
            &options,
            Redactor::new(["sk-canary-0123456789"]),
            t0,
        )
    }

    /// Feeds `steps` (milliseconds after the start, input) and returns the core with a log of
    /// what came out: `W:` frames written, `E:` events, and `END:` once decided.
    fn run(core: &mut Core, t0: Instant, steps: Vec<(u64, Input)>) -> Vec<String> {
        let mut log = Vec::new();
        let mut ended = false;
        for (ms, input) in steps {
            core.handle(t0 + Duration::from_millis(ms), input);
            while let Some(w) = core.next_write() {
                log.push(match w {
                    Outgoing::Binary(b) => format!("W:bin{}", b.len()),
                    Outgoing::Text(t) => {
                        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                        format!("W:{}", v["type"].as_str().unwrap())
                    }
                    Outgoing::Close => "W:close".into(),
                });
            }
            // Like the connect path: nothing is taken before Begin.
            let ready = if core.began() { core.events.len() } else { 0 };
            for (e, _) in core.events.drain(..ready) {
                log.push(match e {
                    Ok(TurnEvent::Partial(t)) => format!("E:P{}:{}", t.turn_order, t.transcript),
                    Ok(TurnEvent::Final(t)) => format!("E:F{}:{}", t.turn_order, t.transcript),
                    Ok(TurnEvent::Begin(_)) => "E:Begin".into(),
                    Ok(TurnEvent::Termination(_)) => "E:Termination".into(),
                    Ok(other) => format!("E:{other:?}"),
                    Err(e) => format!("E:err:{}:{:?}", e.kind(), e.code()),
                });
            }
            if !ended && core.decided().is_some() {
                ended = true;
                log.push("END".into());
            }
            if core.is_ended() {
                log.push("ENDED".into());
            }
        }
        log
    }

    fn text(s: &str) -> Input {
        Input::Text(s.to_string().into())
    }

    /// One row: the inputs, and exactly the outputs they must give.
    struct Case {
        name: &'static str,
        params: ConnectionParams,
        steps: Vec<(u64, Input)>,
        expect: Vec<&'static str>,
    }

    #[test]
    fn input_sequences_and_their_outputs() {
        let plain = ConnectionParams::new;
        let legacy = || ConnectionParams::new().format_turns(true);
        let cases = vec![
            Case {
                name: "graceful: audio, terminate, termination, close handshake",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (10, Input::Audio(Bytes::from(vec![0u8; 3200 + 100]))),
                    (20, Input::Terminate),
                    (30, text(&turn(0, true, false, "hi"))),
                    (40, text(TERMINATION)),
                    (41, Input::CloseFlushed),
                    (42, Input::Eof),
                ],
                expect: vec![
                    "E:Begin",
                    "W:bin3200",
                    "W:bin1600",
                    "W:Terminate",
                    "E:F0:hi",
                    "W:close",
                    "E:Termination",
                    "END",
                    "ENDED",
                ],
            },
            Case {
                name: "a close 1000 before Termination is an error",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (5, text(&turn(0, false, false, "par"))),
                    (10, Input::Close(Some((1000, String::new())))),
                    (11, Input::CloseFlushed),
                ],
                expect: vec![
                    "E:Begin",
                    "E:P0:par",
                    "W:close",
                    "E:err:closed:Some(1000)",
                    "END",
                    "ENDED",
                ],
            },
            Case {
                name: "an Error frame and its close are one error; 1 s grace otherwise",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (
                        5,
                        text(r#"{"type":"Error","error_code":3006,"error":"bad"}"#),
                    ),
                    (1004, Input::Tick),
                    (1005, Input::Tick),
                ],
                expect: vec![
                    "E:Begin",
                    "W:close",
                    "E:err:invalid_message:Some(3006)",
                    "END",
                ],
            },
            Case {
                name: "no Termination within the terminate timeout",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (10, Input::Terminate),
                    (5009, Input::Tick),
                    (5010, Input::Tick),
                    (6010, Input::Tick),
                ],
                expect: vec![
                    "E:Begin",
                    "W:Terminate",
                    "W:close",
                    "E:err:timeout:None",
                    "END",
                    "ENDED",
                ],
            },
            Case {
                name: "a write stalled past the write timeout ends the session at once",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (10, Input::WriteBlocked),
                    (2009, Input::Tick),
                    (2010, Input::Tick),
                ],
                expect: vec!["E:Begin", "E:err:timeout:None", "END", "ENDED"],
            },
            Case {
                name: "the older formatting: the formatted twin is the only final",
                params: legacy(),
                steps: vec![
                    (0, text(BEGIN)),
                    (1, text(&turn(0, true, false, "hi there"))),
                    (2, text(&turn(0, true, true, "Hi there."))),
                    (3, text(&turn(1, false, false, "next"))),
                ],
                expect: vec!["E:Begin", "E:P0:hi there", "E:F0:Hi there.", "E:P1:next"],
            },
            Case {
                name: "the older formatting: the format wait delivers the unformatted final",
                params: legacy(),
                steps: vec![
                    (0, text(BEGIN)),
                    (1, text(&turn(0, true, false, "hi"))),
                    (1000, Input::Tick),
                    (1001, Input::Tick),
                ],
                expect: vec!["E:Begin", "E:F0:hi"],
            },
            Case {
                name: "dropping the consumer sends Terminate and closes, quietly",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (5, Input::ConsumerGone),
                    (6, Input::CloseFlushed),
                    (7, Input::Eof),
                ],
                expect: vec!["E:Begin", "W:Terminate", "W:close", "END", "ENDED"],
            },
            Case {
                name: "messages before Begin come after it; a decode error mid-session goes on",
                params: plain(),
                steps: vec![
                    (
                        0,
                        text(r#"{"type":"Warning","warning_code":1,"warning":"w"}"#),
                    ),
                    (1, text(BEGIN)),
                    (2, text("{not json")),
                    (3, text(&turn(0, true, false, "ok"))),
                ],
                expect: vec![
                    "E:Begin",
                    "E:Warning(Warning { warning_code: 1, warning: \"w\" })",
                    "E:err:decode:None",
                    "E:F0:ok",
                ],
            },
            Case {
                name: "a TCP drop ends at once, no close frame to send",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (5, Input::ReadFailed("reset".into(), None)),
                ],
                expect: vec!["E:Begin", "E:err:connection_lost:None", "END", "ENDED"],
            },
            Case {
                name: "a failed write waits for the read side's reason, then is connection_lost",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (5, Input::WriteFailed("broken pipe".into(), None)),
                    (1005, Input::Tick),
                ],
                expect: vec!["E:Begin", "E:err:connection_lost:None", "END", "ENDED"],
            },
            Case {
                name: "commands after Terminate are ignored; the sink is refused by the driver",
                params: plain(),
                steps: vec![
                    (0, text(BEGIN)),
                    (1, Input::Terminate),
                    (2, Input::Audio(Bytes::from(vec![0u8; 3200]))),
                    (3, Input::Control(ClientMessage::ForceEndpoint)),
                ],
                expect: vec!["E:Begin", "W:Terminate"],
            },
        ];
        for case in cases {
            let t0 = Instant::now();
            let mut core = core_with(case.params, options(), t0);
            let log = run(&mut core, t0, case.steps);
            assert_eq!(log, case.expect, "{}", case.name);
        }
    }

    #[test]
    fn keep_alive_is_sent_after_the_interval_without_outbound_traffic() {
        let t0 = Instant::now();
        let opts = SessionOptions {
            keep_alive_interval: Some(Duration::from_secs(30)),
            ..options()
        };
        let mut core = core_with(ConnectionParams::new(), opts, t0);
        let log = run(
            &mut core,
            t0,
            vec![
                (0, text(BEGIN)),
                (29_999, Input::Tick),
                (30_000, Input::Tick),
                (30_001, Input::WriteDone),
                (59_999, Input::Tick),
                (60_001, Input::Tick),
            ],
        );
        assert_eq!(log, ["E:Begin", "W:KeepAlive", "W:KeepAlive"]);
        assert_eq!(
            core.next_deadline(),
            Some(t0 + Duration::from_millis(90_001))
        );
    }

    #[test]
    fn server_text_kept_by_the_core_is_redacted() {
        let t0 = Instant::now();
        let mut core = core_with(ConnectionParams::new(), options(), t0);
        core.handle(t0, text(BEGIN));
        core.handle(t0, text(r#"{"type":"Turn","oops":"sk-canary-0123456789"#));
        core.handle(
            t0,
            text(r#"{"type":"Error","error_code":1008,"error":"bad key sk-canary-0123456789"}"#),
        );
        core.handle(
            t0,
            Input::Close(Some((1008, "key sk-canary-0123 was wrong".into()))),
        );
        let all: Vec<String> = core
            .take_events()
            .filter_map(|(e, _)| e.err())
            .map(|e| format!("{e} {e:?}"))
            .collect();
        assert_eq!(all.len(), 2, "{all:?}");
        for line in all {
            assert!(!line.contains("sk-canary-0123"), "{line}");
        }
    }

    #[test]
    fn begin_is_returned_for_the_connect_path() {
        let t0 = Instant::now();
        let mut core = core_with(ConnectionParams::new(), options(), t0);
        assert!(core.begin().is_none());
        core.handle(t0, text(BEGIN));
        assert!(core.began());
        let b: Option<Begin> = core.begin();
        assert_eq!(b.unwrap().id, "s");
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
    fn other_models_never_wait_for_a_formatted_twin() {
        let params = ConnectionParams::new()
            .speech_model(SpeechModel::UniversalStreamingMultilingual)
            .format_turns(true);
        let t0 = Instant::now();
        let mut core = core_with(params, options(), t0);
        let log = run(
            &mut core,
            t0,
            vec![(0, text(BEGIN)), (1, text(&turn(0, true, false, "hola")))],
        );
        assert_eq!(log, ["E:Begin", "E:F0:hola"]);
    }

    #[test]
    fn read_and_write_failures_keep_the_transport_error_unless_it_shows_a_secret() {
        use std::error::Error as _;
        let io = |text: &str| {
            Cause::new(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                text.to_owned(),
            ))
        };
        let end = |input: Input| {
            let t0 = Instant::now();
            let mut core = core_with(ConnectionParams::new(), options(), t0);
            run(
                &mut core,
                t0,
                vec![(0, text(BEGIN)), (5, input), (1005, Input::Tick)],
            );
            match core.decided() {
                Some(End::Error(e)) => e.clone(),
                other => panic!("{other:?}"),
            }
        };
        for (input, message) in [
            (
                Input::WriteFailed("broken pipe".into(), Some(io("broken pipe"))),
                "connection lost: sending failed: broken pipe",
            ),
            (
                Input::ReadFailed("reset".into(), Some(io("reset"))),
                "connection lost: reset",
            ),
        ] {
            let e = end(input);
            assert_eq!(
                (e.kind().as_str(), e.to_string().as_str()),
                ("connection_lost", message)
            );
            let kind = std::iter::successors(e.source(), |&s| s.source())
                .find_map(|s| s.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind);
            assert_eq!(kind, Some(std::io::ErrorKind::BrokenPipe), "{e:?}");
        }
        // A transport error whose text echoes the key is not exposed; the message is redacted.
        let leaky = "peer said sk-canary-0123456789";
        let e = end(Input::WriteFailed(leaky.into(), Some(io(leaky))));
        assert!(e.source().is_none(), "{e:?}");
        assert!(
            !format!("{e} {e:?}").contains("sk-canary-0123456789"),
            "{e:?}"
        );
        let e = end(Input::ReadFailed(leaky.into(), Some(io(leaky))));
        assert!(e.source().is_none(), "{e:?}");
        assert!(
            !format!("{e} {e:?}").contains("sk-canary-0123456789"),
            "{e:?}"
        );
    }
}
