//! The transcript of a session as it accumulates, and its export as captions.
//!
//! A [`Transcript`] takes every event a session (or [`translate_finals`]) yields and keeps the
//! final turns in `turn_order`, each with its translations joined to it — also translations that
//! arrive after `Termination`, as they do when the last turns are still being translated. It
//! exports [WebVTT](https://www.w3.org/TR/webvtt1/) and SubRip (SRT) from the words' timings.
//!
//! Cue rules (the usual broadcast caption limits, e.g. the BBC subtitle guidelines):
//! - the transcript track cuts each final turn at word boundaries into cues of at most
//!   [`MAX_CUE_LINES`] lines of at most [`MAX_LINE_CHARS`] characters and at most
//!   [`MAX_CUE_DURATION`]; a cue runs from its first word's `start` to its last word's `end`
//!   (ms from the start of the stream);
//! - a translation track has one cue per turn spanning the whole turn (translations have no
//!   word timings), wrapped at [`MAX_LINE_CHARS`];
//! - turns without word timings (never the case for finals from the service) and turns without
//!   a translation into the chosen language (a failed translation) have no cue: a track never
//!   shows the source text in place of a translation;
//! - WebVTT cue text escapes `&`, `<` and `>` and carries the speaker as a voice span
//!   (`<v A>`) when the session has `speaker_labels`.
//!
//! ```
//! use assemblyai_streaming::captions::Transcript;
//! use assemblyai_streaming::protocol::Turn;
//! use assemblyai_streaming::TurnEvent;
//!
//! let turn: Turn = serde_json::from_value(serde_json::json!({
//!     "turn_order": 0, "turn_is_formatted": true, "end_of_turn": true,
//!     "transcript": "Hello, world.",
//!     "words": [
//!         {"text": "Hello,", "start": 300, "end": 700, "confidence": 0.9, "word_is_final": true},
//!         {"text": "world.", "start": 750, "end": 1200, "confidence": 0.9, "word_is_final": true}
//!     ]
//! })).unwrap();
//! let mut transcript = Transcript::new();
//! transcript.push_event(&TurnEvent::Final(turn));
//! assert_eq!(
//!     transcript.to_webvtt(None),
//!     "WEBVTT\n\n1\n00:00:00.300 --> 00:00:01.200\nHello, world.\n\n"
//! );
//! assert_eq!(transcript.to_srt(None), "1\n00:00:00,300 --> 00:00:01,200\nHello, world.\n\n");
//! ```
//!
//! [`translate_finals`]: crate::translate::translate_finals

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::protocol::{Turn, Word};
use crate::session::TurnEvent;
use crate::translate::{TranslatedEvent, Translation, language_code};

/// Longest caption line, in characters.
pub const MAX_LINE_CHARS: usize = 42;
/// Most lines in one cue of the transcript track.
pub const MAX_CUE_LINES: usize = 2;
/// Longest cue of the transcript track.
pub const MAX_CUE_DURATION: Duration = Duration::from_secs(7);
/// Translations kept for turns whose final has not arrived (yet); beyond this the oldest are
/// dropped, so a stream of stray translations cannot grow memory without bound.
pub const MAX_PENDING_TRANSLATIONS: usize = 256;

/// A final turn and its translations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Caption {
    /// The final turn.
    pub turn: Turn,
    /// Translated text by language: the ISO 639-1 code when the language is known (see
    /// [`language_code`]), otherwise the language as the translator was given it.
    pub translations: BTreeMap<String, String>,
}

impl Caption {
    /// The translation into `lang` (a code or a name, e.g. `"es"` or `"Spanish"`).
    pub fn translation(&self, lang: &str) -> Option<&str> {
        self.translations.get(&lang_key(lang)).map(String::as_str)
    }

    /// Start of the turn's first word, ms.
    pub fn start_ms(&self) -> Option<i64> {
        self.turn.words.first().map(|w| w.start)
    }

    /// End of the turn's last word, ms.
    pub fn end_ms(&self) -> Option<i64> {
        self.turn.words.iter().map(|w| w.end).max()
    }
}

fn lang_key(lang: &str) -> String {
    language_code(lang).map_or_else(|| lang.trim().to_owned(), str::to_owned)
}

