//! Connection parameters: everything the service reads from the `/v3/ws` query string.
//!
//! Encoding follows the service's rules: booleans are lowercase, lists and objects are JSON
//! strings, and everything is URL-encoded. Parameters the crate does not know yet can be passed
//! with [`ConnectionParams::extra`].
//!
//! Naming follows `std::process::Command`: a setter has the parameter's wire name and takes
//! `self` (`.sample_rate(8000)`), its getter adds `get_` (`.get_sample_rate()`), and
//! [`ConnectionParams::get`] reads any parameter as it will be sent. Credentials are not
//! connection parameters: a temporary token is given to
//! [`StreamingClientBuilder::token`](crate::StreamingClientBuilder::token), which sends it as
//! the `token` query parameter.
//!
//! ```
//! use assemblyai_streaming::{ConnectionParams, SpeechModel};
//!
//! let params = ConnectionParams::new()
//!     .speech_model(SpeechModel::UniversalStreamingEnglish)
//!     .format_turns(true)
//!     .keyterms_prompt(["AssemblyAI", "Rust"]);
//! assert_eq!(
//!     params.to_query(),
//!     "speech_model=universal-streaming-english&sample_rate=16000&encoding=pcm_s16le\
//!      &format_turns=true&keyterms_prompt=%5B%22AssemblyAI%22%2C%22Rust%22%5D"
//! );
//! ```

use std::fmt;

/// The speech model serving a session. `speech_model` is required by the service; this crate
/// always sends it, and the default is [`SpeechModel::UniversalStreamingEnglish`] (the model the
/// service defaulted to before the parameter became required).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SpeechModel {
    /// `universal-streaming-english`.
    #[default]
    UniversalStreamingEnglish,
    /// `universal-streaming-multilingual`.
    UniversalStreamingMultilingual,
    /// `whisper-rt`.
    WhisperRt,
    /// `u3-rt-pro` (Universal-3 Pro; formatting always on).
    U3RtPro,
    /// Any other model name, sent as given (e.g. `universal-3-5-pro`).
    Other(String),
}

impl SpeechModel {
    /// The wire name of the model.
    pub fn as_str(&self) -> &str {
        match self {
            SpeechModel::UniversalStreamingEnglish => "universal-streaming-english",
            SpeechModel::UniversalStreamingMultilingual => "universal-streaming-multilingual",
            SpeechModel::WhisperRt => "whisper-rt",
            SpeechModel::U3RtPro => "u3-rt-pro",
            SpeechModel::Other(s) => s,
        }
    }

    /// Parses a wire name; unknown names become [`SpeechModel::Other`]. The deprecated alias
    /// `u3-pro` maps to [`SpeechModel::U3RtPro`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "universal-streaming-english" => SpeechModel::UniversalStreamingEnglish,
            "universal-streaming-multilingual" => SpeechModel::UniversalStreamingMultilingual,
            "whisper-rt" => SpeechModel::WhisperRt,
            "u3-rt-pro" | "u3-pro" => SpeechModel::U3RtPro,
            other => SpeechModel::Other(other.to_string()),
        }
    }
}

impl fmt::Display for SpeechModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Audio encoding of the binary frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Encoding {
    /// 16-bit signed little-endian PCM (the default).
    #[default]
    PcmS16le,
    /// 8-bit μ-law (telephony).
    PcmMulaw,
}

impl Encoding {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::PcmS16le => "pcm_s16le",
            Encoding::PcmMulaw => "pcm_mulaw",
        }
    }

    /// Bytes per sample.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Encoding::PcmS16le => 2,
            Encoding::PcmMulaw => 1,
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pcm_s16le" => Some(Encoding::PcmS16le),
            "pcm_mulaw" => Some(Encoding::PcmMulaw),
            _ => None,
        }
    }
}

