//! Parsing of the `/v3/ws` query string, the way the service does it.
//!
//! - form decoding: `+` is a space, `%XX` is a byte;
//! - booleans are case-insensitive (`true`, `True`, `1`, `yes`, `on`… as pydantic accepts them:
//!   the Python SDK sends `True`);
//! - lists and objects are JSON strings;
//! - unknown parameters are ignored; a parameter given twice keeps its last value;
//! - `speech_model` is required; invalid values are rejected (the session closes with 3006).

use crate::{ConnectionParams, Encoding, Error, SpeechModel};

/// Reason-text prefix of a rejected query parameter (close 3006). The service's exact text for
/// this case is undocumented.
const INVALID: &str = "Invalid Parameter";

/// Bounds of the turn-silence parameters, ms, for the query and for `UpdateConfiguration`.
pub(crate) const TURN_SILENCE_RANGE_MS: (i64, i64) = (0, 60_000);
/// Most `keyterms_prompt` terms (spec §1.2).
pub(crate) const MAX_KEYTERMS: usize = 100;
/// Longest key term; longer ones are ignored (spec §1.2), with a `Warning`.
pub(crate) const MAX_KEYTERM_CHARS: usize = 50;

/// The typed connection parameters of one emulated session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionParams {
    pub model: SpeechModel,
    pub sample_rate: u32,
    pub encoding: Encoding,
    pub format_turns: bool,
    pub end_of_turn_confidence_threshold: f64,
    pub min_turn_silence: u32,
    pub max_turn_silence: u32,
    pub vad_threshold: f64,
    pub keyterms_prompt: Vec<String>,
    pub prompt: Option<String>,
    pub language_detection: bool,
    pub inactivity_timeout: Option<u32>,
    pub speaker_labels: bool,
    pub max_speakers: Option<u32>,
    pub session_heartbeat: bool,
    pub acknowledge_silence: bool,
    pub llm_gateway: Option<serde_json::Value>,
    pub mode: Option<String>,
    pub token: Option<String>,
}

/// Whether a model is a Universal-3 model (SpeechStarted, U3 partials, different defaults).
pub(crate) fn is_u3(model: &SpeechModel) -> bool {
    match model {
        SpeechModel::U3RtPro => true,
        SpeechModel::Other(name) => name.starts_with("u3") || name.starts_with("universal-3"),
        _ => false,
    }
}

/// Model names the emulator accepts besides the named [`SpeechModel`] variants (newer models
/// listed by the SDKs).
const NEWER_MODELS: &[&str] = &[
    "universal-3-5-pro",
    "universal-3-6",
    "universal-3-6-pro",
    "u3-rt-pro-beta-1",
];

/// Decodes `application/x-www-form-urlencoded` pairs. Invalid UTF-8 is replaced, never panics.
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Booleans the way pydantic reads them (case-insensitive).
fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(format!(
            "{INVALID}: {key} must be a boolean, got '{}'",
            clip(v)
        )),
    }
}

fn parse_int(key: &str, v: &str, min: i64, max: i64) -> Result<i64, String> {
    let n = v
        .trim()
        .parse::<i64>()
        .ok()
        .or_else(|| {
            // pydantic accepts "16000.0" for an int.
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.fract() == 0.0 && f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| format!("{INVALID}: {key} must be an integer, got '{}'", clip(v)))?;
    if n < min || n > max {
        return Err(format!(
            "{INVALID}: {key} must be between {min} and {max}, got {n}"
        ));
    }
    Ok(n)
}

fn parse_unit(key: &str, v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{INVALID}: {key} must be a number between 0 and 1, got '{}'",
            clip(v)
        )),
    }
}

fn parse_list(key: &str, v: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<Vec<String>>(v)
        .map_err(|_| format!("{INVALID}: {key} must be a JSON list of strings"))
}

fn clip(v: &str) -> &str {
    let mut end = v.len().min(64);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// Checks an `UpdateConfiguration` against the same bounds as the query parser. `Err` is the
/// reason text of the 3006 close (`Invalid Message: …`).
pub(crate) fn check_update(u: &crate::protocol::UpdateConfiguration) -> Result<(), String> {
    let invalid = |e: String| e.replacen(INVALID, "Invalid Message", 1);
    for (name, v) in [
        (
            "end_of_turn_confidence_threshold",
            u.end_of_turn_confidence_threshold,
        ),
        ("vad_threshold", u.vad_threshold),
    ] {
        if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            // Same bound as the query's, in the text clients already match on.
            return Err(format!("Invalid Message: {name} must be between 0 and 1"));
        }
    }
    for (name, v) in [
        ("min_turn_silence", u.min_turn_silence),
        (
            "min_end_of_turn_silence_when_confident",
            u.min_end_of_turn_silence_when_confident,
        ),
        ("max_turn_silence", u.max_turn_silence),
    ] {
        if let Some(v) = v {
            parse_int(
                name,
                &v.to_string(),
                TURN_SILENCE_RANGE_MS.0,
                TURN_SILENCE_RANGE_MS.1,
            )
            .map_err(invalid)?;
        }
    }
    if let Some(k) = &u.keyterms_prompt {
        if k.len() > MAX_KEYTERMS {
            return Err(format!(
                "Invalid Message: keyterms_prompt allows at most {MAX_KEYTERMS} terms"
            ));
        }
    }
    Ok(())
}

