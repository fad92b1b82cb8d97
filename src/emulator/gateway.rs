//! `LLMGatewayResponse`: what the emulator answers when a session has the `llm_gateway` parameter.
//!
//! The emulator runs no model. When the prompt names a language that the script turn has a
//! translation for, the answer is that translation; otherwise it is the turn's text marked as
//! untranslated (`"[es] Hello."`, or `"[untranslated] Hello."` when no language is named), so a
//! test can never mistake it for a real translation.

use serde_json::{Value, json};

use super::ids;
use super::script::PreparedTurn;
use crate::translate::LANGUAGES;

/// The `llm_gateway` connection parameter, digested.
#[derive(Debug, Clone)]
pub(crate) struct GatewayRequest {
    model: String,
    max_tokens: u64,
    /// All prompt text (messages and `prompt`), lower-cased, for language lookup.
    prompt_lower: String,
}

impl GatewayRequest {
    pub(crate) fn from_param(value: &Value) -> Self {
        let mut prompt = String::new();
        if let Some(p) = value.get("prompt").and_then(Value::as_str) {
            prompt.push_str(p);
        }
        if let Some(messages) = value.get("messages").and_then(Value::as_array) {
            for m in messages {
                match m.get("content") {
                    Some(Value::String(s)) => {
                        prompt.push('\n');
                        prompt.push_str(s);
                    }
                    Some(Value::Array(parts)) => {
                        for part in parts {
                            if let Some(t) = part.get("text").and_then(Value::as_str) {
                                prompt.push('\n');
                                prompt.push_str(t);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        GatewayRequest {
            model: value
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("claude-sonnet-4-20250514")
                .to_string(),
            max_tokens: value
                .get("max_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(1000),
            prompt_lower: prompt.to_lowercase(),
        }
    }

    /// Languages the prompt names, in order of appearance.
    fn named_languages(&self) -> Vec<&'static str> {
        let mut found: Vec<(usize, &'static str)> = LANGUAGES
            .iter()
            .filter_map(|(code, name)| {
                // The prompt is lower-cased; the shared table's names are capitalised.
                let name = name.to_ascii_lowercase();
                self.prompt_lower.find(&name).map(|at| (at, *code))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, c)| c).collect()
    }

    /// The script's translation of a sentence into the language the prompt asks for, if the
    /// script has one.
    pub(crate) fn translation(&self, turn: &PreparedTurn) -> Option<String> {
        let source = turn.language_code.as_deref().unwrap_or("en");
        let named = self.named_languages();
        let targets: Vec<&str> = if named.len() > 1 {
            named.iter().copied().filter(|c| *c != source).collect()
        } else {
            named
        };
        if let Some(text) = targets.iter().find_map(|c| turn.translations.get(*c)) {
            return Some(text.clone());
        }
        // Also accept a translation key written as a code in the prompt ("into es").
        turn.translations
            .iter()
            .find(|(code, _)| {
                self.prompt_lower
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == code.as_str())
            })
            .map(|(_, text)| text.clone())
    }

    /// A transcript marked as not translated: `"[es] Hello."` (the language the prompt names),
    /// or `"[untranslated] Hello."`, so a test never mistakes it for a translation.
    pub(crate) fn marked(&self, source: &str, transcript: &str) -> String {
        let named = self.named_languages();
        let target = if named.len() > 1 {
            named.into_iter().find(|c| *c != source)
        } else {
            named.into_iter().next()
        };
        match target {
            Some(code) => format!("[{code}] {transcript}"),
            None => format!("[untranslated] {transcript}"),
        }
    }

    /// The completion text for a final turn holding one whole script sentence.
    #[cfg(test)]
    pub(crate) fn content(&self, turn: &PreparedTurn, transcript: &str) -> String {
        self.translation(turn).unwrap_or_else(|| {
            self.marked(turn.language_code.as_deref().unwrap_or("en"), transcript)
        })
    }

    /// The `data` object: a chat completion shaped like the LLM Gateway's.
    pub(crate) fn completion(&self, content: &str, input_words: usize) -> Value {
        let input_tokens = (self.prompt_lower.split_whitespace().count() + input_words) as u64;
        let output_tokens = content.split_whitespace().count() as u64;
        json!({
            "request_id": ids::uuid_v4(),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop"
            }],
            "request": {"model": self.model, "max_tokens": self.max_tokens},
            // The shape of the service's example (fixtures line 46).
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "prompt_tokens_details": {},
                "completion_tokens_details": {}
            },
            "http_status_code": 200,
            "response_time": 1_000_000,
            "llm_status_code": 200
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::ScriptTurn;

    fn turn() -> PreparedTurn {
        let mut t = ScriptTurn {
            text: "Hello, world.".into(),
            ..Default::default()
        };
        t.translations.insert("es".into(), "Hola, mundo.".into());
        PreparedTurn::new(&t)
    }

    #[test]
    fn translation_when_the_prompt_names_a_known_language() {
        let req = GatewayRequest::from_param(&json!({"model":"m","messages":[
            {"role":"user","content":"Translate this English text into Spanish: {{turn}}"}]}));
        assert_eq!(req.content(&turn(), "Hello, world."), "Hola, mundo.");
    }

    #[test]
    fn marked_untranslated_otherwise() {
        let req = GatewayRequest::from_param(&json!({"model":"m","messages":[
            {"role":"user","content":"Translate into French: {{turn}}"}]}));
        assert_eq!(req.content(&turn(), "Hello, world."), "[fr] Hello, world.");
        let req = GatewayRequest::from_param(&json!({"prompt":"Summarize {{turn}}"}));
        assert_eq!(
            req.content(&turn(), "Hello, world."),
            "[untranslated] Hello, world."
        );
    }
}