/// The connection parameters of a session (the `/v3/ws` query string).
///
/// Defaults: `speech_model=universal-streaming-english`, `sample_rate=16000`,
/// `encoding=pcm_s16le`; every other parameter is left to the service's default and not sent.
#[derive(Clone, PartialEq, Default)]
pub struct ConnectionParams {
    pub(crate) speech_model: SpeechModel,
    pub(crate) sample_rate: Option<u32>,
    pub(crate) encoding: Encoding,
    /// `(key, already-encoded value)` in the order set; a key set twice keeps its last value.
    pub(crate) fields: Vec<(String, String)>,
}

impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `token` and webhook secrets may be among the fields.
        let redacted: Vec<(&str, &str)> = self
            .fields
            .iter()
            .map(|(k, v)| {
                let secret = k == "token" || k == "webhook_auth_header_value";
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("ConnectionParams")
            .field("speech_model", &self.speech_model)
            .field("sample_rate", &self.get_sample_rate())
            .field("encoding", &self.encoding)
            .field("fields", &redacted)
            .finish()
    }
}

macro_rules! setters {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty => |$v:ident| $body:expr ;)*) => {$(
        $(#[$doc])*
        pub fn $name(self, $v: $ty) -> Self {
            let encoded: String = $body;
            self.set(stringify!($name), encoded)
        }
    )*};
}

impl ConnectionParams {
    /// Parameters with the defaults above.
    pub fn new() -> Self {
        Self::default()
    }

    fn set(mut self, key: &str, value: String) -> Self {
        self.fields.retain(|(k, _)| k != key);
        self.fields.push((key.to_string(), value));
        self
    }

    /// `speech_model` (always sent; default `universal-streaming-english`).
    pub fn speech_model(mut self, model: SpeechModel) -> Self {
        self.speech_model = model;
        self
    }

    /// `sample_rate` in Hz (default 16000).
    pub fn sample_rate(mut self, hz: u32) -> Self {
        self.sample_rate = Some(hz);
        self.fields.retain(|(k, _)| k != "sample_rate");
        self
    }

