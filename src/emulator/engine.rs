//! The "speech model" of the emulator: turn detection on the real audio and the Turn messages it
//! produces.
//!
//! - The audio clock advances with every sample received; all turn timing is in audio time.
//! - A turn starts at the first speech window. Its words come from the next script turn (or are
//!   placeholders `[word1]`, `[word2]`, … without a script) and are revealed as speech time passes:
//!   a word appears (`word_is_final:false`) when its estimated start is reached and becomes final
//!   when its estimated end is reached. Explicit script timings replace the estimates.
//! - The turn ends after `min_turn_silence` of silence when the model is "confident" (every word
//!   of the script turn is final and the confidence beats `end_of_turn_confidence_threshold`), or
//!   after `max_turn_silence` in any case; at least 80 ms of speech is needed.
//! - A turn that ends (by silence, `ForceEndpoint` or `Terminate`) always carries its whole script
//!   turn, so the final text equals the script even if the speech was shorter than estimated.
//! - Universal-Streaming models send a Turn per audio frame while a turn is open; Universal-3
//!   models send `SpeechStarted`, at most one partial per silence period plus an early partial
//!   after 750 ms of speech, then the final.

use std::sync::Arc;

use super::Formatting;
use super::gateway::GatewayRequest;
use super::query::{SessionParams, is_u3};
use super::script::{PLACEHOLDER_WORD_MS, PreparedTurn};
use super::vad::{Vad, WINDOW_MS, mulaw_to_linear};
use crate::Encoding;
use crate::protocol::{
    Heartbeat, LlmGatewayResponse, ServerMessage, Silence, SpeakerRevision, SpeechStarted, Turn,
    UpdateConfiguration, Word,
};

/// Speech needed before a turn can end, ms (spec: ≥80 ms since the last end of turn).
const MIN_TURN_SPEECH_MS: u32 = 80;
/// Continuous speech after which a Universal-3 model sends an early partial, ms.
const U3_EARLY_PARTIAL_MS: u32 = 750;
/// Confidence reported once every word of the turn is final.
const CONFIDENT: f64 = 0.95;
/// Silence after the last word at which a Universal-Streaming partial carries the utterance, ms.
const UTTERANCE_PAUSE_MS: u32 = 160;
/// Turns shorter than this get the speaker label `UNKNOWN`, ms.
const MIN_LABELLED_TURN_MS: i64 = 1000;

#[derive(Debug, Clone, Copy)]
struct WordState {
    start: i64,
    end: i64,
    is_final: bool,
    /// Speech time of the turn at which the word becomes final (estimated timings).
    final_at: u32,
}

#[derive(Debug)]
struct ActiveTurn {
    prep: Arc<PreparedTurn>,
    /// Whether `prep` is the script turn at `Engine::next_script`.
    from_script: bool,
    words: Vec<WordState>,
    /// Speech time (ms) accumulated in this turn.
    speech_ms: u32,
    /// Speech time at which the next word starts.
    next_word_at: u32,
    start_ms: i64,
    last_speech_end_ms: i64,
    silence_ms: u32,
    continuous_speech_ms: u32,
    early_partial_sent: bool,
    silence_partial_sent: bool,
    utterance_sent: bool,
}

/// Turn detection and message generation for one session.
#[derive(Debug)]
pub(crate) struct Engine {
    u3: bool,
    formatting: Formatting,
    format_turns: bool,
    eot_threshold: f64,
    min_silence_ms: u32,
    max_silence_ms: u32,
    language_detection: bool,
    speaker_labels: bool,
    acknowledge_silence: bool,
    gateway: Option<GatewayRequest>,
    script: Arc<[Arc<PreparedTurn>]>,
    next_script: usize,
    next_turn_order: u64,
    sample_rate: u32,
    mulaw: bool,
    carry: Option<u8>,
    vad: Vad,
    samples: u64,
    turn: Option<ActiveTurn>,
    /// Start of the silence not yet reported with a `Silence` message.
    silence_from_ms: i64,
    max_probability: f64,
}

