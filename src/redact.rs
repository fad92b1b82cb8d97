//! Removing secrets from text that a server sent back, before that text reaches an [`Error`],
//! a log line or a command line's output.
//!
//! A hostile or careless server may echo the `Authorization` header, the `token` query
//! parameter or the request body in an upgrade response body, an `Error` frame, a close reason
//! or an LLM error message. Every piece of server-provided text that the crate keeps goes
//! through one [`Redactor`] first, and only then is truncated, so a cut through the middle of a
//! key cannot leave a long prefix behind.
//!
//! What counts as a leak: the whole secret, its percent-encoded form, and any run of
//! [`MIN_PARTIAL`] or more characters of it (a prefix, a suffix or a middle part, as left by a
//! server that truncates or splits what it echoes). Each such run is replaced by
//! [`REDACTED`].
//!
//! [`Error`]: crate::Error

use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a secret, or a part of one, in redacted text.
pub(crate) const REDACTED: &str = "<redacted>";

/// The shortest run of a secret's characters that counts as a partial echo. Shorter runs are
/// too likely to be ordinary text ("key", "error") to be removed.
pub(crate) const MIN_PARTIAL: usize = 8;

/// Removes a fixed set of secrets (an API key, a temporary token) from text.
///
/// Cheap to clone (the secrets are shared). The default redacts nothing.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for these secrets. Empty strings are ignored; each secret's percent-encoded
    /// form is added when it differs (a token echoed inside a URL).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for secret in secrets {
            let secret = secret.trim();
            if secret.is_empty() {
                continue;
            }
            let mut encoded = String::new();
            crate::params::encode_component(&mut encoded, secret);
            for form in [secret.to_owned(), encoded] {
                if !all.contains(&form) {
                    all.push(form);
                }
            }
        }
        Self {
            secrets: all.into(),
        }
    }

    /// This redactor with one more secret.
    pub(crate) fn with(&self, secret: &str) -> Self {
        Self::new(self.secrets.iter().map(String::as_str).chain([secret]))
    }

    /// `text` with every whole or partial echo of a secret replaced by [`REDACTED`]. Borrows
    /// when there is nothing to remove.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for secret in self.secrets.iter() {
            mark(text, secret, &mut ranges);
        }
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut merged: Option<(usize, usize)> = None;
        for (start, end) in ranges {
            match merged {
                Some((s, e)) if start <= e => merged = Some((s, e.max(end))),
                Some((s, e)) => {
                    out.push_str(&text[at..s]);
                    out.push_str(REDACTED);
                    at = e;
                    merged = Some((start, end));
                }
                None => merged = Some((start, end)),
            }
        }
        if let Some((s, e)) = merged {
            out.push_str(&text[at..s]);
            out.push_str(REDACTED);
            at = e;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Redacts every string in a parsed JSON document (values, not member names), in place.
    /// Server JSON is parsed first and redacted after: redacting the raw text could break its
    /// syntax (a short secret such as a one-letter test key matches inside member names).
    pub(crate) fn redact_json(&self, value: &mut serde_json::Value) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(clean) = self.redact(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|v| self.redact_json(v));
            }
            serde_json::Value::Object(members) => {
                members.values_mut().for_each(|v| self.redact_json(v));
            }
            _ => {}
        }
    }

    /// Redacts `text`, then cuts it to at most `max_bytes` bytes (at a character boundary),
    /// marking a cut with `…`. Redacting first is what keeps a truncated echo from leaving a
    /// prefix of the secret behind.
    pub(crate) fn redact_truncated(&self, text: &str, max_bytes: usize) -> String {
        let redacted = self.redact(text);
        truncate(&redacted, max_bytes)
    }
}

/// `text` cut to at most `max_bytes` bytes at a character boundary, with `…` after a cut.
pub(crate) fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text[..end].to_owned();
    out.push('…');
    out
}

/// Adds to `ranges` the byte ranges of `text` that hold `secret` or a run of at least
/// [`MIN_PARTIAL`] of its characters.
fn mark(text: &str, secret: &str, ranges: &mut Vec<(usize, usize)>) {
    let bounds: Vec<usize> = secret
        .char_indices()
        .map(|(i, _)| i)
        .chain([secret.len()])
        .collect();
    let chars = bounds.len() - 1;
    if chars < MIN_PARTIAL {
        // Too short for partial matching: only the whole secret counts.
        for (pos, _) in text.match_indices(secret) {
            ranges.push((pos, pos + secret.len()));
        }
        return;
    }
    // Every window of MIN_PARTIAL characters; overlapping hits merge into the longer run.
    for w in 0..=(chars - MIN_PARTIAL) {
        let window = &secret[bounds[w]..bounds[w + MIN_PARTIAL]];
        for (pos, _) in text.match_indices(window) {
            ranges.push((pos, pos + window.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "canary-0123456789abcdef0123456789abcdef";

    fn redactor() -> Redactor {
        Redactor::new([KEY])
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let text = "Invalid API key";
        assert!(matches!(redactor().redact(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn whole_echoes_are_replaced_everywhere() {
        let text = format!("Authorization: {KEY}\r\nagain {KEY}.");
        assert_eq!(
            redactor().redact(&text),
            "Authorization: <redacted>\r\nagain <redacted>."
        );
    }

    #[test]
    fn partial_echoes_of_eight_or_more_characters_are_replaced() {
        for part in [&KEY[..8], &KEY[..20], &KEY[KEY.len() - 12..], &KEY[5..17]] {
            let text = format!("bad key '{part}'");
            let shown = redactor().redact(&text).into_owned();
            assert_eq!(shown, "bad key '<redacted>'", "part {part:?}");
        }
        // Seven characters are left: too short to tell from ordinary text.
        let text = format!("x{}x", &KEY[..7]);
        assert_eq!(redactor().redact(&text), text);
    }

    #[test]
    fn truncation_happens_after_redaction() {
        let text = format!("echo: {KEY}");
        let cut = redactor().redact_truncated(&text, 20);
        assert!(!cut.contains(&KEY[..8]), "{cut}");
        assert!(cut.starts_with("echo: <redacted>"), "{cut}");
        // A body that the server itself cut through the key.
        let text = format!("echo: {}", &KEY[..15]);
        assert_eq!(redactor().redact_truncated(&text, 100), "echo: <redacted>");
    }

    #[test]
    fn percent_encoded_and_short_secrets() {
        let r = Redactor::new(["tok/en+1", "short"]);
        assert_eq!(r.redact("token=tok%2Fen%2B1&x"), "token=<redacted>&x");
        assert_eq!(r.redact("a short b"), "a <redacted> b");
        assert_eq!(r.redact("shor"), "shor");
    }

    #[test]
    fn non_ascii_text_and_secrets_keep_char_boundaries() {
        let r = Redactor::new(["ключ-секрет-42"]);
        let shown = r.redact("ошибка: ключ-секрет-42 é");
        assert_eq!(shown, "ошибка: <redacted> é");
        assert_eq!(truncate("éé", 3), "é…");
    }

    #[test]
    fn json_strings_are_redacted_and_its_syntax_kept() {
        let mut doc = serde_json::json!({"k": [format!("x {KEY}"), {"key": &KEY[..10]}], "n": 1});
        Redactor::new([KEY, "k"]).redact_json(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({"k": ["x <redacted>", {"key": "<redacted>"}], "n": 1})
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", redactor().with("another-secret-value"));
        assert!(
            !shown.contains("canary") && !shown.contains("another"),
            "{shown}"
        );
    }
}