/// Final turns in `turn_order` with their translations; see the [module docs](self).
///
/// Memory grows with the transcript (the finals and their translations); translations waiting
/// for a final that has not arrived are bounded by [`MAX_PENDING_TRANSLATIONS`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Transcript {
    finals: BTreeMap<u64, Caption>,
    #[serde(skip)]
    pending: BTreeMap<u64, BTreeMap<String, String>>,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a session event: a final is recorded (a repeated `turn_order` replaces the earlier
    /// final and keeps its translations); other events are ignored. Returns whether it was a
    /// final.
    pub fn push_event(&mut self, event: &TurnEvent) -> bool {
        let TurnEvent::Final(turn) = event else {
            return false;
        };
        let mut translations = self
            .finals
            .remove(&turn.turn_order)
            .map(|c| c.translations)
            .unwrap_or_default();
        if let Some(early) = self.pending.remove(&turn.turn_order) {
            translations.extend(early);
        }
        self.finals.insert(
            turn.turn_order,
            Caption {
                turn: turn.clone(),
                translations,
            },
        );
        true
    }

    /// Takes a translation, joining it to its final — whenever it arrives, also after
    /// `Termination`. A translation that comes before its final waits for it.
    pub fn push_translation(&mut self, translation: &Translation) {
        self.add_translation(translation.turn_order, &translation.lang, &translation.text);
    }

    /// Like [`push_translation`](Self::push_translation), for a translation made by other
    /// means (e.g. several languages translated side by side): `text` is `turn_order`'s final
    /// in `lang` (a code or a name).
    pub fn add_translation(&mut self, turn_order: u64, lang: &str, text: &str) {
        let key = lang_key(lang);
        let text = text.trim().to_owned();
        match self.finals.get_mut(&turn_order) {
            Some(caption) => {
                caption.translations.insert(key, text);
            }
            None => {
                self.pending
                    .entry(turn_order)
                    .or_default()
                    .insert(key, text);
                while self.pending.len() > MAX_PENDING_TRANSLATIONS {
                    self.pending.pop_first();
                }
            }
        }
    }

    /// Takes an item of [`translate_finals`](crate::translate::translate_finals).
    pub fn push(&mut self, item: &TranslatedEvent) {
        match item {
            TranslatedEvent::Event(event) => {
                self.push_event(event);
            }
            TranslatedEvent::Translation(t) => self.push_translation(t),
            // The whole translation follows as a `Translation`; captions keep only that.
            TranslatedEvent::Delta(_) => {}
        }
    }

    /// The finals in `turn_order`, with their translations.
    pub fn captions(&self) -> impl Iterator<Item = &Caption> {
        self.finals.values()
    }

    /// The final of `turn_order`, if it arrived.
    pub fn get(&self, turn_order: u64) -> Option<&Caption> {
        self.finals.get(&turn_order)
    }

    /// Number of finals.
    pub fn len(&self) -> usize {
        self.finals.len()
    }

    /// Whether no final arrived.
    pub fn is_empty(&self) -> bool {
        self.finals.is_empty()
    }

    /// The cues of the transcript (`lang: None`) or of its translation into `lang`.
    pub fn cues(&self, lang: Option<&str>) -> Vec<Cue> {
        let mut cues = Vec::new();
        for caption in self.captions() {
            match lang {
                None => source_cues(caption, &mut cues),
                Some(lang) => {
                    let (Some(text), Some(start), Some(end)) = (
                        caption.translation(lang),
                        caption.start_ms(),
                        caption.end_ms(),
                    ) else {
                        continue;
                    };
                    if text.trim().is_empty() {
                        continue;
                    }
                    cues.push(Cue {
                        turn_order: caption.turn.turn_order,
                        start_ms: start,
                        end_ms: end,
                        lines: wrap(text.split_whitespace(), usize::MAX),
                        speaker: caption.turn.speaker_label.clone(),
                    });
                }
            }
        }
        cues
    }

    /// The transcript (`lang: None`) or its translation into `lang` as a WebVTT file.
    pub fn to_webvtt(&self, lang: Option<&str>) -> String {
        webvtt(&self.cues(lang))
    }

    /// The transcript (`lang: None`) or its translation into `lang` as a SubRip (SRT) file.
    pub fn to_srt(&self, lang: Option<&str>) -> String {
        srt(&self.cues(lang))
    }
}