impl Engine {
    /// The next script turn a detected turn takes (script turns finalised so far, counting
    /// from where the session started).
    pub(crate) fn next_script(&self) -> usize {
        self.next_script
    }

    /// Continues at script turn `index` when it is ahead and no turn is in progress (a
    /// conversation that other sessions carried on meanwhile).
    pub(crate) fn continue_script_at(&mut self, index: usize) {
        if self.turn.is_none() && index > self.next_script {
            self.next_script = index;
        }
    }

    pub(crate) fn new(
        params: &SessionParams,
        formatting: Formatting,
        script: Arc<[Arc<PreparedTurn>]>,
    ) -> Self {
        Engine {
            u3: is_u3(&params.model),
            formatting,
            format_turns: params.format_turns,
            eot_threshold: params.end_of_turn_confidence_threshold,
            min_silence_ms: params.min_turn_silence,
            max_silence_ms: params.max_turn_silence,
            language_detection: params.language_detection,
            speaker_labels: params.speaker_labels,
            acknowledge_silence: params.acknowledge_silence,
            gateway: params.llm_gateway.as_ref().map(GatewayRequest::from_param),
            script,
            next_script: 0,
            next_turn_order: 0,
            sample_rate: params.sample_rate,
            mulaw: params.encoding == Encoding::PcmMulaw,
            carry: None,
            vad: Vad::new(params.sample_rate, params.vad_threshold),
            samples: 0,
            turn: None,
            silence_from_ms: 0,
            max_probability: 0.0,
        }
    }

    /// Audio received so far, ms.
    pub(crate) fn audio_ms(&self) -> i64 {
        (self.samples * 1000 / u64::from(self.sample_rate)) as i64
    }

    /// Applies an `UpdateConfiguration`.
    pub(crate) fn update(&mut self, u: &UpdateConfiguration) {
        if let Some(v) = u.end_of_turn_confidence_threshold {
            self.eot_threshold = v;
        }
        if let Some(v) = u
            .min_turn_silence
            .or(u.min_end_of_turn_silence_when_confident)
        {
            self.min_silence_ms = v;
        }
        if let Some(v) = u.max_turn_silence {
            self.max_silence_ms = v;
        }
        if let Some(v) = u.vad_threshold {
            self.vad.set_threshold(v);
        }
        if let Some(v) = u.format_turns {
            self.format_turns = v;
        }
        if let Some(v) = u.acknowledge_silence {
            self.acknowledge_silence = v;
        }
    }

    /// Feeds one binary frame of audio; pushes the messages it causes onto `out`.
    pub(crate) fn push_audio(&mut self, bytes: &[u8], out: &mut Vec<ServerMessage>) {
        if self.mulaw {
            for &b in bytes {
                self.push_sample(mulaw_to_linear(b), out);
            }
        } else {
            let mut rest = bytes;
            if let Some(lo) = self.carry.take() {
                if let Some((&hi, tail)) = rest.split_first() {
                    self.push_sample(i16::from_le_bytes([lo, hi]), out);
                    rest = tail;
                } else {
                    self.carry = Some(lo);
                }
            }
            let mut pairs = rest.chunks_exact(2);
            for p in &mut pairs {
                self.push_sample(i16::from_le_bytes([p[0], p[1]]), out);
            }
            if let [odd] = pairs.remainder() {
                self.carry = Some(*odd);
            }
        }
        // Universal-Streaming: one Turn per audio frame while a turn is open.
        if !self.u3 {
            if let Some(t) = &self.turn {
                if !t.words.is_empty() {
                    let eot = self.eot_confidence(t);
                    let formatted = self.format_turns && self.formatting == Formatting::InModel;
                    // At the first pause after the last word, the utterance is complete: that
                    // partial carries it (it may come before `end_of_turn`, as the spec warns).
                    let complete = !t.utterance_sent
                        && t.silence_ms >= UTTERANCE_PAUSE_MS
                        && self.is_confident(t);
                    let mut m = self.turn_message(t, formatted, false, eot, Some(String::new()));
                    if complete {
                        m.utterance = Some(self.utterance_text(t));
                        if self.language_detection {
                            m.language_code =
                                Some(t.prep.language_code.clone().unwrap_or_else(|| "en".into()));
                            m.language_confidence = Some(0.98);
                        }
                    }
                    out.push(ServerMessage::Turn(m));
                    if complete {
                        if let Some(t) = self.turn.as_mut() {
                            t.utterance_sent = true;
                        }
                    }
                }
            }
        }
    }

