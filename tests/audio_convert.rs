//! The conversion path from device/file audio to session chunks, checked with synthetic
//! signals: frequency, level, alignment, anti-aliasing, exact chunk sizes and sample counts.

use std::f64::consts::TAU;
use std::time::Duration;

use assemblyai_streaming::AudioChunk;
use assemblyai_streaming::audio::{AudioConverter, rms_level};

/// Interleaved `channels`-channel f32 sine, the same on every channel.
fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64, channels: usize) -> Vec<f32> {
    let frames = (f64::from(rate) * seconds) as usize;
    (0..frames)
        .flat_map(|n| {
            let v = (amplitude * (TAU * freq * n as f64 / f64::from(rate)).sin()) as f32;
            std::iter::repeat_n(v, channels)
        })
        .collect()
}

fn pcm(chunks: &[AudioChunk]) -> Vec<i16> {
    chunks.iter().flat_map(|c| c.to_pcm16()).collect()
}

/// Converts `input` pushed in pieces of `piece` samples and returns every chunk.
fn convert(conv: &mut AudioConverter, input: &[f32], piece: usize) -> Vec<AudioChunk> {
    let mut chunks = Vec::new();
    for p in input.chunks(piece) {
        chunks.extend(conv.push_interleaved_f32(p));
    }
    chunks.extend(conv.finish());
    chunks
}

/// Frequency estimated from rising zero crossings (linear interpolation between samples).
fn zero_crossing_frequency(samples: &[i16], rate: u32) -> f64 {
    let mut crossings = Vec::new();
    for (i, w) in samples.windows(2).enumerate() {
        let (a, b) = (f64::from(w[0]), f64::from(w[1]));
        if a < 0.0 && b >= 0.0 {
            crossings.push(i as f64 + a / (a - b));
        }
    }
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first)
}

/// Magnitude of the DFT bin at `freq` (Goertzel), normalised so a sine of amplitude A gives A.
fn tone_amplitude(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &s) in samples.iter().enumerate() {
        let phase = TAU * freq * n as f64 / f64::from(rate);
        re += f64::from(s) / 32768.0 * phase.cos();
        im -= f64::from(s) / 32768.0 * phase.sin();
    }
    2.0 * (re * re + im * im).sqrt() / samples.len() as f64
}

/// Asserts that `steady` (16 kHz, edges cut off) is the 1 kHz tone at amplitude 0.5 the tests
/// feed in: its frequency within 0.5 Hz, its amplitude within 0.005.
#[track_caller]
fn assert_is_the_1khz_half_scale_tone(steady: &[i16]) {
    let freq = zero_crossing_frequency(steady, 16_000);
    assert!((freq - 1000.0).abs() < 0.5, "frequency {freq} Hz");
    let amplitude = tone_amplitude(steady, 16_000, 1000.0);
    assert!(
        (amplitude - 0.5).abs() < 0.005,
        "1 kHz amplitude {amplitude}"
    );
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum();
    (sum / samples.len() as f64).sqrt()
}

#[test]
fn sine_1khz_48k_stereo_f32_becomes_16k_mono_with_same_frequency_and_level() {
    let input = sine(1000.0, 48_000, 2.0, 0.5, 2);
    let mut conv = AudioConverter::new(48_000, 2, 16_000).unwrap();
    let out = pcm(&convert(&mut conv, &input, 960));

    assert_eq!(out.len(), 32_000, "2 s at 16 kHz");
    // Skip the edges (the filter's ramp-in/out); judge the steady state.
    let steady = &out[800..out.len() - 800];
    assert_is_the_1khz_half_scale_tone(steady);
    let level = rms(steady);
    let expected = 0.5 / 2f64.sqrt();
    assert!(
        (level - expected).abs() < 0.005,
        "RMS {level}, expected {expected}"
    );
}

#[test]
fn sine_1khz_44k1_f32_becomes_16k_mono_with_same_frequency_and_level() {
    let input = sine(1000.0, 44_100, 2.0, 0.5, 2);
    let mut conv = AudioConverter::new(44_100, 2, 16_000).unwrap();
    let out = pcm(&convert(&mut conv, &input, 1234));

    assert_eq!(out.len(), 32_000);
    let steady = &out[800..out.len() - 800];
    assert_is_the_1khz_half_scale_tone(steady);
}

