//! The bounded replay buffer and its pacing policy (pure: no I/O, no clock).
//!
//! The buffer holds the caller's audio from the end of the last delivered final to the newest
//! sample, cut into frames of a fixed duration, with a cursor: the frames before it were sent on
//! the current connection. A new connection rewinds the cursor to the first frame, so the turn
//! that was being spoken is sent again, whole.
//!
//! # Pacing (the service's real-time rule)
//!
//! The service closes a session with 3007 when the audio it has received runs ahead of the
//! wall clock since the session opened (the emulator allows 1 s; the service does not document
//! its tolerance). A frame may be sent when, counting it, the audio sent on the connection is
//! at most `elapsed + burst` ([`send_offset`]; default burst 500 ms, half the emulator's
//! tolerance). So a replay sends `burst` at once and then one frame per frame duration, and the
//! caller's live audio queues behind it.
//!
//! To catch up, silence is skipped: while more than `catch_up_after` of audio waits, a silent
//! frame (RMS below the threshold) that follows at least `keep_silence` of silence already sent
//! is not sent. Speech is never skipped, and every pause keeps `keep_silence` (default 1.5 s,
//! longer than the service's default `max_turn_silence` of 1.28 s), so turns still end where
//! they did; only long pauses get shorter. Word times stay on the caller's clock (the
//! connection clock maps around the holes).
//!
//! # Bound
//!
//! At most `capacity` frames are kept. Past it, the oldest frame goes: if it had not been sent,
//! or if it is needed for a replay later, its audio is reported as a gap ([`Gap`]) — never a
//! silent loss.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::params::Encoding;

/// A frame of the caller's audio, at stream position `at` (samples).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub at: u64,
    pub samples: u64,
    pub data: Bytes,
    pub silent: bool,
}

/// Audio that will never be transcribed: `[start, end)` on the stream clock, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub start: u64,
    pub end: u64,
}

/// Settings of the buffer, in samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayConfig {
    pub encoding: Encoding,
    pub frame_samples: u64,
    pub capacity_frames: usize,
    pub keep_silence: u64,
    pub catch_up_after: u64,
    /// RMS level (0–1) under which a frame is silence.
    pub silence_rms: f32,
}

/// The replay buffer (see the module docs).
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    cfg: ReplayConfig,
    frames: VecDeque<Frame>,
    /// Frames of `frames` sent on the current connection (skipped ones included).
    cursor: usize,
    /// Audio not yet a whole frame, starting at `next_at`.
    pending: BytesMut,
    next_at: u64,
    /// Stream position up to which audio is finalised or already reported lost.
    covered_until: u64,
    /// Silence sent in a row on this connection (samples).
    silence_run: u64,
    gap: Option<Gap>,
    /// Silent audio skipped to catch up (samples, over the stream's life).
    pub(crate) skipped: u64,
}

impl ReplayBuffer {
    pub(crate) fn new(cfg: ReplayConfig) -> Self {
        Self {
            cfg,
            frames: VecDeque::new(),
            cursor: 0,
            pending: BytesMut::new(),
            next_at: 0,
            covered_until: 0,
            silence_run: 0,
            gap: None,
            skipped: 0,
        }
    }

    fn frame_bytes(&self) -> usize {
        self.cfg.frame_samples as usize * self.cfg.encoding.bytes_per_sample()
    }

