//! Stateful mono sample-rate conversion on top of rubato.
//!
//! Rubato works on fixed-size blocks; audio arrives in blocks of any size. This wrapper buffers
//! input up to rubato's block size, trims the filter's start-up delay so output sample `n` lines
//! up with input time `n / output_rate`, and counts samples so that after [`Resampler::finish`]
//! exactly `floor(input_samples * output_rate / input_rate)` samples have come out, however the
//! input was split. That exact count is what keeps a long stream from drifting.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

use crate::error::{Error, Result};

/// The block duration rubato processes at a time. Longer blocks are cheaper per sample
/// (see `benches/resample.rs`) but add latency; 20 ms is well below the 100 ms chunks sent.
const BLOCK_SECONDS_DIVISOR: usize = 50;

/// Beyond this input block (a rate pair with a small common divisor, e.g. 44_101 → 16_000),
/// the synchronous FFT resampler would need blocks longer than this many input samples per
/// second of audio divided by 10 (100 ms); the asynchronous sinc resampler is used instead.
const MAX_FFT_BLOCK_DIVISOR: usize = 10;

enum Engine {
    /// Rates match: samples pass through untouched.
    Passthrough,
    /// A rubato resampler for one channel.
    Rubato(Box<dyn rubato::Resampler<f32>>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Passthrough => f.write_str("Passthrough"),
            Engine::Rubato(r) => write!(
                f,
                "Rubato {{ block_in: {}, delay_out: {} }}",
                r.input_frames_next(),
                r.output_delay()
            ),
        }
    }
}

/// A stateful, anti-aliased mono resampler with exact sample accounting.
#[derive(Debug)]
pub(crate) struct Resampler {
    engine: Engine,
    input_rate: u32,
    output_rate: u32,
    /// Input not yet handed to rubato; `pending[pending_start..]` is live.
    pending: Vec<f32>,
    pending_start: usize,
    /// Rubato's output block.
    scratch: Vec<f32>,
    /// Output samples of rubato's start-up delay still to drop.
    skip: usize,
    samples_in: u64,
    samples_out: u64,
}

impl Resampler {
    /// A resampler from `input_rate` to `output_rate` (both in Hz, non-zero).
    pub(crate) fn new(input_rate: u32, output_rate: u32) -> Result<Self> {
        if input_rate == 0 || output_rate == 0 {
            return Err(Error::config(format!(
                "sample rates must be positive (got {input_rate} Hz → {output_rate} Hz)"
            )));
        }
        let engine = if input_rate == output_rate {
            Engine::Passthrough
        } else {
            Engine::Rubato(build_rubato(input_rate as usize, output_rate as usize)?)
        };
        let (scratch, skip) = match &engine {
            Engine::Passthrough => (Vec::new(), 0),
            Engine::Rubato(r) => (vec![0.0; r.output_frames_max()], r.output_delay()),
        };
        Ok(Self {
            engine,
            input_rate,
            output_rate,
            pending: Vec::new(),
            pending_start: 0,
            scratch,
            skip,
            samples_in: 0,
            samples_out: 0,
        })
    }

    /// Output samples owed for all input so far: `floor(in * out_rate / in_rate)`.
    fn expected_out(&self) -> u64 {
        (u128::from(self.samples_in) * u128::from(self.output_rate) / u128::from(self.input_rate))
            as u64
    }

    /// Feeds mono input; appends whatever output is ready to `out`.
    pub(crate) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.samples_in += input.len() as u64;
        match &mut self.engine {
            Engine::Passthrough => {
                out.extend_from_slice(input);
                self.samples_out += input.len() as u64;
                Ok(())
            }
            Engine::Rubato(_) => {
                self.pending.extend_from_slice(input);
                self.process_full_blocks(out)
            }
        }
    }

    fn process_full_blocks(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let Engine::Rubato(r) = &mut self.engine else {
            return Ok(());
        };
        loop {
            let need = r.input_frames_next();
            if self.pending.len() - self.pending_start < need {
                break;
            }
            let block = &self.pending[self.pending_start..self.pending_start + need];
            let produced = run_block(r.as_mut(), block, &mut self.scratch)?;
            self.pending_start += need;
            emit(
                &self.scratch[..produced],
                &mut self.skip,
                &mut self.samples_out,
                u64::MAX,
                out,
            );
        }
        // Compact once the consumed prefix dominates, so pushes stay amortised O(n).
        if self.pending_start > 0 && self.pending_start * 2 >= self.pending.len() {
            self.pending.drain(..self.pending_start);
            self.pending_start = 0;
        }
        Ok(())
    }

    /// Flushes the tail: pads with silence until every owed output sample is out, then resets
    /// for a new stream. Appends to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let expected = self.expected_out();
        if let Engine::Rubato(r) = &mut self.engine {
            // Each padded block yields at least one output sample, so this terminates; the
            // bound guards against a misbehaving engine anyway.
            let mut guard = 0;
            while self.samples_out < expected && guard < 1_000 {
                guard += 1;
                let need = r.input_frames_next();
                let live = self.pending.len() - self.pending_start;
                if live < need {
                    self.pending.resize(self.pending_start + need, 0.0);
                }
                let block = &self.pending[self.pending_start..self.pending_start + need];
                let produced = run_block(r.as_mut(), block, &mut self.scratch)?;
                self.pending_start += need;
                emit(
                    &self.scratch[..produced],
                    &mut self.skip,
                    &mut self.samples_out,
                    expected,
                    out,
                );
            }
            r.reset();
            self.skip = r.output_delay();
        }
        self.pending.clear();
        self.pending_start = 0;
        self.samples_in = 0;
        self.samples_out = 0;
        Ok(())
    }

    /// Input samples pushed since the start (or the last `finish`).
    #[cfg(test)]
    pub(crate) fn samples_in(&self) -> u64 {
        self.samples_in
    }
}

