//! From whatever a device or file delivers to the chunks a session sends.

use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::AudioChunk;
use super::resample::Resampler;
use super::sample::{PcmSample, f32_to_i16};
use crate::error::{Error, Result};

/// The chunk duration used unless [`AudioConverter::with_chunk_duration`] says otherwise.
pub const DEFAULT_CHUNK_DURATION: Duration = Duration::from_millis(100);

/// Shortest chunk the converter cuts (the service rejects frames under 50 ms).
pub const MIN_CHUNK_DURATION: Duration = Duration::from_millis(50);

/// Longest chunk the converter cuts (the service rejects frames over 1000 ms).
pub const MAX_CHUNK_DURATION: Duration = Duration::from_millis(1000);

/// Converts interleaved PCM of any rate, channel count and sample format into mono 16-bit
/// [`AudioChunk`]s of a fixed duration at the session's sample rate.
///
/// The path is: downmix (average of the channels) → stateful anti-aliased resampling
/// (rubato; a plain copy when the rates match) → s16le → exact chunks (100 ms by default).
/// Input may be pushed in pieces of any size, even ones that split a frame; the output does
/// not depend on how the input was split. Sample counts are exact: after [`finish`], the
/// number of output samples is `floor(input_frames * output_rate / input_rate)`, so a stream
/// of any length does not drift.
///
/// ```
/// use assemblyai_streaming::audio::AudioConverter;
///
/// // One second of 48 kHz stereo float audio, as a sound card might deliver it...
/// let mut conv = AudioConverter::new(48_000, 2, 16_000).unwrap();
/// let input = vec![0.0f32; 48_000 * 2];
/// let mut chunks: Vec<_> = conv.push_interleaved_f32(&input).collect();
/// chunks.extend(conv.finish());
/// // ...becomes ten 100 ms chunks of 16 kHz mono s16le (1600 samples, 3200 bytes each).
/// assert_eq!(chunks.len(), 10);
/// assert!(chunks.iter().all(|c| c.len() == 3200));
/// ```
///
/// [`finish`]: AudioConverter::finish
#[derive(Debug)]
pub struct AudioConverter {
    input_rate: u32,
    channels: usize,
    output_rate: u32,
    chunk_samples: usize,
    resampler: Resampler,
    /// Samples of an incomplete frame left over from the previous push.
    partial_frame: Vec<f32>,
    /// Downmixed input of the current push.
    mono: Vec<f32>,
    /// Resampled output of the current push.
    resampled: Vec<f32>,
    /// Encoded s16le output not yet cut into chunks.
    encoded: BytesMut,
    frames_in: u64,
    samples_out: u64,
}

impl AudioConverter {
    /// A converter from `input_rate` Hz with `input_channels` interleaved channels to mono
    /// `output_rate` Hz, cutting [`DEFAULT_CHUNK_DURATION`] chunks.
    ///
    /// Fails with [`Error::Config`] when a rate or the channel count is zero.
    pub fn new(input_rate: u32, input_channels: u16, output_rate: u32) -> Result<Self> {
        if input_channels == 0 {
            return Err(Error::config("input must have at least one channel"));
        }
        let resampler = Resampler::new(input_rate, output_rate)?;
        let chunk_samples = chunk_samples(output_rate, DEFAULT_CHUNK_DURATION)?;
        Ok(Self {
            input_rate,
            channels: usize::from(input_channels),
            output_rate,
            chunk_samples,
            resampler,
            partial_frame: Vec::new(),
            mono: Vec::new(),
            resampled: Vec::new(),
            encoded: BytesMut::new(),
            frames_in: 0,
            samples_out: 0,
        })
    }

    /// Sets the duration of the chunks cut (between [`MIN_CHUNK_DURATION`] and
    /// [`MAX_CHUNK_DURATION`]; it must be a whole number of output samples).
    pub fn with_chunk_duration(mut self, duration: Duration) -> Result<Self> {
        self.chunk_samples = chunk_samples(self.output_rate, duration)?;
        Ok(self)
    }

