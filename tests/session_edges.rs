//! Edge cases of the session task found while testing robustness, against the scripted server.

mod support;

use std::time::Duration;

use assemblyai_streaming::{AudioChunk, ConnectionParams, Error, StreamingClient};
use futures::SinkExt;
use support::faults::*;
use support::server::*;

#[tokio::test]
async fn a_drop_noticed_by_a_failed_write_while_the_consumer_is_behind_is_still_an_error() {
    // The server sends 20 finals, then closes TCP without a close frame. The client keeps
    // sending audio, so it learns of the drop from a failed write while its event buffer is
    // full (the consumer is not reading). The stream must still end with an error after every
    // final that was received, never silently.
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        for i in 0..20 {
            ws.send(turn(i, true, false, &format!("turn {i}")))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(ws);
    })
    .await;
    let session = open_session(default_client(&server.url).event_buffer(1)).await;
    let (mut sink, events) = session.split();
    for _ in 0..30 {
        if sink.send(AudioChunk::from_pcm16(&[0; 1600])).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The consumer comes back well after the write failed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ended = drain(events, Duration::from_secs(10)).await;
    println!("{} finals, end: {:?}", ended.finals().len(), ended.error);
    let err = ended.take_error();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    assert_eq!(ended.finals().len(), 20);
}

#[tokio::test]
async fn wait_forever_settings_do_not_panic() {
    // `Duration::MAX` is a natural way to say "no limit"; no deadline computed from a setting
    // may overflow.
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        // Legacy formatting: an unformatted end-of-turn makes the client wait `format_wait`.
        ws.send(turn(0, true, false, "held")).await.unwrap();
        read_until_terminate(&mut ws).await;
        ws.send(turn(0, true, true, "Held.")).await.unwrap();
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
    })
    .await;
    let mut session = open_session_with(
        default_client(&server.url)
            .connect_timeout(Duration::MAX)
            .terminate_timeout(Duration::MAX)
            .keep_alive_interval(Some(Duration::MAX))
            .format_wait(Duration::MAX)
            .retries(3, Duration::MAX),
        ConnectionParams::new().format_turns(true),
    )
    .await;
    session
        .send(AudioChunk::from_pcm16(&[0; 1600]))
        .await
        .unwrap();
    session.terminate().await.unwrap();
    let ended = drain(session, Duration::from_secs(10)).await;
    assert!(ended.terminated(), "{ended:?}");
    assert_eq!(ended.finals(), [(0, "Held.".to_string())]);
}

#[tokio::test]
async fn minting_a_token_with_an_unbounded_connect_timeout_does_not_panic() {
    let emu = assemblyai_streaming::emulator::Emulator::builder()
        .start()
        .await
        .unwrap();
    let token = StreamingClient::builder()
        .api_key(emu.api_key())
        .base_url(emu.ws_url())
        .connect_timeout(Duration::MAX)
        .build()
        .unwrap()
        .create_temporary_token(60, None)
        .await
        .unwrap();
    assert!(!token.is_empty());
}

#[tokio::test]
async fn frames_are_never_shorter_than_50_ms_at_any_sample_rate() {
    // At 22 050 Hz or 11 025 Hz, 50 ms is a fractional number of samples; rounding down made
    // the client's shortest frames 49.98 ms, which the service's 50–1000 ms rule rejects.
    let emu = assemblyai_streaming::emulator::Emulator::builder()
        .realtime_tolerance(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    for rate in [11_025u32, 22_050, 44_100, 8_000, 16_000] {
        let mut session = StreamingClient::builder()
            .api_key(emu.api_key())
            .base_url(emu.ws_url())
            .frame_duration(Duration::from_millis(50))
            .build()
            .unwrap()
            .connect(ConnectionParams::new().sample_rate(rate))
            .await
            .unwrap();
        // Two and a half frames: whole frames, then a padded tail.
        let samples = (rate as usize * 125).div_ceil(1000);
        session
            .send(AudioChunk::from_pcm16(&vec![0; samples]))
            .await
            .unwrap();
        let result = session.terminate().await;
        assert!(result.is_ok(), "{rate} Hz: {result:?}");
    }
}

#[tokio::test]
async fn a_server_frame_over_16_mib_ends_the_session_with_an_error() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(turn(0, true, false, "before")).await.unwrap();
        let huge = format!(
            r#"{{"type":"Warning","warning":"{}"}}"#,
            "x".repeat(17 << 20)
        );
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(huge))
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let session = open_session(default_client(&server.url)).await;
    let mut ended = drain(session, Duration::from_secs(10)).await;
    assert_eq!(ended.finals(), [(0, "before".to_string())]);
    let err = ended.take_error();
    let Error::ConnectionLost { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("Space limit exceeded: Message too long"),
        "{message}"
    );
}

#[tokio::test]
async fn termination_without_a_close_ends_the_stream_promptly() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        read_until_terminate(&mut ws).await;
        ws.send(termination()).await.unwrap();
        // Never closes and never answers the client's close.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut session = open_session(default_client(&server.url)).await;
    let started = std::time::Instant::now();
    session.terminate().await.unwrap();
    let ended = drain(session, Duration::from_secs(5)).await;
    assert!(ended.terminated() && ended.error.is_none());
    // Bounded by the 1 s wait for the close handshake.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_error_frame_without_a_close_ends_the_stream_after_a_second() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(error_frame(3005, "internal hiccup")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let session = open_session(default_client(&server.url)).await;
    let started = std::time::Instant::now();
    let mut ended = drain(session, Duration::from_secs(5)).await;
    let err = ended.take_error();
    assert!(
        matches!(&err, Error::Closed { code: 3005, reason, .. } if reason == "internal hiccup"),
        "{err:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_held_end_of_turn_is_delivered_as_final_before_the_error() {
    // Older formatting: the unformatted end-of-turn is held for its formatted twin. If the
    // session fails first, the held turn is still the Final, ahead of the error.
    let server =
        serve_turn_then_close(turn(0, true, false, "held turn"), 3005, "Server error").await;
    let session = open_session_with(
        default_client(&server.url).format_wait(Duration::from_secs(30)),
        ConnectionParams::new().format_turns(true),
    )
    .await;
    let ended = drain(session, Duration::from_secs(5)).await;
    assert_eq!(ended.finals(), [(0, "held turn".to_string())]);
    assert_eq!(ended.error.as_ref().and_then(Error::code), Some(3005));
}