impl SessionParams {
    /// Parses and validates a query string. `Err` holds the reason text of the 3006 close.
    pub(crate) fn from_query(query: &str) -> Result<SessionParams, String> {
        Self::from_pairs(&form_pairs(query))
    }

    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Result<SessionParams, String> {
        // Last value wins, like most web frameworks.
        let get = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let model = match get("speech_model") {
            None | Some("") => {
                return Err(format!(
                    "{INVALID}: speech_model is required (e.g. speech_model=universal-streaming-english)"
                ));
            }
            Some(name) => match SpeechModel::from_name(name) {
                SpeechModel::Other(other) if !NEWER_MODELS.contains(&other.as_str()) => {
                    return Err(format!(
                        "{INVALID}: unknown speech_model '{}'",
                        clip(&other)
                    ));
                }
                m => m,
            },
        };
        let u3 = is_u3(&model);
        let encoding = match get("encoding") {
            None => Encoding::PcmS16le,
            Some(e) => Encoding::from_name(e).ok_or_else(|| {
                if matches!(e, "opus" | "ogg_opus" | "aac") {
                    format!("{INVALID}: encoding {e} is not supported by the emulator (use pcm_s16le or pcm_mulaw)")
                } else {
                    format!("{INVALID}: unknown encoding '{}'", clip(e))
                }
            })?,
        };
        let sample_rate = match get("sample_rate") {
            None => 16_000,
            Some(v) => parse_int("sample_rate", v, 8_000, 96_000)? as u32,
        };
        let flag = |key: &str| get(key).map(|v| parse_bool(key, v)).transpose();
        let min_turn_silence = match get("min_turn_silence")
            .map(|v| ("min_turn_silence", v))
            .or_else(|| {
                get("min_end_of_turn_silence_when_confident")
                    .map(|v| ("min_end_of_turn_silence_when_confident", v))
            }) {
            Some((k, v)) => {
                parse_int(k, v, TURN_SILENCE_RANGE_MS.0, TURN_SILENCE_RANGE_MS.1)? as u32
            }
            None if u3 => 100,
            None => 400,
        };
        let max_turn_silence = match get("max_turn_silence") {
            Some(v) => parse_int(
                "max_turn_silence",
                v,
                TURN_SILENCE_RANGE_MS.0,
                TURN_SILENCE_RANGE_MS.1,
            )? as u32,
            None if u3 => 1_000,
            None => 1_280,
        };
        let keyterms_prompt = match get("keyterms_prompt") {
            Some(v) => {
                let list = parse_list("keyterms_prompt", v)?;
                if list.len() > MAX_KEYTERMS {
                    return Err(format!(
                        "{INVALID}: keyterms_prompt has {} terms; at most 100 are allowed",
                        list.len()
                    ));
                }
                list
            }
            None => Vec::new(),
        };
        if let Some(v) = get("language_codes") {
            parse_list("language_codes", v)?;
        }
        if let Some(v) = get("redact_pii_policies") {
            parse_list("redact_pii_policies", v)?;
        }
        let llm_gateway = match get("llm_gateway") {
            Some(v) => match serde_json::from_str::<serde_json::Value>(v) {
                Ok(obj @ serde_json::Value::Object(_)) => Some(obj),
                _ => {
                    return Err(format!("{INVALID}: llm_gateway must be a JSON object"));
                }
            },
            None => None,
        };
        for key in [
            "filter_profanity",
            "continuous_partials",
            "include_partial_turns",
            "redact_pii",
        ] {
            flag(key)?;
        }
        if let Some(v) = get("speaker_labels_revision_interval_ms") {
            parse_int("speaker_labels_revision_interval_ms", v, 0, 86_400_000)?;
        }
        Ok(SessionParams {
            model,
            sample_rate,
            encoding,
            format_turns: flag("format_turns")?.unwrap_or(false),
            end_of_turn_confidence_threshold: get("end_of_turn_confidence_threshold")
                .map(|v| parse_unit("end_of_turn_confidence_threshold", v))
                .transpose()?
                .unwrap_or(0.4),
            min_turn_silence,
            max_turn_silence,
            vad_threshold: get("vad_threshold")
                .map(|v| parse_unit("vad_threshold", v))
                .transpose()?
                .unwrap_or(if u3 { 0.3 } else { 0.4 }),
            keyterms_prompt,
            prompt: get("prompt").map(str::to_string),
            language_detection: flag("language_detection")?.unwrap_or(false),
            inactivity_timeout: get("inactivity_timeout")
                .map(|v| parse_int("inactivity_timeout", v, 5, 3_600).map(|n| n as u32))
                .transpose()?,
            speaker_labels: flag("speaker_labels")?.unwrap_or(false),
            max_speakers: get("max_speakers")
                .map(|v| parse_int("max_speakers", v, 1, 10).map(|n| n as u32))
                .transpose()?,
            session_heartbeat: flag("session_heartbeat")?.unwrap_or(false),
            acknowledge_silence: flag("acknowledge_silence")?.unwrap_or(false),
            llm_gateway,
            mode: get("mode").map(str::to_string),
            token: get("token").map(str::to_string),
        })
    }
}

