//! Every fault, seen through the client: for each emulator fault option and each service close
//! code, the exact error a user of `StreamingSession` gets (variant, `kind()`, `code()`,
//! retryability, reason text), what happens to the turns already in flight, and that the
//! stream ends after it. These tests are the source of the fault table in
//! `src/faults_doc.md`; keep the two in step.

mod support;

use std::time::{Duration, Instant};

use assemblyai_streaming::emulator::{Emulator, Faults, INACTIVITY_CLOSE_CODE, Script};
use assemblyai_streaming::protocol::UpdateConfiguration;
use assemblyai_streaming::{
    CloseKind, ConnectionParams, Error, StreamingClient, TimeoutKind, TurnEvent,
};
use futures::SinkExt;
use support::faults::*;
use support::server::{open_session, open_session_with};

const LIMIT: Duration = Duration::from_secs(20);

async fn emulator_with(faults: Faults) -> assemblyai_streaming::emulator::EmulatorHandle {
    Emulator::builder().faults(faults).start().await.unwrap()
}

/// A client of `emu` with a key it does not know, allowed five retries 500 ms apart (so a
/// retry would show in the time taken).
fn wrong_key_client(emu: &assemblyai_streaming::emulator::EmulatorHandle) -> StreamingClient {
    StreamingClient::builder()
        .api_key("wrong-key")
        .base_url(emu.ws_url())
        .retries(5, Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Asserts a `Closed` error field by field.
#[track_caller]
fn assert_closed(err: &Error, code: u16, kind: CloseKind, reason: &str, retryable: bool) {
    match err {
        Error::Closed {
            code: c,
            kind: k,
            reason: r,
        } => {
            assert_eq!((*c, *k, r.as_str()), (code, kind, reason), "{err:?}");
        }
        other => panic!("expected Closed {code}, got {other:?}"),
    }
    assert_eq!(err.code(), Some(code));
    assert_eq!(err.is_retryable(), retryable, "{err:?}");
}

// ----- emulator fault options -------------------------------------------------------------

#[tokio::test]
async fn tcp_drop_is_connection_lost_and_ends_the_stream() {
    let emu = emulator_with(Faults {
        drop_after: Some(Duration::from_millis(300)),
        ..Faults::none()
    })
    .await;
    let mut session = connect(&emu).await;
    let handle = session.handle();
    // Audio keeps flowing until the drop; the client notices it on the read side.
    let feeder = tokio::spawn(async move {
        for chunk in chunks(&tone_turns(3, 800, 1500)) {
            if session.send(chunk).await.is_err() {
                return session;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        session
    });
    let session = feeder.await.unwrap();
    let (_sink, events) = session.split();
    let mut ended = drain(events, LIMIT).await;
    let err = ended.take_error();
    // EOF after the drop, or a reset when the emulator dropped unread audio.
    let Error::ConnectionLost { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        [
            "WebSocket protocol error: Connection reset without closing handshake",
            "IO error: Connection reset by peer (os error 104)"
        ]
        .contains(&message.as_str()),
        "{message}"
    );
    assert_eq!(err.kind(), "connection_lost");
    assert_eq!(err.code(), None);
    assert!(err.is_retryable());
    // The websocket error itself is kept as the source, not only its text.
    let cause = std::error::Error::source(&err).expect("a source");
    let cause = cause.downcast_ref::<assemblyai_streaming::Cause>().unwrap();
    assert!(
        cause
            .get()
            .downcast_ref::<tokio_tungstenite::tungstenite::Error>()
            .is_some()
    );
    println!("TCP drop: {err}");
    assert!(matches!(ended.events.first(), Some(TurnEvent::Begin(_))));
    // Nothing more can be sent or terminated; both say why the session ended.
    let again = handle.keep_alive().await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    let again = handle.terminate().await.unwrap_err();
    assert_eq!(again.kind(), "connection_lost");
}

#[tokio::test]
async fn no_termination_is_a_termination_timeout_after_the_last_turns() {
    let emu = fast_emulator_with(
        Faults {
            no_termination: true,
            ..Faults::none()
        },
        ["one two", "three four"],
    )
    .await;
    let mut session = connect(&emu).await;
    // The second tone ends with the audio: its turn is still open when Terminate is sent.
    send_all(&mut session, &one_turn_then_an_open_one()).await;
    let started = Instant::now();
    let err = session.terminate().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { kind: TimeoutKind::Termination, after } if after == Duration::from_secs(2)),
        "{err:?}"
    );
    assert_eq!(err.kind(), "timeout");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "timed out after 2s waiting for Termination"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The turns the server sent after Terminate (the open one, ended by it) are still delivered,
    // then the same timeout ends the stream.
    let ended = drain(session, LIMIT).await;
    assert_eq!(
        ended.finals(),
        [(0, "one two".into()), (1, "three four".into())]
    );
    assert!(matches!(
        ended.error,
        Some(Error::Timeout {
            kind: TimeoutKind::Termination,
            ..
        })
    ));
}

#[tokio::test]
async fn a_begin_later_than_the_connect_timeout_is_a_connect_timeout() {
    let emu = emulator_with(Faults {
        delay_begin: Some(Duration::from_secs(3)),
        ..Faults::none()
    })
    .await;
    let client = client_for(&emu)
        .connect_timeout(Duration::from_millis(500))
        .retries(1, Duration::from_millis(50))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.connect(ConnectionParams::new()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { kind: TimeoutKind::Connect, after } if after == Duration::from_millis(500)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "timed out after 500ms waiting for connection and Begin"
    );
    assert_eq!(err.kind(), "timeout");
    assert!(err.is_retryable());
    // Retried once: two attempts of 500 ms plus the 50 ms delay.
    assert!(
        took >= Duration::from_millis(1050) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Within the timeout, a late Begin is just a slow connect.
    let client = client_for(&emu)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut session = client.connect(ConnectionParams::new()).await.unwrap();
    assert!(session.terminate().await.is_ok());
}

#[tokio::test]
async fn an_error_frame_and_its_close_code_are_one_final_error() {
    for (code, reason, kind, kind_name, retryable) in [
        (
            3005,
            "Server error: injected",
            CloseKind::ServerError,
            "server_error",
            true,
        ),
        (
            1013,
            "Try again later",
            CloseKind::TryAgainLater,
            "try_again_later",
            true,
        ),
        (1011, "Internal error", CloseKind::Other, "closed", false),
        (
            4001,
            "Not Authorized",
            CloseKind::Unauthorized,
            "unauthorized",
            false,
        ),
    ] {
        let emu = emulator_with(Faults {
            error_then_close: Some((code, reason.to_string())),
            ..Faults::none()
        })
        .await;
        let session = connect(&emu).await;
        let mut ended = drain(session, LIMIT).await;
        let err = ended.take_error();
        assert_closed(&err, code, kind, reason, retryable);
        assert_eq!(err.kind(), kind_name);
        assert_eq!(
            err.to_string(),
            format!("session closed by server: {code} {kind:?}: {reason}")
        );
        assert!(
            matches!(ended.events.as_slice(), [TurnEvent::Begin(_)]),
            "{:?}",
            ended.events
        );
    }
}

#[tokio::test]
async fn a_malformed_frame_is_a_decode_error_and_the_session_goes_on() {
    let emu = fast_emulator_with(
        Faults {
            malformed_frame: true,
            unknown_message: true,
            ..Faults::none()
        },
        ["still here"],
    )
    .await;
    let mut session = connect(&emu).await;
    send_all(&mut session, &tone_turns(1, 800, 1500)).await;
    session.terminate().await.unwrap();
    let ended = drain(session, LIMIT).await;
    assert!(ended.error.is_none(), "{:?}", ended.error);
    assert!(ended.terminated());
    let [err] = ended.decode_errors.as_slice() else {
        panic!("{:?}", ended.decode_errors)
    };
    let Error::Decode { message, payload } = err else {
        unreachable!()
    };
    assert_eq!(payload, r#"{"type":"Turn","turn_order":"#);
    assert!(message.contains("EOF"), "{message}");
    assert_eq!(err.kind(), "decode");
    assert!(!err.is_retryable());
    // The unknown type is passed through, not an error.
    assert!(
        ended
            .events
            .iter()
            .any(|e| matches!(e, TurnEvent::Unknown(v) if v["type"] == "EmulatorUnknownMessage"))
    );
    assert_eq!(ended.finals(), [(0, "still here".into())]);
}

#[tokio::test]
async fn slow_messages_delay_but_lose_nothing() {
    let emu = fast_emulator_with(
        Faults {
            slow_messages: Some(Duration::from_millis(30)),
            ..Faults::none()
        },
        ["alpha", "beta", "gamma"],
    )
    .await;
    let mut session =
        open_session(client_for(&emu).terminate_timeout(Duration::from_secs(30))).await;
    send_all(&mut session, &tone_turns(3, 600, 1500)).await;
    session.terminate().await.unwrap();
    let ended = drain(session, Duration::from_secs(60)).await;
    assert!(
        ended.error.is_none() && ended.terminated(),
        "{:?}",
        ended.error
    );
    assert_eq!(
        ended.finals(),
        [(0, "alpha".into()), (1, "beta".into()), (2, "gamma".into())]
    );
}

// ----- 1008: credentials ------------------------------------------------------------------

#[tokio::test]
async fn a_bad_key_is_a_1008_close_and_is_not_retried() {
    let emu = Emulator::builder().start().await.unwrap();
    let client = wrong_key_client(&emu);
    let started = Instant::now();
    let err = client.connect(ConnectionParams::new()).await.unwrap_err();
    assert_closed(
        &err,
        1008,
        CloseKind::Unauthorized,
        "Unauthorized Connection: Invalid API key",
        false,
    );
    assert_eq!(err.kind(), "unauthorized");
    // No retry: a retry would have waited 500 ms first.
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_bad_key_in_http_401_mode_is_a_rejected_handshake() {
    let emu = Emulator::builder()
        .reject_bad_auth_with_http_401(true)
        .start()
        .await
        .unwrap();
    let client = wrong_key_client(&emu);
    let started = Instant::now();
    let err = client.connect(ConnectionParams::new()).await.unwrap_err();
    let Error::HandshakeRejected { status, body } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 401);
    assert_eq!(
        body,
        r#"{"error":"Unauthorized Connection: Invalid API key"}"#
    );
    assert_eq!(err.kind(), "unauthorized");
    assert_eq!(err.code(), Some(401));
    assert!(!err.is_retryable());
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn an_expired_or_reused_token_is_a_1008_close() {
    let emu = Emulator::builder().start().await.unwrap();
    let minter = client_for(&emu).build().unwrap();
    let with_token = |token: String| {
        StreamingClient::builder()
            .token(token)
            .base_url(emu.ws_url())
            .retries(2, Duration::from_millis(50))
            .build()
            .unwrap()
    };

    let token = minter.create_temporary_token(60, None).await.unwrap();
    let client = with_token(token);
    let mut first = client.connect(ConnectionParams::new()).await.unwrap();
    let err = client.connect(ConnectionParams::new()).await.unwrap_err();
    assert_closed(
        &err,
        1008,
        CloseKind::Unauthorized,
        "Unauthorized Connection: Token already used",
        false,
    );
    // The first session is unaffected.
    first.terminate().await.unwrap();

    let token = minter.create_temporary_token(1, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = with_token(token)
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert_closed(
        &err,
        1008,
        CloseKind::Unauthorized,
        "Unauthorized Connection: Token expired",
        false,
    );
    assert_eq!(err.kind(), "unauthorized");
}

// ----- 3005-3009 --------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_update_configuration_is_a_3006_close() {
    let emu = emulator_with(Faults::none()).await;
    let session = connect(&emu).await;
    // The client passes UpdateConfiguration through unchecked; the service validates it.
    session
        .update_configuration(UpdateConfiguration {
            vad_threshold: Some(1.5),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ended = drain(session, LIMIT).await;
    let err = ended.take_error();
    assert_closed(
        &err,
        3006,
        CloseKind::InvalidMessage,
        "Invalid Message: vad_threshold must be between 0 and 1",
        false,
    );
    assert_eq!(err.kind(), "invalid_message");
}

#[tokio::test]
async fn an_invalid_connection_parameter_is_a_3006_at_connect() {
    let emu = emulator_with(Faults::none()).await;
    let err = client_for(&emu)
        .build()
        .unwrap()
        .connect(ConnectionParams::new().inactivity_timeout(2))
        .await
        .unwrap_err();
    assert_closed(
        &err,
        3006,
        CloseKind::InvalidMessage,
        "Invalid Parameter: inactivity_timeout must be between 5 and 3600, got 2",
        false,
    );
}

#[tokio::test]
async fn audio_faster_than_real_time_is_a_3007_close_and_open_turns_are_lost() {
    let emu =
        support::emulator::emulator_with_script(Script::from_texts(["first", "second"])).await;
    let session = connect(&emu).await;
    let (mut sink, events) = session.split();
    // 10 s of audio as fast as the socket takes it; the default tolerance is 1 s ahead.
    let audio = tone_turns(4, 800, 1500);
    let feeder = tokio::spawn(async move {
        for chunk in chunks(&audio) {
            if sink.send(chunk).await.is_err() {
                break;
            }
        }
        sink
    });
    let mut ended = drain(events, LIMIT).await;
    let err = ended.take_error();
    let Error::Closed {
        code: 3007,
        kind: CloseKind::AudioViolation,
        reason,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        reason.starts_with("Audio Transmission Rate Exceeded: Received "),
        "{reason}"
    );
    assert_eq!(err.kind(), "audio_violation");
    assert!(!err.is_retryable());
    println!("3007: {err}");
    // The close came at ~1 s of audio, before the first turn could end: no final.
    assert!(ended.finals().is_empty(), "{:?}", ended.finals());
    // Once the stream has ended, the sink refuses audio with the error the session ended with.
    let mut sink = feeder.await.unwrap();
    let after = sink.send(chunks(&[0u8; 3200])[0].clone()).await;
    assert!(
        matches!(after, Err(Error::Closed { code: 3007, .. })),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_chunk_outside_50_to_1000_ms_is_a_3007_close() {
    // The client re-cuts audio into frame_duration frames (validated to 50–1000 ms), so only
    // a raw websocket could send a bad chunk; the emulator's own tests cover that. Through the
    // client, the shortest frame it ever sends is the tail, padded to 50 ms: accepted.
    let emu = emulator_with(Faults::none()).await;
    let mut session = connect(&emu).await;
    session
        .send(assemblyai_streaming::AudioChunk::from_bytes(vec![1u8; 3]))
        .await
        .unwrap();
    session.terminate().await.unwrap();
    assert!(drain(session, LIMIT).await.terminated());
}

#[tokio::test]
async fn the_session_cap_is_a_3008_close_after_the_delivered_turns() {
    let emu = Emulator::builder()
        .max_session_duration(Duration::from_millis(2500))
        .script(Script::from_texts(["before the cap", "cut off"]))
        .realtime_tolerance(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let mut session = connect(&emu).await;
    // One complete turn, then a second that is still open when the cap hits.
    send_all(&mut session, &one_turn_then_an_open_one()).await;
    let mut ended = drain(session, LIMIT).await;
    let err = ended.take_error();
    assert_closed(
        &err,
        3008,
        CloseKind::SessionExpired,
        "Session Expired: Maximum session duration exceeded",
        true,
    );
    assert_eq!(err.kind(), "session_expired");
    assert_eq!(ended.finals(), [(0, "before the cap".into())]);
    assert!(
        ended
            .events
            .iter()
            .any(|e| matches!(e, TurnEvent::Partial(t) if t.turn_order == 1)),
        "the open turn was seen as partials only"
    );
}

#[tokio::test]
async fn one_session_too_many_is_a_3009_at_connect_after_retries() {
    let emu = Emulator::builder()
        .max_concurrent_sessions(1)
        .start()
        .await
        .unwrap();
    let client = client_for(&emu)
        .retries(2, Duration::from_millis(100))
        .build()
        .unwrap();
    let mut first = client.connect(ConnectionParams::new()).await.unwrap();
    let started = Instant::now();
    let err = client.connect(ConnectionParams::new()).await.unwrap_err();
    assert_closed(
        &err,
        3009,
        CloseKind::TooManySessions,
        "Unauthorized Connection: Too many concurrent sessions",
        false,
    );
    assert_eq!(err.kind(), "too_many_sessions");
    // Not retried (README: an immediate retry only adds load): one attempt, no retry delay.
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    // Once the first session ends, a new one is accepted.
    first.terminate().await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = client.connect(ConnectionParams::new()).await.unwrap();
    again.terminate().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn inactivity_is_a_3005_close() {
    // Paused clock: the 5 s (the service's minimum) pass instantly; the emulator and the client
    // share this runtime, so their timers jump together.
    let emu = emulator_with(Faults::none()).await;
    let session = open_session_with(
        client_for(&emu),
        ConnectionParams::new().inactivity_timeout(5),
    )
    .await;
    let opened = tokio::time::Instant::now();
    let mut ended = drain(session, Duration::from_secs(60)).await;
    let err = ended.take_error();
    assert_closed(
        &err,
        INACTIVITY_CLOSE_CODE,
        CloseKind::ServerError,
        "Session Cancelled: No audio or message received for 5 seconds (inactivity_timeout)",
        true,
    );
    let idle = opened.elapsed();
    assert!(
        idle >= Duration::from_secs(5) && idle < Duration::from_secs(7),
        "{idle:?}"
    );
}