    /// Input sample rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Number of interleaved input channels.
    pub fn input_channels(&self) -> u16 {
        // Constructed from a u16, so this cannot truncate.
        self.channels as u16
    }

    /// Output sample rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.output_rate
    }

    /// Samples (mono, at the output rate) per chunk.
    pub fn chunk_samples(&self) -> usize {
        self.chunk_samples
    }

    /// Input frames (one sample per channel) received since the start or the last `finish`.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Output samples produced since the start or the last `finish` (in chunks handed out or
    /// still buffered).
    pub fn samples_out(&self) -> u64 {
        self.samples_out
    }

    /// Pushes interleaved samples of any supported format; returns the chunks now complete.
    ///
    /// The returned iterator hands out each complete chunk once; chunks it did not hand out
    /// (because it was dropped early) come out of the next call.
    pub fn push<S: PcmSample>(&mut self, interleaved: &[S]) -> Chunks<'_> {
        self.mono.clear();
        downmix(
            interleaved,
            self.channels,
            &mut self.partial_frame,
            &mut self.mono,
        );
        self.frames_in += self.mono.len() as u64;
        self.resampled.clear();
        let result = self.resampler.push(&self.mono, &mut self.resampled);
        self.encode_resampled();
        Chunks {
            encoded: &mut self.encoded,
            chunk_bytes: self.chunk_samples * 2,
            flush_tail: false,
            error: result.err(),
        }
    }

    /// Pushes interleaved `f32` samples (full scale ±1.0), as most sound cards deliver them.
    pub fn push_interleaved_f32(&mut self, interleaved: &[f32]) -> Chunks<'_> {
        self.push(interleaved)
    }

    /// Pushes interleaved 16-bit samples.
    pub fn push_i16(&mut self, interleaved: &[i16]) -> Chunks<'_> {
        self.push(interleaved)
    }

    /// Ends the input: flushes the resampler and returns the remaining chunks, the last one
    /// possibly shorter than a full chunk. The converter is then ready for a new stream.
    ///
    /// A frame left incomplete by the last push is dropped.
    pub fn finish(&mut self) -> Chunks<'_> {
        self.partial_frame.clear();
        self.resampled.clear();
        let result = self.resampler.finish(&mut self.resampled);
        self.encode_resampled();
        self.frames_in = 0;
        self.samples_out = 0;
        Chunks {
            encoded: &mut self.encoded,
            chunk_bytes: self.chunk_samples * 2,
            flush_tail: true,
            error: result.err(),
        }
    }

    fn encode_resampled(&mut self) {
        self.encoded.reserve(self.resampled.len() * 2);
        for &x in &self.resampled {
            self.encoded.put_i16_le(f32_to_i16(x));
        }
        self.samples_out += self.resampled.len() as u64;
    }
}

fn chunk_samples(rate: u32, duration: Duration) -> Result<usize> {
    if !(MIN_CHUNK_DURATION..=MAX_CHUNK_DURATION).contains(&duration) {
        return Err(Error::config(format!(
            "chunk duration must be between {MIN_CHUNK_DURATION:?} and {MAX_CHUNK_DURATION:?}, got {duration:?}"
        )));
    }
    let numerator = u128::from(rate) * duration.as_nanos();
    if numerator % 1_000_000_000 != 0 {
        return Err(Error::config(format!(
            "a {duration:?} chunk is not a whole number of samples at {rate} Hz"
        )));
    }
    Ok((numerator / 1_000_000_000) as usize)
}