    /// `encoding` (default `pcm_s16le`).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self.fields.retain(|(k, _)| k != "encoding");
        self
    }

    /// The speech model that will be sent.
    pub fn get_speech_model(&self) -> &SpeechModel {
        &self.speech_model
    }

    /// The sample rate that will be sent, in Hz (16000 unless set).
    pub fn get_sample_rate(&self) -> u32 {
        self.sample_rate.unwrap_or(16_000)
    }

    /// The encoding that will be sent.
    pub fn get_encoding(&self) -> Encoding {
        self.encoding
    }

    /// The value a parameter will be sent with (before URL encoding), if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "speech_model" => Some(self.speech_model.as_str()),
            "encoding" => Some(self.encoding.as_str()),
            _ => self
                .fields
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
        }
    }

    /// Whether `format_turns` is on (it is off unless set).
    pub fn get_format_turns(&self) -> bool {
        self.get("format_turns") == Some("true")
    }

    setters! {
        /// `format_turns`: punctuate and case turns (service default `false`).
        format_turns: bool => |v| v.to_string();
        /// `end_of_turn_confidence_threshold`, 0–1 (service default 0.4).
        end_of_turn_confidence_threshold: f64 => |v| v.to_string();
        /// `min_turn_silence` in ms (service default 400 for Universal-Streaming).
        min_turn_silence: u32 => |v| v.to_string();
        /// `max_turn_silence` in ms (service default 1280 for Universal-Streaming).
        max_turn_silence: u32 => |v| v.to_string();
        /// `vad_threshold`, 0–1.
        vad_threshold: f64 => |v| v.to_string();
        /// `prompt` (Universal-3 models, beta).
        prompt: impl Into<String> => |v| v.into();
        /// `language_detection`: adds `language_code` to final turns.
        language_detection: bool => |v| v.to_string();
        /// `inactivity_timeout` in seconds (5–3600): the service closes an idle session.
        inactivity_timeout: u32 => |v| v.to_string();
        /// `speaker_labels`: diarization.
        speaker_labels: bool => |v| v.to_string();
        /// `max_speakers` (1–10, with `speaker_labels`).
        max_speakers: u32 => |v| v.to_string();
        /// `filter_profanity`.
        filter_profanity: bool => |v| v.to_string();
        /// `webhook_url`: the service posts the final turns there after `Termination`.
        webhook_url: impl Into<String> => |v| v.into();
        /// `webhook_auth_header_name`.
        webhook_auth_header_name: impl Into<String> => |v| v.into();
        /// `webhook_auth_header_value` (redacted from `Debug`).
        webhook_auth_header_value: impl Into<String> => |v| v.into();
        /// `domain` (e.g. `medical-v1`).
        domain: impl Into<String> => |v| v.into();
        /// `mode`: `max_accuracy`, `min_latency` or `balanced`.
        mode: impl Into<String> => |v| v.into();
        /// `agent_context`.
        agent_context: impl Into<String> => |v| v.into();
        /// `interruption_delay` in ms.
        interruption_delay: u32 => |v| v.to_string();
        /// `turn_left_pad_ms`.
        turn_left_pad_ms: u32 => |v| v.to_string();
        /// `continuous_partials`.
        continuous_partials: bool => |v| v.to_string();
        /// `include_partial_turns`.
        include_partial_turns: bool => |v| v.to_string();
        /// `voice_focus`: `near-field` or `far-field`.
        voice_focus: impl Into<String> => |v| v.into();
        /// `voice_focus_threshold`.
        voice_focus_threshold: f64 => |v| v.to_string();
        /// `redact_pii`.
        redact_pii: bool => |v| v.to_string();
        /// `redact_pii_sub`: `hash` or `entity_name`.
        redact_pii_sub: impl Into<String> => |v| v.into();
        /// `session_heartbeat`: `Heartbeat` messages.
        session_heartbeat: bool => |v| v.to_string();
        /// `acknowledge_silence`: `Silence` messages (U3 Pro).
        acknowledge_silence: bool => |v| v.to_string();
        /// `speaker_labels_revision_interval_ms` (0 = revise at end of stream only).
        speaker_labels_revision_interval_ms: u32 => |v| v.to_string();
        /// `language` (`en` or `multi`): deprecated by the service in favour of `speech_model`.
        language: impl Into<String> => |v| v.into();
        /// `language_code`: deprecated by the service in favour of `language_codes`.
        language_code: impl Into<String> => |v| v.into();
    }

    /// `keyterms_prompt`: up to 100 terms of at most 50 characters, sent as a JSON list.
    pub fn keyterms_prompt<I, S>(self, terms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set("keyterms_prompt", json_list(terms))
    }

    /// `language_codes`: expected languages, sent as a JSON list.
    pub fn language_codes<I, S>(self, codes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set("language_codes", json_list(codes))
    }

    /// `redact_pii_policies`: entity names, sent as a JSON list.
    pub fn redact_pii_policies<I, S>(self, policies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set("redact_pii_policies", json_list(policies))
    }

    /// `llm_gateway`: run a chat completion on every final turn on the server side; each result
    /// arrives as an `LLMGatewayResponse`. The object is sent as JSON. See
    /// the `translate` module for a ready-made translation prompt.
    pub fn llm_gateway(self, config: &serde_json::Value) -> Self {
        self.set("llm_gateway", config.to_string())
    }

    /// Any parameter, sent as given (URL-encoded). For parameters newer than this crate.
    pub fn extra(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        match key.as_str() {
            "speech_model" => {
                let model = SpeechModel::from_name(&value.into());
                self.speech_model(model)
            }
            "sample_rate" => {
                let value = value.into();
                // "16000.0" is an integer to the service (pydantic), so it is one here too.
                let hz = value.trim().parse::<u32>().ok().or_else(|| {
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f))
                        .map(|f| f as u32)
                });
                match hz {
                    Some(hz) => self.sample_rate(hz),
                    // Not a number: sent as given, for the service to judge.
                    None => self.set("sample_rate", value),
                }
            }
            "encoding" => {
                let value = value.into();
                match Encoding::from_name(&value) {
                    Some(e) => self.encoding(e),
                    None => self.set("encoding", value),
                }
            }
            _ => self.set(&key, value.into()),
        }
    }

    /// The URL-encoded query string, without the leading `?`.
    pub fn to_query(&self) -> String {
        let mut out = String::with_capacity(128);
        let mut push = |k: &str, v: &str| {
            if !out.is_empty() {
                out.push('&');
            }
            encode_component(&mut out, k);
            out.push('=');
            encode_component(&mut out, v);
        };
        push("speech_model", self.speech_model.as_str());
        // A raw `sample_rate` or `encoding` passed through `extra` overrides the typed one.
        if !self.fields.iter().any(|(k, _)| k == "sample_rate") {
            push("sample_rate", &self.get_sample_rate().to_string());
        }
        if !self.fields.iter().any(|(k, _)| k == "encoding") {
            push("encoding", self.encoding.as_str());
        }
        for (k, v) in &self.fields {
            push(k, v);
        }
        out
    }
}

