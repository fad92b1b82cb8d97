//! Microphone conversion cost: 48 kHz f32 stereo (a typical sound card) → 16 kHz s16 mono in
//! 100 ms chunks, fed in 10 ms callback-sized blocks. One iteration converts one second of
//! audio, so the real-time factor on one core is `1 s / time per iteration`
//! (target: ≥ 1000×, i.e. ≤ 1 ms per iteration).
//!
//! Run: `cargo bench --bench resample`

use std::f64::consts::TAU;
use std::hint::black_box;

use assemblyai_streaming::audio::AudioConverter;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn one_second(rate: u32) -> Vec<f32> {
    (0..rate as usize)
        .flat_map(|n| {
            let t = n as f64 / f64::from(rate);
            // Speech-band tone plus a component above 8 kHz that the filter must remove.
            let v = (0.3 * (TAU * 440.0 * t).sin() + 0.1 * (TAU * 11_000.0 * t).sin()) as f32;
            [v, -v * 0.5]
        })
        .collect()
}

fn convert(c: &mut Criterion, rate: u32) {
    let input = one_second(rate);
    let block = (rate as usize / 100) * 2; // 10 ms of stereo samples
    let mut conv = AudioConverter::new(rate, 2, 16_000).expect("valid rates");
    let mut group = c.benchmark_group("resample");
    group.throughput(Throughput::Elements(u64::from(rate)));
    group.bench_function(
        format!("{}k_f32_stereo_to_16k_s16_mono_1s", rate / 1000),
        |b| {
            b.iter(|| {
                let mut bytes = 0;
                for piece in input.chunks(block) {
                    for chunk in conv.push_interleaved_f32(black_box(piece)) {
                        bytes += chunk.len();
                    }
                }
                black_box(bytes)
            })
        },
    );
    group.finish();
}

fn benches(c: &mut Criterion) {
    convert(c, 48_000);
    convert(c, 44_100);
}

criterion_group!(resample, benches);
criterion_main!(resample);
