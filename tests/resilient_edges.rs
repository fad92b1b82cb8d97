//! Edges of the resilient session: its end (terminate, a dropped consumer, a failure during
//! terminate), decode errors, and audio given faster than real time.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, Faults};
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession};
use assemblyai_streaming::{AudioChunk, ConnectionParams, Error, TurnEvent};
use futures::{SinkExt, StreamExt};
use support::emulator::bundled_sample;
use support::faults::client_for;
use support::resilient::*;
use support::server::{begin, close, read_log_until_terminate, serve_reporting, termination, turn};

#[tokio::test(start_paused = true)]
async fn dropping_the_event_stream_ends_the_session() {
    let emu = Emulator::builder().start().await.unwrap();
    let session = ResilientSession::builder(client_for(&emu), ConnectionParams::new())
        .connect()
        .await
        .unwrap();
    let (mut sink, events) = session.split();
    drop(events);
    // The sink fails within a few chunks: nothing streams on for nobody.
    let mut sent = 0;
    let result = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            sink.send(AudioChunk::from_pcm16(&[0; 1600])).await?;
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the sink fails instead of accepting audio for ever");
    assert!(
        matches!(result, Err::<(), _>(Error::SessionClosed)),
        "{result:?}"
    );
    assert!(sent < 5, "{sent}");
}

#[tokio::test(start_paused = true)]
async fn audio_given_faster_than_real_time_is_paced_to_it() {
    // The whole sample at once: a plain session would be closed with 3007 (the emulator allows
    // 1 s ahead); the resilient one sends it at real time.
    let (chunks, script) = bundled_sample();
    let emu = support::emulator::emulator_with_script(script.clone()).await;
    let session =
        ResilientSession::builder(client_for(&emu), ConnectionParams::new().format_turns(true))
            .connect()
            .await
            .unwrap();
    let (mut sink, events) = session.split();
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        sink.send_all(&mut futures::stream::iter(chunks.into_iter().map(Ok)))
            .await
            .unwrap();
        sink.close().await.unwrap();
    });
    let out = collect(events, Duration::from_secs(60)).await;
    assert!(out.error.is_none() && out.terminated(), "{:?}", out.error);
    let texts: Vec<String> = script.turns.iter().map(|t| t.text.clone()).collect();
    assert_eq!(out.transcripts(), texts);
    // 12 s of audio, less the 0.5 s burst.
    assert!(
        started.elapsed() >= Duration::from_millis(11_500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn terminate_returns_termination_after_a_reconnect() {
    let (chunks, _) = bundled_sample();
    let emu = sample_emulator(drop_first_session_after(Duration::from_secs(5))).await;
    let session = ResilientSession::builder(client_for(&emu), ConnectionParams::new())
        .backoff(Duration::from_millis(50), Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let handle = session.handle();
    let (mut sink, events) = session.split();
    let reader = tokio::spawn(collect(events, Duration::from_secs(60)));
    for chunk in chunks {
        sink.send(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let termination = handle.terminate().await.expect("Termination");
    assert!(termination.audio_duration_seconds.is_some());
    let out = reader.await.unwrap();
    assert!(out.terminated() && out.error.is_none(), "{out:#?}");
    assert_eq!(out.reconnects().len(), 1);
    assert_eq!(out.finals().len(), 3);
}

// Real time: on the paused clock the runtime was seen to jump the 5 s terminate timeout
// while the scripted server's `Termination` was in flight on loopback (this test takes ~1 s).
#[tokio::test]
async fn a_connection_lost_during_terminate_is_replaced_and_the_transcript_finished() {
    // Connection 1 takes the audio and drops at `Terminate` without answering; connection 2
    // gets the replay and the `Terminate` again, and finishes.
    // Each connection reports what it was sent.
    let (server, mut reports) = serve_reporting(|mut ws, seen| async move {
        ws.send(begin()).await.unwrap();
        let log = read_log_until_terminate(&mut ws).await;
        if seen.connection == 0 {
            return log; // TCP drop instead of Termination
        }
        ws.send(turn(0, true, true, "all of it")).await.unwrap();
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
        log
    })
    .await;
    let session = resilient_session_on(&server.url).await;
    let (sink, events) = session.split();
    // 1 s of audio in 100 ms chunks, then close (Terminate).
    let chunks = vec![AudioChunk::from_pcm16(&[1; 1600]); 10];
    let feeder = feed_paced(sink, chunks, 32);
    let out = collect(events, Duration::from_secs(30)).await;
    feeder.await.unwrap();
    assert!(out.terminated() && out.error.is_none(), "{out:#?}");
    assert_eq!(out.transcripts(), ["all of it"]);
    assert_eq!(out.reconnects().len(), 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    let seen = [reports.next().await, reports.next().await];
    // Both connections got the whole second of audio (no final covered any of it), then
    // Terminate.
    for conn in &seen {
        let audio: usize = conn
            .iter()
            .filter_map(|e| e.strip_prefix("audio ")?.parse::<usize>().ok())
            .sum();
        assert_eq!(audio, 32_000, "{conn:?}");
        assert!(conn.last().unwrap().contains("\"Terminate\""));
    }
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_cannot_be_decoded_is_reported_and_the_stream_goes_on() {
    let (chunks, script) = bundled_sample();
    let emu = Emulator::builder()
        .script(script)
        .faults(Faults {
            malformed_frame: true,
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let session = ResilientSession::builder(client_for(&emu), ConnectionParams::new())
        .connect()
        .await
        .unwrap();
    let (sink, mut events) = session.split();
    let _feeder = feed_paced(sink, chunks, 32);
    let mut decode_errors = 0;
    let mut finals = 0;
    let mut terminated = false;
    while let Some(item) = events.next().await {
        match item {
            Err(Error::Decode { .. }) => decode_errors += 1,
            Err(e) => panic!("{e:?}"),
            Ok(ResilientEvent::Turn(TurnEvent::Final(_))) => finals += 1,
            Ok(ResilientEvent::Turn(TurnEvent::Termination(_))) => terminated = true,
            Ok(ResilientEvent::Reconnected { .. }) => panic!("a decode error is no failure"),
            Ok(_) => {}
        }
    }
    assert_eq!((decode_errors, finals, terminated), (1, 3, true));
}
