//! A resilient session through failed connections, on the emulator with fault injection and a
//! paused clock (see `long_sessions.rs` for why real loopback sockets and a paused
//! clock work together): the sample is streamed at real time, the connection fails in the
//! middle of the second sentence, and the transcript must come out whole, once, on one
//! timeline — or the stream must end with the error when a new connection cannot help.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use assemblyai_streaming::ConnectionParams;
use assemblyai_streaming::emulator::{Emulator, EmulatorHandle, Faults};
use assemblyai_streaming::protocol::UpdateConfiguration;
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession, ResilientSessionBuilder};
use futures::{SinkExt, StreamExt};
use support::emulator::bundled_sample;
use support::faults::client_for;
use support::resilient::*;
use support::server::{begin, close, read_log_until_terminate, serve_reporting, termination};
use tokio::time::Instant;

/// In the middle of "Today we are testing real-time speech recognition." (4.6–7.2 s).
const MID_SECOND_SENTENCE: Duration = Duration::from_millis(5_800);

fn resilient(emu: &EmulatorHandle) -> ResilientSessionBuilder {
    ResilientSession::builder(client_for(emu), ConnectionParams::new().format_turns(true))
        .backoff(Duration::from_millis(50), Duration::from_secs(1))
}

/// Streams the sample at real time through `builder` and collects the whole stream.
async fn stream_sample(builder: ResilientSessionBuilder) -> Collected {
    let (chunks, _) = bundled_sample();
    let session = builder.connect().await.unwrap();
    let (sink, events) = session.split();
    let feeder = feed_paced(sink, chunks, 32);
    let collected = collect(events, Duration::from_secs(120)).await;
    tokio::time::timeout(Duration::from_secs(10), feeder)
        .await
        .expect("the feeder finishes")
        .unwrap();
    collected
}

/// The transcript of the same audio over one healthy connection.
async fn baseline() -> Collected {
    let emu = sample_emulator(Faults::none()).await;
    let out = stream_sample(resilient(&emu)).await;
    assert!(out.terminated() && out.reconnects().is_empty(), "{out:#?}");
    out
}

