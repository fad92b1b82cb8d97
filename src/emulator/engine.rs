//! The "speech model" of the emulator: turn detection on the real audio and the Turn messages it
//! produces.
//!
//! - The audio clock advances with every sample received; all turn timing is in audio time.
//! - The script is one stream of sentences (script turns); a cursor marks the next word not yet
//!   heard. A turn starts at the first speech window and takes words from the cursor as speech
//!   time passes: a word appears (`word_is_final:false`) when its estimated start is reached and
//!   becomes final when its estimated end is reached (explicit script timings replace the
//!   estimates). Without a script, or past its end, words are placeholders `[word1]`, `[word2]`….
//! - A sentence's words run into the next sentence only after a pause, or after unbroken speech
//!   well past the sentence's estimated end (its estimated length again, at least 600 ms). At a pause (100 ms of
//!   silence, or `min_turn_silence` if shorter) the word in progress is final, and a sentence
//!   whose speech covered at least half its estimated time is complete: its remaining words were
//!   heard (estimates run long or short against real speech).
//! - The turn ends after `min_turn_silence` of silence when the model is "confident" (the last
//!   word heard ends a sentence — U3: with terminal punctuation — every word is final, and the
//!   confidence beats `end_of_turn_confidence_threshold`), or after `max_turn_silence` in any
//!   case; at least 80 ms of speech is needed (spec §3).
//! - A turn holds exactly what was heard: one ended early (`ForceEndpoint`, `max_turn_silence`,
//!   `Terminate`) leaves the rest of its sentence to the next turn, and turns that merge (a pause
//!   shorter than the silence needed) hold every word of every sentence they span.
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
    TurnRevision, UpdateConfiguration, Word,
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

/// A sentence whose speech has covered at least this share of its estimated speech time, %, can
/// be complete at the next pause (estimated word timings run long or short against real speech).
const SENTENCE_DONE_PERCENT: u32 = 50;
/// Silence that counts as a pause between sentences, ms (never more than `min_turn_silence`).
const SENTENCE_PAUSE_MS: u32 = 100;
/// Least speech without a pause after a sentence's estimated end before the next sentence
/// starts anyway (a speaker who runs sentences together), ms.
const RUN_ON_MS: u32 = 600;
/// Most speaker revisions kept for the closing `SpeakerRevision` (a bound on memory).
const MAX_REVISIONS: usize = 1000;

#[derive(Debug, Clone)]
struct WordState {
    formatted: String,
    plain: String,
    /// Script sentence the word comes from; `None` for a placeholder.
    sentence: Option<usize>,
    /// Position of the word in its sentence.
    index: usize,
    /// Whether it is the last word of its sentence.
    ends_sentence: bool,
    /// Explicit script timings: revealed and finalized by the audio clock.
    timed: bool,
    start: i64,
    end: i64,
    is_final: bool,
    /// Speech time of the turn at which the word becomes final (estimated timings).
    final_at: u32,
}

#[derive(Debug)]
struct ActiveTurn {
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
    /// The current pause has been handled (sentence completion).
    pause_handled: bool,
    /// Placeholder words made in this turn.
    placeholders: usize,
}

/// Where the next unheard script word is. It moves only as words are heard, so a turn that ends
/// early (`ForceEndpoint`, `max_turn_silence`) leaves the rest of its sentence for the next
/// turn, and turns that merge take every word of every sentence they span.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    sentence: usize,
    word: usize,
    /// Speech time spent in this sentence, ms.
    spoken_ms: u32,
    /// The previous sentence is fully out; the next one starts after a pause.
    wait_for_pause: bool,
    /// Turn speech time at which a speaker who runs on without that pause starts the next
    /// sentence anyway: the sentence's estimated end plus its estimated length (at least
    /// [`RUN_ON_MS`]).
    run_on_at: u32,
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
    cursor: Cursor,
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
    /// Speaker labels to correct in the closing `SpeakerRevision`.
    revisions: Vec<TurnRevision>,
}

