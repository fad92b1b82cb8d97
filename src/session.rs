//! TEMPORARY SHIM (lemur branch): only the `TurnEvent` shape the translation pipeline adapts.
//!
//! The lead's real `session` module replaces this file at merge; nothing else lives here.

use crate::protocol;

/// One event of a streaming session.
#[derive(Debug)]
#[non_exhaustive]
pub enum TurnEvent {
    /// `Begin`.
    Begin(protocol::Begin),
    /// `SpeechStarted`.
    SpeechStarted(protocol::SpeechStarted),
    /// A `Turn` that does not end the turn.
    Partial(protocol::Turn),
    /// The final `Turn` of a `turn_order` (exactly once per turn).
    Final(protocol::Turn),
    /// `Termination`.
    Termination(protocol::Termination),
    /// `Warning`.
    Warning(protocol::Warning),
    /// `Heartbeat`.
    Heartbeat(protocol::Heartbeat),
    /// `Silence`.
    Silence(protocol::Silence),
    /// `SpeakerRevision`.
    SpeakerRevision(protocol::SpeakerRevision),
    /// `LLMGatewayResponse`.
    LlmGatewayResponse(protocol::LlmGatewayResponse),
    /// A message type this crate does not know yet.
    Unknown(serde_json::Value),
}
