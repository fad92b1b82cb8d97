//! Behaviour of `StreamingSession` against scripted loopback servers.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use assemblyai_streaming::protocol::UpdateConfiguration;
use assemblyai_streaming::{
    AudioChunk, CloseKind, ConnectionParams, Error, StreamingClient, StreamingClientBuilder,
    TimeoutKind, TurnEvent,
};
use futures::{SinkExt, StreamExt};
use support::server::*;
use tokio_tungstenite::tungstenite::Message;

/// A client for the scripted server at `url`: 2 s waits, two connect retries 50 ms apart.
fn client(url: &str) -> StreamingClientBuilder {
    client_builder(KEY, url)
        .terminate_timeout(Duration::from_secs(2))
        .retries(2, Duration::from_millis(50))
}

async fn collect(
    mut session: impl futures::Stream<Item = assemblyai_streaming::Result<TurnEvent>> + Unpin,
) -> Vec<assemblyai_streaming::Result<TurnEvent>> {
    let mut out = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), session.next())
        .await
        .expect("stream stalled")
    {
        out.push(e);
    }
    out
}

/// 100 ms of 16 kHz s16le audio.
fn tenth_second() -> AudioChunk {
    AudioChunk::from_pcm16(&[100; 1600])
}

#[tokio::test]
async fn a_session_begins_streams_turns_and_terminates() {
    let (server, mut reports) = serve_reporting(|mut ws, seen| async move {
        assert_eq!(seen.authorization.as_deref(), Some(KEY));
        assert!(
            seen.path_and_query
                .starts_with("/v3/ws?speech_model=universal-streaming-english&sample_rate=16000")
        );
        ws.send(begin()).await.unwrap();
        ws.send(turn(0, false, false, "hello")).await.unwrap();
        let (frames, texts) = read_until_terminate(&mut ws).await;
        assert_eq!(texts, [r#"{"type":"Terminate"}"#]);
        ws.send(turn(0, true, false, "hello world")).await.unwrap();
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
        frames
    })
    .await;

    let mut session = open_session(client(&server.url)).await;
    assert_eq!(session.id(), "mock-session");
    for _ in 0..5 {
        session.send(tenth_second()).await.unwrap();
    }
    let termination = session.terminate().await.unwrap();
    assert_eq!(termination.audio_duration_seconds, Some(1.0));
    let events: Vec<TurnEvent> = collect(session)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(matches!(events[0], TurnEvent::Begin(ref b) if b.id == "mock-session"));
    assert!(matches!(events[1], TurnEvent::Partial(ref t) if t.transcript == "hello"));
    assert!(matches!(events[2], TurnEvent::Final(ref t) if t.transcript == "hello world"));
    assert!(matches!(events[3], TurnEvent::Termination(_)));
    assert_eq!(events.len(), 4);
    assert_eq!(reports.next().await, [3200; 5]);
}

#[tokio::test]
async fn odd_tiny_and_huge_chunks_are_recut_into_valid_frames_without_loss() {
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        end_on_terminate(&mut ws).await.0
    })
    .await;
    let session = open_session(client(&server.url)).await;
    let (mut sink, events) = session.split();
    let mut total = 0;
    for size in [1usize, 3, 777, 1, 64_001] {
        sink.send(AudioChunk::from_bytes(vec![1u8; size]))
            .await
            .unwrap();
        total += size;
    }
    sink.close().await.unwrap();
    let events = collect(events).await;
    assert!(matches!(events.last(), Some(Ok(TurnEvent::Termination(_)))));
    let frames = reports.next().await;
    let (last, full) = frames.split_last().unwrap();
    assert!(full.iter().all(|&f| f == 3200), "{frames:?}");
    // Everything sent arrived; the tail was completed to a sample and padded to 50 ms.
    assert_eq!(full.len(), total / 3200);
    let tail = total % 3200 + total % 2; // completed to a whole sample
    assert_eq!(*last, tail.max(1600), "tail padded to 50 ms");
}

