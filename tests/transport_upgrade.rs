//! Strict upgrade responses (RFC 6455 §4.1) and strict base URLs: what the client refuses
//! before a session starts, and the typed error it refuses with.

mod support;

use std::time::Duration;

use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::{ConnectionParams, Error, StreamingClient};
use support::transport::raw_upgrade_server;

/// An unmasked text frame holding `Begin`.
fn begin_frame() -> Vec<u8> {
    let json = br#"{"type":"Begin","id":"raw-session","expires_at":1900000000}"#;
    let mut frame = vec![0x81, json.len() as u8];
    frame.extend_from_slice(json);
    frame
}

/// Connects to a server that answers the upgrade with `head(accept)` (then a `Begin` frame).
async fn connect_to(
    head: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Result<String, Error> {
    let url = raw_upgrade_server(move |accept| {
        let mut reply = head(&accept).into_bytes();
        reply.extend_from_slice(&begin_frame());
        reply
    })
    .await;
    let client = StreamingClient::builder()
        .api_key("k")
        .base_url(url)
        .no_proxy()
        .retries(3, Duration::from_millis(1))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    client
        .connect(ConnectionParams::new())
        .await
        .map(|s| s.id().to_owned())
}

fn switching(extra: &str) -> impl Fn(&str) -> String + Send + Sync + 'static {
    let extra = extra.to_owned();
    move |accept: &str| {
        format!("HTTP/1.1 101 Switching Protocols\r\n{extra}Sec-WebSocket-Accept: {accept}\r\n\r\n")
    }
}

#[tokio::test]
async fn a_proper_101_is_accepted_whatever_the_case_and_token_lists() {
    let id = connect_to(switching(
        "upgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\n",
    ))
    .await
    .unwrap();
    assert_eq!(id, "raw-session");
    // Empty extension/protocol headers select nothing.
    let id = connect_to(switching(
        "Upgrade: websocket\r\nConnection: upgrade\r\nX-Unknown: yes\r\n",
    ))
    .await
    .unwrap();
    assert_eq!(id, "raw-session");
}

#[tokio::test]
async fn a_101_breaking_rfc_6455_section_4_1_is_a_typed_error_and_not_retried() {
    let cases = [
        (
            "no Upgrade header",
            "Connection: Upgrade\r\n",
            "Upgrade: websocket",
        ),
        (
            "Upgrade names another protocol",
            "Upgrade: h2c\r\nConnection: Upgrade\r\n",
            "Upgrade: websocket",
        ),
        (
            "no Connection header",
            "Upgrade: websocket\r\n",
            "Connection: upgrade",
        ),
        (
            "Connection without the upgrade token",
            "Upgrade: websocket\r\nConnection: keep-alive\r\n",
            "Connection: upgrade",
        ),
        (
            "an extension the client did not offer",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
            "extension",
        ),
        (
            "a subprotocol the client did not offer",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: chat\r\n",
            "subprotocol",
        ),
    ];
    for (case, headers, mentions) in cases {
        let err = connect_to(switching(headers)).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUpgrade { reason } if reason.contains(mentions)),
            "{case}: {err:?}"
        );
        assert_eq!(err.kind(), "invalid_upgrade", "{case}");
        assert!(
            !err.is_retryable(),
            "{case}: the same server answers the same way"
        );
    }
}

#[tokio::test]
async fn a_wrong_accept_key_is_still_refused() {
    let err = connect_to(|_: &str| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n"
            .to_owned()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("Sec-WebSocket-Accept"), "{err}");
}

#[test]
fn base_urls_with_control_characters_whitespace_or_non_ascii_are_config_errors() {
    for url in [
        "ws://127.0.0.1:1/v3/ws\r\nX-Injected: 1",
        "ws://127.0.0.1:1/v3/ws\nX: 1",
        "ws://127.0.0.1:1/v3 ws",
        "ws://127.0.0.1:1/v3/ws\t",
        "ws://127.0.0.1:1/\u{0}",
        "ws://exämple.com/v3/ws",
        "ws://127.0.0.1:1/v3/ws\u{a0}",
    ] {
        let err = StreamingClient::builder()
            .api_key("k")
            .base_url(url)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), "config", "{url:?}: {err}");
        let err = Lemur::builder()
            .api_key("k")
            .base_url(url.replace("ws://", "http://"))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), "config", "{url:?}: {err}");
    }
}

#[test]
fn a_query_string_or_fragment_in_a_base_url_is_refused_not_dropped() {
    for url in [
        "wss://streaming.assemblyai.com/v3/ws?sample_rate=8000",
        "wss://streaming.assemblyai.com?token=x",
        "wss://streaming.assemblyai.com/v3/ws#frag",
    ] {
        let err = StreamingClient::builder()
            .api_key("k")
            .base_url(url)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { message: m, .. } if m.contains("query string or fragment")),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("token=x"), "{err}");
    }
    let err = Lemur::builder()
        .api_key("k")
        .base_url("https://llm.example/v1?api-version=2")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), "config");
    // A clean URL with a custom path still works.
    StreamingClient::builder()
        .api_key("k")
        .base_url("wss://proxy.example/custom/ws")
        .build()
        .unwrap();
}
