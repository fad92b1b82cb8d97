//! HTTP `CONNECT` proxies and extra root certificates, against a real proxy on loopback: the
//! streaming client (`ws://` and `wss://` to a TLS endpoint) and `Lemur` (`https://`), with
//! basic auth from the proxy URL, and refusals (407, 403) as typed errors that are not retried.
//! The environment variables are tested in `transport_proxy_env.rs` (its own binary).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::{ConnectionParams, Error, StreamingClient};
use futures::StreamExt;
use support::transport::*;

/// base64("user:pa ss@1") — the userinfo below, percent-decoded.
const BASIC: &str = "Basic dXNlcjpwYSBzc0Ax";
const PROXY_USERINFO: &str = "user:pa%20ss%401";

/// A plain `ws://` service playing a graceful session.
async fn ws_service() -> support::server::MockServer {
    support::server::serve_session(vec![]).await
}

/// The error connecting to `service` through `proxy` ends in; three quick retries are allowed,
/// so a refusal that were retried would show in the proxy's request count.
async fn connect_error_through(proxy: String, service: &str) -> Error {
    StreamingClient::builder()
        .api_key("k")
        .base_url(service)
        .proxy(proxy)
        .retries(3, Duration::from_millis(1))
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await
        .unwrap_err()
}

fn authority(url: &str) -> &str {
    url.split("://").nth(1).unwrap().trim_end_matches('/')
}

