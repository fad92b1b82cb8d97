//! Helpers of the resilient-session tests (`tests/resilient_*.rs`): the bundled sample, a paced
//! feeder, and a collector that checks the stream's contract and the one-timeline guarantees.
#![allow(dead_code)]

use std::time::Duration;

use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSink};
use assemblyai_streaming::{AudioChunk, Error, TurnEvent};
use futures::{SinkExt, Stream, StreamExt};
use tokio::task::JoinHandle;

/// An emulator playing the bundled sample's script (see `support::emulator::bundled_sample`),
/// going on across sessions as a reconnect needs, with `faults`.
pub async fn sample_emulator(
    faults: assemblyai_streaming::emulator::Faults,
) -> assemblyai_streaming::emulator::EmulatorHandle {
    let (_, script) = super::emulator::bundled_sample();
    assemblyai_streaming::emulator::Emulator::builder()
        .script(script)
        .script_across_sessions(true)
        .faults(faults)
        .start()
        .await
        .unwrap()
}

/// Faults that drop the TCP connection of the first session only, `at` after it opened.
pub fn drop_first_session_after(at: Duration) -> assemblyai_streaming::emulator::Faults {
    assemblyai_streaming::emulator::Faults {
        drop_after: Some(at),
        faulty_sessions: Some(1),
        ..Default::default()
    }
}

/// Sends `chunks` at real time (each chunk, then its duration's sleep, at `bytes_per_ms`), then
/// closes the sink (Terminate). Returns how many chunks were accepted.
pub fn feed_paced(
    mut sink: ResilientSink,
    chunks: Vec<AudioChunk>,
    bytes_per_ms: usize,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut at = Duration::ZERO;
        let mut sent = 0;
        for chunk in chunks {
            at += Duration::from_millis((chunk.len() / bytes_per_ms) as u64);
            if sink.send(chunk).await.is_err() {
                return sent;
            }
            sent += 1;
            tokio::time::sleep_until(start + at).await;
        }
        let _ = sink.close().await;
        sent
    })
}

/// Everything a resilient stream yielded.
#[derive(Debug, Default)]
pub struct Collected {
    pub events: Vec<ResilientEvent>,
    pub error: Option<Error>,
}

impl Collected {
    pub fn finals(&self) -> Vec<&Turn> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ResilientEvent::Turn(TurnEvent::Final(t)) => Some(t),
                _ => None,
            })
            .collect()
    }

    pub fn transcripts(&self) -> Vec<String> {
        self.finals().iter().map(|t| t.transcript.clone()).collect()
    }

    pub fn reconnects(&self) -> Vec<(u32, Option<u16>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ResilientEvent::Reconnected { attempt, cause, .. } => {
                    Some((*attempt, cause.code()))
                }
                _ => None,
            })
            .collect()
    }

    /// How much audio each reconnect replayed, in order.
    pub fn replays(&self) -> Vec<Duration> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ResilientEvent::Reconnected { replayed, .. } => Some(*replayed),
                _ => None,
            })
            .collect()
    }

    pub fn rollovers(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, ResilientEvent::RolledOver { .. }))
            .count()
    }

    pub fn gaps(&self) -> Vec<(Duration, Duration)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ResilientEvent::AudioGap { start, duration } => Some((*start, *duration)),
                _ => None,
            })
            .collect()
    }

    pub fn terminated(&self) -> bool {
        matches!(
            self.events.last(),
            Some(ResilientEvent::Turn(TurnEvent::Termination(_)))
        )
    }

    /// The one-timeline guarantees: finals numbered 0, 1, 2, … with no gap or repeat, and word
    /// times that never go back, within and across finals.
    pub fn assert_one_timeline(&self) {
        let finals = self.finals();
        let orders: Vec<u64> = finals.iter().map(|t| t.turn_order).collect();
        let expected: Vec<u64> = (0..finals.len() as u64).collect();
        assert_eq!(orders, expected, "turn_order of the finals");
        // Word starts never go back; a turn starts after the previous turn's last word ended.
        // (Within a turn a word may start a window before the previous one ended: the
        // emulator's reveal does that.)
        let mut last_start = i64::MIN;
        let mut last_turn_end = i64::MIN;
        for t in &finals {
            if let Some(first) = t.words.first() {
                assert!(
                    first.start >= last_turn_end,
                    "turn {} starts at {} ms, before the previous turn ended ({last_turn_end} ms)",
                    t.turn_order,
                    first.start
                );
            }
            for w in &t.words {
                assert!(
                    w.start >= last_start && w.end >= w.start,
                    "word {:?} at {}–{} ms goes back (previous start {last_start} ms) in turn {}",
                    w.text,
                    w.start,
                    w.end,
                    t.turn_order
                );
                last_start = w.start;
            }
            if let Some(end) = t.words.iter().map(|w| w.end).max() {
                last_turn_end = end;
            }
        }
        // Partials never carry a turn already final.
        let mut finalised = None;
        for e in &self.events {
            if let ResilientEvent::Turn(TurnEvent::Partial(t)) = e {
                assert!(
                    finalised.is_none_or(|f| t.turn_order > f),
                    "stale partial {t:?}"
                );
            }
            if let ResilientEvent::Turn(TurnEvent::Final(t)) = e {
                finalised = Some(t.turn_order);
            }
        }
    }
}