    #[inline]
    fn push_sample(&mut self, sample: i16, out: &mut Vec<ServerMessage>) {
        self.samples += 1;
        if let Some(w) = self.vad.push(sample) {
            if w.probability > self.max_probability {
                self.max_probability = w.probability;
            }
            if w.speech {
                self.on_speech(out);
            } else {
                self.on_silence(out);
            }
        }
    }

    fn on_speech(&mut self, out: &mut Vec<ServerMessage>) {
        let now = self.audio_ms();
        if self.turn.is_none() {
            let start = now - i64::from(WINDOW_MS);
            let (prep, from_script) = match self.script.get(self.next_script) {
                Some(p) => (p.clone(), true),
                None => (Arc::new(PreparedTurn::placeholder()), false),
            };
            self.turn = Some(ActiveTurn {
                prep,
                from_script,
                words: Vec::new(),
                speech_ms: 0,
                next_word_at: 0,
                start_ms: start,
                last_speech_end_ms: now,
                silence_ms: 0,
                continuous_speech_ms: 0,
                early_partial_sent: false,
                silence_partial_sent: false,
                utterance_sent: false,
            });
            if self.u3 {
                out.push(ServerMessage::SpeechStarted(SpeechStarted {
                    timestamp: start,
                    confidence: Some(0.9),
                }));
            }
        }
        let Some(t) = self.turn.as_mut() else { return };
        t.speech_ms += WINDOW_MS;
        t.continuous_speech_ms += WINDOW_MS;
        t.silence_ms = 0;
        t.silence_partial_sent = false;
        t.last_speech_end_ms = now;
        Self::reveal(t, now);
        if self.u3 && !t.early_partial_sent && t.continuous_speech_ms >= U3_EARLY_PARTIAL_MS {
            if let Some(t) = self.turn.as_mut() {
                t.early_partial_sent = true;
            }
            if let Some(t) = &self.turn {
                if !t.words.is_empty() {
                    out.push(ServerMessage::Turn(self.u3_partial(t)));
                }
            }
        }
    }

    /// Reveals and finalizes words as the turn's speech time (or the audio clock, with explicit
    /// timings) advances.
    fn reveal(t: &mut ActiveTurn, now: i64) {
        if let Some(timings) = &t.prep.timings {
            while t.words.len() < timings.len() && timings[t.words.len()].0 <= now {
                let (start, end) = timings[t.words.len()];
                t.words.push(WordState {
                    start,
                    end,
                    is_final: false,
                    final_at: 0,
                });
            }
            for (w, &(_, end)) in t.words.iter_mut().zip(timings.iter()) {
                w.is_final = w.is_final || end <= now;
            }
            return;
        }
        loop {
            let i = t.words.len();
            if i >= t.prep.len() {
                if !t.prep.placeholder {
                    break;
                }
                Arc::make_mut(&mut t.prep).push_placeholder();
            }
            if t.speech_ms <= t.next_word_at {
                break;
            }
            let duration = t
                .prep
                .durations
                .get(i)
                .copied()
                .unwrap_or(PLACEHOLDER_WORD_MS);
            t.words.push(WordState {
                start: now - i64::from(WINDOW_MS),
                end: now,
                is_final: false,
                final_at: t.next_word_at + duration,
            });
            t.next_word_at += duration;
        }
        for w in t.words.iter_mut().filter(|w| !w.is_final) {
            w.end = now;
            if t.speech_ms >= w.final_at {
                w.is_final = true;
            }
        }
    }

