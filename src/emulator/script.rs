//! Scripts: what is "said" in the audio a client streams, turn by turn.
//!
//! The emulator does not recognise speech. It finds speech and silence in the audio (see the
//! voice activity detector in the session) and fills each detected turn with the words of the
//! next script turn, revealing them as audio time passes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// An ordered list of turns, as spoken in the audio.
///
/// ```
/// use assemblyai_streaming::emulator::Script;
///
/// let script: Script = serde_json::from_str(
///     r#"{"turns":[{"text":"Hello, world.","translations":{"es":"Hola, mundo."}}]}"#,
/// ).unwrap();
/// assert_eq!(script.turns[0].translations["es"], "Hola, mundo.");
/// assert_eq!(Script::from_texts(["Hello, world."]).turns[0].text, "Hello, world.");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// The turns, in the order they are spoken.
    #[serde(default)]
    pub turns: Vec<ScriptTurn>,
}

/// One turn of a [`Script`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptTurn {
    /// The formatted text, e.g. `"Hello, world."`. The unformatted form the service sends when
    /// formatting is off is derived from it: lower case, punctuation removed.
    pub text: String,
    /// Optional explicit word timings, in ms from the start of the stream. When given, each word
    /// is revealed once the audio clock passes its `start` and finalized once it passes its `end`;
    /// the count must match the words of `text` (split on whitespace), or the timings are
    /// ignored.
    #[serde(default)]
    pub words: Option<Vec<ScriptWord>>,
    /// Language of the turn, reported with `language_detection=true` (default `"en"`).
    #[serde(default)]
    pub language_code: Option<String>,
    /// Speaker of the turn, reported with `speaker_labels=true` (default `"A"`).
    #[serde(default)]
    pub speaker: Option<String>,
    /// Translations by ISO 639-1 code, e.g. `{"es": "Hola, mundo."}`; used by the LLM routes and
    /// by `LLMGatewayResponse`.
    #[serde(default)]
    pub translations: BTreeMap<String, String>,
}

/// An explicit word timing of a [`ScriptTurn`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptWord {
    /// The word (informational; the text of the turn decides what is sent).
    pub text: String,
    /// Start, ms from the start of the stream.
    pub start: i64,
    /// End, ms from the start of the stream.
    pub end: i64,
}

impl Script {
    /// Loads a script from a JSON file such as
    /// `{"turns":[{"text":"Hello, world.","translations":{"es":"Hola, mundo."}}]}`.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Script, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::config_caused(format!("invalid script {}: {e}", path.display()), e))
    }

    /// A script of plain turns, one per text.
    pub fn from_texts<I, S>(texts: I) -> Script
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Script {
            turns: texts
                .into_iter()
                .map(|t| ScriptTurn {
                    text: t.into(),
                    ..Default::default()
                })
                .collect(),
        }
    }
}

/// A script turn split into words, in both forms, ready for the session.
#[derive(Debug, Clone, Default)]
pub(crate) struct PreparedTurn {
    /// Formatted words ("Hello,", "world.").
    pub formatted: Vec<String>,
    /// Unformatted words ("hello", "world").
    pub plain: Vec<String>,
    /// Estimated speech time of each word, ms (used when there are no explicit timings).
    pub durations: Vec<u32>,
    /// Explicit `(start, end)` timings.
    pub timings: Option<Vec<(i64, i64)>>,
    pub language_code: Option<String>,
    pub speaker: Option<String>,
    pub translations: BTreeMap<String, String>,
}

/// Speech time assumed for one placeholder word.
pub(crate) const PLACEHOLDER_WORD_MS: u32 = 350;

impl PreparedTurn {
    pub(crate) fn new(turn: &ScriptTurn) -> Self {
        let mut formatted: Vec<String> = Vec::new();
        for token in turn.text.split_whitespace() {
            if token.chars().any(char::is_alphanumeric) || formatted.is_empty() {
                formatted.push(token.to_string());
            } else if let Some(last) = formatted.last_mut() {
                // A lone punctuation token ("Hello ,") sticks to the word before it.
                last.push_str(token);
            }
        }
        let plain: Vec<String> = formatted.iter().map(|w| unformat(w)).collect();
        let durations = plain
            .iter()
            .map(|w| (w.chars().count() as u32 * 60 + 80).clamp(150, 900))
            .collect();
        let timings = turn
            .words
            .as_ref()
            .filter(|w| w.len() == formatted.len())
            .map(|w| w.iter().map(|w| (w.start, w.end.max(w.start))).collect());
        PreparedTurn {
            formatted,
            plain,
            durations,
            timings,
            language_code: turn.language_code.clone(),
            speaker: turn.speaker.clone(),
            translations: turn.translations.clone(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.formatted.len()
    }

    #[cfg(test)]
    pub(crate) fn formatted_text(&self) -> String {
        self.formatted.join(" ")
    }
}

/// The unformatted form of a word: lower case, punctuation removed (apostrophes and inner
/// hyphens kept: "Don't" -> "don't").
pub(crate) fn unformat(word: &str) -> String {
    if word.starts_with('[') && word.ends_with(']') {
        return word.to_string();
    }
    let trimmed = word.trim_matches(|c: char| !c.is_alphanumeric());
    let mut out = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '’' || c == '-' {
            out.extend(c.to_lowercase());
        }
    }
    if out.is_empty() {
        word.to_lowercase()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_come_in_both_forms() {
        let p = PreparedTurn::new(&ScriptTurn {
            text: "Hi, my name is Sonny . Don't stop—".into(),
            ..Default::default()
        });
        assert_eq!(
            p.formatted,
            ["Hi,", "my", "name", "is", "Sonny.", "Don't", "stop—"]
        );
        assert_eq!(
            p.plain,
            ["hi", "my", "name", "is", "sonny", "don't", "stop"]
        );
        assert_eq!(p.formatted_text(), "Hi, my name is Sonny. Don't stop—");
    }

    #[test]
    fn timings_must_match_the_words() {
        let turn = ScriptTurn {
            text: "a b".into(),
            words: Some(vec![ScriptWord {
                text: "a".into(),
                start: 0,
                end: 10,
            }]),
            ..Default::default()
        };
        assert!(PreparedTurn::new(&turn).timings.is_none());
    }
}