#[tokio::test]
async fn ws_goes_through_the_builder_proxy_with_basic_auth_from_the_userinfo() {
    let service = ws_service().await;
    let proxy = connect_proxy(ProxyMode::RequireAuth(BASIC.into())).await;
    let client = StreamingClient::builder()
        .api_key("k")
        .base_url(&service.url)
        .proxy(format!("http://{PROXY_USERINFO}@{}", proxy.addr))
        .build()
        .unwrap();
    assert!(!format!("{client:?}").contains("pa%20ss"), "{client:?}");
    let mut session = client.connect(ConnectionParams::new()).await.unwrap();
    assert_eq!(session.id(), "mock-session");
    session.terminate().await.unwrap();

    let heads = proxy.heads();
    assert_eq!(heads.len(), 1);
    let target = authority(&service.url);
    assert!(
        heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n")),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains(&format!("Proxy-Authorization: {BASIC}\r\n")));
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn wss_goes_through_the_proxy_to_a_tls_endpoint_trusted_by_an_added_root() {
    let tls = test_tls();
    let (url, handshakes) = wss_service(&tls).await;
    let proxy = connect_proxy(ProxyMode::Open).await;
    let client = StreamingClient::builder()
        .api_key("k")
        .base_url(&url)
        .proxy(&proxy.url)
        .add_root_certificate(&tls.ca_pem)
        .build()
        .unwrap();
    let mut session = client.connect(ConnectionParams::new()).await.unwrap();
    assert_eq!(session.id(), "tls-session");
    session.terminate().await.unwrap();
    while session.next().await.is_some() {}
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
    assert!(proxy.heads()[0].starts_with(&format!("CONNECT {} ", authority(&url))));
}

#[tokio::test]
async fn wss_direct_needs_the_root_and_fails_without_it() {
    let tls = test_tls();
    let (url, handshakes) = wss_service(&tls).await;
    let trusted = StreamingClient::builder()
        .api_key("k")
        .base_url(&url)
        .no_proxy()
        .add_root_certificate(tls.ca_pem.as_bytes())
        .build()
        .unwrap();
    let mut session = trusted.connect(ConnectionParams::new()).await.unwrap();
    session.terminate().await.unwrap();
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);

    let untrusted = StreamingClient::builder()
        .api_key("k")
        .base_url(&url)
        .no_proxy()
        .retries(0, Duration::ZERO)
        .build()
        .unwrap();
    let err = untrusted
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    // Typed, so it is never retried: no retry can make an unknown issuer trusted.
    assert_eq!(err.kind(), "certificate", "{err:?}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

/// The errors building a streaming client and a `Lemur` end in, each named, for settings both
/// must refuse the same way.
fn build_errors(
    streaming: assemblyai_streaming::StreamingClientBuilder,
    lemur: assemblyai_streaming::lemur::LemurBuilder,
) -> [(&'static str, Error); 2] {
    [
        ("StreamingClient", streaming.build().unwrap_err()),
        ("Lemur", lemur.build().unwrap_err()),
    ]
}

#[test]
fn an_unreadable_root_certificate_is_a_config_error_at_build() {
    for pem in [
        &b"not a pem"[..],
        b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    ] {
        for (client, err) in build_errors(
            StreamingClient::builder()
                .api_key("k")
                .add_root_certificate(pem),
            Lemur::builder().api_key("k").add_root_certificate(pem),
        ) {
            assert_eq!(err.kind(), "config", "{client}: {err}");
        }
    }
}

#[tokio::test]
async fn a_proxy_asking_for_credentials_is_a_typed_error_and_not_retried() {
    let service = ws_service().await;
    let proxy = connect_proxy(ProxyMode::RequireAuth(BASIC.into())).await;
    let err = connect_error_through(proxy.url.clone(), &service.url).await;
    assert!(
        matches!(&err, Error::ProxyRejected { status: 407, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), "proxy_unauthorized");
    assert_eq!(err.code(), Some(407));
    assert!(!err.is_retryable());
    assert_eq!(proxy.requests(), 1, "not retried");
    assert_eq!(service.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_forbidding_proxy_is_a_typed_error_and_its_echo_of_the_credentials_is_redacted() {
    let service = ws_service().await;
    let proxy = connect_proxy(ProxyMode::RefuseEchoing(403)).await;
    let err = connect_error_through(
        format!("http://{PROXY_USERINFO}@{}", proxy.addr),
        &service.url,
    )
    .await;
    assert!(
        matches!(&err, Error::ProxyRejected { status: 403, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(proxy.requests(), 1, "not retried");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("refused; you sent"),
        "the proxy's text is kept: {shown}"
    );
    assert!(
        shown.contains("Proxy-Authorization: Basic <redacted>"),
        "{shown}"
    );
    assert!(
        !shown.contains("dXNlcjpwYSBzc0Ax") && !shown.contains("pa ss@1"),
        "{shown}"
    );
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_connect_error_naming_the_proxy() {
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let err = StreamingClient::builder()
        .api_key("k")
        .base_url("ws://127.0.0.1:9")
        .proxy(format!("http://u:hunter22@{addr}"))
        .retries(0, Duration::ZERO)
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "connect", "{err}");
    assert!(
        err.to_string().contains(&format!("proxy http://{addr}")),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter22"), "{err}");
}

#[test]
fn unsupported_proxy_urls_fail_at_build_without_showing_the_password() {
    for url in [
        "socks5://u:hunter22@127.0.0.1:1080",
        "https://u:hunter22@p:443",
        "http://u:hunter22@",
    ] {
        for (client, err) in build_errors(
            StreamingClient::builder().api_key("k").proxy(url),
            Lemur::builder().api_key("k").proxy(url),
        ) {
            assert_eq!(err.kind(), "config", "{client}: {url}");
            assert!(
                !format!("{err} {err:?}").contains("hunter22"),
                "{client}: {url}"
            );
        }
    }
    let err = Lemur::builder()
        .api_key("k")
        .http_client(reqwest::Client::new())
        .no_proxy()
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), "config");
}

fn chat_ok(text: &str) -> String {
    json_response(
        "200 OK",
        &serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
            .to_string(),
    )
}

#[tokio::test]
async fn lemur_goes_through_the_proxy_to_https_with_an_added_root() {
    let tls = test_tls();
    let (url, seen) = https_server(&tls, Reply::Full(chat_ok("Hola"))).await;
    let proxy = connect_proxy(ProxyMode::RequireAuth(BASIC.into())).await;
    let lemur = Lemur::builder()
        .api_key("k")
        .base_url(&url)
        .proxy(format!("http://{PROXY_USERINFO}@{}", proxy.addr))
        .add_root_certificate(&tls.ca_pem)
        .build()
        .unwrap();
    assert_eq!(lemur.translate("Hello", "es").await.unwrap(), "Hola");
    assert_eq!(seen.requests.lock().unwrap().len(), 1);
    assert!(proxy.heads()[0].starts_with(&format!("CONNECT {} ", authority(&url))));
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lemur_proxy_refusals_are_typed_and_not_retried() {
    let tls = test_tls();
    let (url, seen) = https_server(&tls, Reply::Full(chat_ok("Hola"))).await;
    for (mode, status) in [
        (ProxyMode::RequireAuth(BASIC.into()), 407),
        // reqwest reports only 407 by number; other refusals have status 0.
        (ProxyMode::RefuseEchoing(403), 0),
    ] {
        let proxy = connect_proxy(mode).await;
        let err = translate_hello(
            Lemur::builder()
                .api_key("k")
                .base_url(&url)
                .proxy(&proxy.url)
                .add_root_certificate(&tls.ca_pem)
                .retry_delay(Duration::from_millis(1)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::ProxyRejected { status: s, .. } if *s == status),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert_eq!(proxy.requests(), 1, "not retried");
    }
    assert_eq!(seen.requests.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn token_minting_uses_the_same_proxy_and_roots() {
    let tls = test_tls();
    let (url, seen) = https_server(
        &tls,
        Reply::Full(json_response(
            "200 OK",
            r#"{"token":"tmp-1","expires_in_seconds":60}"#,
        )),
    )
    .await;
    let proxy = connect_proxy(ProxyMode::Open).await;
    let client = StreamingClient::builder()
        .api_key("k")
        .base_url(url.replace("https://", "wss://"))
        .proxy(&proxy.url)
        .add_root_certificate(&tls.ca_pem)
        .build()
        .unwrap();
    assert_eq!(
        client.create_temporary_token(60, None).await.unwrap(),
        "tmp-1"
    );
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);
    assert!(
        seen.requests.lock().unwrap()[0]
            .0
            .starts_with("GET /v3/token?expires_in_seconds=60 ")
    );
}