/// Averages each frame's channels into `mono`, carrying an incomplete trailing frame over in
/// `partial` (averaging keeps a signal that is identical on all channels at its level).
fn downmix<S: PcmSample>(
    input: &[S],
    channels: usize,
    partial: &mut Vec<f32>,
    mono: &mut Vec<f32>,
) {
    let mut input = input;
    if !partial.is_empty() {
        let missing = channels - partial.len();
        let take = missing.min(input.len());
        partial.extend(input[..take].iter().map(|s| s.to_f32()));
        input = &input[take..];
        if partial.len() < channels {
            return;
        }
        mono.push(partial.iter().sum::<f32>() / channels as f32);
        partial.clear();
    }
    let frames = input.chunks_exact(channels);
    let rest = frames.remainder();
    mono.reserve(input.len() / channels);
    match channels {
        1 => mono.extend(input.iter().map(|s| s.to_f32())),
        2 => mono.extend(
            input
                .chunks_exact(2)
                .map(|f| (f[0].to_f32() + f[1].to_f32()) * 0.5),
        ),
        _ => {
            let scale = 1.0 / channels as f32;
            mono.extend(frames.map(|f| f.iter().map(|s| s.to_f32()).sum::<f32>() * scale));
        }
    }
    partial.extend(rest.iter().map(|s| s.to_f32()));
}

/// The chunks completed by a push, in order (an iterator over [`AudioChunk`]).
///
/// Returned by [`AudioConverter::push`] and [`AudioConverter::finish`]. Use
/// [`Chunks::error`] to learn whether the resampler failed (it cannot for valid rates; the
/// check exists so a library bug never panics).
#[derive(Debug)]
pub struct Chunks<'a> {
    encoded: &'a mut BytesMut,
    chunk_bytes: usize,
    flush_tail: bool,
    error: Option<Error>,
}

impl Chunks<'_> {
    /// Takes the resampler's error, if it failed during this call.
    pub fn error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

impl Iterator for Chunks<'_> {
    type Item = AudioChunk;

    fn next(&mut self) -> Option<AudioChunk> {
        if self.encoded.len() >= self.chunk_bytes {
            return Some(AudioChunk::from_bytes(
                self.encoded.split_to(self.chunk_bytes).freeze(),
            ));
        }
        if self.flush_tail && !self.encoded.is_empty() {
            return Some(AudioChunk::from_bytes(self.encoded.split().freeze()));
        }
        None
    }
}

/// Root-mean-square level of a 16-bit chunk, from 0.0 (silence) to 1.0 (full-scale square
/// wave); a full-scale sine gives about 0.707. Useful for a level meter.
///
/// ```
/// use assemblyai_streaming::{AudioChunk, audio::rms_level};
///
/// assert_eq!(rms_level(&AudioChunk::from_pcm16(&[0; 160])), 0.0);
/// let loud = rms_level(&AudioChunk::from_pcm16(&[16384, -16384]));
/// assert!((loud - 0.5).abs() < 1e-6);
/// ```
pub fn rms_level(chunk: &AudioChunk) -> f32 {
    let bytes = chunk.as_bytes();
    let n = bytes.len() / 2;
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = bytes
        .chunks_exact(2)
        .map(|b| {
            let s = f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
            s * s
        })
        .sum();
    (sum / n as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_frames_carry_over_between_pushes() {
        let mut conv = AudioConverter::new(16_000, 2, 16_000).unwrap();
        // Frames (1000, 3000) and (-2000, -4000) split at odd places.
        let samples: [i16; 4] = [1000, 3000, -2000, -4000];
        let mut out = Vec::new();
        for piece in [&samples[..1], &samples[1..3], &samples[3..]] {
            out.extend(conv.push_i16(piece));
        }
        out.extend(conv.finish());
        let pcm: Vec<i16> = out.iter().flat_map(|c| c.to_pcm16()).collect();
        assert_eq!(pcm, vec![2000, -3000]);
    }

    #[test]
    fn chunk_duration_outside_the_service_window_is_rejected() {
        let conv = || AudioConverter::new(16_000, 1, 16_000).unwrap();
        assert!(
            conv()
                .with_chunk_duration(Duration::from_millis(49))
                .is_err()
        );
        assert!(
            conv()
                .with_chunk_duration(Duration::from_millis(1001))
                .is_err()
        );
        assert_eq!(
            conv()
                .with_chunk_duration(Duration::from_millis(50))
                .unwrap()
                .chunk_samples(),
            800
        );
    }

    #[test]
    fn zero_channels_is_a_config_error() {
        assert!(matches!(
            AudioConverter::new(16_000, 0, 16_000),
            Err(Error::Config { .. })
        ));
    }
}
