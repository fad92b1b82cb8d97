//! Fault injection: ways to make the emulator misbehave on purpose, to test a client's error
//! paths.

use std::time::Duration;

/// Faults the emulator injects into every session (all off by default).
///
/// | option | what the emulator does | what a client sees |
/// |---|---|---|
/// | `drop_after: Some(d)` | closes the TCP connection `d` after the upgrade, with no close frame | the stream ends abnormally (connection reset / EOF without close, 1006) |
/// | `no_termination: true` | on `Terminate`, sends the remaining turns but never `Termination` and never closes | its terminate timeout fires |
/// | `delay_begin: Some(d)` | waits `d` after the upgrade before sending `Begin` | a slow connect; its connect timeout fires if `d` is longer |
/// | `unknown_message: true` | sends `{"type":"EmulatorUnknownMessage",…}` right after `Begin` | an unknown message, which it must tolerate |
/// | `error_then_close: Some((code, reason))` | right after `Begin`, sends `{"type":"Error","error_code":code,"error":reason}` and closes with `code` | the error (reported once) and the end of the stream |
/// | `malformed_frame: true` | sends a text frame that is not valid JSON right after `Begin`, then goes on normally | a decode error; the session goes on |
/// | `untyped_error: true` | right after `Begin`, sends the untyped catch-all error `{"error":"Session Cancelled: An error occurred"}` (no `type`, as older servers did; fixtures line 50) and closes with 3005 | the error (reported once) and the end of the stream |
/// | `slow_messages: Some(d)` | waits `d` before writing every server message | every event arrives `d` late (a slow server) |
/// | `close_after: Some((d, code))` | `d` after the upgrade, sends an `Error` frame with `code` and the code's documented meaning, then closes with `code` | the error, mid-stream (e.g. 1012 "service restart") |
/// | `faulty_sessions: Some(n)` | applies the other faults to the first `n` websocket sessions only (counted from the emulator's start); later sessions are healthy | a fault that a reconnecting client gets past |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Drop the TCP connection (no close frame) this long after the websocket upgrade.
    pub drop_after: Option<Duration>,
    /// Never send `Termination` (nor close) after `Terminate`.
    pub no_termination: bool,
    /// Wait this long before sending `Begin`.
    pub delay_begin: Option<Duration>,
    /// Send a message of an unknown `type` right after `Begin`.
    pub unknown_message: bool,
    /// Right after `Begin`, send an `Error` frame with this code and reason, then close with the
    /// code.
    pub error_then_close: Option<(u16, String)>,
    /// Send one text frame that is not JSON right after `Begin`.
    pub malformed_frame: bool,
    /// Right after `Begin`, send the untyped error frame `{"error": …}` and close with 3005.
    pub untyped_error: bool,
    /// Delay every server message by this much.
    pub slow_messages: Option<Duration>,
    /// This long after the websocket upgrade, send an `Error` frame with this code and close
    /// with it.
    pub close_after: Option<(Duration, u16)>,
    /// Apply the faults to the first `n` sessions only (default: every session).
    pub faulty_sessions: Option<usize>,
}

impl Faults {
    /// No faults (same as `Default`).
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether any fault is on.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}