    /// Adds the caller's audio.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        let frame_bytes = self.frame_bytes();
        while self.pending.len() >= frame_bytes {
            let data = self.pending.split_to(frame_bytes).freeze();
            self.push_frame(data);
        }
    }

    /// Makes the audio short of a frame a (short) frame of its own: at the end of the stream.
    pub(crate) fn flush_pending(&mut self) {
        let bps = self.cfg.encoding.bytes_per_sample();
        let whole = self.pending.len() / bps * bps;
        if whole > 0 {
            let data = self.pending.split_to(whole).freeze();
            self.push_frame(data);
        }
        self.pending.clear();
    }

    fn push_frame(&mut self, data: Bytes) {
        let samples = (data.len() / self.cfg.encoding.bytes_per_sample()) as u64;
        let silent = rms(&data, self.cfg.encoding) < self.cfg.silence_rms;
        self.frames.push_back(Frame {
            at: self.next_at,
            samples,
            data,
            silent,
        });
        self.next_at += samples;
        while self.frames.len() > self.cfg.capacity_frames.max(1) {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            if self.cursor > 0 {
                // Sent already: lost only if a replay needs it (see `rewind`).
                self.cursor -= 1;
            } else {
                self.lose(old.at, old.at + old.samples);
            }
        }
    }

    fn lose(&mut self, start: u64, end: u64) {
        let start = start.max(self.covered_until);
        if end <= start {
            return;
        }
        self.covered_until = end;
        self.gap = Some(match self.gap {
            Some(g) if g.end == start => Gap {
                start: g.start,
                end,
            },
            // An earlier, separate gap not taken yet: report the span (callers take gaps after
            // every operation, so this only merges gaps of one operation).
            Some(g) => Gap {
                start: g.start,
                end,
            },
            None => Gap { start, end },
        });
    }

    /// The audio lost since the last call, if any.
    pub(crate) fn take_gap(&mut self) -> Option<Gap> {
        self.gap.take()
    }

    /// A final covered the audio up to `stream_at`: frames ending by then are dropped.
    ///
    /// The frame holding `stream_at` is cut there, so a replay starts exactly at the end of the
    /// final's last word: a replay that began at the frame's start would have the service
    /// transcribe the tail of that word again.
    pub(crate) fn finalised(&mut self, stream_at: u64) {
        self.covered_until = self.covered_until.max(stream_at);
        while let Some(f) = self.frames.front() {
            if f.at + f.samples > stream_at {
                break;
            }
            self.frames.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
        }
        let bps = self.cfg.encoding.bytes_per_sample();
        if let Some(f) = self.frames.front_mut() {
            if f.at < stream_at {
                let cut = stream_at - f.at;
                f.data = f.data.slice(cut as usize * bps..);
                f.at = stream_at;
                f.samples -= cut;
            }
        }
    }

    /// A new connection: the next frame to send is the oldest kept. Returns the audio that will
    /// be sent again (samples). Audio between the last final and the oldest frame kept was
    /// evicted: it is reported as a gap.
    pub(crate) fn rewind(&mut self) -> u64 {
        let oldest = self.frames.front().map_or(self.next_at, |f| f.at);
        self.lose(self.covered_until, oldest);
        let replayed = self
            .frames
            .iter()
            .take(self.cursor)
            .map(|f| f.samples)
            .sum();
        self.cursor = 0;
        self.silence_run = 0;
        replayed
    }

    /// Audio waiting to be sent on this connection (samples).
    pub(crate) fn unsent(&self) -> u64 {
        self.frames
            .iter()
            .skip(self.cursor)
            .map(|f| f.samples)
            .sum()
    }

    /// The next frame to send, skipping silence to catch up (see the module docs). Call
    /// [`mark_sent`](Self::mark_sent) once it is sent.
    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let frame = self.frames.get(self.cursor)?;
            let waiting = self.unsent();
            if frame.silent
                && waiting > self.cfg.catch_up_after
                && self.silence_run >= self.cfg.keep_silence
            {
                self.skipped += frame.samples;
                self.cursor += 1;
                continue;
            }
            return Some(frame.clone());
        }
    }

    /// The frame returned by [`next_frame`](Self::next_frame) was sent.
    pub(crate) fn mark_sent(&mut self) {
        if let Some(frame) = self.frames.get(self.cursor) {
            self.silence_run = if frame.silent {
                self.silence_run + frame.samples
            } else {
                0
            };
            self.cursor += 1;
        }
    }

    /// Audio kept (samples).
    #[cfg(test)]
    fn kept(&self) -> u64 {
        self.frames.iter().map(|f| f.samples).sum()
    }
}

/// When a frame of `frame` samples may be sent on a connection that has sent `sent` samples:
/// the time since the connection opened at which `sent + frame <= elapsed + burst` (all at
/// `rate` Hz).
pub(crate) fn send_offset(sent: u64, frame: u64, burst: u64, rate: u32) -> Duration {
    let ahead = (sent + frame).saturating_sub(burst);
    Duration::from_micros(ahead.saturating_mul(1_000_000) / u64::from(rate.max(1)))
}

