//! The `live_captions` service without a browser: its websocket contract for bad input (a text
//! frame, an odd-length or oversized audio frame), several connections at once, and a client
//! that vanishes. Each case must end cleanly with nothing left running.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    let mut child = Command::new(support::server::example_binary("live_captions"))
        .args(["--port", "0"])
        .env_remove("ASSEMBLYAI_API_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start live_captions");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Service {
        child,
        url: line.trim().to_owned(),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(service: &Service) -> Ws {
    let ws_url = service.url.replace("http://", "ws://") + "ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let ready = next_json(&mut ws).await.expect("ready");
    assert_eq!(ready["event"], "ready");
    ws
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the service answers within 10 s")?;
        match msg {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Everything the service sends until it closes the socket.
async fn until_closed(ws: &mut Ws) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(v) = next_json(ws).await {
        all.push(v);
    }
    all
}

async fn health(service: &Service) -> Value {
    reqwest::get(format!("{}health", service.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn drained(service: &Service) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(service).await;
        if (h["sessions"] == 0 && h["emulator_sessions"] == 0)
            || tokio::time::Instant::now() > deadline
        {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_get_a_clear_message_and_a_clean_end() {
    let service = start();
    assert_eq!(health(&service).await["mode"], "emulated");
    let cases: [(Message, &str); 3] = [
        (Message::text("hello"), "text frame"),
        (Message::binary(vec![0u8; 3201]), "whole 16-bit samples"),
        (Message::binary(vec![0u8; 64_000]), "limit"),
    ];
    for (frame, expected) in cases {
        let mut ws = open(&service).await;
        // 200 ms of real audio first: the bad frame must not lose it.
        ws.send(Message::binary(vec![0u8; 6400])).await.unwrap();
        ws.send(frame).await.unwrap();
        let messages = until_closed(&mut ws).await;
        let errors: Vec<&str> = messages
            .iter()
            .filter(|m| m["event"] == "error")
            .filter_map(|m| m["message"].as_str())
            .collect();
        assert_eq!(errors.len(), 1, "{messages:?}");
        assert!(errors[0].contains(expected), "{errors:?}");
        assert_eq!(
            messages.last().map(|m| m["event"].clone()),
            Some("termination".into()),
            "the session ends with Termination: {messages:?}"
        );
    }
    let h = drained(&service).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["emulator_sessions"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_connection_has_its_own_session_and_a_vanished_client_ends_it() {
    let service = start();
    let a = open(&service).await;
    let b = open(&service).await;
    let h = health(&service).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["emulator_sessions"].as_u64()),
        (Some(2), Some(2))
    );
    // One closes properly, the other just disappears (TCP closed without a close frame).
    let mut a = a;
    a.close(None).await.unwrap();
    drop(b);
    let h = drained(&service).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["emulator_sessions"].as_u64()),
        (Some(0), Some(0))
    );
    // Captions of a finished session stay available; an unknown one is 404.
    let ok = reqwest::get(format!("{}captions/1.vtt", service.url))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "WEBVTT\n\n");
    let missing = reqwest::get(format!("{}captions/99.vtt", service.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
