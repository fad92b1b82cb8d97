//! Wire types of the Universal Streaming (v3) websocket protocol.
//!
//! These types mirror the JSON the service sends and accepts, field for field. They are shared by
//! the client ([`crate::StreamingSession`]) and the local emulator, so both sides speak exactly the
//! same protocol.
//!
//! Decoding is forward compatible: unknown fields are ignored, and an unknown `type` becomes
//! [`ServerMessage::Unknown`] carrying the raw JSON, so a new message kind from the service never
//! breaks a running session.
//!
//! ```
//! use assemblyai_streaming::protocol::ServerMessage;
//!
//! let msg = ServerMessage::from_json(r#"{"type":"Begin","id":"abc","expires_at":1759796682}"#).unwrap();
//! assert!(matches!(msg, ServerMessage::Begin(ref b) if b.id == "abc"));
//!
//! let msg = ServerMessage::from_json(r#"{"type":"SomethingNew","x":1}"#).unwrap();
//! assert!(matches!(msg, ServerMessage::Unknown(_)));
//! ```

use serde::{Deserialize, Serialize};

/// Name of the optional field the emulator adds to every message when send-time stamping is on
/// (wall-clock nanoseconds since the Unix epoch at the moment the frame was written). The real
/// service never sends it; the client ignores it unless asked (see the `load` example).
pub const SENT_AT_FIELD: &str = "_emulator_sent_at_ns";

/// Largest server frame the decoder accepts, in bytes. Real messages are a few kilobytes; a
/// `SpeakerRevision` for a long session can be larger, so the bound is generous but finite.
pub const MAX_SERVER_FRAME_BYTES: usize = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Server -> client
// ---------------------------------------------------------------------------------------------

/// `Begin`: the first message of every session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Begin {
    /// Session id (a UUID).
    pub id: String,
    /// Unix time in seconds at which the session reaches its maximum duration and is closed with
    /// 3008.
    pub expires_at: i64,
    /// What the server resolved the connection parameters to (newer servers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<BeginConfiguration>,
}

/// The `configuration` object of [`Begin`]. Compare `model` with what you asked for: the service
/// ignores misspelled parameters instead of rejecting them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BeginConfiguration {
    /// The speech model serving the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The latency/accuracy mode (a free string: new values appear over time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The API version serving the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// One word of a [`Turn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// Start, in milliseconds from the start of the stream.
    pub start: i64,
    /// End, in milliseconds from the start of the stream.
    pub end: i64,
    /// The word as recognised.
    pub text: String,
    /// Confidence, 0–1.
    pub confidence: f64,
    /// Whether the word can still change.
    pub word_is_final: bool,
    /// Speaker label, with `speaker_labels=true` (newer servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// `Turn`: the transcript of one turn so far, or its end.
///
/// Every partial and final of one turn share `turn_order`. `end_of_turn` is the only reliable
/// end-of-turn signal; [`crate::TurnEvent`] turns the formatting rules into a plain
/// partial/final distinction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// 0-based, increasing turn number.
    pub turn_order: u64,
    /// Whether `transcript` is punctuated and cased.
    pub turn_is_formatted: bool,
    /// Whether this message ends the turn.
    pub end_of_turn: bool,
    /// Finalized words of the turn so far (Universal-Streaming) or the full current text (U3).
    pub transcript: String,
    /// The model's confidence that the turn has ended, 0–1.
    #[serde(default)]
    pub end_of_turn_confidence: f64,
    /// Words with timings.
    #[serde(default)]
    pub words: Vec<Word>,
    /// Finalized text at a pause, `""` otherwise; absent on some servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utterance: Option<String>,
    /// Detected language, with `language_detection=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    /// Confidence of `language_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_confidence: Option<f64>,
    /// Speaker of the turn (`A`, `B`, … or `UNKNOWN`), with `speaker_labels=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_label: Option<String>,
    /// Emulator send-time stamp ([`SENT_AT_FIELD`]); `None` from the real service.
    #[doc(hidden)]
    #[serde(
        default,
        rename = "_emulator_sent_at_ns",
        skip_serializing_if = "Option::is_none"
    )]
    pub emulator_sent_at_ns: Option<u64>,
}