/// Reads `stream` to its end (bounded by `limit`) with the checks of
/// `support::faults::read_to_end`; decode errors are left out.
pub async fn collect<S>(stream: S, limit: Duration) -> Collected
where
    S: Stream<Item = assemblyai_streaming::Result<ResilientEvent>> + Unpin,
{
    let (events, _decode_errors, error) = super::faults::read_to_end(stream, limit, |e| {
        matches!(e, ResilientEvent::Turn(TurnEvent::Termination(_)))
    })
    .await;
    Collected { events, error }
}

/// `ms` of 16-bit audio at `rate` Hz: a 300 Hz tone (about −12 dBFS, speech to the emulator's
/// VAD) when `tone`, else digital silence.
pub fn pcm(rate: u32, ms: u64, tone: bool) -> Vec<u8> {
    let n = rate as u64 * ms / 1000;
    (0..n)
        .flat_map(|i| {
            let s = if tone {
                let t = i as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
            } else {
                0
            };
            s.to_le_bytes()
        })
        .collect()
}

/// Streams `seconds` of 8 kHz audio at real time, one 1 s chunk per second: an 800 ms
/// utterance at the start of every `every`-th second (from second 1), silence otherwise. Then
/// closes the sink. Returns how many utterances were sent.
pub fn feed_utterances(sink: ResilientSink, seconds: u64, every: u64) -> JoinHandle<u64> {
    feed_seconds(sink, seconds, move |s| if s % every == 1 { 800 } else { 0 })
}

/// Streams `seconds` of 8 kHz audio at real time, one 1 s chunk per second, second `s`
/// starting with `tone_ms(s)` of tone and silent after it. Then closes the sink. Returns how
/// many seconds started with a tone after silence (utterances).
pub fn feed_seconds(
    mut sink: ResilientSink,
    seconds: u64,
    tone_ms: impl Fn(u64) -> u64 + Send + 'static,
) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut utterances = 0;
        let mut speaking = false;
        for s in 0..seconds {
            let ms = tone_ms(s).min(1000);
            if ms > 0 && !speaking {
                utterances += 1;
            }
            speaking = ms == 1000;
            let chunk = [pcm(8_000, ms, true), pcm(8_000, 1000 - ms, false)].concat();
            if sink.send(AudioChunk::from_bytes(chunk)).await.is_err() {
                return utterances;
            }
            tokio::time::sleep_until(start + Duration::from_secs(s + 1)).await;
        }
        let _ = sink.close().await;
        utterances
    })
}

/// A resilient session on the scripted server at `url` (see `support::server`), with the
/// library's defaults but a 10 ms reconnect backoff, so the tests of reconnects run quickly.
pub async fn resilient_session_on(url: &str) -> assemblyai_streaming::resilient::ResilientSession {
    let client = assemblyai_streaming::StreamingClient::builder()
        .api_key(super::server::KEY)
        .base_url(url);
    assemblyai_streaming::resilient::ResilientSession::builder(
        client,
        assemblyai_streaming::ConnectionParams::new(),
    )
    .backoff(Duration::from_millis(10), Duration::from_millis(10))
    .connect()
    .await
    .unwrap()
}