/// Opens a session on `server` asking for formatted turns, terminates it at once, and returns
/// every event it yielded (an error fails the test).
async fn formatted_session_events(server: &MockServer) -> Vec<TurnEvent> {
    let mut session = open_session_with(
        client(&server.url),
        ConnectionParams::new().format_turns(true),
    )
    .await;
    session.terminate().await.unwrap();
    collect(session)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn older_formatting_yields_exactly_one_final_the_formatted_one() {
    let server = serve_session(vec![
        turn(0, false, false, "hi"),
        turn(0, true, false, "hi there"),
        turn(0, true, true, "Hi there."),
        turn(1, false, false, "bye"),
        turn(1, true, false, "bye now"),
        turn(1, true, true, "Bye now."),
    ])
    .await;
    let finals: Vec<String> = formatted_session_events(&server)
        .await
        .into_iter()
        .filter_map(|e| match e {
            TurnEvent::Final(t) => Some(t.transcript),
            _ => None,
        })
        .collect();
    assert_eq!(finals, ["Hi there.", "Bye now."]);
}

#[tokio::test]
async fn in_model_formatting_finalizes_on_end_of_turn() {
    let server = serve_session(vec![
        turn(0, false, true, "Hi"),
        turn(0, true, true, "Hi there."),
    ])
    .await;
    let kinds: Vec<(bool, String)> = formatted_session_events(&server)
        .await
        .into_iter()
        .filter_map(|e| e.turn().cloned().map(|t| (t.end_of_turn, t.transcript)))
        .collect();
    assert_eq!(
        kinds,
        [(false, "Hi".to_string()), (true, "Hi there.".to_string())]
    );
}

#[tokio::test]
async fn every_close_code_becomes_a_typed_last_error() {
    for (code, kind) in [
        (1008, CloseKind::Unauthorized),
        (3005, CloseKind::ServerError),
        (3006, CloseKind::InvalidMessage),
        (3007, CloseKind::AudioViolation),
        (3008, CloseKind::SessionExpired),
        (3009, CloseKind::TooManySessions),
        (1013, CloseKind::TryAgainLater),
        (4001, CloseKind::Unauthorized),
        (4031, CloseKind::Other),
    ] {
        let server = serve_turn_then_close(turn(0, false, false, "partial"), code, "").await;
        let session = open_session(client(&server.url)).await;
        let mut events = collect(session).await;
        let last = events.pop().unwrap().unwrap_err();
        match last {
            Error::Closed {
                code: c,
                kind: k,
                ref reason,
            } => {
                assert_eq!((c, k), (code, kind));
                assert!(
                    !reason.is_empty(),
                    "documented meaning fills an empty reason"
                );
            }
            other => panic!("close {code}: {other:?}"),
        }
        assert!(events.iter().all(Result::is_ok), "one error only");
    }
}

#[tokio::test]
async fn an_error_frame_and_its_close_are_reported_once() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(error_frame(
            3007,
            "Input duration violation: 20 ms. Expected between 50 and 1000 ms",
        ))
        .await
        .unwrap();
        close(&mut ws, 3007, "Input duration violation").await;
    })
    .await;
    let session = open_session(client(&server.url)).await;
    let events = collect(session).await;
    let errors: Vec<&Error> = events.iter().filter_map(|e| e.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code(), Some(3007));
    assert!(
        errors[0]
            .to_string()
            .contains("20 ms. Expected between 50 and 1000 ms")
    );
}