/// `SpeechStarted`: voice activity began (emitted by Universal-3 Pro).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeechStarted {
    /// Milliseconds from the start of the stream.
    pub timestamp: i64,
    /// Confidence, when the model reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// `Termination`: the session ended; nothing follows but the close.
///
/// Both fields are optional because some servers send a bare `{"type":"Termination"}`, and they
/// are numbers (integer or float) because clients in the wild see both.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Termination {
    /// Seconds of audio the server received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_duration_seconds: Option<f64>,
    /// Seconds the session lasted (what is billed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration_seconds: Option<f64>,
}

/// A typed `Error` frame, sent just before the server closes the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The close code that follows (e.g. 1008, 3007), when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// Human-readable reason.
    pub error: String,
}

/// `Warning`: non-fatal; the session goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Warning code.
    #[serde(default)]
    pub warning_code: i64,
    /// Human-readable text.
    #[serde(default)]
    pub warning: String,
}

/// `Heartbeat`, with `session_heartbeat=true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Milliseconds of audio received so far.
    #[serde(default)]
    pub total_audio_received_ms: i64,
    /// Milliseconds since the session began.
    #[serde(default)]
    pub total_duration_ms: i64,
    /// Audio received per wall-clock time (not clamped).
    #[serde(default)]
    pub realtime_factor: f64,
    /// Highest speech probability since the last heartbeat.
    #[serde(default)]
    pub max_speech_probability: f64,
}

/// `Silence`, with `acknowledge_silence=true`: a stretch of audio with no speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Start, ms from the start of the stream.
    pub start_ms: i64,
    /// End, ms from the start of the stream.
    pub end_ms: i64,
}

/// One revised turn of a [`SpeakerRevision`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRevision {
    /// The turn this revision replaces the speakers of.
    pub turn_order: u64,
    /// New speaker label of the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_label: Option<String>,
    /// Words with their new speakers.
    #[serde(default)]
    pub words: Vec<Word>,
}

/// `SpeakerRevision`: diarization revised earlier turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerRevision {
    /// Revised turns; unchanged turns are omitted.
    #[serde(default)]
    pub revisions: Vec<TurnRevision>,
}

/// `LLMGatewayResponse`: the server ran the `llm_gateway` prompt on a final turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmGatewayResponse {
    /// The final turn the prompt ran on.
    pub turn_order: u64,
    /// That turn's transcript.
    #[serde(default)]
    pub transcript: String,
    /// The chat-completion response, as the LLM Gateway returns it.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl LlmGatewayResponse {
    /// The text of the first choice (`data.choices[0].message.content`), if present.
    pub fn content(&self) -> Option<&str> {
        self.data
            .get("choices")?
            .get(0)?
            .get("message")?
            .get("content")?
            .as_str()
    }
}

/// Every message the server sends, decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ServerMessage {
    /// `Begin`.
    Begin(Begin),
    /// `Turn`.
    Turn(Turn),
    /// `SpeechStarted`.
    SpeechStarted(SpeechStarted),
    /// `Termination`.
    Termination(Termination),
    /// Typed `Error` frame.
    Error(ErrorFrame),
    /// `Warning`.
    Warning(Warning),
    /// `Heartbeat`.
    Heartbeat(Heartbeat),
    /// `Silence`.
    Silence(Silence),
    /// `SpeakerRevision`.
    SpeakerRevision(SpeakerRevision),
    /// `LLMGatewayResponse`.
    #[serde(rename = "LLMGatewayResponse")]
    LlmGatewayResponse(LlmGatewayResponse),
    /// The untyped `{"error": "..."}` form (no `type` field).
    #[serde(untagged)]
    LegacyError {
        /// Human-readable reason.
        error: String,
    },
    /// A message type this crate does not know yet, kept as raw JSON.
    #[serde(untagged)]
    Unknown(serde_json::Value),
}

