//! The proxy environment variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, in
//! both cases), read by `build()` as reqwest and curl read them. One test in its own binary:
//! the environment is process-wide, so no other test may run beside it while it changes.

mod support;

use std::sync::atomic::Ordering;

use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::{ConnectionParams, StreamingClient};
use futures::{SinkExt, StreamExt};
use support::transport::*;

const VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Sets exactly these proxy variables. Called only while nothing else runs in this process
/// (no request in flight), which is what makes changing the environment sound.
fn set_env(vars: &[(&str, &str)]) {
    for name in VARS {
        // SAFETY: single test in this binary, no request or resolver thread active meanwhile.
        unsafe { std::env::remove_var(name) };
    }
    for (name, value) in vars {
        // SAFETY: as above.
        unsafe { std::env::set_var(name, value) };
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_environment_picks_the_proxy_and_no_proxy_exempts_hosts() {
    let tls = test_tls();
    let (wss_url, _) = wss_service(&tls).await;
    let ws = support::server::serve(
        |_| None,
        |mut ws, _| async move {
            ws.send(support::server::begin()).await.unwrap();
            support::server::read_until_terminate(&mut ws).await;
            ws.send(support::server::termination()).await.unwrap();
            support::server::close(&mut ws, 1000, "").await;
        },
    )
    .await;
    let chat = json_response(
        "200 OK",
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hola"}}]}"#,
    );
    let (https_url, _) = https_server(&tls, Reply::Full(chat)).await;
    let proxy = connect_proxy(ProxyMode::Open).await;

    let wss = |url: &str| {
        StreamingClient::builder()
            .api_key("k")
            .base_url(url)
            .add_root_certificate(&tls.ca_pem)
            .build()
            .unwrap()
    };
    let session_through = async |client: StreamingClient| {
        let before = proxy.tunnels.load(Ordering::SeqCst);
        let mut session = client.connect(ConnectionParams::new()).await.unwrap();
        session.terminate().await.unwrap();
        while session.next().await.is_some() {}
        proxy.tunnels.load(Ordering::SeqCst) - before
    };

    // wss:// reads HTTPS_PROXY (either case) and ALL_PROXY.
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        set_env(&[(var, &proxy.url)]);
        let client = wss(&wss_url);
        set_env(&[]);
        assert_eq!(session_through(client).await, 1, "{var}");
    }
    // …but not HTTP_PROXY.
    set_env(&[("HTTP_PROXY", &proxy.url)]);
    let client = wss(&wss_url);
    set_env(&[]);
    assert_eq!(session_through(client).await, 0, "HTTP_PROXY is for ws://");

    // ws:// reads HTTP_PROXY (either case), not HTTPS_PROXY.
    for (var, expected) in [("HTTP_PROXY", 1), ("http_proxy", 1), ("HTTPS_PROXY", 0)] {
        set_env(&[(var, &proxy.url)]);
        let client = wss(&ws.url);
        set_env(&[]);
        assert_eq!(session_through(client).await, expected, "{var} for ws://");
    }

    // NO_PROXY (either case) exempts the host; a non-matching list does not.
    for (var, list, expected) in [
        ("NO_PROXY", "127.0.0.1", 0),
        ("no_proxy", "example.com, 127.0.0.0/8", 0),
        ("NO_PROXY", "*", 0),
        ("NO_PROXY", "example.com,10.0.0.1", 1),
    ] {
        set_env(&[("HTTPS_PROXY", &proxy.url), (var, list)]);
        let client = wss(&wss_url);
        set_env(&[]);
        assert_eq!(session_through(client).await, expected, "{var}={list}");
    }

    // The builder wins over the environment.
    set_env(&[("HTTPS_PROXY", "http://127.0.0.1:9")]);
    let direct = StreamingClient::builder()
        .api_key("k")
        .base_url(&wss_url)
        .add_root_certificate(&tls.ca_pem)
        .no_proxy()
        .build()
        .unwrap();
    set_env(&[]);
    assert_eq!(session_through(direct).await, 0);

    // An unsupported proxy in the environment is an error at build, not a silent bypass.
    set_env(&[("ALL_PROXY", "socks5://u:hunter22@127.0.0.1:1080")]);
    let err = StreamingClient::builder()
        .api_key("k")
        .base_url(&wss_url)
        .build()
        .unwrap_err();
    set_env(&[]);
    assert_eq!(err.kind(), "config");
    assert!(err.to_string().contains("ALL_PROXY"), "{err}");
    assert!(!err.to_string().contains("hunter22"), "{err}");

    // Lemur reads the same variables (through reqwest), and NO_PROXY too.
    for (vars, expected) in [
        (vec![("HTTPS_PROXY", proxy.url.as_str())], 1),
        (
            vec![
                ("HTTPS_PROXY", proxy.url.as_str()),
                ("NO_PROXY", "127.0.0.1"),
            ],
            0,
        ),
    ] {
        set_env(&vars);
        let lemur = Lemur::builder()
            .api_key("k")
            .base_url(&https_url)
            .add_root_certificate(&tls.ca_pem)
            .build()
            .unwrap();
        set_env(&[]);
        let before = proxy.tunnels.load(Ordering::SeqCst);
        assert_eq!(lemur.translate("Hello", "es").await.unwrap(), "Hola");
        assert_eq!(
            proxy.tunnels.load(Ordering::SeqCst) - before,
            expected,
            "{vars:?}"
        );
    }
}
