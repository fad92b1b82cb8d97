//! The bundled spoken sample (`examples/assets/sample.wav`) of the `mic_translate` example
//! matches its script: one sentence per turn, separated by pauses long enough to end a turn.
#![cfg(feature = "wav")]

use std::path::Path;

use assemblyai_streaming::audio::read_wav;

fn assets() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/assets"))
}

/// Speech segments as (start, end) seconds: 50 ms windows above a threshold, merged across
/// gaps shorter than `min_gap` seconds.
fn speech_segments(samples: &[i16], rate: f64, min_gap: f64) -> Vec<(f64, f64)> {
    let win = (rate * 0.05) as usize;
    let mut segments: Vec<(f64, f64)> = Vec::new();
    for (i, w) in samples.chunks(win).enumerate() {
        let peak = w.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        if peak < 300 {
            continue;
        }
        let (start, end) = (i as f64 * 0.05, (i + 1) as f64 * 0.05);
        match segments.last_mut() {
            Some(last) if start - last.1 < min_gap => last.1 = end,
            _ => segments.push((start, end)),
        }
    }
    segments
}

#[test]
fn bundled_sample_is_16k_mono_speech_with_one_pause_per_turn() {
    let wav = assets().join("sample.wav");
    assert!(
        std::fs::metadata(&wav).unwrap().len() < 400_000,
        "keep the repo small"
    );
    let (chunks, info) = read_wav(&wav, 16_000).unwrap();
    assert_eq!(
        (info.sample_rate, info.channels, info.bits_per_sample),
        (16_000, 1, 16)
    );
    let seconds = info.duration().as_secs_f64();
    assert!((8.0..=13.0).contains(&seconds), "{seconds} s");

    let script: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(assets().join("sample.script.json")).unwrap(),
    )
    .unwrap();
    let turns = script["turns"].as_array().unwrap();
    for turn in turns {
        assert!(turn["text"].as_str().is_some_and(|t| !t.is_empty()));
        for lang in ["es", "fr", "de"] {
            let t = turn["translations"][lang].as_str();
            assert!(
                t.is_some_and(|t| !t.is_empty()),
                "{lang} translation of {}",
                turn["text"]
            );
        }
    }

    // Pauses of at least 1.2 s split the audio into exactly one segment per scripted turn.
    let samples: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
    let segments = speech_segments(&samples, 16_000.0, 1.2);
    assert_eq!(segments.len(), turns.len(), "speech segments {segments:?}");
}