/// Why a server frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or a known message with a field of the wrong type.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON but not an object, or an object with neither `type` nor `error`.
    #[error("not a server message: expected a JSON object with a \"type\" field")]
    NotAMessage,
    /// Larger than [`MAX_SERVER_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the {MAX_SERVER_FRAME_BYTES} byte limit")]
    TooLarge(usize),
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

impl ServerMessage {
    /// Decodes one text frame.
    ///
    /// Unknown `type`s become [`ServerMessage::Unknown`]; unknown fields are ignored. A frame that
    /// is not JSON, or a known message whose fields have the wrong types, is a [`DecodeError`].
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        if text.len() > MAX_SERVER_FRAME_BYTES {
            return Err(DecodeError::TooLarge(text.len()));
        }
        // Fast path: the tag is the first member (the emulator, most servers' `Begin`) or the
        // last one (the service's `Turn`s), so it can be read off the edge of the text and the
        // typed parse can go straight into the right struct, in one pass. Anything else, and
        // any frame the typed parse rejects, takes the general path below, so errors are the
        // same either way.
        if let Some(Ok(message)) = type_at_edge(text).and_then(|kind| Self::typed(kind, text)) {
            return Ok(message);
        }
        Self::from_json_general(text)
    }

    /// Decodes any frame: the tag first, then the typed parse.
    fn from_json_general(text: &str) -> Result<Self, DecodeError> {
        // A first pass reads only the tag, so the typed pass can go straight into the right
        // struct instead of buffering the whole document (serde's internally-tagged path).
        let peek: Peek<'_> = match serde_json::from_str(text) {
            Ok(p) => p,
            Err(e) if e.is_data() => return Err(DecodeError::NotAMessage),
            Err(e) => return Err(e.into()),
        };
        let Some(kind) = peek.kind else {
            if peek.error.is_some() {
                #[derive(Deserialize)]
                struct Legacy {
                    error: serde_json::Value,
                }
                let legacy: Legacy = serde_json::from_str(text)?;
                let error = match legacy.error {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                return Ok(ServerMessage::LegacyError { error });
            }
            return Err(DecodeError::NotAMessage);
        };
        match Self::typed(kind.as_ref(), text) {
            Some(result) => Ok(result?),
            None => Ok(ServerMessage::Unknown(serde_json::from_str(text)?)),
        }
    }

    /// Parses `text` as the known message type `kind`; `None` for a type this crate does not
    /// know.
    fn typed(kind: &str, text: &str) -> Option<Result<Self, serde_json::Error>> {
        fn parse<'a, T: Deserialize<'a>>(
            text: &'a str,
            wrap: fn(T) -> ServerMessage,
        ) -> Option<Result<ServerMessage, serde_json::Error>> {
            Some(serde_json::from_str(text).map(wrap))
        }
        match kind {
            "Begin" => parse(text, ServerMessage::Begin),
            "Turn" => parse(text, ServerMessage::Turn),
            "SpeechStarted" => parse(text, ServerMessage::SpeechStarted),
            "Termination" => parse(text, ServerMessage::Termination),
            "Error" => parse(text, ServerMessage::Error),
            "Warning" => parse(text, ServerMessage::Warning),
            "Heartbeat" => parse(text, ServerMessage::Heartbeat),
            "Silence" => parse(text, ServerMessage::Silence),
            "SpeakerRevision" => parse(text, ServerMessage::SpeakerRevision),
            "LLMGatewayResponse" => parse(text, ServerMessage::LlmGatewayResponse),
            _ => None,
        }
    }

    /// Encodes the message as the server sends it.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The wire `type` of this message (`"Turn"`, …); `None` for the untyped error form, and the
    /// raw `type` string for unknown messages.
    pub fn type_name(&self) -> Option<&str> {
        Some(match self {
            ServerMessage::Begin(_) => "Begin",
            ServerMessage::Turn(_) => "Turn",
            ServerMessage::SpeechStarted(_) => "SpeechStarted",
            ServerMessage::Termination(_) => "Termination",
            ServerMessage::Error(_) => "Error",
            ServerMessage::LegacyError { .. } => return None,
            ServerMessage::Warning(_) => "Warning",
            ServerMessage::Heartbeat(_) => "Heartbeat",
            ServerMessage::Silence(_) => "Silence",
            ServerMessage::SpeakerRevision(_) => "SpeakerRevision",
            ServerMessage::LlmGatewayResponse(_) => "LLMGatewayResponse",
            ServerMessage::Unknown(v) => return v.get("type").and_then(|t| t.as_str()),
        })
    }
}

