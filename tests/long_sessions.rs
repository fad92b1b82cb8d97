//! Long sessions in compressed time. Each test runs on tokio's paused clock with the emulator
//! (or the scripted server) in the same runtime as the client: whenever every task is waiting,
//! tokio jumps to the next timer, so hours of session pass in about a second of CPU.
//!
//! Real sockets and a paused clock are compatible here because every peer is in this process
//! on loopback: a write lands in the peer's socket buffer during the `send` syscall, and tokio
//! polls for I/O readiness before it auto-advances the clock, so no timer fires "early" while
//! bytes are in flight. (A remote peer would break that assumption.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, INACTIVITY_CLOSE_CODE, Script};
use assemblyai_streaming::{
    AudioChunk, CloseKind, ConnectionParams, Encoding, Error, StreamingClient, TurnEvent,
};
use futures::{SinkExt, StreamExt};
use support::faults::*;
use support::server::*;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn three_hours_of_real_time_audio_run_into_the_3008_cap() {
    let emu = support::emulator::emulator_with_script(Script::from_texts(["early turn"])).await;
    let session = open_session_with(
        client_for(&emu).frame_duration(Duration::from_secs(1)),
        // μ-law at 8 kHz: 8 KB per second of audio keeps 3 hours at ~86 MB of socket traffic.
        ConnectionParams::new()
            .encoding(Encoding::PcmMulaw)
            .sample_rate(8_000),
    )
    .await;
    let opened = Instant::now();
    let (mut sink, events) = session.split();
    let producer = tokio::spawn(async move {
        // One utterance in the first seconds, then μ-law silence, one second per second.
        let mut audio = vec![0xFFu8; 8_000];
        audio.extend(tone_mulaw(800));
        audio.extend(vec![0xFFu8; 8_000 * 3]);
        let mut ticks = tokio::time::interval_at(Instant::now(), Duration::from_secs(1));
        let mut seconds = 0u64;
        loop {
            ticks.tick().await;
            let at = (seconds as usize * 8_000).min(audio.len());
            let mut second: Vec<u8> = audio[at..(at + 8_000).min(audio.len())].to_vec();
            second.resize(8_000, 0xFF);
            if sink.send(AudioChunk::from_bytes(second)).await.is_err() {
                return seconds;
            }
            seconds += 1;
        }
    });
    let mut ended = drain(events, 4 * HOUR).await;
    let lasted = opened.elapsed();
    let seconds_sent = producer.await.unwrap();
    let err = ended.take_error();
    match &err {
        Error::Closed { code, kind, reason } => assert_eq!(
            (*code, *kind, reason.as_str()),
            (
                3008,
                CloseKind::SessionExpired,
                "Session Expired: Maximum session duration exceeded"
            )
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(ended.finals(), [(0, "early turn".to_string())]);
    // The cap counts from Begin: 3 h (plus the close handshake, a few ms of virtual time).
    assert!(
        lasted >= 3 * HOUR && lasted < 3 * HOUR + Duration::from_secs(3),
        "{lasted:?}"
    );
    assert!((10_795..=10_805).contains(&seconds_sent), "{seconds_sent}");
    println!("3 h session: {seconds_sent} s of audio sent, ended after {lasted:?}: {err}");
}

/// `ms` of a 300 Hz tone, μ-law encoded (a loud, constant level).
fn tone_mulaw(ms: usize) -> Vec<u8> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f64 / 8_000.0;
            linear_to_mulaw((8000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16)
        })
        .collect()
}

/// G.711 μ-law encoder (the standard bias-and-segment algorithm).
fn linear_to_mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - (s.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

#[tokio::test(start_paused = true)]
async fn a_token_cap_of_60_seconds_is_a_3008_after_60_seconds() {
    let emu = Emulator::builder().start().await.unwrap();
    let token = client_for(&emu)
        .build()
        .unwrap()
        .create_temporary_token(600, Some(60))
        .await
        .unwrap();
    let session = open_session(
        StreamingClient::builder()
            .token(token)
            .base_url(emu.ws_url())
            .keep_alive_interval(Some(Duration::from_secs(10))),
    )
    .await;
    let opened = Instant::now();
    let mut ended = drain(session, HOUR).await;
    let err = ended.take_error();
    assert_eq!(err.code(), Some(3008), "{err:?}");
    assert_eq!(err.kind(), "session_expired");
    assert!(err.is_retryable());
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_secs(60) && lasted < Duration::from_secs(62),
        "{lasted:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alives_carry_a_session_through_an_hour_of_silence() {
    // The emulator closes a session idle for inactivity_timeout (60 s here). A KeepAlive every
    // 30 s of idleness keeps it open for a silent hour, after which it terminates normally.
    let emu = Emulator::builder().start().await.unwrap();
    let mut session = open_session_with(
        client_for(&emu).keep_alive_interval(Some(Duration::from_secs(30))),
        ConnectionParams::new().inactivity_timeout(60),
    )
    .await;
    tokio::time::sleep(HOUR).await;
    let termination = session.terminate().await.expect("still open after an hour");
    let ended = drain(session, Duration::from_secs(10)).await;
    assert!(ended.error.is_none() && ended.terminated(), "{ended:?}");
    // Termination counts whole seconds of session.
    assert_eq!(termination.session_duration_seconds, Some(3600.0));

    // Without keep-alives the same silence ends the session after 60 s, with the emulator's
    // inactivity close.
    let session = open_session_with(
        client_for(&emu),
        ConnectionParams::new().inactivity_timeout(60),
    )
    .await;
    let opened = Instant::now();
    let mut ended = drain(session, HOUR).await;
    let err = ended.take_error();
    assert_eq!(err.code(), Some(INACTIVITY_CLOSE_CODE));
    assert!(
        opened.elapsed() >= Duration::from_secs(60) && opened.elapsed() < Duration::from_secs(62)
    );
}

#[tokio::test(start_paused = true)]
async fn an_hour_of_silence_sends_exactly_one_keep_alive_per_idle_interval() {
    let keep_alives = Arc::new(AtomicUsize::new(0));
    let counter = keep_alives.clone();
    let server = serve_script(move |mut ws, _| {
        let counter = counter.clone();
        async move {
            ws.send(begin()).await.unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    if t.as_str().contains("KeepAlive") {
                        counter.fetch_add(1, Ordering::SeqCst);
                    } else if t.as_str().contains("Terminate") {
                        break;
                    }
                }
            }
            ws.send(termination()).await.unwrap();
            close(&mut ws, 1000, "").await;
        }
    })
    .await;
    let mut session = open_session(
        default_client(&server.url).keep_alive_interval(Some(Duration::from_secs(30))),
    )
    .await;
    // 15 s past the hour, so the 120th KeepAlive (at 3600 s) is not a tie with the wake-up.
    tokio::time::sleep(HOUR + Duration::from_secs(15)).await;
    assert_eq!(keep_alives.load(Ordering::SeqCst), 120);
    // Audio resets the idle interval: 10 s of audio, one chunk a second, sends no KeepAlive.
    for _ in 0..10 {
        session
            .send(AudioChunk::from_pcm16(&[0; 16_000]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(keep_alives.load(Ordering::SeqCst), 120);
    session.terminate().await.unwrap();
    assert!(matches!(
        drain(session, Duration::from_secs(10)).await.events.last(),
        Some(TurnEvent::Termination(_))
    ));
}