    fn on_silence(&mut self, out: &mut Vec<ServerMessage>) {
        let now = self.audio_ms();
        let Some(t) = self.turn.as_mut() else {
            if self.acknowledge_silence && now - self.silence_from_ms >= 1000 {
                out.push(ServerMessage::Silence(Silence {
                    start_ms: self.silence_from_ms,
                    end_ms: now,
                }));
                self.silence_from_ms = now;
            }
            return;
        };
        t.silence_ms += WINDOW_MS;
        t.continuous_speech_ms = 0;
        if t.prep.placeholder {
            // Without a script the word in progress ends with the speech.
            for w in t.words.iter_mut() {
                w.is_final = true;
            }
        } else if t.prep.timings.is_some() {
            Self::reveal(t, now);
        }
        let Some(t) = self.turn.as_ref() else { return };
        let confident = self.is_confident(t);
        let eot_conf = self.eot_confidence(t);
        let semantic =
            confident && eot_conf > self.eot_threshold && t.silence_ms >= self.min_silence_ms;
        let acoustic = t.silence_ms >= self.max_silence_ms;
        if t.speech_ms >= MIN_TURN_SPEECH_MS && (semantic || acoustic) {
            self.end_turn(out);
        } else if acoustic && t.words.is_empty() {
            // A blip too short to be a turn: forget it.
            self.turn = None;
            self.silence_from_ms = now;
        } else if self.u3
            && !t.silence_partial_sent
            && !t.words.is_empty()
            && t.silence_ms >= self.min_silence_ms
        {
            out.push(ServerMessage::Turn(self.u3_partial(t)));
            if let Some(t) = self.turn.as_mut() {
                t.silence_partial_sent = true;
            }
        }
    }

    fn is_confident(&self, t: &ActiveTurn) -> bool {
        t.words.len() >= t.prep.len() && t.words.iter().all(|w| w.is_final)
    }

    fn eot_confidence(&self, t: &ActiveTurn) -> f64 {
        if t.silence_ms == 0 {
            return 0.01;
        }
        if self.is_confident(t) {
            CONFIDENT
        } else {
            let max = self.max_silence_ms.max(1);
            (0.05 * f64::from(t.silence_ms.min(max)) / f64::from(max)).max(0.001)
        }
    }

    /// Ends the current turn now (`ForceEndpoint`).
    pub(crate) fn force_endpoint(&mut self, out: &mut Vec<ServerMessage>) {
        if self.turn.is_some() {
            self.end_turn(out);
        }
    }

    /// Ends the session's audio (`Terminate`): the turn in progress becomes final unless it is a
    /// blip with no words.
    pub(crate) fn flush(&mut self, out: &mut Vec<ServerMessage>) {
        if let Some(t) = &self.turn {
            if t.speech_ms >= MIN_TURN_SPEECH_MS || !t.words.is_empty() {
                self.end_turn(out);
            } else {
                self.turn = None;
            }
        }
    }

    /// What the session sends between its last turn and `Termination`: a final
    /// `SpeakerRevision` with diarization on (the emulator never changes its speaker labels, so
    /// it revises nothing: unchanged turns are omitted).
    pub(crate) fn closing_messages(&self, out: &mut Vec<ServerMessage>) {
        if self.speaker_labels {
            out.push(ServerMessage::SpeakerRevision(SpeakerRevision {
                revisions: Vec::new(),
            }));
        }
    }

    /// A `Heartbeat` for a session that has lasted `total_duration_ms`.
    pub(crate) fn heartbeat(&mut self, total_duration_ms: i64) -> ServerMessage {
        let audio = self.audio_ms();
        let probability = std::mem::take(&mut self.max_probability);
        ServerMessage::Heartbeat(Heartbeat {
            total_audio_received_ms: audio,
            total_duration_ms,
            realtime_factor: if total_duration_ms > 0 {
                audio as f64 / total_duration_ms as f64
            } else {
                0.0
            },
            max_speech_probability: (probability * 1e6).round() / 1e6,
        })
    }

