//! `Lemur` against hand-rolled loopback servers, for what the emulator does not do: never
//! answering, dropping connections, and counting requests to prove what is (not) retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::{Error, TimeoutKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server answering every request with `response` (a full raw HTTP response, or `None` to
/// keep the connection open without answering). Returns its base URL and a request counter.
async fn canned_server(response: Option<String>) -> (String, Arc<AtomicUsize>) {
    let response: Option<Arc<str>> = response.map(Arc::from);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read up to the end of the headers plus the announced body.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match response {
                    Some(r) => {
                        let r: &str = &r;
                        let _ = socket.write_all(r.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (url, count)
}

/// A complete `connection: close` HTTP response with a JSON body.
fn http(status: &str, body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn lemur(url: &str) -> Lemur {
    Lemur::builder()
        .api_key("k")
        .base_url(url)
        .retry_delay(Duration::from_millis(5))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_silent_server_times_out_with_the_configured_limit() {
    let (url, count) = canned_server(None).await;
    let e = lemur(&url).translate("Hello", "es").await.unwrap_err();
    match e {
        Error::Timeout { kind, after } => {
            assert_eq!(kind, TimeoutKind::Request);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "a timeout is not retried");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (url, count) = canned_server(http(
        "400 Bad Request",
        r#"{"message":"Validation error","code":400,"request_id":"r-1","metadata":{}}"#,
    ))
    .await;
    let e = lemur(&url).translate("Hello", "es").await.unwrap_err();
    assert_eq!(e.code(), Some(400));
    assert!(matches!(&e, Error::Api { request_id: Some(id), .. } if id == "r-1"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_gateway_503_without_body_is_retried_and_reported_by_its_reason() {
    let (url, count) = canned_server(http("503 Service Unavailable", "")).await;
    let e = lemur(&url).translate("Hello", "es").await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 503, message, .. } if message == "Service Unavailable")
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "two retries after the first attempt"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_after_retries() {
    // Bind then drop: the port is (almost certainly) closed now.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let e = lemur(&url).translate("Hello", "es").await.unwrap_err();
    assert_eq!(e.kind(), "http", "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn an_openai_compatible_server_response_is_understood() {
    // A plain OpenAI-style body: `id`/`object`, usage in prompt/completion tokens.
    let (url, _) = canned_server(http(
        "200 OK",
        r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":
            {"role":"assistant","content":" Hola "},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
    ))
    .await;
    assert_eq!(lemur(&url).translate("Hello", "es").await.unwrap(), "Hola");
}

#[tokio::test]
async fn garbage_from_the_server_is_a_decode_error_not_a_panic() {
    let (url, _) = canned_server(http("200 OK", r#"{"choices"#)).await;
    let e = lemur(&url).translate("Hello", "es").await.unwrap_err();
    assert_eq!(e.kind(), "decode", "{e:?}");
}