fn json_list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let v: Vec<String> = items.into_iter().map(Into::into).collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_component(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_always_send_model_rate_and_encoding() {
        assert_eq!(
            ConnectionParams::new().to_query(),
            "speech_model=universal-streaming-english&sample_rate=16000&encoding=pcm_s16le"
        );
    }

    #[test]
    fn every_kind_of_value_is_encoded_as_the_service_expects() {
        let q = ConnectionParams::new()
            .speech_model(SpeechModel::U3RtPro)
            .sample_rate(8000)
            .encoding(Encoding::PcmMulaw)
            .format_turns(false)
            .end_of_turn_confidence_threshold(0.7)
            .min_turn_silence(160)
            .max_turn_silence(2400)
            .inactivity_timeout(30)
            .language_codes(["en", "es"])
            .prompt("Say hi & bye")
            .llm_gateway(&serde_json::json!({"model":"m","max_tokens":10}))
            .extra("brand_new", "x y")
            .to_query();
        assert_eq!(
            q,
            "speech_model=u3-rt-pro&sample_rate=8000&encoding=pcm_mulaw&format_turns=false\
             &end_of_turn_confidence_threshold=0.7&min_turn_silence=160&max_turn_silence=2400\
             &inactivity_timeout=30&language_codes=%5B%22en%22%2C%22es%22%5D\
             &prompt=Say%20hi%20%26%20bye\
             &llm_gateway=%7B%22max_tokens%22%3A10%2C%22model%22%3A%22m%22%7D&brand_new=x%20y"
        );
    }

    #[test]
    fn setting_twice_keeps_the_last_value() {
        let p = ConnectionParams::new()
            .format_turns(true)
            .format_turns(false);
        assert_eq!(p.get("format_turns"), Some("false"));
        assert!(!p.get_format_turns());
    }

    #[test]
    fn extra_routes_known_keys_to_typed_fields() {
        let p = ConnectionParams::new()
            .extra("speech_model", "universal-streaming-multilingual")
            .extra("sample_rate", "48000");
        assert_eq!(
            p.get_speech_model(),
            &SpeechModel::UniversalStreamingMultilingual
        );
        assert_eq!(p.get_sample_rate(), 48000);
        assert_eq!(
            ConnectionParams::new()
                .extra("sample_rate", "8000.0")
                .get_sample_rate(),
            8000
        );
        let raw = ConnectionParams::new().extra("sample_rate", "fast");
        assert!(
            raw.to_query().ends_with("&sample_rate=fast"),
            "{}",
            raw.to_query()
        );
        assert_eq!(raw.to_query().matches("sample_rate").count(), 1);
        // The last value wins, typed or raw (found by the round-trip property test).
        let p = ConnectionParams::new()
            .extra("encoding", "")
            .extra("encoding", "pcm_mulaw");
        assert!(
            p.to_query().ends_with("&encoding=pcm_mulaw"),
            "{}",
            p.to_query()
        );
    }

    #[test]
    fn debug_redacts_tokens() {
        let p = ConnectionParams::new().extra("token", "secret-token-123");
        assert!(!format!("{p:?}").contains("secret-token-123"));
        assert!(p.to_query().contains("token=secret-token-123"));
    }
}