#[test]
fn output_is_time_aligned_with_the_input() {
    // The resampler's start-up delay is trimmed: output sample n is the input at n / 16000 s,
    // so the converted sine matches an ideal 16 kHz sine sample by sample.
    let input = sine(440.0, 48_000, 1.0, 0.5, 1);
    let mut conv = AudioConverter::new(48_000, 1, 16_000).unwrap();
    let out = pcm(&convert(&mut conv, &input, 480));
    let ideal: Vec<f64> = (0..out.len())
        .map(|n| 0.5 * (TAU * 440.0 * n as f64 / 16_000.0).sin())
        .collect();
    let worst = out[400..out.len() - 400]
        .iter()
        .zip(&ideal[400..])
        .map(|(&s, &i)| (f64::from(s) / 32768.0 - i).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 0.01,
        "largest deviation from the ideal sine: {worst}"
    );
}

#[test]
fn tones_above_the_output_nyquist_are_filtered_not_aliased() {
    // 8.5 and 10 kHz cannot exist at 16 kHz; without an anti-aliasing filter they would fold
    // to 7.5 and 6 kHz. Speech-band tones just below the cut-off pass at full level.
    for rate in [48_000, 44_100] {
        for (tone, alias) in [(8_500.0, 7_500.0), (10_000.0, 6_000.0)] {
            let input = sine(tone, rate, 1.0, 0.5, 2);
            let mut conv = AudioConverter::new(rate, 2, 16_000).unwrap();
            let out = pcm(&convert(&mut conv, &input, 4096));
            let steady = &out[800..out.len() - 800];
            assert!(
                rms(steady) < 0.001,
                "{rate} Hz, {tone} Hz: residue RMS {}",
                rms(steady)
            );
            let folded = tone_amplitude(steady, 16_000, alias);
            assert!(
                folded < 0.001,
                "{rate} Hz: {tone} Hz folded to {alias} Hz: {folded}"
            );
        }
        let input = sine(7_000.0, rate, 1.0, 0.5, 2);
        let mut conv = AudioConverter::new(rate, 2, 16_000).unwrap();
        let out = pcm(&convert(&mut conv, &input, 4096));
        let level = tone_amplitude(&out[800..out.len() - 800], 16_000, 7_000.0);
        assert!(
            (level - 0.5).abs() < 0.01,
            "{rate} Hz: 7 kHz passes at {level}"
        );
    }
}

#[test]
fn chunks_are_exactly_100ms_except_the_tail() {
    let input = sine(300.0, 48_000, 1.234, 0.3, 2);
    let mut conv = AudioConverter::new(48_000, 2, 16_000).unwrap();
    let chunks = convert(&mut conv, &input, 777);
    let total: usize = chunks.iter().map(|c| c.len() / 2).sum();
    assert_eq!(total, 19_744, "floor(1.234 s * 16 kHz)");
    let (tail, full) = chunks.split_last().unwrap();
    assert!(full.iter().all(|c| c.len() == 3200), "1600 samples each");
    assert_eq!(tail.len() / 2, 19_744 % 1600);
}

#[test]
fn chunk_duration_is_configurable() {
    let mut conv = AudioConverter::new(16_000, 1, 16_000)
        .unwrap()
        .with_chunk_duration(Duration::from_millis(50))
        .unwrap();
    let chunks: Vec<_> = conv.push_i16(&[0; 2000]).collect();
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|c| c.len() == 1600), "800 samples each");
    let tail: Vec<_> = conv.finish().collect();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].len(), 800, "the remaining 400 samples");
}

#[test]
fn sixteen_khz_mono_i16_passes_through_bit_exact() {
    let input: Vec<i16> = (0..16_000)
        .map(|i| ((i * 37) % 65_536 - 32_768) as i16)
        .collect();
    let mut conv = AudioConverter::new(16_000, 1, 16_000).unwrap();
    let mut chunks: Vec<_> = conv.push_i16(&input).collect();
    chunks.extend(conv.finish());
    assert_eq!(pcm(&chunks), input);
}

#[test]
fn integer_formats_convert_like_their_float_equivalent() {
    // The same half-scale square wave in four formats gives the same output.
    let frames = 4800;
    let f: Vec<f32> = (0..frames)
        .map(|i| if i % 96 < 48 { 0.5 } else { -0.5 })
        .collect();
    let i16s: Vec<i16> = f.iter().map(|&x| (x * 32768.0) as i16).collect();
    let u16s: Vec<u16> = i16s
        .iter()
        .map(|&x| (i32::from(x) + 32768) as u16)
        .collect();
    let i32s: Vec<i32> = f
        .iter()
        .map(|&x| (f64::from(x) * 2_147_483_648.0) as i32)
        .collect();
    let run = |push: &dyn Fn(&mut AudioConverter) -> Vec<AudioChunk>| {
        let mut conv = AudioConverter::new(48_000, 1, 16_000).unwrap();
        let mut chunks = push(&mut conv);
        chunks.extend(conv.finish());
        pcm(&chunks)
    };
    let reference = run(&|c| c.push_interleaved_f32(&f).collect());
    assert_eq!(run(&|c| c.push_i16(&i16s).collect()), reference);
    assert_eq!(run(&|c| c.push(&u16s).collect()), reference);
    assert_eq!(run(&|c| c.push(&i32s).collect()), reference);
}

