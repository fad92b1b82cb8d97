//! No lost data: every byte the sink accepted before `terminate()` reaches the server, in
//! order; every turn the server sent before `Termination` reaches the consumer, also when the
//! consumer is slow and when the server delays its messages.

mod support;

use std::sync::Arc;
use std::time::Duration;

use assemblyai_streaming::emulator::Faults;
use assemblyai_streaming::{AudioChunk, ConnectionParams, Encoding, StreamingClient, TurnEvent};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use support::faults::*;
use support::server::*;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// A scripted server that records every audio byte it receives until `Terminate`.
async fn recording_server() -> (MockServer, Arc<Mutex<Vec<Vec<u8>>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let server = serve(
        |_| None,
        move |mut ws, _| {
            let sink = sink.clone();
            async move {
                ws.send(begin()).await.unwrap();
                let mut frames = Vec::new();
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Binary(b) => frames.push(b.to_vec()),
                        Message::Text(t) if t.as_str().contains("\"Terminate\"") => break,
                        _ => {}
                    }
                }
                sink.lock().await.push(frames.concat());
                ws.send(termination()).await.unwrap();
                close(&mut ws, 1000, "").await;
            }
        },
    )
    .await;
    (server, received)
}

/// Splits `total` bytes into chunk sizes drawn from `seed` (odd sizes included).
fn sizes(total: usize, seed: u64, max: usize) -> Vec<usize> {
    let mut state = seed | 1;
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state as usize % max + 1).min(left);
        out.push(n);
        left -= n;
    }
    out
}

proptest! {
    // Each case is a real loopback session; a few dozen cover the shapes that matter.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_accepted_byte_is_sent_in_order(
        total in 0usize..200_000,
        seed in any::<u64>(),
        max_chunk in prop_oneof![Just(1usize), Just(7), Just(333), Just(3200), Just(40_000)],
        frame_ms in prop_oneof![Just(50u64), Just(100), Just(1000)],
        mulaw in any::<bool>(),
        odd_rate in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (server, received) = recording_server().await;
            // 11 025 and 22 050 Hz make 50 ms a fractional number of samples.
            let (encoding, rate, sample_bytes, silence) = match (mulaw, odd_rate) {
                (true, false) => (Encoding::PcmMulaw, 8_000usize, 1usize, 0xFFu8),
                (true, true) => (Encoding::PcmMulaw, 11_025, 1, 0xFF),
                (false, false) => (Encoding::PcmS16le, 16_000, 2, 0),
                (false, true) => (Encoding::PcmS16le, 22_050, 2, 0),
            };
            let mut session = StreamingClient::builder()
                .api_key(KEY)
                .base_url(&server.url)
                .frame_duration(Duration::from_millis(frame_ms))
                .audio_buffer(2)
                .build()
                .unwrap()
                .connect(ConnectionParams::new().encoding(encoding).sample_rate(rate as u32))
                .await
                .unwrap();
            // Deterministic, position-dependent content, so a reordering or a lost chunk shows.
            let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
            let mut at = 0;
            for n in sizes(total, seed, max_chunk) {
                // `feed` only queues; `terminate()` must still send everything queued first.
                session.feed(AudioChunk::from_bytes(data[at..at + n].to_vec())).await.unwrap();
                at += n;
            }
            session.terminate().await.unwrap();
            let got = received.lock().await.pop().unwrap();
            // Exactly the audio, then silence completing the last sample and padding the tail
            // to 50 ms.
            assert_eq!(&got[..total], &data[..], "audio differs");
            // Frames and the 50 ms minimum are whole samples, rounded up.
            let frame = (rate * frame_ms as usize).div_ceil(1000) * sample_bytes;
            let min = (rate * 50).div_ceil(1000) * sample_bytes;
            let tail = total % frame;
            let expected_len = if tail == 0 {
                total
            } else {
                total - tail + (tail.div_ceil(sample_bytes) * sample_bytes).max(min)
            };
            assert_eq!(got.len(), expected_len, "total {total}, frame {frame}");
            assert!(got[total..].iter().all(|b| *b == silence), "padding is silence");
        });
    }
}

/// `n` turns of tone bursts, blasted through the client to an emulator that allows it, read by
/// a consumer that sleeps `consumer_delay` after every event.
async fn all_turns_arrive(n: usize, faults: Faults, consumer_delay: Duration, event_buffer: usize) {
    let texts: Vec<String> = (0..n).map(|i| format!("turn number {i}")).collect();
    let emu = fast_emulator_with(faults, texts.clone()).await;
    let session = open_session(
        client_for(&emu)
            .event_buffer(event_buffer)
            .terminate_timeout(Duration::from_secs(120)),
    )
    .await;
    let handle = session.handle();
    let (mut sink, mut events) = session.split();
    let audio = tone_turns(n, 600, 1500);
    let producer = tokio::spawn(async move {
        for chunk in chunks(&audio) {
            sink.send(chunk).await.unwrap();
        }
        // Terminate through a handle while the consumer is still behind.
        handle.terminate().await
    });
    let mut finals = Vec::new();
    let mut partials = 0;
    let mut last = None;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(120), events.next())
        .await
        .expect("stream stalled")
    {
        match event.unwrap() {
            TurnEvent::Final(t) => finals.push((t.turn_order, t.transcript)),
            TurnEvent::Partial(_) => partials += 1,
            other => last = Some(other),
        }
        tokio::time::sleep(consumer_delay).await;
    }
    let termination = producer.await.unwrap().expect("terminate() succeeded");
    assert!(matches!(last, Some(TurnEvent::Termination(_))), "{last:?}");
    assert!(termination.audio_duration_seconds.is_some());
    let expected: Vec<(u64, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i as u64, t.clone()))
        .collect();
    assert_eq!(finals, expected);
    println!("{n} finals and {partials} partials delivered");
}

#[tokio::test]
async fn every_turn_reaches_a_slow_consumer() {
    // A 2-event buffer and 5 ms per event: the server is far ahead of the consumer all along.
    all_turns_arrive(12, Faults::none(), Duration::from_millis(5), 2).await;
}

#[tokio::test]
async fn every_turn_arrives_from_a_server_that_delays_its_messages() {
    all_turns_arrive(
        6,
        Faults {
            slow_messages: Some(Duration::from_millis(10)),
            ..Faults::none()
        },
        Duration::from_millis(2),
        2,
    )
    .await;
}

#[tokio::test]
async fn the_last_turn_is_not_lost_when_terminate_ends_it() {
    // The audio ends mid-utterance: the open turn is ended by Terminate, and its final comes
    // before Termination.
    let emu = fast_emulator_with(Faults::none(), ["complete turn", "cut by terminate"]).await;
    let mut session = connect(&emu).await;
    let mut audio = tone_turns(1, 800, 1500);
    audio.extend(&tone_turns(1, 900, 0)[200 * BYTES_PER_MS..]);
    for chunk in chunks(&audio) {
        session.send(chunk).await.unwrap();
    }
    session.terminate().await.unwrap();
    let ended = drain(session, Duration::from_secs(20)).await;
    assert!(ended.terminated() && ended.error.is_none());
    assert_eq!(
        ended.finals(),
        [(0, "complete turn".into()), (1, "cut by terminate".into())]
    );
}
