//! Each injectable fault, and what a raw websocket client sees.

mod support;

use std::time::{Duration, Instant};

use assemblyai_streaming::emulator::{Emulator, EmulatorHandle, Faults};
use assemblyai_streaming::protocol::{SENT_AT_FIELD, ServerMessage};
use futures::{SinkExt, StreamExt};
use support::emulator::*;
use tokio_tungstenite::tungstenite::Message;

async fn emulator(faults: Faults) -> EmulatorHandle {
    Emulator::builder().faults(faults).start().await.unwrap()
}

/// Opens a socket on `emu` and reads the first message, which must be `Begin` and come no
/// sooner than `at_least` after the socket was asked for.
async fn begin_no_sooner_than(emu: &EmulatorHandle, at_least: Duration) -> Ws {
    let started = Instant::now();
    let mut ws = open_ws(emu).await;
    let first = next_text(&mut ws).await;
    assert!(first.contains("Begin"), "{first:?}");
    assert!(started.elapsed() >= at_least, "{:?}", started.elapsed());
    ws
}

#[tokio::test]
async fn drop_after_ends_the_connection_without_a_close_frame() {
    let emu = emulator(Faults {
        drop_after: Some(Duration::from_millis(500)),
        ..Default::default()
    })
    .await;
    let mut ws = open_ws(&emu).await;
    let started = Instant::now();
    let mut saw_begin = false;
    let end = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => saw_begin |= t.contains("Begin"),
            Some(Ok(Message::Close(c))) => panic!("unexpected close frame {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    assert!(saw_begin);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // tungstenite reports a connection that ends without the closing handshake.
    assert!(
        matches!(
            end,
            Some(tokio_tungstenite::tungstenite::Error::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            )) | Some(tokio_tungstenite::tungstenite::Error::Io(_))
                | None
        ),
        "{end:?}"
    );
}

#[tokio::test]
async fn no_termination_leaves_the_client_waiting() {
    let emu = emulator(Faults {
        no_termination: true,
        ..Default::default()
    })
    .await;
    let ws = open_ws(&emu).await;
    let out = run(
        ws,
        &silence(500),
        Plan {
            terminate: true,
            timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(out.count("Begin"), 1);
    assert_eq!(out.count("Termination"), 0);
    assert_eq!(out.close, None, "the server must not close either");
}

#[tokio::test]
async fn delay_begin_holds_begin_back() {
    let emu = emulator(Faults {
        delay_begin: Some(Duration::from_millis(700)),
        ..Default::default()
    })
    .await;
    begin_no_sooner_than(&emu, Duration::from_millis(700)).await;
}

#[tokio::test]
async fn unknown_message_type_follows_begin() {
    let emu = emulator(Faults {
        unknown_message: true,
        ..Default::default()
    })
    .await;
    let out = stream(open_ws(&emu).await, &silence(200)).await;
    assert!(matches!(out.messages[0], ServerMessage::Begin(_)));
    assert!(
        matches!(out.messages[1], ServerMessage::Unknown(_)),
        "{:?}",
        out.messages[1]
    );
    assert_eq!(out.messages[1].type_name(), Some("EmulatorUnknownMessage"));
    // The session goes on normally.
    assert_eq!(out.count("Termination"), 1);
    assert_eq!(out.close_code(), Some(1000));
}

#[tokio::test]
async fn error_then_close_sends_the_chosen_error_and_code() {
    let emu = emulator(Faults {
        error_then_close: Some((3005, "Session Cancelled: An error occurred".into())),
        ..Default::default()
    })
    .await;
    let ws = open_ws(&emu).await;
    let out = listen(ws, Duration::from_secs(5)).await;
    assert_eq!(out.count("Begin"), 1);
    assert_eq!(
        out.error_frame(),
        Some((
            Some(3005),
            "Session Cancelled: An error occurred".to_string()
        ))
    );
    assert_eq!(
        out.close,
        Some((3005, "Session Cancelled: An error occurred".to_string()))
    );
}

#[tokio::test]
async fn malformed_frame_is_sent_once_and_the_session_goes_on() {
    let emu = emulator(Faults {
        malformed_frame: true,
        ..Default::default()
    })
    .await;
    let out = stream(open_ws(&emu).await, &silence(200)).await;
    assert_eq!(out.undecodable.len(), 1, "{out:?}");
    assert!(serde_json::from_str::<serde_json::Value>(&out.undecodable[0]).is_err());
    assert_eq!(out.count("Termination"), 1);
}

#[tokio::test]
async fn slow_messages_delay_every_message() {
    let emu = emulator(Faults {
        slow_messages: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let mut ws = begin_no_sooner_than(&emu, Duration::from_millis(300)).await;
    let t = Instant::now();
    ws.send(Message::text(r#"{"type":"Terminate"}"#))
        .await
        .unwrap();
    let next = next_text(&mut ws).await;
    assert!(next.contains("Termination"));
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn send_time_stamps_are_opt_in() {
    let emu = Emulator::builder()
        .stamp_send_time(true)
        .start()
        .await
        .unwrap();
    let mut ws = open_ws(&emu).await;
    let first = next_text(&mut ws).await;
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let sent = v[SENT_AT_FIELD].as_u64().expect("stamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(now >= sent && now - sent < 5_000_000_000);

    let plain = Emulator::builder().start().await.unwrap();
    let mut ws = open_ws(&plain).await;
    let first = next_text(&mut ws).await;
    assert!(!first.contains(SENT_AT_FIELD));
}

#[tokio::test]
async fn untyped_error_sends_the_legacy_error_frame_and_3005() {
    let emu = emulator(Faults {
        untyped_error: true,
        ..Default::default()
    })
    .await;
    let ws = open_ws(&emu).await;
    let out = listen(ws, Duration::from_secs(5)).await;
    assert_eq!(out.count("Begin"), 1);
    // `{"error": …}` with no `type` (fixtures line 50), not a typed `Error`.
    assert_eq!(out.error_frame(), None);
    assert!(out.messages.iter().any(|m| matches!(
        m,
        ServerMessage::LegacyError { error } if error == "Session Cancelled: An error occurred"
    )));
    assert_eq!(
        out.close,
        Some((3005, "Session Cancelled: An error occurred".to_string()))
    );
}
