//! A server that echoes the API key back never gets it into what the session keeps: close
//! reasons, `Error`-frame text, the payload a decode error keeps, and the classification of a
//! failed connect (before `Begin`). Whole and partial echoes are both checked.

mod support;

use std::time::Duration;

use assemblyai_streaming::{ConnectionParams, Error, StreamingClient};
use futures::{SinkExt, StreamExt};
use support::server::*;
use tokio_tungstenite::tungstenite::Message;

const CANARY: &str = "sk-canary-7f3a9c2e41d8b6";

fn client(url: &str) -> StreamingClient {
    support::server::client_builder(CANARY, url)
        .build()
        .unwrap()
}

/// Everything an application could print or log about `e`.
#[track_caller]
fn assert_clean(e: &Error) {
    let mut texts = vec![e.to_string(), format!("{e:?}")];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    for text in texts {
        assert!(!text.contains(CANARY), "whole key in {text}");
        assert!(!text.contains(&CANARY[..12]), "key prefix in {text}");
        assert!(!text.contains(&CANARY[10..]), "key suffix in {text}");
    }
}

async fn session_errors(script: fn() -> Vec<Message>) -> Vec<Error> {
    let server = serve(
        |_| None,
        move |mut ws, _| async move {
            ws.send(begin()).await.unwrap();
            for m in script() {
                let _ = ws.send(m).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let items = everything_from(&server.url).await;
    items.into_iter().filter_map(|i| i.err()).collect()
}

/// Every item a session with the server at `url` yields, to its end (5 s at most).
async fn everything_from(
    url: &str,
) -> Vec<assemblyai_streaming::Result<assemblyai_streaming::TurnEvent>> {
    let session = client(url).connect(ConnectionParams::new()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), session.collect::<Vec<_>>())
        .await
        .unwrap()
}

fn close_with(reason: String) -> Message {
    Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 3005.into(),
        reason: reason.into(),
    }))
}

#[tokio::test]
async fn a_close_reason_echoing_the_key_is_redacted() {
    let errors = session_errors(|| vec![close_with(format!("bad key {CANARY}"))]).await;
    assert_eq!(errors.len(), 1);
    assert_clean(&errors[0]);
    assert!(errors[0].to_string().contains("bad key <redacted>"));
}

#[tokio::test]
async fn an_error_frame_echoing_the_key_is_redacted() {
    let errors = session_errors(|| {
        vec![
            Message::text(
                serde_json::json!({"type": "Error", "error_code": 3005,
                    "error": format!("rejected {} and {}", CANARY, &CANARY[..14])})
                .to_string(),
            ),
            close_with(String::new()),
        ]
    })
    .await;
    assert_eq!(errors.len(), 1);
    assert_clean(&errors[0]);
}

#[tokio::test]
async fn a_decode_error_keeps_its_payload_without_the_key() {
    let errors = session_errors(|| {
        // A frame over 4 KiB with the key at the cut: redaction comes before truncation.
        let padding = "x".repeat(4096 - 20);
        vec![
            Message::text(format!(
                r#"{{"type":"Turn","turn_order":"{padding}{CANARY}"#
            )),
            Message::text(format!(r#"{{"type":"Turn","echo":"{CANARY}"#)),
            close_with(String::new()),
        ]
    })
    .await;
    let decodes: Vec<_> = errors
        .iter()
        .filter(|e| matches!(e, Error::Decode { .. }))
        .collect();
    assert_eq!(decodes.len(), 2, "{errors:?}");
    for e in &errors {
        assert_clean(e);
    }
}

#[tokio::test]
async fn a_failed_connect_echoing_the_key_is_redacted() {
    let server = serve(
        |_| None,
        |mut ws, _| async move {
            let _ = ws
                .send(Message::text(
                    serde_json::json!({"type": "Error", "error_code": 1008,
                        "error": format!("Invalid API key: {CANARY}")})
                    .to_string(),
                ))
                .await;
            close(&mut ws, 1008, &format!("key {}", &CANARY[..16])).await;
        },
    )
    .await;
    let err = client(&server.url)
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unauthorized");
    assert_clean(&err);
}

/// The first run of 8 characters of the key in `text`, if any.
fn key_part_in(text: &str) -> Option<String> {
    let chars: Vec<char> = CANARY.chars().collect();
    chars
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .find(|part| text.contains(part))
}

#[tokio::test]
async fn messages_echoing_the_key_are_redacted_in_events_and_the_crates_logs() {
    let logs = capture_logs();
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        for echo in [
            format!(r#"{{"type":"Warning","warning_code":1,"warning":"key {CANARY}"}}"#),
            format!(r#"{{"type":"NewKind","nested":{{"echo":["{CANARY}"]}}}}"#),
            // serde_json's complaint quotes the value it could not read.
            format!(r#"{{"type":"Turn","turn_order":"{CANARY}"}}"#),
            // A second Begin is logged and ignored. (The first one's id is kept as sent: it
            // identifies the session, and redacting it would mangle ids with a short key.)
            format!(r#"{{"type":"Begin","id":"{CANARY}","expires_at":1}}"#),
        ] {
            ws.send(Message::text(echo)).await.unwrap();
        }
        ws.send(error_frame(3005, &format!("bad key {CANARY}")))
            .await
            .unwrap();
        close(&mut ws, 3005, &format!("k {}", &CANARY[..20])).await;
    })
    .await;
    let items = everything_from(&server.url).await;
    // Begin, Warning, NewKind, the decode error, the end.
    assert_eq!(items.len(), 5, "{items:?}");
    let shown = format!("{items:?}");
    assert_eq!(key_part_in(&shown), None, "{shown}");
    assert!(shown.contains("key <redacted>"), "{shown}");
    for item in &items {
        if let Err(e) = item {
            assert_clean(e);
        }
    }
    // The client's lines: the crate's own, and its libraries' inside the crate's spans (the
    // scripted server in this process logs what it sends, outside them). Not tungstenite's:
    // at trace level it logs every frame it receives verbatim, which the crate cannot redact
    // (README, "Choices the crate makes for you").
    let logs: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("assemblyai") && !l.contains(" tungstenite::"))
        .map(String::from)
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("second Begin ignored")),
        "trace logs were captured"
    );
    let leaks: Vec<_> = logs.iter().filter(|l| key_part_in(l).is_some()).collect();
    assert!(leaks.is_empty(), "{leaks:#?}");
}
