//! Every rule the emulator enforces, with the close code and reason text a client gets.

mod support;

use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, INACTIVITY_CLOSE_CODE, Script};
use assemblyai_streaming::protocol::ServerMessage;
use futures::{SinkExt, StreamExt};
use support::emulator::*;
use tokio_tungstenite::tungstenite::Message;

/// Reads until the server closes; returns messages and the close.
async fn read_all(ws: Ws) -> Outcome {
    listen(ws, Duration::from_secs(20)).await
}

async fn send_text_then_read(ws: Ws, text: &str) -> Outcome {
    run(
        ws,
        &[],
        Plan {
            texts: vec![(usize::MAX, text.to_string())],
            timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    )
    .await
}

fn assert_error_then_close(out: &Outcome, code: u16, reason_starts: &str) {
    let (err_code, err) = out
        .error_frame()
        .unwrap_or_else(|| panic!("no Error frame: {out:?}"));
    assert_eq!(err_code, Some(i64::from(code)), "{out:?}");
    assert!(
        err.starts_with(reason_starts),
        "{err:?} vs {reason_starts:?}"
    );
    let (close, reason) = out
        .close
        .clone()
        .unwrap_or_else(|| panic!("no close frame: {out:?}"));
    assert_eq!(close, code);
    assert!(reason.starts_with(reason_starts), "{reason:?}");
}

// ----- authentication -----

#[tokio::test]
async fn missing_key_gets_error_frame_and_1008() {
    let emu = Emulator::builder().start().await.unwrap();
    let out = read_all(connect(&emu.ws_url(), Q, Auth::None).await).await;
    assert_error_then_close(
        &out,
        1008,
        "Unauthorized Connection: Missing Authorization header",
    );
    assert_eq!(out.count("Begin"), 0);
}

#[tokio::test]
async fn wrong_key_gets_1008() {
    let emu = Emulator::builder().api_key("right").start().await.unwrap();
    let out = read_all(connect(&emu.ws_url(), Q, Auth::Header("wrong")).await).await;
    assert_error_then_close(&out, 1008, "Unauthorized Connection: Invalid API key");
    // A "Bearer" prefix is not what the service expects either.
    let out = read_all(connect(&emu.ws_url(), Q, Auth::Header("Bearer right")).await).await;
    assert_eq!(out.close_code(), Some(1008));
}

#[tokio::test]
async fn http_401_mode_refuses_the_upgrade() {
    let emu = Emulator::builder()
        .reject_bad_auth_with_http_401(true)
        .start()
        .await
        .unwrap();
    let err = try_connect(&emu.ws_url(), Q, Auth::Header("wrong"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    // The right key still works in this mode.
    let mut ws = open_ws(&emu).await;
    let first = next_text(&mut ws).await;
    assert!(first.contains("\"Begin\""));
}

async fn mint(
    emu: &assemblyai_streaming::emulator::EmulatorHandle,
    query: &str,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v3/token?{query}", emu.http_url()))
        .header("Authorization", emu.api_key())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn temporary_tokens_work_once_in_query_or_header() {
    let emu = Emulator::builder().start().await.unwrap();
    let (status, body) = mint(&emu, "expires_in_seconds=60").await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in_seconds"], 60);
    let token = body["token"].as_str().unwrap().to_string();

    let mut ws = connect(&emu.ws_url(), &format!("{Q}&token={token}"), Auth::None).await;
    let first = next_text(&mut ws).await;
    assert!(first.contains("\"Begin\""));
    drop(ws);

    // Single use.
    let out =
        read_all(connect(&emu.ws_url(), &format!("{Q}&token={token}"), Auth::None).await).await;
    assert_error_then_close(&out, 1008, "Unauthorized Connection: Token already used");

    // In the Authorization header, as the Python SDK sends it.
    let (_, body) = mint(&emu, "expires_in_seconds=60").await;
    let token = body["token"].as_str().unwrap().to_string();
    let mut ws = connect(&emu.ws_url(), Q, Auth::Header(&token)).await;
    let first = next_text(&mut ws).await;
    assert!(first.contains("\"Begin\""));

    let out =
        read_all(connect(&emu.ws_url(), &format!("{Q}&token=made-up"), Auth::None).await).await;
    assert_error_then_close(&out, 1008, "Unauthorized Connection: Invalid token");
}

#[tokio::test]
async fn tokens_expire_and_cap_the_session() {
    let emu = Emulator::builder().start().await.unwrap();
    let (_, body) = mint(&emu, "expires_in_seconds=1").await;
    let token = body["token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out =
        read_all(connect(&emu.ws_url(), &format!("{Q}&token={token}"), Auth::None).await).await;
    assert_error_then_close(&out, 1008, "Unauthorized Connection: Token expired");

    // The session cap shows in Begin.expires_at.
    let (_, body) = mint(
        &emu,
        "expires_in_seconds=60&max_session_duration_seconds=60",
    )
    .await;
    let token = body["token"].as_str().unwrap().to_string();
    let mut ws = connect(&emu.ws_url(), &format!("{Q}&token={token}"), Auth::None).await;
    let first = next_text(&mut ws).await;
    let ServerMessage::Begin(begin) = ServerMessage::from_json(&first).unwrap() else {
        panic!()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((begin.expires_at - (now + 60)).abs() <= 2, "{begin:?}");
}

#[tokio::test]
async fn token_endpoint_validates_its_input() {
    let emu = Emulator::builder().start().await.unwrap();
    for query in [
        "",
        "expires_in_seconds=0",
        "expires_in_seconds=601",
        "expires_in_seconds=60&max_session_duration_seconds=59",
        "expires_in_seconds=60&max_session_duration_seconds=10801",
    ] {
        let (status, body) = mint(&emu, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string());
    }
    let resp = reqwest::Client::new()
        .get(format!("{}/v3/token?expires_in_seconds=60", emu.http_url()))
        .header("Authorization", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

// ----- parameters and client messages -----

#[tokio::test]
async fn speech_model_is_required() {
    let emu = Emulator::builder().start().await.unwrap();
    let out = read_all(
        connect(
            &emu.ws_url(),
            "sample_rate=16000",
            Auth::Header(emu.api_key()),
        )
        .await,
    )
    .await;
    assert_error_then_close(&out, 3006, "Invalid Parameter: speech_model is required");
}

#[tokio::test]
async fn invalid_parameter_values_close_3006_and_unknown_ones_are_ignored() {
    let emu = Emulator::builder().start().await.unwrap();
    let out = read_all(open_ws_with(&emu, "&format_turns=perhaps").await).await;
    assert_error_then_close(&out, 3006, "Invalid Parameter: format_turns");

    let mut ws = connect(
        &emu.ws_url(),
        &format!(
            "{Q}&format_turns=True&no_such_param=1&min_end_of_turn_silence_when_confident=200"
        ),
        Auth::Header(emu.api_key()),
    )
    .await;
    let first = next_text(&mut ws).await;
    assert!(first.contains("\"Begin\""));
}

#[tokio::test]
async fn bad_client_messages_close_3006_with_the_service_texts() {
    let emu = Emulator::builder().start().await.unwrap();
    for (text, reason) in [
        ("not json", "Invalid JSON: not json"),
        (r#"{"type":"Dance"}"#, "Invalid Message Type: Dance"),
        ("[]", "Invalid Message: []"),
        (
            r#"{"type":"UpdateConfiguration","max_turn_silence":"long"}"#,
            "Invalid Message: ",
        ),
    ] {
        let ws = open_ws(&emu).await;
        let out = send_text_then_read(ws, text).await;
        assert_error_then_close(&out, 3006, reason);
    }
}

// ----- audio -----

#[tokio::test]
async fn chunks_outside_50_to_1000_ms_close_3007() {
    let emu = Emulator::builder().start().await.unwrap();
    for (bytes, ms) in [(640usize, 20), (35_200, 1100)] {
        let ws = open_ws(&emu).await;
        let out = run(
            ws,
            &silence(ms),
            Plan {
                frame_bytes: bytes,
                interval: Some(Duration::from_millis(10)),
                timeout: Some(Duration::from_secs(10)),
                ..Default::default()
            },
        )
        .await;
        assert_error_then_close(
            &out,
            3007,
            &format!("Input duration violation: {ms} ms. Expected between 50 and 1000 ms"),
        );
    }
}

#[tokio::test]
async fn mulaw_chunk_durations_use_one_byte_per_sample() {
    let emu = Emulator::builder().start().await.unwrap();
    let ws = connect(
        &emu.ws_url(),
        "speech_model=universal-streaming-english&sample_rate=8000&encoding=pcm_mulaw",
        Auth::Header(emu.api_key()),
    )
    .await;
    // 400 bytes of μ-law at 8 kHz = 50 ms: accepted. 4 s of it at real time.
    let out = run(
        ws,
        &vec![0xFF; 400 * 80],
        Plan {
            frame_bytes: 400,
            interval: Some(Duration::from_millis(50)),
            terminate: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(out.close_code(), Some(1000), "{out:?}");
    let Some(ServerMessage::Termination(t)) = out.messages.last() else {
        panic!("{out:?}")
    };
    assert_eq!(t.audio_duration_seconds, Some(4.0));
}

#[tokio::test]
async fn audio_faster_than_real_time_closes_3007() {
    let emu = Emulator::builder().start().await.unwrap();
    let ws = open_ws(&emu).await;
    // 100 ms frames every 10 ms: 10x real time.
    let out = run(
        ws,
        &silence(5000),
        Plan {
            frame_bytes: 3200,
            interval: Some(Duration::from_millis(10)),
            timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        },
    )
    .await;
    assert_error_then_close(&out, 3007, "Audio Transmission Rate Exceeded: Received ");
    let (_, reason) = out.error_frame().unwrap();
    assert!(
        reason.contains(" sec. audio in ") && reason.ends_with(" sec"),
        "{reason}"
    );
}

// ----- limits -----

#[tokio::test]
async fn max_session_duration_closes_3008() {
    let emu = Emulator::builder()
        .max_session_duration(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let out = read_all(open_ws(&emu).await).await;
    assert_eq!(out.count("Begin"), 1);
    assert_error_then_close(
        &out,
        3008,
        "Session Expired: Maximum session duration exceeded",
    );
}

#[tokio::test]
async fn too_many_concurrent_sessions_close_3009() {
    let emu = Emulator::builder()
        .max_concurrent_sessions(1)
        .start()
        .await
        .unwrap();
    let mut first = open_ws(&emu).await;
    assert!(next_text(&mut first).await.contains("Begin"));
    let out = read_all(open_ws(&emu).await).await;
    assert_error_then_close(
        &out,
        3009,
        "Unauthorized Connection: Too many concurrent sessions",
    );
    // Once the first session ends, a new one is accepted (the server notices the close within
    // moments; poll instead of guessing how long that takes on a busy machine).
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let mut accepted = false;
    for _ in 0..50 {
        let mut again = open_ws(&emu).await;
        let text = next_text(&mut again).await;
        if text.contains("Begin") {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "a slot never freed up");
}

#[tokio::test]
async fn inactivity_timeout_closes_the_session_unless_kept_alive() {
    let emu = Emulator::builder().start().await.unwrap();
    let started = std::time::Instant::now();
    let out = read_all(open_ws_with(&emu, "&inactivity_timeout=5").await).await;
    assert_error_then_close(&out, INACTIVITY_CLOSE_CODE, "Session Cancelled: ");
    assert!(started.elapsed() >= Duration::from_secs(5));

    // KeepAlive every second holds it open past the timeout.
    let mut ws = open_ws_with(&emu, "&inactivity_timeout=5").await;
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ws.send(Message::text(r#"{"type":"KeepAlive"}"#))
            .await
            .unwrap();
    }
    ws.send(Message::text(r#"{"type":"Terminate"}"#))
        .await
        .unwrap();
    let out = read_all(ws).await;
    assert_eq!(out.close_code(), Some(1000), "{out:?}");
    assert_eq!(out.count("Termination"), 1);
}

#[tokio::test]
async fn terminate_without_audio_still_sends_termination() {
    let emu = emulator_with_script(Script::from_texts(["unused"])).await;
    let ws = open_ws(&emu).await;
    let out = send_text_then_read(ws, r#"{"type":"Terminate"}"#).await;
    assert_eq!(out.count("Turn"), 0);
    let Some(ServerMessage::Termination(t)) = out.messages.last() else {
        panic!("{out:?}")
    };
    assert_eq!(t.audio_duration_seconds, Some(0.0));
    assert_eq!(out.close_code(), Some(1000));
}

/// An emulator that waits only 300 ms for a request head.
async fn impatient_emulator() -> assemblyai_streaming::emulator::EmulatorHandle {
    Emulator::builder()
        .header_read_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn connections_that_never_finish_their_request_head_are_closed() {
    use tokio::io::AsyncWriteExt;
    let emu = impatient_emulator().await;
    // 50 idle connections and 50 that stop half-way through the head.
    let mut conns = Vec::new();
    for i in 0..100 {
        let mut s = tokio::net::TcpStream::connect(emu.local_addr())
            .await
            .unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /v3/ws HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        conns.push(s);
    }
    let started = std::time::Instant::now();
    for mut s in conns {
        // The server closes: EOF (possibly after a 408 response), well within 5 s.
        assert!(
            server_closes_within(&mut s, Duration::from_secs(5)).await,
            "a connection was held open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // A complete request on a fresh connection is still served.
    let resp = reqwest::get(format!("{}/v3/token", emu.http_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_too() {
    use tokio::io::AsyncWriteExt;
    let emu = impatient_emulator().await;
    let mut s = tokio::net::TcpStream::connect(emu.local_addr())
        .await
        .unwrap();
    // One complete request on a keep-alive connection, then silence.
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        server_closes_within(&mut s, Duration::from_secs(5)).await,
        "an idle keep-alive connection was held open"
    );
}