/// `cues` as a WebVTT file (e.g. cues of several transcripts, sorted by `start_ms`).
pub fn webvtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, cue) in cues.iter().enumerate() {
        let text = cue
            .lines
            .iter()
            .map(|l| escape_vtt(l))
            .collect::<Vec<_>>()
            .join("\n");
        let voice = cue
            .speaker
            .as_deref()
            .map(|s| format!("<v {}>", escape_vtt(s)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "{}\n{} --> {}\n{voice}{text}\n\n",
            i + 1,
            timestamp(cue.start_ms, '.'),
            timestamp(cue.end_ms, '.'),
        );
    }
    out
}

/// `cues` as a SubRip (SRT) file.
pub fn srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, cue) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(cue.start_ms, ','),
            timestamp(cue.end_ms, ','),
            cue.lines.join("\n")
        );
    }
    out
}

/// One caption cue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Cue {
    /// The turn it belongs to.
    pub turn_order: u64,
    /// Start, ms from the start of the stream.
    pub start_ms: i64,
    /// End, ms from the start of the stream (after `start_ms`).
    pub end_ms: i64,
    /// The text, one entry per line (no line breaks inside).
    pub lines: Vec<String>,
    /// The turn's speaker label, with `speaker_labels`.
    pub speaker: Option<String>,
}

fn source_cues(caption: &Caption, cues: &mut Vec<Cue>) {
    let words: Vec<&Word> = caption
        .turn
        .words
        .iter()
        .filter(|w| !w.text.trim().is_empty())
        .collect();
    let max_ms = MAX_CUE_DURATION.as_millis() as i64;
    let mut i = 0;
    while i < words.len() {
        // Take words while they fit the line budget and the duration limit (one at least).
        let start = words[i].start;
        let mut j = i + 1;
        while j < words.len() {
            let lines = wrap(
                words[i..=j].iter().map(|w| w.text.trim()),
                MAX_CUE_LINES + 1,
            );
            if lines.len() > MAX_CUE_LINES || words[j].end - start > max_ms {
                break;
            }
            j += 1;
        }
        let end = words[i..j].iter().map(|w| w.end).max().unwrap_or(start);
        cues.push(Cue {
            turn_order: caption.turn.turn_order,
            start_ms: start.max(0),
            // A zero-length cue is invalid in both formats.
            end_ms: end.max(start.max(0) + 1),
            lines: wrap(words[i..j].iter().map(|w| w.text.trim()), usize::MAX),
            speaker: caption.turn.speaker_label.clone(),
        });
        i = j;
    }
}

/// Greedy word wrap at [`MAX_LINE_CHARS`] (a longer word gets a line of its own); stops after
/// `max_lines` lines.
fn wrap<'a>(words: impl Iterator<Item = &'a str>, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in words {
        // Line breaks inside a word would end the cue early in both formats.
        let word: String = word.split_whitespace().collect::<Vec<_>>().join(" ");
        if word.is_empty() {
            continue;
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > MAX_LINE_CHARS {
            lines.push(std::mem::take(&mut line));
            if lines.len() >= max_lines {
                return lines;
            }
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `HH:MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SRT).
fn timestamp(ms: i64, separator: char) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn escape_vtt(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_formats() {
        assert_eq!(timestamp(0, '.'), "00:00:00.000");
        assert_eq!(timestamp(3_723_004, ','), "01:02:03,004");
        assert_eq!(timestamp(-5, '.'), "00:00:00.000");
    }

    #[test]
    fn wrap_keeps_lines_short_and_words_whole() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        let lines = wrap(text.split(' '), usize::MAX);
        assert!(lines.iter().all(|l| l.chars().count() <= MAX_LINE_CHARS));
        assert_eq!(lines.join(" "), text);
        let long = "x".repeat(60);
        assert_eq!(
            wrap([long.as_str(), "y"].into_iter(), 9),
            vec![long.clone(), "y".into()]
        );
    }
}