/// Every scripted word exactly once, in order, at (nearly) the times of an uninterrupted run.
fn assert_same_transcript(out: &Collected, baseline: &Collected) {
    out.assert_one_timeline();
    assert_eq!(out.transcripts(), baseline.transcripts());
    let script = bundled_sample().1;
    let scripted: Vec<String> = script.turns.iter().map(|t| t.text.clone()).collect();
    assert_eq!(
        out.transcripts(),
        scripted,
        "every scripted turn once, whole"
    );
    let words = |c: &Collected| -> Vec<(String, i64, i64)> {
        c.finals()
            .iter()
            .flat_map(|t| t.words.iter().map(|w| (w.text.clone(), w.start, w.end)))
            .collect()
    };
    let (got, want) = (words(out), words(baseline));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert!(
            (g.1 - w.1).abs() <= 200 && (g.2 - w.2).abs() <= 200,
            "{g:?} vs uninterrupted {w:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_tcp_drop_mid_second_sentence_loses_and_repeats_no_word() {
    let baseline = baseline().await;
    let emu = sample_emulator(drop_first_session_after(MID_SECOND_SENTENCE)).await;
    let out = stream_sample(resilient(&emu)).await;
    assert!(out.error.is_none() && out.terminated(), "{out:#?}");
    assert_same_transcript(&out, &baseline);
    assert_eq!(out.reconnects().len(), 1, "one reconnect event");
    assert!(out.gaps().is_empty());
    let replayed = out.replays()[0];
    // From the end of the first sentence's last word (3.1 s) to the drop (5.8 s).
    assert!(
        replayed >= Duration::from_millis(2_500) && replayed <= Duration::from_millis(2_900),
        "{replayed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn server_closes_that_mean_try_again_reconnect() {
    let baseline = baseline().await;
    // 1012 service restart, 1011 internal error, 1001 going away, 1013 try later, 3005 server
    // error: each mid-stream, once.
    for code in [1012, 1011, 1001, 1013, 3005] {
        let emu = sample_emulator(Faults {
            close_after: Some((MID_SECOND_SENTENCE, code)),
            faulty_sessions: Some(1),
            ..Faults::default()
        })
        .await;
        let out = stream_sample(resilient(&emu)).await;
        assert!(out.error.is_none() && out.terminated(), "{code}: {out:#?}");
        assert_same_transcript(&out, &baseline);
        assert_eq!(out.reconnects(), [(1, Some(code))], "{code}");
    }
}

#[tokio::test(start_paused = true)]
async fn closes_a_new_connection_cannot_fix_end_the_stream_without_a_retry() {
    // 1008 credentials, 3006 invalid message, 3007 audio rule, 3009 too many sessions.
    for code in [1008, 3006, 3007, 3009] {
        let emu = sample_emulator(Faults {
            close_after: Some((MID_SECOND_SENTENCE, code)),
            ..Faults::default()
        })
        .await;
        let started = Instant::now();
        let out = stream_sample(resilient(&emu)).await;
        let err = out.error.as_ref().expect("ends with the error");
        assert_eq!(err.code(), Some(code), "{err:?}");
        assert!(out.reconnects().is_empty(), "{code}: no retry: {out:#?}");
        // The first sentence was final before the close; nothing after it.
        assert_eq!(out.finals().len(), 1, "{code}");
        assert!(started.elapsed() < MID_SECOND_SENTENCE + Duration::from_secs(3));
    }
}

#[tokio::test(start_paused = true)]
async fn three_drops_in_a_row_past_the_budget_end_with_one_error() {
    // Every session drops after 1 s; two reconnects allowed.
    let emu = sample_emulator(Faults {
        drop_after: Some(Duration::from_secs(1)),
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    let out = stream_sample(resilient(&emu).max_reconnects(2)).await;
    let err = out.error.as_ref().expect("one final error");
    assert_eq!(err.kind(), "connection_lost", "{err:?}");
    assert_eq!(
        out.reconnects().iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(!out.terminated());
    // Three sessions of 1 s and two backoffs of at most 50 ms and 100 ms.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_that_stays_down_ends_the_stream_with_the_connect_error() {
    let emu = sample_emulator(Faults {
        drop_after: Some(MID_SECOND_SENTENCE),
        ..Faults::default()
    })
    .await;
    let (chunks, _) = bundled_sample();
    let session = resilient(&emu).max_reconnects(3).connect().await.unwrap();
    let (sink, events) = session.split();
    let feeder = feed_paced(sink, chunks, 32);
    // The service goes away for good just before the drop.
    tokio::time::sleep(MID_SECOND_SENTENCE - Duration::from_millis(100)).await;
    emu.shutdown().await;
    let out = collect(events, Duration::from_secs(60)).await;
    let err = out.error.as_ref().expect("one final error");
    assert!(
        matches!(
            err.kind().as_str(),
            "connect" | "connection_lost" | "timeout"
        ),
        "{err:?}"
    );
    assert!(out.reconnects().is_empty());
    // The sink fails once the session is over: the feeder stops early.
    let sent = tokio::time::timeout(Duration::from_secs(10), feeder)
        .await
        .unwrap()
        .unwrap();
    assert!(sent < bundled_sample().0.len(), "{sent}");
}

#[tokio::test(start_paused = true)]
async fn a_replay_buffer_smaller_than_the_lost_audio_is_an_audio_gap() {
    let emu = sample_emulator(drop_first_session_after(MID_SECOND_SENTENCE)).await;
    // 1 s of buffer, no backoff: at the reconnect (5.8 s) the buffer holds 4.8–5.8 s, and
    // 3.2–4.8 s (from the replay start after the first final, to the buffer) cannot be
    // replayed.
    let out = stream_sample(
        resilient(&emu)
            .replay_buffer(Duration::from_secs(1))
            .backoff(Duration::ZERO, Duration::ZERO),
    )
    .await;
    assert!(out.error.is_none() && out.terminated(), "{out:#?}");
    out.assert_one_timeline();
    // The first sentence ends a little after 3 s (the emulator's word timing decides where).
    let first_final_end = out.finals()[0].words.last().unwrap().end;
    assert!(
        (3_000..3_500).contains(&first_final_end),
        "{first_final_end}"
    );
    let gaps = out.gaps();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let (start, duration) = gaps[0];
    assert_eq!(
        start,
        Duration::from_millis(first_final_end as u64 + 100),
        "the gap starts where a replay would: 100 ms (the guard) after the last final's end"
    );
    let end = start + duration;
    assert!(
        end >= Duration::from_millis(4_700) && end <= Duration::from_millis(4_900),
        "the gap ends where the buffer starts, 1 s before the reconnect: {end:?}"
    );
    // The gap comes before the reconnect event, which replays the whole buffer.
    let gap_at = out
        .events
        .iter()
        .position(|e| matches!(e, ResilientEvent::AudioGap { .. }));
    let reconnect_at = out
        .events
        .iter()
        .position(|e| matches!(e, ResilientEvent::Reconnected { .. }));
    assert!(gap_at < reconnect_at);
    let replayed = out.replays()[0];
    assert_eq!(replayed, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn settings_changed_mid_stream_carry_over_to_the_next_connection() {
    // A scripted server: the first connection takes audio and drops after 2 s; the second
    // records what it is sent first, then finishes normally.
    let (server, mut reports) = serve_reporting(|mut ws, seen| async move {
        ws.send(begin()).await.unwrap();
        if seen.connection == 0 {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            return Vec::new(); // TCP drop
        }
        let sent = read_log_until_terminate(&mut ws).await;
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
        sent
    })
    .await;
    let session = resilient_session_on(&server.url).await;
    let handle = session.handle();
    handle
        .update_configuration(UpdateConfiguration {
            max_turn_silence: Some(2000),
            ..Default::default()
        })
        .await
        .unwrap();
    handle
        .update_configuration(UpdateConfiguration {
            max_turn_silence: Some(3000),
            vad_threshold: Some(0.6),
            ..Default::default()
        })
        .await
        .unwrap();
    let (sink, events) = session.split();
    let chunks = vec![assemblyai_streaming::AudioChunk::from_pcm16(&[0; 1600]); 40];
    let feeder = feed_paced(sink, chunks, 32);
    let out = collect(events, Duration::from_secs(30)).await;
    feeder.await.unwrap();
    assert!(out.terminated(), "{out:#?}");
    assert_eq!(out.reconnects().len(), 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    let _first = reports.next().await;
    let second = reports.next().await;
    // The second connection gets the settings (later values win) before any audio.
    let update: serde_json::Value = serde_json::from_str(&second[0]).unwrap();
    assert_eq!(update["type"], "UpdateConfiguration");
    assert_eq!(update["max_turn_silence"], 3000);
    assert_eq!(update["vad_threshold"], 0.6);
    assert!(second[1].starts_with("audio "), "{second:?}");
}

#[tokio::test(start_paused = true)]
async fn after_a_replay_the_session_catches_up_by_skipping_silence() {
    // An utterance at 1 s, 40 s of silence, an utterance at 41 s; the connection drops at 30 s.
    // The replay (from the first final's end, ~28 s of silence) keeps 1.5 s of the pause and
    // skips the rest, so the second utterance is transcribed live, not ~28 s late.
    let emu = Emulator::builder()
        .script(assemblyai_streaming::emulator::Script::from_texts([
            "First words.",
            "Second words.",
        ]))
        .script_across_sessions(true)
        .faults(drop_first_session_after(Duration::from_secs(30)))
        .start()
        .await
        .unwrap();
    let session =
        ResilientSession::builder(client_for(&emu), ConnectionParams::new().format_turns(true))
            .backoff(Duration::from_millis(50), Duration::from_secs(1))
            .connect()
            .await
            .unwrap();
    let (sink, mut events) = session.split();
    let audio = [
        pcm(16_000, 1_000, false),
        pcm(16_000, 800, true),
        pcm(16_000, 39_200, false),
        pcm(16_000, 800, true),
        pcm(16_000, 3_200, false),
    ]
    .concat();
    let chunks = audio
        .chunks(3_200)
        .map(|c| assemblyai_streaming::AudioChunk::from_bytes(c.to_vec()))
        .collect();
    let started = Instant::now();
    let feeder = feed_paced(sink, chunks, 32);
    let mut finals = Vec::new();
    let mut reconnects = 0;
    while let Some(event) = events.next().await {
        match event.unwrap() {
            ResilientEvent::Turn(assemblyai_streaming::TurnEvent::Final(t)) => {
                finals.push((t.transcript.clone(), t.words[0].start, started.elapsed()))
            }
            ResilientEvent::Reconnected { .. } => reconnects += 1,
            _ => {}
        }
    }
    feeder.await.unwrap();
    assert_eq!(reconnects, 1);
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert_eq!(finals[1].0, "Second words.");
    // Spoken at 41 s of the caller's audio, and reported there.
    assert!((finals[1].1 - 41_000).abs() <= 300, "{finals:?}");
    // Delivered within a few seconds of being spoken (without catching up: ~69 s).
    assert!(finals[1].2 < Duration::from_secs(45), "{finals:?}");
}