#[tokio::test]
async fn unknown_messages_and_malformed_frames_do_not_end_the_session() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(Message::text(r#"{"type":"FutureThing","x":[1]}"#))
            .await
            .unwrap();
        ws.send(Message::text("{not json")).await.unwrap();
        ws.send(Message::text(r#"{"type":"Turn","turn_order":"zero"}"#))
            .await
            .unwrap();
        ws.send(turn(0, true, false, "still here")).await.unwrap();
        end_on_terminate(&mut ws).await;
    })
    .await;
    let mut session = open_session(client(&server.url)).await;
    session.terminate().await.unwrap();
    let events = collect(session).await;
    assert!(matches!(events[1], Ok(TurnEvent::Unknown(ref v)) if v["type"] == "FutureThing"));
    match &events[2] {
        Err(Error::Decode { payload, .. }) => assert_eq!(payload, "{not json"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(events[3], Err(Error::Decode { .. })));
    assert!(matches!(events[4], Ok(TurnEvent::Final(ref t)) if t.transcript == "still here"));
    assert!(matches!(events[5], Ok(TurnEvent::Termination(_))));
}

#[tokio::test]
async fn a_server_that_never_terminates_cannot_hang_terminate() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        read_until_terminate(&mut ws).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut session =
        open_session(default_client(&server.url).terminate_timeout(Duration::from_millis(300)))
            .await;
    let started = std::time::Instant::now();
    let err = session.terminate().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: TimeoutKind::Termination,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let events = collect(session).await;
    assert!(matches!(events.last(), Some(Err(Error::Timeout { .. }))));
}

#[tokio::test]
async fn a_dropped_tcp_connection_is_reported_as_connection_lost() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(turn(0, false, false, "cut")).await.unwrap();
        drop(ws); // no close frame
    })
    .await;
    let session = open_session(client(&server.url)).await;
    let events = collect(session).await;
    assert!(matches!(events[1], Ok(TurnEvent::Partial(_))));
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), "connection_lost", "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_slow_consumer_gets_every_event_in_order() {
    const N: u64 = 2000;
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        for i in 0..N {
            ws.send(turn(i, true, false, &format!("turn {i}")))
                .await
                .unwrap();
        }
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
    })
    .await;
    let session = open_session(default_client(&server.url).event_buffer(4)).await;
    let (_sink, mut events) = session.split();
    let mut orders = Vec::new();
    while let Some(e) = events.next().await {
        if let TurnEvent::Final(t) = e.unwrap() {
            orders.push(t.turn_order);
            if orders.len() % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(orders, (0..N).collect::<Vec<_>>());
}

#[tokio::test]
async fn http_401_at_the_handshake_is_final_and_not_retried() {
    let server = serve(|_| Some(401), |_, _| async {}).await;
    let err = connect_error(client(&server.url)).await;
    assert!(
        matches!(err, Error::HandshakeRejected { status: 401, ref body } if body.contains("rejected")),
        "{err:?}"
    );
    assert_eq!(err.kind(), "unauthorized");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn close_1008_before_begin_is_final_and_not_retried() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(error_frame(
            1008,
            "Unauthorized Connection: Missing Authorization header",
        ))
        .await
        .unwrap();
        close(
            &mut ws,
            1008,
            "Unauthorized Connection: Missing Authorization header",
        )
        .await;
    })
    .await;
    let err = connect_error(client(&server.url)).await;
    assert_eq!(err.code(), Some(1008));
    assert_eq!(err.kind(), "unauthorized");
    assert!(err.to_string().contains("Missing Authorization header"));
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn transient_handshake_failures_are_retried() {
    let server = serve(
        |n| (n < 2).then_some(503),
        |mut ws, _| async move {
            ws.send(begin()).await.unwrap();
            close(&mut ws, 1000, "").await;
        },
    )
    .await;
    let session = open_session(client(&server.url)).await;
    assert_eq!(session.id(), "mock-session");
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);

    let server = serve(|_| Some(503), |_, _| async {}).await;
    let err = connect_error(client(&server.url)).await;
    assert!(matches!(err, Error::HandshakeRejected { status: 503, .. }));
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        3,
        "1 try + 2 retries"
    );
}