/// The value of a top-level `"type"` member that is the first or the last member of the
/// object, read without parsing: `{ "type" : "Name" , …` or `… , "type" : "Name" }`, with any
/// JSON whitespace between tokens and `Name` made of ASCII letters, digits and `_`.
///
/// For valid JSON the answer is exact: an unescaped `"` is always a string delimiter, so the
/// tokens matched are whole strings, and a member right after the opening `{` or right before
/// the closing `}` belongs to the top-level object; and when the text holds `"type"` and
/// `"error"` at most once, the general path's first pass cannot reject the frame either. Invalid JSON may get an answer, but the typed parse that
/// follows rejects it.
fn type_at_edge(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let name_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // Whether the byte at `i` is preceded by an odd number of backslashes (escaped).
    let escaped = |i: usize| b[..i].iter().rev().take_while(|c| **c == b'\\').count() % 2 == 1;

    // Last member.
    let tail = || -> Option<&str> {
        let mut i = b.len();
        let back = |mut i: usize| {
            while i > 0 && ws(b[i - 1]) {
                i -= 1;
            }
            i
        };
        i = back(i);
        (i > 0 && b[i - 1] == b'}').then_some(())?;
        i = back(i - 1);
        (i > 0 && b[i - 1] == b'"').then_some(())?;
        let end = i - 1;
        let mut start = end;
        while start > 0 && name_byte(b[start - 1]) {
            start -= 1;
        }
        (start < end && start > 0 && b[start - 1] == b'"' && !escaped(start - 1)).then_some(())?;
        i = back(start - 1);
        (i > 0 && b[i - 1] == b':').then_some(())?;
        i = back(i - 1);
        (i >= 6 && &b[i - 6..i] == b"\"type\"" && !escaped(i - 6)).then_some(())?;
        text.get(start..end)
    };
    // First member.
    let head = || -> Option<&str> {
        let fwd = |mut i: usize| {
            while i < b.len() && ws(b[i]) {
                i += 1;
            }
            i
        };
        let mut i = fwd(0);
        (b.get(i) == Some(&b'{')).then_some(())?;
        i = fwd(i + 1);
        (b.get(i..i + 6) == Some(b"\"type\"")).then_some(())?;
        i = fwd(i + 6);
        (b.get(i) == Some(&b':')).then_some(())?;
        i = fwd(i + 1);
        (b.get(i) == Some(&b'"')).then_some(())?;
        let start = i + 1;
        let mut end = start;
        while end < b.len() && name_byte(b[end]) {
            end += 1;
        }
        (end > start && b.get(end) == Some(&b'"')).then_some(())?;
        i = fwd(end + 1);
        matches!(b.get(i), Some(b',' | b'}')).then_some(())?;
        text.get(start..end)
    };
    // A second `"type"` or `"error"` token anywhere (a duplicate member, or just a word) sends
    // the frame to the general path, whose first pass rejects duplicates of those two members.
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    // Built once: a searcher's setup costs more than searching a short frame.
    static TYPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\""));
    static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
    let twice = |token: &Finder<'_>| {
        token
            .find(b)
            .is_some_and(|first| token.find(&b[first + 1..]).is_some())
    };
    if twice(&TYPE) || twice(&ERROR) {
        return None;
    }
    tail().or_else(head)
}