    fn end_turn(&mut self, out: &mut Vec<ServerMessage>) {
        let Some(mut t) = self.turn.take() else {
            return;
        };
        let now = self.audio_ms();
        // Whatever was not revealed yet is squeezed in before the end of the speech.
        let total = t.prep.len();
        let last_end = t.words.last().map_or(t.start_ms, |w| w.end);
        let speech_end = t.last_speech_end_ms.max(last_end);
        let missing = total.saturating_sub(t.words.len()) as i64;
        if missing > 0 {
            let step = ((speech_end - last_end) / missing).max(0);
            let mut at = last_end;
            while t.words.len() < total {
                let (start, end) = t
                    .prep
                    .timings
                    .as_ref()
                    .and_then(|tm| tm.get(t.words.len()).copied())
                    .unwrap_or((at, at + step));
                t.words.push(WordState {
                    start,
                    end,
                    is_final: true,
                    final_at: 0,
                });
                at += step;
            }
        }
        for w in t.words.iter_mut() {
            w.is_final = true;
        }
        let order = self.next_turn_order;
        self.next_turn_order += 1;
        if t.from_script {
            self.next_script += 1;
        }
        self.silence_from_ms = now;

        let final_turn = if self.u3 {
            let mut m = self.turn_message(&t, true, true, 0.0, None);
            m.end_of_turn_confidence = if m.transcript.ends_with(['.', '?', '!']) {
                1.0
            } else {
                0.0
            };
            m.utterance = Some(m.transcript.clone());
            out.push(ServerMessage::Turn(m.clone()));
            m
        } else {
            let conf = CONFIDENT.max(self.eot_threshold);
            match self.formatting {
                Formatting::Legacy => {
                    let mut m = self.turn_message(&t, false, true, conf, None);
                    m.utterance = Some(self.utterance_text(&t));
                    out.push(ServerMessage::Turn(m.clone()));
                    if self.format_turns {
                        let f = self.turn_message(&t, true, true, conf, Some(String::new()));
                        out.push(ServerMessage::Turn(f.clone()));
                        f
                    } else {
                        m
                    }
                }
                Formatting::InModel => {
                    let mut m = self.turn_message(&t, self.format_turns, true, conf, None);
                    m.utterance = Some(self.utterance_text(&t));
                    out.push(ServerMessage::Turn(m.clone()));
                    m
                }
            }
        };
        debug_assert_eq!(final_turn.turn_order, order);
        if let Some(gw) = &self.gateway {
            let content = gw.content(&t.prep, &final_turn.transcript);
            out.push(ServerMessage::LlmGatewayResponse(LlmGatewayResponse {
                turn_order: order,
                transcript: final_turn.transcript.clone(),
                data: gw.completion(&content, t.prep.len()),
            }));
        }
    }

    /// The utterance text: formatted with in-model formatting (even when the transcript is not,
    /// as in the service's multilingual example), else the unformatted words with a capital first
    /// letter (as the older service sent it).
    fn utterance_text(&self, t: &ActiveTurn) -> String {
        if self.formatting == Formatting::InModel {
            t.prep.formatted.join(" ")
        } else {
            capitalize_first(&t.prep.plain.join(" "))
        }
    }

    fn u3_partial(&self, t: &ActiveTurn) -> Turn {
        let mut m = self.turn_message(t, true, false, 0.0, Some(String::new()));
        m.turn_is_formatted = false;
        for w in m.words.iter_mut() {
            w.word_is_final = false;
        }
        if let Some(last) = m.words.last_mut() {
            let trimmed = last.text.trim_end_matches(|c: char| !c.is_alphanumeric());
            last.text = format!("{trimmed}—");
        }
        m.transcript = m
            .words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        m
    }

