//! One timeline across connections (pure: no I/O, no clock).
//!
//! Every connection counts its audio from 0 and its turns from 0. The resilient session counts
//! the caller's audio from the first sample it was given (the *stream clock*, in samples) and
//! its turns from the first final. [`ConnClock`] maps a connection's audio position to the
//! stream clock — piecewise, because a replay starts somewhere in the past and silence skipped
//! to catch up leaves holes — and [`Timeline`] rewrites turns onto the stream: `turn_order`
//! continues, word `start`/`end` become stream milliseconds, and a final is delivered at most
//! once.

use std::collections::VecDeque;

use crate::protocol::Turn;

/// Most mapping pieces kept: each silence skip adds one and each final prunes those before it,
/// so this only binds a stream whose turns never end.
const MAX_SEGMENTS: usize = 4096;

/// A run of audio sent on one connection: `len` samples that start at `conn` on the
/// connection's clock and at `stream` on the stream clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    conn: u64,
    stream: u64,
    len: u64,
}

/// Maps one connection's audio clock (samples sent on it) to the stream clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnClock {
    segments: VecDeque<Segment>,
    sent: u64,
}

impl ConnClock {
    /// Records `len` samples sent on the connection, taken from the stream at `stream_at`.
    pub(crate) fn record(&mut self, stream_at: u64, len: u64) {
        match self.segments.back_mut() {
            Some(last) if last.stream + last.len == stream_at => last.len += len,
            _ => {
                self.segments.push_back(Segment {
                    conn: self.sent,
                    stream: stream_at,
                    len,
                });
                if self.segments.len() > MAX_SEGMENTS {
                    self.segments.pop_front();
                }
            }
        }
        self.sent += len;
    }

    /// Samples sent on this connection so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// The stream position of the connection's position `conn` (both in samples). Positions
    /// past the audio sent are extrapolated from the last piece; before the first, from the
    /// first.
    pub(crate) fn to_stream(&self, conn: u64) -> u64 {
        let idx = self.segments.partition_point(|s| s.conn <= conn);
        match idx.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(s) => s.stream + (conn - s.conn),
            None => match self.segments.front() {
                Some(first) => first.stream.saturating_sub(first.conn - conn),
                None => conn,
            },
        }
    }

    /// Forgets the pieces that end before `conn` (keeps the one holding it).
    pub(crate) fn prune_before(&mut self, conn: u64) {
        while self.segments.len() > 1 && self.segments[1].conn <= conn {
            self.segments.pop_front();
        }
    }
}

/// Converts milliseconds to samples at `rate` Hz (negative times count as 0).
pub(crate) fn ms_to_samples(ms: i64, rate: u32) -> u64 {
    (ms.max(0) as u64).saturating_mul(u64::from(rate)) / 1000
}

/// Converts samples at `rate` Hz to milliseconds.
pub(crate) fn samples_to_ms(samples: u64, rate: u32) -> i64 {
    i64::try_from(samples.saturating_mul(1000) / u64::from(rate.max(1))).unwrap_or(i64::MAX)
}

/// What [`Timeline::map_turn`] made of a turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mapped {
    /// Deliver this turn (rewritten onto the stream).
    Deliver(Turn),
    /// A final already delivered (re-transcribed replayed audio): dropped.
    Duplicate,
    /// A partial of a turn whose final was already delivered: dropped.
    Stale,
}

/// Turn numbering and word times across connections.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    rate: u32,
    /// The stream `turn_order` the next final gets.
    next_order: u64,
    /// Added to the connection's `turn_order`s (negative when the connection's first turns
    /// were duplicates).
    order_offset: i64,
    /// Stream end (ms) of the last word of the last final delivered.
    delivered_end_ms: Option<i64>,
    /// A partial arrived after the last final: a turn is being spoken.
    open_turn: bool,
    /// Finals dropped as duplicates.
    pub(crate) duplicates: u64,
}