impl Engine {
    /// The script sentence the speaker is at (after a final: the first one not wholly
    /// finalised; a sentence a forced end cut in two counts as not finalised, so a session
    /// that continues the conversation says it again whole).
    pub(crate) fn next_script(&self) -> usize {
        self.cursor.sentence
    }

    /// Continues at the start of script sentence `index` when it is ahead and no turn is in
    /// progress (a conversation that other sessions carried on meanwhile).
    pub(crate) fn continue_script_at(&mut self, index: usize) {
        if self.turn.is_none() && index > self.cursor.sentence {
            self.cursor = Cursor {
                sentence: index,
                ..Cursor::default()
            };
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
            cursor: Cursor::default(),
            next_turn_order: 0,
            sample_rate: params.sample_rate,
            mulaw: params.encoding == Encoding::PcmMulaw,
            carry: None,
            vad: Vad::new(params.sample_rate, params.vad_threshold),
            samples: 0,
            turn: None,
            silence_from_ms: 0,
            max_probability: 0.0,
            revisions: Vec::new(),
        }
    }

    /// Audio received so far, ms.
    pub(crate) fn audio_ms(&self) -> i64 {
        (self.samples * 1000 / u64::from(self.sample_rate)) as i64
    }

    /// Applies an `UpdateConfiguration` (already validated against the query bounds).
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
                            m.language_code = Some(self.language_of(t));
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
            self.turn = Some(ActiveTurn {
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
                pause_handled: false,
                placeholders: 0,
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
        t.pause_handled = false;
        t.last_speech_end_ms = now;
        if self.cursor.wait_for_pause && t.speech_ms >= self.cursor.run_on_at {
            self.cursor.wait_for_pause = false;
            t.next_word_at = t.speech_ms;
        }
        self.reveal(now);
        if self.cursor.word > 0 && !self.cursor.wait_for_pause {
            self.cursor.spoken_ms += WINDOW_MS;
        }
        let Some(t) = self.turn.as_ref() else { return };
        if self.u3 && !t.early_partial_sent && t.continuous_speech_ms >= U3_EARLY_PARTIAL_MS {
            if !t.words.is_empty() {
                out.push(ServerMessage::Turn(self.u3_partial(t)));
            }
            if let Some(t) = self.turn.as_mut() {
                t.early_partial_sent = true;
            }
        }
    }

    /// Reveals the next words as the turn's speech time (or, with explicit timings, the audio
    /// clock) advances, and finalizes the ones whose time has passed.
    fn reveal(&mut self, now: i64) {
        let Some(t) = self.turn.as_mut() else { return };
        while !self.cursor.wait_for_pause {
            let Some(p) = self.script.get(self.cursor.sentence) else {
                // Past the script: placeholder words while speech goes on.
                if t.speech_ms <= t.next_word_at {
                    break;
                }
                t.placeholders += 1;
                let text = format!("[word{}]", t.placeholders);
                t.words.push(WordState {
                    formatted: text.clone(),
                    plain: text,
                    sentence: None,
                    index: t.placeholders - 1,
                    ends_sentence: false,
                    timed: false,
                    start: now - i64::from(WINDOW_MS),
                    end: now,
                    is_final: false,
                    final_at: t.next_word_at + PLACEHOLDER_WORD_MS,
                });
                t.next_word_at += PLACEHOLDER_WORD_MS;
                continue;
            };
            let i = self.cursor.word;
            if i >= p.len() {
                // An empty sentence: nothing to hear.
                self.cursor = Cursor {
                    sentence: self.cursor.sentence + 1,
                    ..Cursor::default()
                };
                continue;
            }
            let (start, end, final_at, timed) = match &p.timings {
                Some(timings) => {
                    let (start, end) = timings[i];
                    if start > now {
                        break;
                    }
                    (start, end, 0, true)
                }
                None => {
                    if t.speech_ms <= t.next_word_at {
                        break;
                    }
                    let d = p.durations.get(i).copied().unwrap_or(PLACEHOLDER_WORD_MS);
                    t.next_word_at += d;
                    (now - i64::from(WINDOW_MS), now, t.next_word_at, false)
                }
            };
            let ends_sentence = i + 1 == p.len();
            t.words.push(WordState {
                formatted: p.formatted[i].clone(),
                plain: p.plain[i].clone(),
                sentence: Some(self.cursor.sentence),
                index: i,
                ends_sentence,
                timed,
                start,
                end,
                is_final: false,
                final_at,
            });
            if ends_sentence {
                let estimated: u32 = p.durations.iter().sum();
                self.cursor = Cursor {
                    sentence: self.cursor.sentence + 1,
                    wait_for_pause: true,
                    run_on_at: t.next_word_at.max(t.speech_ms) + estimated.max(RUN_ON_MS),
                    ..Cursor::default()
                };
            } else {
                self.cursor.word += 1;
            }
        }
        for w in t.words.iter_mut().filter(|w| !w.is_final) {
            if w.timed {
                w.is_final = w.end <= now;
            } else {
                w.end = now;
                w.is_final = t.speech_ms >= w.final_at;
            }
        }
    }

    /// A pause in speech: the word in progress ends with the speech, and a sentence whose speech
    /// has (nearly) run its estimated course is complete — its remaining words were heard.
    fn on_pause(&mut self) {
        let Some(t) = self.turn.as_mut() else { return };
        t.pause_handled = true;
        let c = self.cursor;
        if let Some(p) = self.script.get(c.sentence) {
            if p.timings.is_none() && !c.wait_for_pause && c.word > 0 {
                if let Some(k) = pause_boundary(p, c.word, c.spoken_ms) {
                    // Squeeze the words up to the boundary in before the end of the speech.
                    let last_end = t.words.last().map_or(t.start_ms, |w| w.end);
                    let speech_end = t.last_speech_end_ms.max(last_end);
                    let missing = (k - c.word).max(1) as i64;
                    let step = ((speech_end - last_end) / missing).max(0);
                    for (n, i) in (c.word..k).enumerate() {
                        let at = last_end + step * n as i64;
                        t.words.push(WordState {
                            formatted: p.formatted[i].clone(),
                            plain: p.plain[i].clone(),
                            sentence: Some(c.sentence),
                            index: i,
                            ends_sentence: i + 1 == p.len(),
                            timed: false,
                            start: at,
                            end: at + step,
                            is_final: true,
                            final_at: 0,
                        });
                    }
                    self.cursor = if k == p.len() {
                        Cursor {
                            sentence: c.sentence + 1,
                            ..Cursor::default()
                        }
                    } else {
                        Cursor { word: k, ..c }
                    };
                }
            }
        }
        for w in t.words.iter_mut().filter(|w| !w.timed) {
            w.is_final = true;
        }
        // The next sentence starts with the next speech.
        self.cursor.wait_for_pause = false;
        t.next_word_at = t.speech_ms;
    }

    fn on_silence(&mut self, out: &mut Vec<ServerMessage>) {
        let now = self.audio_ms();
        let Some(t) = self.turn.as_mut() else {
            self.cursor.wait_for_pause = false;
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
        let pause_ms = SENTENCE_PAUSE_MS.min(self.min_silence_ms).max(WINDOW_MS);
        if !t.pause_handled && t.silence_ms >= pause_ms {
            self.on_pause();
        }
        // Explicit timings keep running on the audio clock through silence.
        self.reveal(now);
        let Some(t) = self.turn.as_ref() else { return };
        let confident = self.is_confident(t);
        let eot_conf = self.eot_confidence(t);
        let semantic =
            confident && eot_conf > self.eot_threshold && t.silence_ms >= self.min_silence_ms;
        let acoustic = t.silence_ms >= self.max_silence_ms;
        if t.speech_ms >= MIN_TURN_SPEECH_MS && !t.words.is_empty() && (semantic || acoustic) {
            self.end_turn(out);
        } else if acoustic && t.words.is_empty() {
            // A blip too short to be a turn: forget it (it used up no word).
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

    /// The model is sure the turn is over: every word heard is final and the last one ends a
    /// script sentence (Universal-3: with terminal punctuation). Placeholder speech is complete
    /// at any pause.
    fn is_confident(&self, t: &ActiveTurn) -> bool {
        let Some(last) = t.words.last() else {
            return false;
        };
        if !t.words.iter().all(|w| w.is_final) {
            return false;
        }
        match last.sentence {
            None => true,
            Some(_) => {
                last.ends_sentence && (!self.u3 || last.formatted.ends_with(['.', '?', '!']))
            }
        }
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

    /// Ends the current turn now (`ForceEndpoint`) with what was heard so far; the rest of the
    /// sentence comes in the next turn. A turn with no word yet is dropped.
    pub(crate) fn force_endpoint(&mut self, out: &mut Vec<ServerMessage>) {
        match &self.turn {
            Some(t) if !t.words.is_empty() => self.end_turn(out),
            Some(_) => self.turn = None,
            None => {}
        }
    }

    /// Ends the session's audio (`Terminate`): the turn in progress becomes final with what was
    /// heard, unless no word was heard yet.
    pub(crate) fn flush(&mut self, out: &mut Vec<ServerMessage>) {
        self.force_endpoint(out);
    }

    /// What the session sends between its last turn and `Termination`: with diarization on, a
    /// `SpeakerRevision` correcting the labels of turns that were labelled `UNKNOWN` (too short)
    /// or that span sentences of several script speakers (unchanged turns are omitted).
    pub(crate) fn closing_messages(&mut self, out: &mut Vec<ServerMessage>) {
        if self.speaker_labels {
            out.push(ServerMessage::SpeakerRevision(SpeakerRevision {
                revisions: std::mem::take(&mut self.revisions),
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

    fn sentence(&self, i: Option<usize>) -> Option<&PreparedTurn> {
        i.and_then(|i| self.script.get(i)).map(|p| &**p)
    }

    /// The script speaker of a word (`"A"` when the script names none).
    fn true_speaker(&self, w: &WordState) -> String {
        self.sentence(w.sentence)
            .and_then(|p| p.speaker.clone())
            .unwrap_or_else(|| "A".to_string())
    }

    fn language_of(&self, t: &ActiveTurn) -> String {
        t.words
            .first()
            .and_then(|w| self.sentence(w.sentence))
            .and_then(|p| p.language_code.clone())
            .unwrap_or_else(|| "en".to_string())
    }

    /// The live speaker label of a turn: `UNKNOWN` under 1 s of audio, else the speaker of its
    /// first sentence.
    fn live_speaker(&self, t: &ActiveTurn) -> String {
        if t.last_speech_end_ms - t.start_ms < MIN_LABELLED_TURN_MS {
            "UNKNOWN".to_string()
        } else {
            t.words
                .first()
                .map_or_else(|| "A".to_string(), |w| self.true_speaker(w))
        }
    }

    fn end_turn(&mut self, out: &mut Vec<ServerMessage>) {
        let Some(mut t) = self.turn.take() else {
            return;
        };
        let now = self.audio_ms();
        for w in t.words.iter_mut() {
            w.is_final = true;
        }
        // A new turn starts with new speech, never in the middle of this pause's bookkeeping.
        self.cursor.wait_for_pause = false;
        self.cursor.spoken_ms = if self.cursor.word > 0 {
            self.cursor.spoken_ms
        } else {
            0
        };
        let order = self.next_turn_order;
        self.next_turn_order += 1;
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
            // The utterance is sent once: on the partial at the pause if there was one (the
            // end-of-turn Turn then has `""`, fixtures lines 16–17 and 33–34), else here.
            let utterance = if t.utterance_sent {
                String::new()
            } else {
                self.utterance_text(&t)
            };
            match self.formatting {
                Formatting::Legacy => {
                    let m = self.turn_message(&t, false, true, conf, Some(utterance));
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
                    let m = self.turn_message(&t, self.format_turns, true, conf, Some(utterance));
                    out.push(ServerMessage::Turn(m.clone()));
                    m
                }
            }
        };
        debug_assert_eq!(final_turn.turn_order, order);
        if self.speaker_labels && self.revisions.len() < MAX_REVISIONS {
            self.record_revision(&t, &final_turn);
        }
        if let Some(gw) = &self.gateway {
            let content = self.gateway_content(gw, &t, &final_turn.transcript);
            let input_words = t.words.len();
            out.push(ServerMessage::LlmGatewayResponse(LlmGatewayResponse {
                turn_order: order,
                transcript: final_turn.transcript.clone(),
                data: gw.completion(&content, input_words),
            }));
        }
    }

    /// Remembers the true speakers of a final turn whose live labels were wrong.
    fn record_revision(&mut self, t: &ActiveTurn, sent: &Turn) {
        let Some(first) = t.words.first() else { return };
        let label = self.true_speaker(first);
        let words: Vec<Word> = sent
            .words
            .iter()
            .zip(&t.words)
            .map(|(w, state)| Word {
                speaker: Some(self.true_speaker(state)),
                ..w.clone()
            })
            .collect();
        let changed = sent.speaker_label.as_deref() != Some(label.as_str())
            || words
                .iter()
                .zip(&sent.words)
                .any(|(a, b)| a.speaker != b.speaker);
        if changed {
            self.revisions.push(TurnRevision {
                turn_order: sent.turn_order,
                speaker_label: Some(label),
                words,
            });
        }
    }

    /// The `LLMGatewayResponse` text: the script's translation when the turn holds whole
    /// sentences that all have one, else the transcript marked as untranslated.
    fn gateway_content(&self, gw: &GatewayRequest, t: &ActiveTurn, transcript: &str) -> String {
        let whole = t.words.first().is_some_and(|w| w.index == 0)
            && t.words.last().is_some_and(|w| w.ends_sentence);
        let mut sentences: Vec<usize> = t.words.iter().filter_map(|w| w.sentence).collect();
        sentences.dedup();
        let source = self.language_of(t);
        if whole && sentences.len() == t.words.iter().filter(|w| w.index == 0).count() {
            let parts: Option<Vec<String>> = sentences
                .iter()
                .map(|&i| self.script.get(i).and_then(|p| gw.translation(p)))
                .collect();
            if let Some(parts) = parts.filter(|p| !p.is_empty()) {
                return parts.join(" ");
            }
        }
        gw.marked(&source, transcript)
    }

    /// The utterance text: formatted with in-model formatting (even when the transcript is not,
    /// as in the service's multilingual example), else the unformatted words with a capital first
    /// letter (as the older service sent it).
    fn utterance_text(&self, t: &ActiveTurn) -> String {
        if self.formatting == Formatting::InModel {
            join(t.words.iter().map(|w| w.formatted.as_str()))
        } else {
            capitalize_first(&join(t.words.iter().map(|w| w.plain.as_str())))
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
        m.transcript = join(m.words.iter().map(|w| w.text.as_str()));
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
        let speaker = self.speaker_labels.then(|| self.live_speaker(t));
        let mut transcript = String::new();
        let words: Vec<Word> = t
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let text = if formatted { &w.formatted } else { &w.plain };
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
        let language = (self.language_detection && end_of_turn).then(|| self.language_of(t));
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

/// Where a pause puts a speaker who has spoken `spoken_ms` of sentence `p` and has been heard
/// up to word `heard`: speakers pause at punctuation, so the pause is at the clause end (`,` `;`
/// `:`) or sentence end whose estimated time is nearest — a clause end only within a third of its
/// estimate (at least 300 ms), the sentence end only once half its estimated time is spoken.
/// `None`: no boundary fits; the words heard stay as they are. Returns the word count heard.
fn pause_boundary(p: &PreparedTurn, heard: usize, spoken_ms: u32) -> Option<usize> {
    let total: u32 = p.durations.iter().sum();
    let mut at = 0u32;
    let mut best: Option<(u32, usize)> = None;
    for (i, word) in p.formatted.iter().enumerate() {
        at += p.durations.get(i).copied().unwrap_or(PLACEHOLDER_WORD_MS);
        let k = i + 1;
        if k < heard {
            continue;
        }
        let eligible = if k == p.len() {
            spoken_ms * 100 >= total * SENTENCE_DONE_PERCENT
        } else {
            word.ends_with([',', ';', ':']) && spoken_ms.abs_diff(at) <= (at / 3).max(300)
        };
        let distance = spoken_ms.abs_diff(at);
        if eligible && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, k));
        }
    }
    best.map(|(_, k)| k)
}

fn join<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for w in words {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(w);
    }
    s
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
    fn a_turn_cut_short_by_max_turn_silence_leaves_the_rest_of_its_sentence_to_the_next() {
        // Far fewer words than the sentence holds fit in 300 ms of speech: not complete, so the
        // turn ends at max_turn_silence with what was heard, and the next speech goes on with
        // the rest of the sentence.
        let mut e = engine(US, &["one two three four five six seven eight"]);
        let msgs = feed(
            &mut e,
            &[tone(300), silence(2000), tone(3000), silence(2000)].concat(),
        );
        let f = finals(&msgs);
        assert_eq!(f.len(), 2);
        assert!((1580..=1650).contains(&f[0].0), "ended at {}", f[0].0);
        assert_eq!(f[0].1.transcript, "one two");
        assert!(f[0].1.words.iter().all(|w| w.word_is_final));
        assert_eq!(f[1].1.transcript, "three four five six seven eight");
    }

    /// The Turns that carry a non-empty `utterance`.
    fn with_utterance(msgs: &[(i64, ServerMessage)]) -> Vec<&Turn> {
        msgs.iter()
            .filter_map(|(_, m)| match m {
                ServerMessage::Turn(t) if t.utterance.as_deref().is_some_and(|u| !u.is_empty()) => {
                    Some(t)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_utterance_arrives_at_the_first_pause() {
        let mut e = engine(
            &format!("{US}&end_of_turn_confidence_threshold=1"),
            &["One two."],
        );
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        let with_utterance = with_utterance(&msgs);
        assert_eq!(with_utterance.len(), 1, "only the partial at the pause");
        assert!(!with_utterance[0].end_of_turn);
        assert_eq!(with_utterance[0].utterance.as_deref(), Some("One two."));
        assert_eq!(with_utterance[0].transcript, "one two");
        // The end-of-turn Turn after it has `utterance: ""` (fixtures lines 16-17, 33-34).
        let f = finals(&msgs);
        assert_eq!(f[0].1.utterance.as_deref(), Some(""));
    }

    #[test]
    fn the_final_carries_the_utterance_when_no_partial_did() {
        // min_turn_silence (100 ms) ends the turn before the 160 ms utterance pause.
        let mut e = engine(&format!("{US}&min_turn_silence=100"), &["One two."]);
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        let carried = with_utterance(&msgs);
        assert_eq!(carried.len(), 1);
        assert!(carried[0].end_of_turn);
        assert_eq!(carried[0].utterance.as_deref(), Some("One two."));
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

    /// The bundled spoken sample (three sentences, 1.5 s pauses) as 16 kHz s16le bytes.
    fn bundled_sample() -> Vec<u8> {
        let wav = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/assets/sample.wav"
        ))
        .unwrap();
        let at = wav.windows(4).position(|w| w == b"data").unwrap();
        wav[at + 8..].to_vec()
    }

    const SAMPLE: [&str; 3] = [
        "Hello, and welcome to the live translation demo.",
        "Today we are testing real-time speech recognition.",
        "Thank you for listening, and have a great day.",
    ];

    fn plain(text: &str) -> String {
        text.split_whitespace()
            .map(crate::emulator::script::unformat)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Audio time at which each speech segment of the bundled sample ends (VAD on the engine's
    /// own windows), ms.
    fn speech_ends(audio: &[u8]) -> Vec<i64> {
        let mut vad = Vad::new(16_000, 0.4);
        let (mut ends, mut speaking, mut silent_ms, mut last_speech) = (Vec::new(), false, 0, 0);
        for (i, s) in audio.chunks_exact(2).enumerate() {
            if let Some(w) = vad.push(i16::from_le_bytes([s[0], s[1]])) {
                let now = ((i + 1) / 16) as i64;
                if w.speech {
                    speaking = true;
                    silent_ms = 0;
                    last_speech = now;
                } else if speaking {
                    silent_ms += WINDOW_MS;
                    if silent_ms >= 1000 {
                        ends.push(last_speech);
                        speaking = false;
                    }
                }
            }
        }
        if speaking {
            ends.push(last_speech);
        }
        ends
    }

    #[test]
    fn min_turn_silence_sets_when_a_complete_sentence_ends() {
        let audio = bundled_sample();
        let ends = speech_ends(&audio);
        assert_eq!(ends.len(), 3, "{ends:?}");
        for min in [160u32, 400, 800] {
            let mut e = engine(&format!("{US}&min_turn_silence={min}"), &SAMPLE);
            let msgs = feed(&mut e, &audio);
            let f = finals(&msgs);
            assert_eq!(f.len(), 3, "min_turn_silence={min}");
            for (i, (at, turn)) in f.iter().enumerate() {
                assert_eq!(turn.transcript, plain(SAMPLE[i]));
                let waited = at - ends[i];
                // min_turn_silence after the speech, within a 50 ms frame and a VAD window,
                // and never as late as max_turn_silence (1280 ms).
                assert!(
                    (i64::from(min)..=i64::from(min) + 80).contains(&waited),
                    "min_turn_silence={min}, turn {i}: final {waited} ms after the speech"
                );
            }
        }
    }

    #[test]
    fn the_last_partial_before_a_final_has_every_word() {
        let mut e = engine(US, &SAMPLE);
        let msgs = feed(&mut e, &bundled_sample());
        let mut last_partial: Option<&Turn> = None;
        let mut checked = 0;
        for (_, m) in &msgs {
            let ServerMessage::Turn(t) = m else { continue };
            if t.end_of_turn {
                let p = last_partial.take().unwrap();
                assert_eq!(p.words.len(), t.words.len(), "{:?}", p.transcript);
                assert_eq!(p.transcript, t.transcript);
                checked += 1;
            } else {
                last_partial = Some(t);
            }
        }
        assert_eq!(checked, 3);
    }

    #[test]
    fn merged_turns_lose_no_scripted_word() {
        let audio = bundled_sample();
        let all = plain(&SAMPLE.join(" "));
        // max_turn_silence longer than the 1.5 s pauses, the sentences complete: turns still end
        // at min_turn_silence.
        let mut e = engine(&format!("{US}&max_turn_silence=3000"), &SAMPLE);
        let msgs = feed(&mut e, &audio);
        assert_eq!(finals(&msgs).len(), 3);
        // Both longer than the pauses: one turn holding all three sentences.
        for query in [
            format!("{US}&min_turn_silence=2000&max_turn_silence=3000"),
            format!("{US}&end_of_turn_confidence_threshold=1&max_turn_silence=2000"),
        ] {
            let mut e = engine(&query, &SAMPLE);
            let mut msgs = feed(&mut e, &audio);
            let mut out = Vec::new();
            e.flush(&mut out);
            msgs.extend(out.into_iter().map(|m| (0, m)));
            let f = finals(&msgs);
            let text: Vec<&str> = f.iter().map(|(_, t)| t.transcript.as_str()).collect();
            assert_eq!(text.join(" "), all, "{query}");
            assert_eq!(f.len(), 1, "{query}");
        }
    }

    #[test]
    fn force_endpoint_keeps_what_was_heard_and_the_script_aligned() {
        let audio = bundled_sample();
        let mut e = engine(US, &SAMPLE);
        // 0.3 s of leading silence, then 1.5 s into the first sentence.
        let (head, tail) = audio.split_at(1800 * 32);
        let mut msgs = feed(&mut e, head);
        let mut out = Vec::new();
        e.force_endpoint(&mut out);
        msgs.extend(out.into_iter().map(|m| (0, m)));
        msgs.extend(feed(&mut e, tail));
        let f = finals(&msgs);
        let texts: Vec<&str> = f.iter().map(|(_, t)| t.transcript.as_str()).collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        let first = plain(SAMPLE[0]);
        assert!(
            first.starts_with(texts[0]) && texts[0].len() < first.len(),
            "{texts:?}"
        );
        assert_eq!(format!("{} {}", texts[0], texts[1]), first);
        assert_eq!(texts[2], plain(SAMPLE[1]));
        assert_eq!(texts[3], plain(SAMPLE[2]));
    }

    #[test]
    fn a_speaker_who_never_pauses_still_moves_on_to_the_next_sentence() {
        // 6 s of unbroken speech over two short sentences: the second starts RUN_ON_MS after
        // the first is out, then placeholders follow the script's end.
        let mut e = engine(US, &["One two.", "Three four."]);
        let msgs = feed(&mut e, &[tone(6000), silence(2000)].concat());
        let f = finals(&msgs);
        assert_eq!(f.len(), 1);
        let words: Vec<&str> = f[0].1.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(&words[..4], ["one", "two", "three", "four"]);
        assert!(
            words[4..].iter().all(|w| w.starts_with("[word")),
            "{words:?}"
        );
    }

    #[test]
    fn u3_ends_on_terminal_punctuation_else_waits_for_max_turn_silence() {
        let u3 = "speech_model=u3-rt-pro";
        let mut e = engine(u3, &["One two."]);
        let f = finals(&feed(&mut e, &[tone(1000), silence(2000)].concat()))
            .into_iter()
            .map(|(at, t)| (at, t.clone()))
            .collect::<Vec<_>>();
        assert!((1100..=1150).contains(&f[0].0), "ended at {}", f[0].0);
        assert_eq!(f[0].1.end_of_turn_confidence, 1.0);
        let mut e = engine(u3, &["One two"]);
        let msgs = feed(&mut e, &[tone(1000), silence(2000)].concat());
        let f = finals(&msgs);
        assert!((2000..=2050).contains(&f[0].0), "ended at {}", f[0].0);
        assert_eq!(f[0].1.end_of_turn_confidence, 0.0);
    }

    #[test]
    fn speaker_revision_corrects_short_and_mixed_turns() {
        let params = SessionParams::from_query(&format!("{US}&speaker_labels=true")).unwrap();
        let mut script = Script::from_texts(["Hi.", "Good morning to you all.", "Thanks."]);
        script.turns[0].speaker = Some("B".into());
        script.turns[1].speaker = Some("A".into());
        script.turns[2].speaker = Some("B".into());
        let script: Arc<[Arc<PreparedTurn>]> = script
            .turns
            .iter()
            .map(|t| Arc::new(PreparedTurn::new(t)))
            .collect();
        let mut e = Engine::new(&params, Formatting::InModel, script);
        // A short "Hi." (UNKNOWN live), then a long sentence and "Thanks." after a pause shorter
        // than min_turn_silence: one turn spanning speakers A and B.
        let audio = [
            tone(300),
            silence(1500),
            tone(2000),
            silence(200),
            tone(600),
            silence(1500),
        ]
        .concat();
        let msgs = feed(&mut e, &audio);
        let f = finals(&msgs);
        assert_eq!(f[0].1.speaker_label.as_deref(), Some("UNKNOWN"));
        assert_eq!(f[1].1.speaker_label.as_deref(), Some("A"));
        let mut out = Vec::new();
        e.closing_messages(&mut out);
        let [ServerMessage::SpeakerRevision(r)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(r.revisions.len(), 2, "{r:?}");
        assert_eq!(r.revisions[0].turn_order, 0);
        assert_eq!(r.revisions[0].speaker_label.as_deref(), Some("B"));
        assert!(
            r.revisions[0]
                .words
                .iter()
                .all(|w| w.speaker.as_deref() == Some("B"))
        );
        assert_eq!(r.revisions[1].turn_order, 1);
        assert_eq!(r.revisions[1].speaker_label.as_deref(), Some("A"));
        let speakers: Vec<&str> = r.revisions[1]
            .words
            .iter()
            .map(|w| w.speaker.as_deref().unwrap())
            .collect();
        assert_eq!(speakers, ["A", "A", "A", "A", "A", "B"]);
    }
}