#[test]
fn downmix_averages_channels() {
    // Left 0.5, right -0.5 cancel; a signal present on one channel of four comes out at 1/4.
    let mut conv = AudioConverter::new(16_000, 2, 16_000).unwrap();
    let mut chunks: Vec<_> = conv
        .push_interleaved_f32(&[0.5, -0.5].repeat(800))
        .collect();
    chunks.extend(conv.finish());
    assert!(pcm(&chunks).iter().all(|&s| s == 0));

    let mut conv = AudioConverter::new(16_000, 4, 16_000).unwrap();
    let mut chunks: Vec<_> = conv
        .push_interleaved_f32(&[0.8, 0.0, 0.0, 0.0].repeat(800))
        .collect();
    chunks.extend(conv.finish());
    assert!(
        pcm(&chunks).iter().all(|&s| s == 6554),
        "0.2 * 32768 rounded"
    );
}

#[test]
fn long_runs_do_not_drift() {
    // Two minutes of 44.1 kHz audio pushed in irregular pieces: the sample count is exact and
    // the last seconds are still in phase with an ideal 16 kHz sine.
    let rate = 44_100u32;
    let seconds = 120u64;
    let freq = 250.0;
    let mut conv = AudioConverter::new(rate, 1, 16_000).unwrap();
    let pieces = [441usize, 1000, 17, 4410, 2048];
    let mut n: u64 = 0;
    let total = u64::from(rate) * seconds;
    let mut out_len: u64 = 0;
    let mut last_chunks: Vec<AudioChunk> = Vec::new();
    let mut block = Vec::new();
    let mut i = 0;
    while n < total {
        let len = pieces[i % pieces.len()].min((total - n) as usize);
        i += 1;
        block.clear();
        block.extend(
            (n..n + len as u64)
                .map(|k| (0.5 * (TAU * freq * k as f64 / f64::from(rate)).sin()) as f32),
        );
        n += len as u64;
        for c in conv.push_interleaved_f32(&block) {
            out_len += c.len() as u64 / 2;
            last_chunks.push(c);
            if last_chunks.len() > 20 {
                last_chunks.remove(0);
            }
        }
    }
    assert_eq!(conv.frames_in(), total);
    for c in conv.finish() {
        out_len += c.len() as u64 / 2;
        last_chunks.push(c);
    }
    assert_eq!(out_len, 16_000 * seconds, "no sample gained or lost");

    // Compare one second, ending 0.2 s before the end, with the ideal sine at those times.
    let tail = pcm(&last_chunks);
    let tail_start = out_len - tail.len() as u64;
    let from = tail.len() - 16_000 - 3200;
    let worst = tail[from..from + 16_000]
        .iter()
        .enumerate()
        .map(|(j, &s)| {
            let t = (tail_start + (from + j) as u64) as f64 / 16_000.0;
            (f64::from(s) / 32768.0 - 0.5 * (TAU * freq * t).sin()).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst < 0.01, "phase drifted: deviation {worst}");
}

#[test]
fn level_meter_reads_rms() {
    let input = sine(1000.0, 16_000, 0.1, 0.5, 1);
    let mut conv = AudioConverter::new(16_000, 1, 16_000).unwrap();
    let chunk = conv.push_interleaved_f32(&input).next().unwrap();
    let level = rms_level(&chunk);
    assert!((level - 0.3536).abs() < 0.001, "{level}");
}

#[test]
fn nan_infinite_and_out_of_range_floats_are_clipped_not_fed_to_the_resampler() {
    // A broken device or float WAV: NaN made the resampler's FFT panic (found by a property
    // test on WAV headers). NaN is silence; ±inf and values beyond full scale are clipped.
    for (rate, channels) in [(48_000, 2), (44_100, 1), (39_456, 1), (16_000, 1)] {
        let mut conv = AudioConverter::new(rate, channels, 16_000).unwrap();
        let mut input = sine(440.0, rate, 0.5, 0.5, channels as usize);
        for (i, s) in input.iter_mut().enumerate().step_by(97) {
            *s = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3.0e38][i % 4];
        }
        let out = pcm(&convert(&mut conv, &input, 1_000));
        let tail: Vec<AudioChunk> = conv.finish().collect();
        let tail = pcm(&tail);
        assert!(out.len() + tail.len() >= 7_000, "{rate} Hz: {}", out.len());
    }
}