impl Timeline {
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            rate,
            next_order: 0,
            order_offset: 0,
            delivered_end_ms: None,
            open_turn: false,
            duplicates: 0,
        }
    }

    /// A new connection starts: its turn 0 is the stream's next turn.
    pub(crate) fn new_connection(&mut self) {
        self.order_offset = self.next_order as i64;
        self.open_turn = false;
    }

    /// Whether a turn is in progress (a partial since the last final): not a turn boundary.
    pub(crate) fn turn_open(&self) -> bool {
        self.open_turn
    }

    /// The stream `turn_order` the next final will get.
    #[cfg(test)]
    pub(crate) fn next_order(&self) -> u64 {
        self.next_order
    }

    /// Rewrites a turn of the current connection onto the stream.
    pub(crate) fn map_turn(&mut self, mut turn: Turn, is_final: bool, clock: &ConnClock) -> Mapped {
        let conn_order = turn.turn_order as i64;
        let order = u64::try_from(self.order_offset.saturating_add(conn_order)).unwrap_or(0);
        if order < self.next_order {
            return if is_final {
                self.duplicates += 1;
                Mapped::Duplicate
            } else {
                Mapped::Stale
            };
        }
        for word in &mut turn.words {
            word.start = self.map_ms(word.start, clock);
            word.end = self.map_ms(word.end, clock);
        }
        turn.turn_order = order;
        if !is_final {
            self.open_turn = true;
            return Mapped::Deliver(turn);
        }
        let end = turn.words.iter().map(|w| w.end).max();
        if let (Some(end), Some(delivered)) = (end, self.delivered_end_ms) {
            if end <= delivered {
                // Every word of it ends inside audio that an earlier final covered. Its number
                // goes to the connection's next turn.
                self.duplicates += 1;
                self.order_offset = self.next_order as i64 - (conn_order + 1);
                return Mapped::Duplicate;
            }
        }
        self.next_order = order + 1;
        self.open_turn = false;
        if let Some(end) = end {
            self.delivered_end_ms = Some(self.delivered_end_ms.map_or(end, |d| d.max(end)));
        }
        Mapped::Deliver(turn)
    }

    /// The stream position (samples) up to which audio is covered by delivered finals.
    pub(crate) fn delivered_end_samples(&self) -> Option<u64> {
        self.delivered_end_ms.map(|ms| ms_to_samples(ms, self.rate))
    }

    /// The stream `turn_order` of the connection's turn `conn_order` (for the messages that
    /// refer to a turn: `LLMGatewayResponse`, `SpeakerRevision`).
    pub(crate) fn order(&self, conn_order: u64) -> u64 {
        u64::try_from(self.order_offset.saturating_add(conn_order as i64)).unwrap_or(0)
    }

    /// The stream time (ms) of the connection's time `ms`.
    pub(crate) fn map_ms(&self, ms: i64, clock: &ConnClock) -> i64 {
        samples_to_ms(clock.to_stream(ms_to_samples(ms, self.rate)), self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Word;

    const RATE: u32 = 16_000;

    fn word(text: &str, start: i64, end: i64) -> Word {
        Word {
            start,
            end,
            text: text.into(),
            confidence: 0.9,
            word_is_final: true,
            speaker: None,
        }
    }

    fn turn(order: u64, words: &[(&str, i64, i64)]) -> Turn {
        Turn {
            turn_order: order,
            turn_is_formatted: true,
            end_of_turn: true,
            transcript: words.iter().map(|w| w.0).collect::<Vec<_>>().join(" "),
            end_of_turn_confidence: 0.9,
            words: words.iter().map(|w| word(w.0, w.1, w.2)).collect(),
            utterance: None,
            language_code: None,
            language_confidence: None,
            speaker_label: None,
            emulator_sent_at_ns: None,
        }
    }

    fn ms(ms: u64) -> u64 {
        ms * 16
    }

    #[test]
    fn a_clock_maps_contiguous_and_skipped_audio() {
        // (stream start ms, length ms) of the pieces sent, then (conn ms → stream ms) lookups.
        /// (stream start ms, length ms) pieces sent; (conn ms, stream ms) lookups.
        type Case<'a> = (&'a [(u64, u64)], &'a [(u64, u64)]);
        let cases: &[Case] = &[
            (&[], &[(0, 0), (500, 500)]),
            (&[(0, 100), (100, 100)], &[(0, 0), (150, 150), (400, 400)]),
            // A replay from 4 s: the connection's 0 is the stream's 4 s.
            (&[(4000, 100), (4100, 100)], &[(0, 4000), (150, 4150)]),
            // 1 s of silence skipped after 200 ms.
            (
                &[(4000, 200), (5200, 100)],
                &[(100, 4100), (200, 5200), (250, 5250), (1000, 6000)],
            ),
        ];
        for (sent, lookups) in cases {
            let mut clock = ConnClock::default();
            for (at, len) in *sent {
                clock.record(ms(*at), ms(*len));
            }
            for (conn, stream) in *lookups {
                assert_eq!(
                    clock.to_stream(ms(*conn)),
                    ms(*stream),
                    "sent {sent:?}, conn {conn} ms"
                );
            }
        }
    }

    #[test]
    fn pruning_keeps_the_piece_in_use() {
        let mut clock = ConnClock::default();
        clock.record(ms(0), ms(100));
        clock.record(ms(1000), ms(100));
        clock.record(ms(2000), ms(100));
        clock.prune_before(ms(150));
        assert_eq!(clock.to_stream(ms(150)), ms(1050));
        assert_eq!(clock.to_stream(ms(250)), ms(2050));
        assert_eq!(clock.sent(), ms(300));
    }

    #[test]
    fn turns_continue_across_connections() {
        let mut timeline = Timeline::new(RATE);
        let mut clock = ConnClock::default();
        clock.record(0, ms(10_000));
        let Mapped::Deliver(t) = timeline.map_turn(turn(0, &[("a", 100, 400)]), true, &clock)
        else {
            panic!()
        };
        assert_eq!((t.turn_order, t.words[0].start), (0, 100));
        let Mapped::Deliver(t) = timeline.map_turn(turn(1, &[("b", 1000, 1400)]), false, &clock)
        else {
            panic!()
        };
        assert_eq!(t.turn_order, 1);
        assert!(timeline.turn_open());

        // The connection drops; the next one replays from 400 ms (end of the last final).
        timeline.new_connection();
        let mut clock = ConnClock::default();
        clock.record(ms(400), ms(10_000));
        let Mapped::Deliver(t) = timeline.map_turn(turn(0, &[("b", 600, 1000)]), true, &clock)
        else {
            panic!()
        };
        assert_eq!(t.turn_order, 1, "the interrupted turn keeps its number");
        assert_eq!((t.words[0].start, t.words[0].end), (1000, 1400));
        assert!(!timeline.turn_open());
        assert_eq!(timeline.delivered_end_samples(), Some(ms(1400)));
        let Mapped::Deliver(t) = timeline.map_turn(turn(1, &[("c", 2000, 2400)]), true, &clock)
        else {
            panic!()
        };
        assert_eq!((t.turn_order, t.words[0].start), (2, 2400));
        assert_eq!(timeline.next_order(), 3);
    }

    #[test]
    fn a_final_is_never_delivered_twice() {
        let mut timeline = Timeline::new(RATE);
        let mut clock = ConnClock::default();
        clock.record(0, ms(10_000));
        assert!(matches!(
            timeline.map_turn(turn(0, &[("a", 100, 900)]), true, &clock),
            Mapped::Deliver(_)
        ));
        // The same turn_order again (a repeated end-of-turn) is a duplicate; its partial is stale.
        assert_eq!(
            timeline.map_turn(turn(0, &[("a", 100, 900)]), true, &clock),
            Mapped::Duplicate
        );
        assert_eq!(
            timeline.map_turn(turn(0, &[("a", 100, 900)]), false, &clock),
            Mapped::Stale
        );
        // A new connection re-transcribes audio the last final covered: a duplicate by time.
        timeline.new_connection();
        let mut clock = ConnClock::default();
        clock.record(ms(500), ms(10_000));
        assert_eq!(
            timeline.map_turn(turn(0, &[("a", 0, 400)]), true, &clock),
            Mapped::Duplicate
        );
        assert_eq!(timeline.duplicates, 2);
        // A final ending later is new, and numbered next: the duplicate used no number.
        let Mapped::Deliver(t) = timeline.map_turn(turn(1, &[("b", 600, 800)]), true, &clock)
        else {
            panic!()
        };
        assert_eq!(t.turn_order, 1);
    }

    #[test]
    fn a_final_without_words_is_delivered_and_numbered() {
        let mut timeline = Timeline::new(RATE);
        let clock = ConnClock::default();
        let Mapped::Deliver(t) = timeline.map_turn(turn(0, &[]), true, &clock) else {
            panic!()
        };
        assert_eq!(t.turn_order, 0);
        assert_eq!(timeline.delivered_end_samples(), None);
        assert_eq!(timeline.next_order(), 1);
    }
}