// ---------------------------------------------------------------------------------------------
// Client -> server
// ---------------------------------------------------------------------------------------------

/// Mid-session changes sent with `UpdateConfiguration`. Only fields that are set are sent.
///
/// ```
/// use assemblyai_streaming::protocol::{ClientMessage, UpdateConfiguration};
///
/// let update = UpdateConfiguration { max_turn_silence: Some(2000), ..Default::default() };
/// assert_eq!(
///     ClientMessage::UpdateConfiguration(update).to_json(),
///     r#"{"type":"UpdateConfiguration","max_turn_silence":2000}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateConfiguration {
    /// End-of-turn confidence threshold, 0–1 (Universal-Streaming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_turn_confidence_threshold: Option<f64>,
    /// Silence (ms) that ends a confident turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_turn_silence: Option<u32>,
    /// Silence (ms) that ends any turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turn_silence: Option<u32>,
    /// Deprecated name of `min_turn_silence`, still accepted by the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_end_of_turn_silence_when_confident: Option<u32>,
    /// Voice activity threshold, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad_threshold: Option<f64>,
    /// Format turns (punctuation and casing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_turns: Option<bool>,
    /// Mask profanity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_profanity: Option<bool>,
    /// Prompt (Universal-3 models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Replaces the key-term set; an empty list clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyterms_prompt: Option<Vec<String>>,
    /// Conversation context for the agent (newer servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_context: Option<String>,
    /// Interruption delay in ms (newer servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption_delay: Option<u32>,
    /// Left padding of turns in ms (newer servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_left_pad_ms: Option<u32>,
    /// Expected languages; an empty list clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_codes: Option<Vec<String>>,
    /// Enable `Heartbeat` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_heartbeat: Option<bool>,
    /// Enable `Silence` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_silence: Option<bool>,
}

/// Every JSON message the client sends. Audio travels separately, as binary frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Change turn detection or formatting mid-session.
    UpdateConfiguration(UpdateConfiguration),
    /// End the current turn now.
    ForceEndpoint,
    /// Reset the inactivity timer.
    KeepAlive,
    /// End the session gracefully.
    Terminate,
}

impl ClientMessage {
    /// Encodes the message as the client sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The one-pass fast path gives exactly what the general path gives.
    fn same_as_general(text: &str) {
        let fast = ServerMessage::from_json(text);
        let general = ServerMessage::from_json_general(text);
        assert_eq!(
            format!("{fast:?}"),
            format!("{general:?}"),
            "fast and general paths differ on {text}"
        );
    }

