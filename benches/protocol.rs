//! Cost of the per-message work every session does: decoding server messages and encoding
//! audio and control messages.
//!
//! Run: `cargo bench --bench protocol`

use std::hint::black_box;

use assemblyai_streaming::AudioChunk;
use assemblyai_streaming::protocol::{ClientMessage, ServerMessage, UpdateConfiguration};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A Universal-Streaming `Turn` as the service sends it, with `n` words.
fn turn_json(n: usize) -> String {
    let words: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"start": {}, "end": {}, "text": "word{i}", "confidence": 0.{:06}, "word_is_final": {}}}"#,
                i * 320,
                i * 320 + 240,
                876_543 + i,
                i + 1 < n
            )
        })
        .collect();
    let transcript: Vec<String> = (0..n.saturating_sub(1))
        .map(|i| format!("word{i}"))
        .collect();
    format!(
        r#"{{"turn_order": 3, "turn_is_formatted": false, "end_of_turn": false, "transcript": "{}", "end_of_turn_confidence": 0.017454, "words": [{}], "utterance": "", "type": "Turn"}}"#,
        transcript.join(" "),
        words.join(", ")
    )
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for n in [10, 40] {
        let text = turn_json(n);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("turn_{n}_words"), |b| {
            b.iter(|| ServerMessage::from_json(black_box(&text)).unwrap())
        });
    }
    let begin =
        r#"{"type":"Begin","id":"de5d9927-73a6-4be8-b52d-b4c07be37e6b","expires_at":1759796682}"#;
    group.bench_function("begin", |b| {
        b.iter(|| ServerMessage::from_json(black_box(begin)).unwrap())
    });
    let unknown = r#"{"type":"SomethingNew","payload":{"a":[1,2,3],"b":"text"}}"#;
    group.bench_function("unknown_type", |b| {
        b.iter(|| ServerMessage::from_json(black_box(unknown)).unwrap())
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let samples: Vec<i16> = (0..800).map(|i| ((i * 37) % 2000) as i16 - 1000).collect();
    group.throughput(Throughput::Bytes(1600));
    group.bench_function("pcm16_50ms_chunk", |b| {
        b.iter(|| AudioChunk::from_pcm16(black_box(&samples)))
    });
    let update = ClientMessage::UpdateConfiguration(UpdateConfiguration {
        max_turn_silence: Some(2000),
        keyterms_prompt: Some(vec!["AssemblyAI".into(), "Universal".into()]),
        ..Default::default()
    });
    group.bench_function("update_configuration", |b| {
        b.iter(|| black_box(&update).to_json())
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