/// Parses a `/v3/ws` query string exactly as the emulator does, and returns it as
/// [`ConnectionParams`]. `Err` is the [`Error::Closed`] (code 3006) the emulator would close the
/// session with.
///
/// ```
/// use assemblyai_streaming::emulator::parse_query;
///
/// let params = parse_query("speech_model=u3-rt-pro&format_turns=True&prompt=a+b%21").unwrap();
/// assert_eq!(params.get("prompt"), Some("a b!"));
/// assert_eq!(parse_query("sample_rate=16000").unwrap_err().code(), Some(3006));
/// ```
pub fn parse_query(query: &str) -> Result<ConnectionParams, Error> {
    let pairs = form_pairs(query);
    SessionParams::from_pairs(&pairs).map_err(|reason| Error::closed(3006, reason))?;
    Ok(pairs
        .into_iter()
        .fold(ConnectionParams::new(), |p, (k, v)| p.extra(k, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_sdk_query_is_understood() {
        // What assemblyai 1.8.2 sends (pydantic bools, urlencode with '+').
        let p = SessionParams::from_query(
            "sample_rate=16000&speech_model=universal-streaming-english&format_turns=True\
             &keyterms_prompt=%5B%22Rust+lang%22%5D&min_end_of_turn_silence_when_confident=160\
             &brand_new_param=1",
        )
        .unwrap();
        assert!(p.format_turns);
        assert_eq!(p.keyterms_prompt, ["Rust lang"]);
        assert_eq!(p.min_turn_silence, 160);
        assert_eq!(p.max_turn_silence, 1280);
        assert_eq!(p.model, SpeechModel::UniversalStreamingEnglish);
    }

    #[test]
    fn u3_defaults_differ() {
        let p = SessionParams::from_query("speech_model=u3-pro").unwrap();
        assert_eq!(p.model, SpeechModel::U3RtPro);
        assert_eq!((p.min_turn_silence, p.max_turn_silence), (100, 1000));
        assert_eq!(p.vad_threshold, 0.3);
    }

    #[test]
    fn invalid_values_are_rejected_with_a_reason() {
        for (q, needle) in [
            ("", "speech_model is required"),
            ("speech_model=nope", "unknown speech_model"),
            (
                "speech_model=u3-rt-pro&format_turns=maybe",
                "format_turns must be a boolean",
            ),
            (
                "speech_model=u3-rt-pro&sample_rate=abc",
                "sample_rate must be an integer",
            ),
            (
                "speech_model=u3-rt-pro&inactivity_timeout=2",
                "between 5 and 3600",
            ),
            ("speech_model=u3-rt-pro&vad_threshold=1.5", "vad_threshold"),
            ("speech_model=u3-rt-pro&keyterms_prompt=a,b", "JSON list"),
            (
                "speech_model=u3-rt-pro&encoding=opus",
                "not supported by the emulator",
            ),
            ("speech_model=u3-rt-pro&llm_gateway=%5B%5D", "JSON object"),
        ] {
            let err = SessionParams::from_query(q).unwrap_err();
            assert!(err.contains(needle), "{q}: {err}");
            assert!(err.starts_with("Invalid Parameter: "), "{err}");
        }
    }

    #[test]
    fn form_decoding_never_panics() {
        assert_eq!(form_decode("a%2"), "a%2");
        assert_eq!(form_decode("%"), "%");
        assert_eq!(form_decode("%zz+%41"), "%zz A");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
        assert_eq!(
            form_pairs("a&&b=1&=2"),
            [
                ("a".into(), "".into()),
                ("b".into(), "1".into()),
                ("".into(), "2".into())
            ]
        );
    }
}
