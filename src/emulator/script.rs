//! TEMPORARY SHIM (lemur branch): the `Script` types of the emulator contract, only so that
//! `llm.rs` compiles and is tested on its own. The emulator helper's real module replaces this
//! file at merge; `llm.rs` uses only `Script::turns`, `ScriptTurn::text` and
//! `ScriptTurn::translations`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Ordered turns of what is "said" in the audio.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Script {
    /// The turns, in order.
    pub turns: Vec<ScriptTurn>,
}

impl Script {
    /// Reads a script from a JSON file.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Script, Error> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| Error::Config(format!("invalid script: {e}")))
    }

    /// One turn per text, with no translations.
    pub fn from_texts<I, T>(texts: I) -> Script
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
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

/// One turn of a [`Script`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScriptTurn {
    /// Formatted text, e.g. "Hello, world.".
    pub text: String,
    /// Explicit per-word timings.
    #[serde(default)]
    pub words: Option<Vec<ScriptWord>>,
    /// Language of the turn.
    #[serde(default)]
    pub language_code: Option<String>,
    /// Speaker label.
    #[serde(default)]
    pub speaker: Option<String>,
    /// ISO 639-1 code -> translated text, e.g. `{"es": "Hola, mundo."}`.
    #[serde(default)]
    pub translations: BTreeMap<String, String>,
}

/// A word with timings (ms).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScriptWord {
    /// The word.
    pub text: String,
    /// Start, ms.
    pub start: u64,
    /// End, ms.
    pub end: u64,
}