    fn turn_message(
        &self,
        t: &ActiveTurn,
        formatted: bool,
        end_of_turn: bool,
        end_of_turn_confidence: f64,
        utterance: Option<String>,
    ) -> Turn {
        let texts = if formatted {
            &t.prep.formatted
        } else {
            &t.prep.plain
        };
        let duration = t.last_speech_end_ms - t.start_ms;
        let speaker = self.speaker_labels.then(|| {
            if duration < MIN_LABELLED_TURN_MS {
                "UNKNOWN".to_string()
            } else {
                t.prep.speaker.clone().unwrap_or_else(|| "A".to_string())
            }
        });
        let mut transcript = String::new();
        let words: Vec<Word> = t
            .words
            .iter()
            .zip(texts.iter())
            .enumerate()
            .map(|(i, (w, text))| {
                if w.is_final {
                    if !transcript.is_empty() {
                        transcript.push(' ');
                    }
                    transcript.push_str(text);
                }
                Word {
                    start: w.start,
                    end: w.end,
                    text: text.clone(),
                    confidence: word_confidence(i),
                    word_is_final: w.is_final,
                    speaker: speaker.clone(),
                }
            })
            .collect();
        let language = (self.language_detection && end_of_turn).then(|| {
            t.prep
                .language_code
                .clone()
                .unwrap_or_else(|| "en".to_string())
        });
        Turn {
            turn_order: self.next_turn_order - u64::from(end_of_turn),
            turn_is_formatted: formatted,
            end_of_turn,
            transcript,
            end_of_turn_confidence,
            words,
            utterance,
            language_confidence: language.as_ref().map(|_| 0.98),
            language_code: language,
            speaker_label: if end_of_turn { speaker } else { None },
            emulator_sent_at_ns: None,
        }
    }
}

/// A plausible, deterministic confidence per word.
fn word_confidence(i: usize) -> f64 {
    0.85 + ((i * 37) % 14) as f64 / 100.0
}

