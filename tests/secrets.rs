//! Secrets never reach `Debug` output, errors or logs, even at `trace` level, and even when a
//! server echoes them back: a table of every transport path that keeps server text, run with a
//! canary key and token, where a partial echo (8 characters or more) counts as a leak.

mod support;

use std::time::Duration;

use assemblyai_streaming::{AudioChunk, ConnectionParams, Secret, StreamingClient};
use futures::{SinkExt, StreamExt};
use support::server::*;

const SECRET_KEY: &str = "sk-live-DO-NOT-LOG-4f1c2a";
const SECRET_TOKEN: &str = "tmp-token-DO-NOT-LOG-9e8d";

fn capture() -> LogCapture {
    capture_logs()
}

#[tokio::test]
async fn keys_and_tokens_never_appear_in_debug_or_trace_logs() {
    let capture = capture();

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

// ---------------------------------------------------------------------------------------------
// Server echoes: the canary table
// ---------------------------------------------------------------------------------------------

use assemblyai_streaming::Error;
use assemblyai_streaming::lemur::{Backend, ChatMessage, ChatRequest, Lemur, LemurBuilder};
use support::transport::*;

const CANARY_KEY: &str = "canary-key-7Qm2xV9pL4sT8wZ1rN6b";
/// A token with characters that percent-encoding changes, to catch the encoded echo too.
const CANARY_TOKEN: &str = "canary-tok/9Hd+3Kf=2Jw8Yc5Lq";
const PROXY_PASSWORD: &str = "canary-proxy-pw-4Rt7Ux2Zk";

/// The leak, if `text` holds any run of 8 characters of a canary (whole, partial or
/// percent-encoded).
fn leak(text: &str) -> Option<String> {
    let mut encoded = String::new();
    for c in CANARY_TOKEN.chars() {
        match c {
            '/' => encoded.push_str("%2F"),
            '+' => encoded.push_str("%2B"),
            '=' => encoded.push_str("%3D"),
            c => encoded.push(c),
        }
    }
    for secret in [CANARY_KEY, CANARY_TOKEN, &encoded, PROXY_PASSWORD] {
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(8) {
            let part: String = window.iter().collect();
            if text.contains(&part) {
                return Some(part);
            }
        }
    }
    None
}

/// How a server echoes: the whole secret, a long prefix, the tail, or cut by truncation.
fn echoes(secret: &str) -> Vec<String> {
    vec![
        format!("invalid key {secret}"),
        format!("invalid key {}…", &secret[..20]),
        format!("key ends in {}", &secret[secret.len() - 12..]),
        // Long enough that a cut at any limit of 512 B–64 KiB falls inside the echo.
        format!("{}{secret}", "x".repeat(500)),
        format!("{}{secret}{}", "y".repeat(1015), "z".repeat(100)),
    ]
}

fn lemur_at(url: &str) -> LemurBuilder {
    Lemur::builder()
        .api_key(CANARY_KEY)
        .base_url(url)
        .no_proxy()
        .max_retries(0)
        .timeout(Duration::from_secs(5))
}

/// What a caller could print of `translate("Hi", "es")` through the Gateway at `url`.
async fn shown_translation(url: &str) -> String {
    shown(&lemur_at(url).build().unwrap().translate("Hi", "es").await)
}

/// What a caller could print of a legacy LeMUR `task` at `url`.
async fn shown_legacy_task(url: &str) -> String {
    let lemur = lemur_at(url).backend(Backend::LegacyLemur).build().unwrap();
    shown(&lemur.task("p", "t").await)
}

/// What a caller could print of the items of `translate_stream("Hi", "es")` at `url`.
async fn shown_stream(url: &str) -> String {
    let lemur = lemur_at(url).build().unwrap();
    let items: Vec<_> = lemur.translate_stream("Hi", "es").collect().await;
    format!("{items:?}")
}

/// Everything a caller could print of an outcome: the error's `Display` and `Debug`, or the
/// text it returned.
fn shown<T: std::fmt::Debug>(result: &Result<T, Error>) -> String {
    match result {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{e} {e:?}"),
    }
}

/// A raw upgrade answer: `status` with `body`.
fn rejection(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn server_echoes_of_the_key_token_or_proxy_password_never_reach_an_error_or_output() {
    let logs = capture();
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. Upgrade rejections echoing the key (Authorization) or the token (query string),
    //    each to a client that sent it.
    let connect = async |builder: assemblyai_streaming::StreamingClientBuilder,
                         url: &str,
                         params: ConnectionParams| {
        let result = builder
            .base_url(url)
            .no_proxy()
            .retries(0, Duration::ZERO)
            .build()
            .unwrap()
            .connect(params)
            .await
            .map(|_| ());
        shown(&result)
    };
    for status in [
        "400 Bad Request",
        "401 Unauthorized",
        "503 Service Unavailable",
    ] {
        for (i, body) in echoes(CANARY_KEY).into_iter().enumerate() {
            let reply = rejection(status, &body);
            let url = raw_upgrade_server(move |_| reply.clone().into_bytes()).await;
            let builder = StreamingClient::builder().api_key(CANARY_KEY);
            let text = connect(builder, &url, ConnectionParams::new()).await;
            rows.push((format!("upgrade {status} echo #{i} (key)"), text));
        }
        for (i, body) in echoes(CANARY_TOKEN).into_iter().enumerate() {
            let reply = rejection(status, &body);
            let url = raw_upgrade_server(move |_| reply.clone().into_bytes()).await;
            let builder = StreamingClient::builder().token(CANARY_TOKEN);
            let text = connect(builder, &url, ConnectionParams::new()).await;
            rows.push((format!("upgrade {status} echo #{i} (token)"), text));
            let builder = StreamingClient::builder().api_key("an-unrelated-key-0000");
            let params = ConnectionParams::new().extra("token", CANARY_TOKEN);
            let text = connect(builder, &url, params).await;
            rows.push((
                format!("upgrade {status} echo #{i} (token parameter)"),
                text,
            ));
        }
    }

    // 2. A proxy refusing the tunnel and echoing the request head (Proxy-Authorization).
    let proxy = connect_proxy(ProxyMode::RefuseEchoing(403)).await;
    let through = StreamingClient::builder()
        .api_key(CANARY_KEY)
        .base_url("ws://127.0.0.1:9")
        .proxy(format!("http://user:{PROXY_PASSWORD}@{}", proxy.addr))
        .retries(0, Duration::ZERO)
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await
        .map(|_| ());
    rows.push((
        "proxy 403 echoing Proxy-Authorization".into(),
        shown(&through),
    ));
    // …and the same proxy in front of Lemur (reqwest's tunnel, logged at trace level too).
    let (url, _) = http_server(Reply::Full(json_response("200 OK", "{}"))).await;
    let lemur = Lemur::builder()
        .api_key(CANARY_KEY)
        .base_url(url.replace("http://", "https://"))
        .proxy(format!("http://user:{PROXY_PASSWORD}@{}", proxy.addr))
        .max_retries(0)
        .build()
        .unwrap();
    rows.push((
        "lemur proxy 403".into(),
        shown(&lemur.translate("Hi", "es").await),
    ));
    assert!(rows.last().unwrap().1.contains("ProxyRejected"), "{rows:?}");
    // Debug of everything holding the proxy URL.
    let builder = StreamingClient::builder()
        .api_key(CANARY_KEY)
        .proxy(format!("http://user:{PROXY_PASSWORD}@127.0.0.1:3128"));
    rows.push((
        "Debug of proxied clients".into(),
        format!(
            "{builder:?} {:?} {lemur:?} {:?}",
            builder.clone().build().unwrap(),
            Lemur::builder().proxy(format!("http://u:{PROXY_PASSWORD}@p:1"))
        ),
    ));

    // 3. LLM error bodies in every envelope, echoing the key.
    for (i, echo) in echoes(CANARY_KEY).into_iter().enumerate() {
        let quoted = serde_json::to_string(&echo).unwrap();
        let bodies = [
            format!(r#"{{"error":{quoted}}}"#),
            format!(
                r#"{{"message":{quoted},"request_id":{quoted},"metadata":{{"errors":[{quoted}]}}}}"#
            ),
            format!(
                r#"{{"error":{{"code":400,"message":{quoted},"metadata":{{"errors":[{quoted}]}}}}}}"#
            ),
            echo.clone(),
        ];
        for (j, body) in bodies.iter().enumerate() {
            for status in [
                "400 Bad Request",
                "401 Unauthorized",
                "500 Internal Server Error",
            ] {
                let (url, _) = http_server(Reply::Full(json_response(status, body))).await;
                rows.push((
                    format!("gateway {status} body #{i}.{j}"),
                    shown_translation(&url).await,
                ));
                rows.push((
                    format!("lemur {status} body #{i}.{j}"),
                    shown_legacy_task(&url).await,
                ));
                rows.push((
                    format!("stream open {status} body #{i}.{j}"),
                    shown_stream(&url).await,
                ));
            }
        }
        // An x-request-id header echoing the key.
        let header_echo = format!(
            "HTTP/1.1 429 Too Many Requests\r\nx-request-id: {}\r\ncontent-length: 2\r\n\
             connection: close\r\n\r\n{{}}",
            echo.replace('…', "")
        );
        let (url, _) = http_server(Reply::Full(header_echo)).await;
        rows.push((
            format!("x-request-id echo #{i}"),
            shown_translation(&url).await,
        ));

        // 4. Success bodies: an undecodable one (kept as the decode payload), a completion
        //    that repeats the key, and the same over SSE (delta, error event, bad chunk).
        let bad_json = format!(r#"{{"choices":[{quoted}"#);
        let (url, _) = http_server(Reply::Full(json_response("200 OK", &bad_json))).await;
        rows.push((
            format!("undecodable 200 #{i}"),
            shown_translation(&url).await,
        ));
        rows.push((
            format!("undecodable legacy 200 #{i}"),
            shown_legacy_task(&url).await,
        ));
        let completion = json_response(
            "200 OK",
            &serde_json::json!({"choices":[{"message":{"content": echo}}], "response": echo})
                .to_string(),
        );
        let (url, _) = http_server(Reply::Full(completion)).await;
        let lemur = lemur_at(&url).build().unwrap();
        rows.push((
            format!("completion #{i}"),
            shown(&lemur.translate("Hi", "es").await),
        ));
        let chat = lemur
            .chat(ChatRequest::new(vec![ChatMessage::user("Hi")]))
            .await
            .map(|r| r.text().map(str::to_owned));
        rows.push((format!("chat response #{i}"), shown(&chat)));
        rows.push((
            format!("legacy completion #{i}"),
            shown_legacy_task(&url).await,
        ));

        let sse_bodies = [
            sse_body(&[&echo], true),
            format!(
                "data: {}\n\n",
                serde_json::json!({"error": {"code": 401, "message": echo}})
            ),
            format!("data: {{\"choices\": {quoted}\n\n"),
        ];
        for (j, body) in sse_bodies.into_iter().enumerate() {
            let (url, _) = http_server(Reply::Full(format!(
                "{}{body}",
                open_head("200 OK", "text/event-stream")
            )))
            .await;
            rows.push((format!("sse #{i}.{j}"), shown_stream(&url).await));
        }
    }

    // 5. Temporary-token minting answering with an echo.
    for (i, echo) in echoes(CANARY_KEY).into_iter().enumerate() {
        let quoted = serde_json::to_string(&echo).unwrap();
        for (status, body) in [
            ("401 Unauthorized", format!(r#"{{"error":{quoted}}}"#)),
            ("500 Internal Server Error", echo.clone()),
            ("200 OK", format!(r#"{{"nope":{quoted}}}"#)),
        ] {
            let (url, _) = http_server(Reply::Full(json_response(status, &body))).await;
            let r = StreamingClient::builder()
                .api_key(CANARY_KEY)
                .base_url(url.replace("http://", "ws://"))
                .no_proxy()
                .build()
                .unwrap()
                .create_temporary_token(60, None)
                .await;
            rows.push((format!("token {status} #{i}"), shown(&r)));
        }
    }

    let mut leaks = Vec::new();
    for (name, text) in &rows {
        if let Some(part) = leak(text) {
            leaks.push(format!("{name}: {part:?} in {text}"));
        }
    }
    assert!(rows.len() > 250, "{} rows", rows.len());
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // The server's own words are kept around the redaction.
    assert!(
        rows.iter()
            .any(|(_, t)| t.contains("invalid key <redacted>"))
    );

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    if let Some(part) = leak(&logs) {
        let line = logs.lines().find(|l| l.contains(&part)).unwrap_or_default();
        panic!("{part:?} leaked into the logs: {line}");
    }
}