/// Appends `produced` to `out`, first dropping `skip` delay samples and never exceeding `cap`
/// samples out in total.
fn emit(produced: &[f32], skip: &mut usize, samples_out: &mut u64, cap: u64, out: &mut Vec<f32>) {
    let dropped = (*skip).min(produced.len());
    *skip -= dropped;
    let rest = &produced[dropped..];
    let room = cap.saturating_sub(*samples_out);
    let take = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
    out.extend_from_slice(&rest[..take]);
    *samples_out += take as u64;
}

fn run_block(
    r: &mut dyn rubato::Resampler<f32>,
    block: &[f32],
    scratch: &mut [f32],
) -> Result<usize> {
    let frames_out = scratch.len();
    let input = InterleavedSlice::new(block, 1, block.len())
        .map_err(|e| Error::audio_caused(format!("resampler input: {e}"), e))?;
    let mut output = InterleavedSlice::new_mut(scratch, 1, frames_out)
        .map_err(|e| Error::audio_caused(format!("resampler output: {e}"), e))?;
    let (_, produced) = r
        .process_into_buffer(&input, &mut output, None)
        .map_err(|e| Error::audio_caused(format!("resampling failed: {e}"), e))?;
    Ok(produced)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn build_rubato(input_rate: usize, output_rate: usize) -> Result<Box<dyn rubato::Resampler<f32>>> {
    let construction = |e: rubato::ResamplerConstructionError| {
        Error::config_caused(
            format!("cannot resample {input_rate} Hz → {output_rate} Hz: {e}"),
            e,
        )
    };
    let block = (input_rate / BLOCK_SECONDS_DIVISOR).max(1);
    let min_fft_block = input_rate / gcd(input_rate, output_rate);
    if min_fft_block <= input_rate / MAX_FFT_BLOCK_DIVISOR {
        // Fixed ratio with a practical block size: the synchronous FFT resampler is both the
        // fastest and the cleanest (a steep anti-aliasing filter applied in the spectrum).
        let r = Fft::<f32>::new(input_rate, output_rate, block, 1, FixedSync::Both)
            .map_err(construction)?;
        Ok(Box::new(r))
    } else {
        // Odd rate pairs: band-limited sinc interpolation, same quality class, slower.
        let params = SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2)
            .oversampling_factor(256)
            .interpolation(SincInterpolationType::Linear);
        let r = Async::<f32>::new_sinc(
            output_rate as f64 / input_rate as f64,
            1.0,
            &params,
            block,
            1,
            FixedAsync::Input,
        )
        .map_err(construction)?;
        Ok(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input_rate: u32, output_rate: u32, total: usize, piece: usize) -> Vec<f32> {
        let mut r = Resampler::new(input_rate, output_rate).unwrap();
        let input: Vec<f32> = (0..total).map(|i| ((i % 100) as f32) / 100.0).collect();
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            r.push(p, &mut out).unwrap();
        }
        assert_eq!(r.samples_in(), total as u64);
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn output_length_is_exact_for_any_split() {
        for (rin, rout) in [
            (48_000, 16_000),
            (44_100, 16_000),
            (8_000, 16_000),
            (44_101, 16_000),
        ] {
            for piece in [1, 7, 480, 4096] {
                let total = 12_345;
                let out = run(rin, rout, total, piece);
                let expected = total as u64 * rout as u64 / rin as u64;
                assert_eq!(
                    out.len() as u64,
                    expected,
                    "{rin}→{rout} in pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn equal_rates_pass_through_unchanged() {
        let out = run(16_000, 16_000, 1000, 33);
        let input: Vec<f32> = (0..1000).map(|i| ((i % 100) as f32) / 100.0).collect();
        assert_eq!(out, input);
    }

    #[test]
    fn split_does_not_change_the_output() {
        // State carries across calls: pushing one sample at a time is the same as one big push.
        let a = run(44_100, 16_000, 20_000, 1);
        let b = run(44_100, 16_000, 20_000, 20_000);
        assert_eq!(a, b);
    }

    #[test]
    fn zero_rates_are_config_errors() {
        assert!(matches!(
            Resampler::new(0, 16_000),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            Resampler::new(16_000, 0),
            Err(Error::Config { .. })
        ));
    }
}