/// RMS level of a frame, 0.0–1.0.
fn rms(data: &[u8], encoding: Encoding) -> f32 {
    let mut sum = 0f64;
    let mut n = 0usize;
    match encoding {
        Encoding::PcmS16le => {
            for b in data.chunks_exact(2) {
                let s = f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
                sum += s * s;
                n += 1;
            }
        }
        Encoding::PcmMulaw => {
            for &b in data {
                let s = f64::from(mulaw_to_linear(b)) / 32768.0;
                sum += s * s;
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64).sqrt() as f32
    }
}

/// G.711 μ-law decoder.
fn mulaw_to_linear(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if b & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 ms frames at 16 kHz; a buffer of `capacity` frames; 300 ms of kept silence; catch up
    /// when more than 200 ms waits.
    fn buffer(capacity: usize) -> ReplayBuffer {
        ReplayBuffer::new(ReplayConfig {
            encoding: Encoding::PcmS16le,
            frame_samples: 1600,
            capacity_frames: capacity,
            keep_silence: 4800,
            catch_up_after: 3200,
            silence_rms: 0.01,
        })
    }

    fn speech(frames: usize) -> Vec<u8> {
        (0..frames * 1600)
            .flat_map(|i| (if i % 2 == 0 { 8000i16 } else { -8000 }).to_le_bytes())
            .collect()
    }

    fn silence(frames: usize) -> Vec<u8> {
        vec![0; frames * 3200]
    }

    fn send_all(b: &mut ReplayBuffer) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some(f) = b.next_frame() {
            sent.push(f.at / 1600);
            b.mark_sent();
        }
        sent
    }

    #[test]
    fn audio_is_cut_into_frames_whatever_the_chunk_size() {
        let mut b = buffer(100);
        let audio = speech(3);
        for piece in audio.chunks(1000) {
            b.push(piece);
        }
        assert_eq!(send_all(&mut b), [0, 1, 2]);
        b.push(&speech(1)[..1000]);
        assert_eq!(b.next_frame(), None, "half a frame waits");
        b.flush_pending();
        let last = b.next_frame().unwrap();
        assert_eq!((last.at, last.samples), (4800, 500));
    }

    #[test]
    fn a_rewind_replays_from_the_last_final() {
        let mut b = buffer(100);
        b.push(&speech(10));
        assert_eq!(send_all(&mut b).len(), 10);
        // A final ends at 450 ms: frames ending by then go; the one holding 450 ms is cut there.
        b.finalised(450 * 16);
        assert_eq!(b.rewind(), 5 * 1600 + 50 * 16);
        assert_eq!(b.take_gap(), None);
        let first = b.next_frame().unwrap();
        assert_eq!(
            (first.at, first.samples, first.data.len()),
            (7200, 800, 1600)
        );
        b.mark_sent();
        assert_eq!(send_all(&mut b), [5, 6, 7, 8, 9]);
    }

    #[test]
    fn past_the_bound_unsent_audio_is_a_gap() {
        let mut b = buffer(5);
        b.push(&speech(8));
        // Frames 0–2 were never sent: 300 ms lost, reported once.
        assert_eq!(
            b.take_gap(),
            Some(Gap {
                start: 0,
                end: 4800
            })
        );
        assert_eq!(b.take_gap(), None);
        assert_eq!(b.kept(), 5 * 1600);
        assert_eq!(send_all(&mut b), [3, 4, 5, 6, 7]);
    }

    #[test]
    fn past_the_bound_sent_audio_is_a_gap_only_when_replayed() {
        let mut b = buffer(5);
        for _ in 0..8 {
            b.push(&speech(1));
            send_all(&mut b);
        }
        assert_eq!(b.take_gap(), None, "sent and not needed again: no loss yet");
        // The connection drops before any final: 0–300 ms cannot be replayed.
        assert_eq!(b.rewind(), 5 * 1600);
        assert_eq!(
            b.take_gap(),
            Some(Gap {
                start: 0,
                end: 4800
            })
        );
        // A final after the gap: nothing more is reported on the next rewind.
        b.finalised(5000);
        b.rewind();
        assert_eq!(b.take_gap(), None);
    }

    #[test]
    fn silence_is_skipped_only_to_catch_up_and_pauses_keep_their_minimum() {
        // Speech, 1 s pause, speech: all waiting (a replay), more than 200 ms behind.
        let mut b = buffer(100);
        b.push(&speech(2));
        b.push(&silence(10));
        b.push(&speech(2));
        let sent = send_all(&mut b);
        // 300 ms of the pause kept (frames 2–4), the rest skipped, speech whole.
        assert_eq!(sent, [0, 1, 2, 3, 4, 12, 13]);
        assert_eq!(b.skipped, 7 * 1600);

        // Live (nothing waiting beyond the frame at hand): the whole pause goes out.
        let mut b = buffer(100);
        let mut sent = Vec::new();
        for audio in [speech(2), silence(10), speech(2)] {
            for frame in audio.chunks(3200) {
                b.push(frame);
                sent.extend(send_all(&mut b));
            }
        }
        assert_eq!(sent, (0..14).collect::<Vec<_>>());
        assert_eq!(b.skipped, 0);
    }

    #[test]
    fn pacing_allows_a_burst_then_real_time() {
        let rate = 16_000;
        let frame = 1600;
        let burst = 8000; // 500 ms
        // (already sent, may send the next frame at ms since the connection opened)
        for (sent, at_ms) in [
            (0, 0),
            (6400, 0),
            (8000, 100),
            (16_000, 600),
            (160_000, 9600),
        ] {
            assert_eq!(
                send_offset(sent, frame, burst, rate),
                Duration::from_millis(at_ms),
                "{sent}"
            );
        }
    }

    #[test]
    fn mulaw_silence_and_speech_levels() {
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(mulaw_to_linear(0x7F), 0);
        assert!(rms(&[0xFF; 800], Encoding::PcmMulaw) < 0.001);
        assert!(rms(&[0x80; 800], Encoding::PcmMulaw) > 0.5);
        assert!(rms(&speech(1), Encoding::PcmS16le) > 0.2);
    }
}