fn capitalize_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::Script;

    fn engine(query: &str, texts: &[&str]) -> Engine {
        let params = SessionParams::from_query(query).unwrap();
        let script: Arc<[Arc<PreparedTurn>]> = Script::from_texts(texts.iter().copied())
            .turns
            .iter()
            .map(|t| Arc::new(PreparedTurn::new(t)))
            .collect();
        Engine::new(&params, Formatting::InModel, script)
    }

    fn tone(ms: u32) -> Vec<u8> {
        (0..ms * 16)
            .flat_map(|i| ((((i as f64) * 0.17).sin() * 8000.0) as i16).to_le_bytes())
            .collect()
    }

    fn silence(ms: u32) -> Vec<u8> {
        vec![0; (ms * 32) as usize]
    }

    /// Feeds audio in 50 ms frames; returns (audio ms at the end of the frame, message) pairs.
    fn feed(e: &mut Engine, audio: &[u8]) -> Vec<(i64, ServerMessage)> {
        let mut all = Vec::new();
        for frame in audio.chunks(1600) {
            let mut out = Vec::new();
            e.push_audio(frame, &mut out);
            all.extend(out.into_iter().map(|m| (e.audio_ms(), m)));
        }
        all
    }

    fn finals(msgs: &[(i64, ServerMessage)]) -> Vec<(i64, &Turn)> {
        msgs.iter()
            .filter_map(|(at, m)| match m {
                ServerMessage::Turn(t) if t.end_of_turn => Some((*at, t)),
                _ => None,
            })
            .collect()
    }

    const US: &str = "speech_model=universal-streaming-english";

    #[test]
    fn a_confident_turn_ends_after_min_turn_silence() {
        let mut e = engine(US, &["One two."]);
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        let f = finals(&msgs);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1.transcript, "one two");
        // 1000 ms of speech, then min_turn_silence (400 ms), give or take a frame.
        assert!((1400..=1450).contains(&f[0].0), "ended at {}", f[0].0);
    }

    #[test]
    fn without_confidence_a_turn_waits_for_max_turn_silence() {
        let mut e = engine(
            &format!("{US}&end_of_turn_confidence_threshold=1"),
            &["One two."],
        );
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        let f = finals(&msgs);
        assert_eq!(f.len(), 1);
        assert!((2280..=2330).contains(&f[0].0), "ended at {}", f[0].0);
    }

    #[test]
    fn words_not_yet_spoken_keep_the_turn_open_until_max_silence() {
        // Far more words than 300 ms of speech can reveal: not confident.
        let mut e = engine(US, &["one two three four five six seven eight"]);
        let msgs = feed(&mut e, &[tone(300), silence(2000)].concat());
        let f = finals(&msgs);
        assert_eq!(f.len(), 1);
        assert!(f[0].0 >= 1580, "ended at {}", f[0].0);
        // The final still carries the whole script turn.
        assert_eq!(f[0].1.words.len(), 8);
        assert!(f[0].1.words.iter().all(|w| w.word_is_final));
    }

    #[test]
    fn the_utterance_arrives_at_the_first_pause() {
        let mut e = engine(
            &format!("{US}&end_of_turn_confidence_threshold=1"),
            &["One two."],
        );
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        let with_utterance: Vec<&Turn> = msgs
            .iter()
            .filter_map(|(_, m)| match m {
                ServerMessage::Turn(t) if t.utterance.as_deref().is_some_and(|u| !u.is_empty()) => {
                    Some(t)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            with_utterance.len(),
            2,
            "one partial at the pause, then the final"
        );
        assert!(!with_utterance[0].end_of_turn);
        assert_eq!(with_utterance[0].utterance.as_deref(), Some("One two."));
        assert_eq!(with_utterance[0].transcript, "one two");
        assert!(with_utterance[1].end_of_turn);
    }

    #[test]
    fn a_click_is_not_a_turn() {
        let mut e = engine(US, &["Never said."]);
        let msgs = feed(&mut e, &[tone(40), silence(10), silence(2000)].concat());
        assert!(finals(&msgs).is_empty());
        // The script turn was not used up.
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        assert_eq!(finals(&msgs)[0].1.transcript, "never said");
    }

    #[test]
    fn partials_come_once_per_frame_and_grow() {
        let mut e = engine(US, &["Alpha beta gamma delta."]);
        let msgs = feed(&mut e, &[tone(2000), silence(1000)].concat());
        let partials: Vec<&Turn> = msgs
            .iter()
            .filter_map(|(_, m)| match m {
                ServerMessage::Turn(t) if !t.end_of_turn => Some(t),
                _ => None,
            })
            .collect();
        // Frames from the first revealed word to the end of the turn.
        assert!(partials.len() > 30, "{}", partials.len());
        let mut last_final = 0;
        for p in &partials {
            let n = p.words.iter().filter(|w| w.word_is_final).count();
            assert!(n >= last_final);
            last_final = n;
        }
        assert_eq!(last_final, 4);
    }

    #[test]
    fn mulaw_audio_is_decoded_for_the_vad() {
        let mut e = engine(
            &format!("{US}&encoding=pcm_mulaw&sample_rate=8000"),
            &["Hi there."],
        );
        // μ-law 0x80/0x00 are the loudest codes; alternate them for a loud square wave.
        let loud: Vec<u8> = (0..8000)
            .map(|i| if i % 2 == 0 { 0x80 } else { 0x00 })
            .collect();
        let quiet = vec![0xFFu8; 16000];
        let mut all = Vec::new();
        for frame in [loud, quiet].concat().chunks(400) {
            let mut out = Vec::new();
            e.push_audio(frame, &mut out);
            all.extend(out.into_iter().map(|m| (e.audio_ms(), m)));
        }
        assert_eq!(finals(&all)[0].1.transcript, "hi there");
    }
}
