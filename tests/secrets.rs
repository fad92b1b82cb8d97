//! Secrets never reach `Debug` output or logs, even at `trace` level.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assemblyai_streaming::{AudioChunk, ConnectionParams, Secret, StreamingClient};
use common::*;
use futures::{SinkExt, StreamExt};

const SECRET_KEY: &str = "sk-live-DO-NOT-LOG-4f1c2a";
const SECRET_TOKEN: &str = "tmp-token-DO-NOT-LOG-9e8d";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn keys_and_tokens_never_appear_in_debug_or_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("first subscriber in this test binary");

    // Debug of every public type that holds a secret.
    let builder = StreamingClient::builder().api_key(SECRET_KEY);
    let params = ConnectionParams::new()
        .extra("token", SECRET_TOKEN)
        .webhook_auth_header_value(SECRET_KEY);
    let debug = format!(
        "{builder:?} {:?} {:?} {params:?} {:?}",
        builder.clone().build().unwrap(),
        Secret::new(SECRET_KEY),
        StreamingClient::builder().token(SECRET_TOKEN)
    );
    assert!(
        !debug.contains(SECRET_KEY) && !debug.contains(SECRET_TOKEN),
        "{debug}"
    );

    // A whole session, including a failure path, logged at trace level.
    let server = serve(
        |_| None,
        |mut ws, seen| async move {
            assert_eq!(seen.authorization.as_deref(), Some(SECRET_KEY));
            ws.send(begin()).await.unwrap();
            ws.send(turn(0, true, false, "hello")).await.unwrap();
            read_until_terminate(&mut ws).await;
            ws.send(termination()).await.unwrap();
            close(&mut ws, 1000, "").await;
        },
    )
    .await;
    let client = StreamingClient::builder()
        .api_key(SECRET_KEY)
        .base_url(&server.url)
        .build()
        .unwrap();
    let mut session = client.connect(ConnectionParams::new()).await.unwrap();
    session
        .send(AudioChunk::from_pcm16(&[0; 1600]))
        .await
        .unwrap();
    session.terminate().await.unwrap();
    while session.next().await.is_some() {}

    let rejecting = serve(|_| Some(401), |_, _| async {}).await;
    let err = StreamingClient::builder()
        .api_key(SECRET_KEY)
        .base_url(&rejecting.url)
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert!(!format!("{err:?} {err}").contains(SECRET_KEY));
    let _ = StreamingClient::builder()
        .token(SECRET_TOKEN)
        .base_url(&rejecting.url)
        .retries(0, Duration::ZERO)
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("session began"), "trace logs were captured");
    for line in logs.lines().filter(|l| l.contains(SECRET_KEY)) {
        eprintln!("LEAK: {line}");
    }
    assert!(!logs.contains(SECRET_KEY), "key leaked into logs");
    assert!(!logs.contains(SECRET_TOKEN), "token leaked into logs");
}