    #[test]
    fn the_type_is_read_off_either_edge_of_the_object() {
        // The service's order (type last) and the emulator's (type first), any whitespace.
        for (text, kind) in [
            (
                r#"{"turn_order":0,"transcript":"","type":"Turn"}"#,
                Some("Turn"),
            ),
            ("{\"a\":1 ,\n\t\"type\" :\r \"Turn\" \n} \n", Some("Turn")),
            (r#"{"type":"Begin","id":"x","expires_at":5}"#, Some("Begin")),
            (r#" { "type" : "Begin" } "#, Some("Begin")),
            // Not at an edge, or not a plain top-level member: the general path decides.
            (r#"{"a":1,"type":"Turn","b":2}"#, None),
            (r#"{"data":{"type":"Turn"}}"#, None),
            (r#"{"data":[{"type":"Turn"}],"x":{"type":"Turn"}}"#, None),
            (r#"{"a":"x \"type\": \"Turn"}"#, None),
            (r#"{"a":"x \\\"type\": \"Turn"}"#, None),
            (r#"{"type":"Tu\u0072n","a":1}"#, None),
            (r#"{"type":7}"#, None),
            (r#"["type","Turn"]"#, None),
            ("", None),
            ("}", None),
            (r#""type":"Turn"}"#, Some("Turn")),
            // A second "type" token, member or not.
            (r#"{"type":0,"type":"Termination"}"#, None),
            (r#"{"words":[{"text":"type"}],"type":"Turn"}"#, None),
        ] {
            assert_eq!(type_at_edge(text), kind, "{text}");
        }
        // An escaped backslash before a quote leaves the quote a real delimiter; an escaped
        // quote is string content.
        assert_eq!(type_at_edge(r#"{"a":"\\","type":"Turn"}"#), Some("Turn"));
        assert_eq!(type_at_edge(r#"{"a":"\"type":"Turn"}"#), None);
    }

    #[test]
    fn fast_and_general_paths_agree() {
        for text in [
            r#"{"turn_order": 0, "turn_is_formatted": false, "end_of_turn": false, "transcript": "", "end_of_turn_confidence": 0.017454, "words": [{"start": 1920, "end": 2000, "text": "hi", "confidence": 0.874618, "word_is_final": false}], "utterance": "", "type": "Turn"}"#,
            r#"{"type":"Turn","turn_order":1,"turn_is_formatted":true,"end_of_turn":true,"transcript":"Hi.","words":[],"_emulator_sent_at_ns":17}"#,
            r#"{"type": "Begin", "id": "de5d9927", "expires_at": 1759796682}"#,
            r#"{"type":"Termination"}"#,
            r#"{"type":"Error","error_code":3007,"error":"x"}"#,
            r#"{"type":"SomethingNew","payload":{"type":"Turn"}}"#,
            r#"{"payload":1,"type":"SomethingNew"}"#,
            r#"{"error":"legacy"}"#,
            // Malformed: the typed parse fails and the general path reports why.
            r#"{"turn_order":"zero","type":"Turn"}"#,
            r#"{"type":"Turn"}"#,
            r#"{"type":"Turn","turn_order":0"#,
            r#"{"a":1 "type":"Turn"}"#,
            r#"{"type":"Turn","turn_order":0,"turn_is_formatted":false,"end_of_turn":false,"transcript":""} trailing"#,
            r#"{"a":"\u0000", "type":"Begin","id":"x","expires_at":5}"#,
        ] {
            same_as_general(text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Objects with arbitrary members and the tag first or last decode the same both ways.
        #[test]
        fn fast_path_matches_the_general_path(
            members in prop::collection::vec(
                (
                    prop_oneof![
                        Just("turn_order".to_string()),
                        Just("transcript".to_string()),
                        Just("id".to_string()),
                        Just("error".to_string()),
                        Just("type".to_string()),
                        "[a-z_\"\\\\ ]{1,8}",
                    ],
                    prop_oneof![
                        Just(serde_json::json!(0)),
                        Just(serde_json::json!(false)),
                        Just(serde_json::json!([])),
                        Just(serde_json::json!({"type": "Turn"})),
                        "[a-zA-Z\"\\\\:,{} ]{0,10}".prop_map(serde_json::Value::String),
                    ],
                ),
                0..6,
            ),
            kind in prop_oneof![
                Just("Turn"),
                Just("Begin"),
                Just("Termination"),
                Just("Error"),
                Just("Other"),
            ],
            tag_first in any::<bool>(),
        ) {
            let mut parts: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::json!(k), v))
                .collect();
            let tag = format!(r#""type":"{kind}""#);
            if tag_first { parts.insert(0, tag) } else { parts.push(tag) }
            same_as_general(&format!("{{{}}}", parts.join(",")));
        }
    }

    #[test]
    fn begin_with_and_without_configuration() {
        let b = ServerMessage::from_json(r#"{"type":"Begin","id":"x","expires_at":5}"#).unwrap();
        assert_eq!(
            b,
            ServerMessage::Begin(Begin {
                id: "x".into(),
                expires_at: 5,
                configuration: None
            })
        );
        let b = ServerMessage::from_json(
            r#"{"type":"Begin","id":"x","expires_at":5,"configuration":{"model":"u3-rt-pro","mode":"balanced","api_version":"1.0.0","new":1}}"#,
        )
        .unwrap();
        let ServerMessage::Begin(b) = b else { panic!() };
        assert_eq!(b.configuration.unwrap().model.as_deref(), Some("u3-rt-pro"));
    }

    #[test]
    fn turn_with_every_optional_field() {
        let t = ServerMessage::from_json(
            r#"{"type":"Turn","turn_order":3,"turn_is_formatted":true,"end_of_turn":true,
            "transcript":"Hola.","end_of_turn_confidence":0.9,"utterance":"Hola.",
            "language_code":"es","language_confidence":0.98,"speaker_label":"B",
            "words":[{"start":10,"end":90,"text":"Hola.","confidence":0.99,"word_is_final":true,"speaker":"B"}],
            "future_field":{"a":[1,2]}}"#,
        )
        .unwrap();
        let ServerMessage::Turn(t) = t else { panic!() };
        assert_eq!(t.turn_order, 3);
        assert_eq!(t.words[0].speaker.as_deref(), Some("B"));
        assert_eq!(t.language_code.as_deref(), Some("es"));
        assert_eq!(t.speaker_label.as_deref(), Some("B"));
    }

    #[test]
    fn termination_accepts_ints_floats_and_nothing() {
        for (text, audio) in [
            (
                r#"{"type":"Termination","audio_duration_seconds":10,"session_duration_seconds":11}"#,
                Some(10.0),
            ),
            (
                r#"{"type":"Termination","audio_duration_seconds":10.5,"session_duration_seconds":11.2}"#,
                Some(10.5),
            ),
            (r#"{"type":"Termination"}"#, None),
        ] {
            let ServerMessage::Termination(t) = ServerMessage::from_json(text).unwrap() else {
                panic!()
            };
            assert_eq!(t.audio_duration_seconds, audio);
        }
    }

    #[test]
    fn typed_and_untyped_errors() {
        assert_eq!(
            ServerMessage::from_json(r#"{"type":"Error","error_code":3007,"error":"Input duration violation: 20 ms. Expected between 50 and 1000 ms"}"#).unwrap(),
            ServerMessage::Error(ErrorFrame {
                error_code: Some(3007),
                error: "Input duration violation: 20 ms. Expected between 50 and 1000 ms".into()
            })
        );
        assert_eq!(
            ServerMessage::from_json(r#"{"error":"Not Authorized"}"#).unwrap(),
            ServerMessage::LegacyError {
                error: "Not Authorized".into()
            }
        );
    }

    #[test]
    fn newer_messages() {
        let m = ServerMessage::from_json(r#"{"type":"Warning","warning_code":1,"warning":"w"}"#)
            .unwrap();
        assert!(matches!(m, ServerMessage::Warning(ref w) if w.warning == "w"));
        let m = ServerMessage::from_json(r#"{"type":"Heartbeat","total_audio_received_ms":1000,"total_duration_ms":1100,"realtime_factor":0.9,"max_speech_probability":0.2}"#).unwrap();
        assert!(matches!(m, ServerMessage::Heartbeat(ref h) if h.total_audio_received_ms == 1000));
        let m =
            ServerMessage::from_json(r#"{"type":"Silence","start_ms":0,"end_ms":1000}"#).unwrap();
        assert!(matches!(m, ServerMessage::Silence(ref s) if s.end_ms == 1000));
        let m = ServerMessage::from_json(r#"{"type":"SpeakerRevision","revisions":[{"turn_order":0,"speaker_label":"A","words":[]}]}"#).unwrap();
        assert!(matches!(m, ServerMessage::SpeakerRevision(ref r) if r.revisions.len() == 1));
        let m = ServerMessage::from_json(r#"{"type":"LLMGatewayResponse","turn_order":2,"transcript":"Hi.","data":{"choices":[{"message":{"role":"assistant","content":"Hola."}}]}}"#).unwrap();
        let ServerMessage::LlmGatewayResponse(r) = m else {
            panic!()
        };
        assert_eq!(r.content(), Some("Hola."));
        let m = ServerMessage::from_json(
            r#"{"type":"SpeechStarted","timestamp":1200,"confidence":0.8}"#,
        )
        .unwrap();
        assert!(matches!(m, ServerMessage::SpeechStarted(ref s) if s.timestamp == 1200));
    }

    #[test]
    fn unknown_types_are_kept_raw() {
        let m = ServerMessage::from_json(r#"{"type":"Brand New","payload":[1,2,3]}"#).unwrap();
        assert_eq!(m.type_name(), Some("Brand New"));
        let ServerMessage::Unknown(v) = m else {
            panic!()
        };
        assert_eq!(v["payload"][2], 3);
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert!(matches!(
            ServerMessage::from_json("not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            ServerMessage::from_json("[]"),
            Err(DecodeError::NotAMessage)
        ));
        assert!(matches!(
            ServerMessage::from_json("42"),
            Err(DecodeError::NotAMessage)
        ));
        assert!(matches!(
            ServerMessage::from_json("{}"),
            Err(DecodeError::NotAMessage)
        ));
        assert!(matches!(
            ServerMessage::from_json(r#"{"type":7}"#),
            Err(DecodeError::NotAMessage)
        ));
        assert!(matches!(
            ServerMessage::from_json(r#"{"type":"Turn","turn_order":"zero"}"#),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn server_messages_round_trip() {
        let texts = [
            r#"{"type":"Begin","id":"x","expires_at":5}"#,
            r#"{"type":"Turn","turn_order":0,"turn_is_formatted":false,"end_of_turn":false,"transcript":"","end_of_turn_confidence":0.1,"words":[],"utterance":""}"#,
            r#"{"type":"Termination","audio_duration_seconds":1.0,"session_duration_seconds":2.0}"#,
            r#"{"type":"Error","error_code":1008,"error":"Unauthorized Connection: Missing Authorization header"}"#,
            r#"{"error":"legacy"}"#,
            r#"{"type":"Mystery","a":1}"#,
        ];
        for text in texts {
            let msg = ServerMessage::from_json(text).unwrap();
            assert_eq!(
                ServerMessage::from_json(&msg.to_json()).unwrap(),
                msg,
                "{text}"
            );
        }
    }

    #[test]
    fn client_messages_encode_as_the_spec_says() {
        assert_eq!(
            ClientMessage::Terminate.to_json(),
            r#"{"type":"Terminate"}"#
        );
        assert_eq!(
            ClientMessage::ForceEndpoint.to_json(),
            r#"{"type":"ForceEndpoint"}"#
        );
        assert_eq!(
            ClientMessage::KeepAlive.to_json(),
            r#"{"type":"KeepAlive"}"#
        );
        let update = UpdateConfiguration {
            keyterms_prompt: Some(vec!["AssemblyAI".into()]),
            format_turns: Some(true),
            ..Default::default()
        };
        assert_eq!(
            ClientMessage::UpdateConfiguration(update).to_json(),
            r#"{"type":"UpdateConfiguration","format_turns":true,"keyterms_prompt":["AssemblyAI"]}"#
        );
        let back: ClientMessage = serde_json::from_str(r#"{"type":"ForceEndpoint"}"#).unwrap();
        assert_eq!(back, ClientMessage::ForceEndpoint);
    }
}