#[tokio::test]
async fn an_unreachable_host_is_a_connect_error() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = connect_error(client(&format!("ws://127.0.0.1:{port}"))).await;
    assert_eq!(err.kind(), "connect", "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_missing_begin_is_a_connect_timeout() {
    let server = serve_script(|ws, _| async move {
        let _open_but_silent = ws;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let err = connect_error(
        default_client(&server.url)
            .connect_timeout(Duration::from_millis(200))
            .retries(0, Duration::ZERO),
    )
    .await;
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: TimeoutKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn control_messages_follow_the_audio_in_order() {
    let (server, mut reports) = serve_logging_session().await;
    let mut session = open_session(client(&server.url)).await;
    session.send(tenth_second()).await.unwrap();
    session.force_endpoint().await.unwrap();
    session
        .update_configuration(UpdateConfiguration {
            max_turn_silence: Some(3000),
            ..Default::default()
        })
        .await
        .unwrap();
    session.keep_alive().await.unwrap();
    session.terminate().await.unwrap();
    assert_eq!(
        reports.next().await,
        [
            "audio 3200",
            r#"{"type":"ForceEndpoint"}"#,
            r#"{"type":"UpdateConfiguration","max_turn_silence":3000}"#,
            r#"{"type":"KeepAlive"}"#,
            r#"{"type":"Terminate"}"#,
        ]
    );
}

#[tokio::test]
async fn keep_alive_is_sent_only_after_the_idle_interval() {
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        let (_, texts) = end_on_terminate(&mut ws).await;
        texts.iter().filter(|t| t.contains("KeepAlive")).count()
    })
    .await;
    let mut session = open_session(
        default_client(&server.url).keep_alive_interval(Some(Duration::from_millis(100))),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(550)).await;
    session.terminate().await.unwrap();
    let n = reports.next().await;
    assert!(
        (3..=6).contains(&n),
        "{n} keep-alives in 550 ms at 100 ms idle"
    );
}

#[tokio::test]
async fn dropping_the_session_closes_the_socket() {
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        let mut saw_close = false;
        while let Some(Ok(msg)) = ws.next().await {
            saw_close |= matches!(msg, Message::Close(_));
        }
        saw_close
    })
    .await;
    let session = open_session(client(&server.url)).await;
    drop(session);
    assert!(reports.next().await, "the server saw a close frame");
}

#[tokio::test]
async fn a_temporary_token_travels_in_the_query_not_the_header() {
    let (server, mut reports) = serve_reporting(|mut ws, seen| async move {
        ws.send(begin()).await.unwrap();
        close(&mut ws, 1000, "").await;
        seen
    })
    .await;
    let session = open_session(
        StreamingClient::builder()
            .token("tmp token/1")
            .base_url(&server.url),
    )
    .await;
    drop(session);
    let seen = reports.next().await;
    assert!(
        seen.path_and_query.ends_with("&token=tmp%20token%2F1"),
        "{}",
        seen.path_and_query
    );
    assert_eq!(seen.authorization, None);
}

#[tokio::test]
async fn sending_after_termination_is_a_typed_error() {
    let server = serve_session(vec![]).await;
    let mut session = open_session(client(&server.url)).await;
    session.terminate().await.unwrap();
    let err = session.send(tenth_second()).await.unwrap_err();
    assert!(matches!(err, Error::SessionClosed));
}

#[test]
fn sessions_and_halves_are_send_and_static() {
    fn check<T: Send + 'static>() {}
    check::<assemblyai_streaming::StreamingSession>();
    check::<assemblyai_streaming::AudioSink>();
    check::<assemblyai_streaming::EventStream>();
    check::<assemblyai_streaming::SessionHandle>();
    check::<StreamingClient>();
}

#[tokio::test]
async fn wss_to_a_server_that_is_not_tls_is_an_error_not_a_panic() {
    // A listener that accepts and hangs up: the TLS handshake fails cleanly.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    let err = connect_error(
        default_client(&format!("wss://localhost:{port}")).retries(0, Duration::ZERO),
    )
    .await;
    assert_eq!(err.kind(), "connect", "{err:?}");
}
