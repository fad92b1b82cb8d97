//! Loopback servers for the transport tests: a test CA with a TLS acceptor, a real HTTP
//! `CONNECT` proxy, a `wss://` scripted service, raw HTTP(S) responders and a scripted
//! Server-Sent Events server.
#![allow(dead_code, clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A CA made for the test and a server certificate it signed for `127.0.0.1` and `localhost`.
pub struct TestTls {
    /// The CA certificate (PEM), for `add_root_certificate`.
    pub ca_pem: String,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

pub fn test_tls() -> TestTls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "transport test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    TestTls {
        ca_pem: ca_cert.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

// ---------------------------------------------------------------------------------------------
// CONNECT proxy
// ---------------------------------------------------------------------------------------------

/// How the proxy answers a `CONNECT`.
#[derive(Clone)]
pub enum ProxyMode {
    /// Opens every tunnel.
    Open,
    /// Opens the tunnel only with this `Proxy-Authorization` value; 407 otherwise.
    RequireAuth(String),
    /// Refuses with this status, echoing the whole request head (credentials included) in the
    /// body, as a careless proxy might.
    RefuseEchoing(u16),
}

pub struct ProxyServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub addr: SocketAddr,
    /// Every request head received, in order.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// Tunnels opened to the target.
    pub tunnels: Arc<AtomicUsize>,
}

impl ProxyServer {
    pub fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A real `CONNECT` proxy on loopback: it connects to the requested `host:port` and copies bytes
/// both ways, so TLS runs end to end through it.
pub async fn connect_proxy(mode: ProxyMode) -> ProxyServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let tunnels = Arc::new(AtomicUsize::new(0));
    let (h, t) = (heads.clone(), tunnels.clone());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (heads, tunnels, mode) = (h.clone(), t.clone(), mode.clone());
            tokio::spawn(async move {
                let Some((head, rest)) = read_head(&mut client).await else {
                    return;
                };
                heads.lock().unwrap().push(head.clone());
                let refuse = |status: u16, reason: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status} {reason}\r\nProxy-Authenticate: Basic realm=\"t\"\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let mut parts = head.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if method != "CONNECT" {
                    let _ = client
                        .write_all(refuse(405, "Method Not Allowed", "").as_bytes())
                        .await;
                    return;
                }
                match &mode {
                    ProxyMode::Open => {}
                    ProxyMode::RequireAuth(expected) => {
                        if header(&head, "proxy-authorization") != Some(expected.as_str()) {
                            let _ = client
                                .write_all(
                                    refuse(407, "Proxy Authentication Required", "").as_bytes(),
                                )
                                .await;
                            return;
                        }
                    }
                    ProxyMode::RefuseEchoing(status) => {
                        let body = format!("refused; you sent:\n{head}");
                        let _ = client
                            .write_all(refuse(*status, "Refused", &body).as_bytes())
                            .await;
                        return;
                    }
                }
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client
                        .write_all(refuse(502, "Bad Gateway", "").as_bytes())
                        .await;
                    return;
                };
                tunnels.fetch_add(1, Ordering::SeqCst);
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    ProxyServer {
        url: format!("http://{addr}"),
        addr,
        heads,
        tunnels,
    }
}

// ---------------------------------------------------------------------------------------------
// A scripted streaming service over TLS
// ---------------------------------------------------------------------------------------------

/// A `wss://127.0.0.1:PORT` service that sends `Begin`, waits for `Terminate`, then sends
/// `Termination` and closes. Returns the URL and a count of completed TLS handshakes.
pub async fn wss_service(tls: &TestTls) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (acceptor, count) = (tls.acceptor.clone(), handshakes.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let begin = r#"{"type":"Begin","id":"tls-session","expires_at":1900000000}"#;
                let _ = ws.send(Message::text(begin)).await;
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = &msg {
                        if t.as_str().contains("\"Terminate\"") {
                            break;
                        }
                    }
                }
                let end = r#"{"type":"Termination","audio_duration_seconds":0,"session_duration_seconds":1}"#;
                let _ = ws.send(Message::text(end)).await;
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (format!("wss://{addr}"), handshakes)
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP responders
// ---------------------------------------------------------------------------------------------

/// What a raw HTTP server saw and how it answered.
#[derive(Default)]
pub struct Seen {
    /// Request heads and bodies, in order.
    pub requests: Mutex<Vec<(String, String)>>,
    /// Bytes written into responses (all connections).
    pub written: AtomicUsize,
}

/// How a raw server answers one request.
#[derive(Clone)]
pub enum Reply {
    /// A whole response, written at once, then the connection closes.
    Full(String),
    /// A response head, then these pieces one by one (flushed, `gap` apart), then close, or
    /// keep the connection open `hold` long after the last piece.
    Pieces {
        head: String,
        pieces: Vec<Vec<u8>>,
        gap: Duration,
        hold: Option<Duration>,
    },
    /// A response head, then `chunk` repeated forever (until the client goes away).
    Endless { head: String, chunk: Vec<u8> },
}

/// An HTTP/1.1 head with no length: the body ends when the connection closes.
pub fn open_head(status: &str, content_type: &str) -> String {
    format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n")
}

/// A complete JSON response.
pub fn json_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, reply: Reply, seen: Arc<Seen>) {
    let Some((head, mut body)) = read_head(&mut s).await else {
        return;
    };
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 4096];
    while body.len() < len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    seen.requests
        .lock()
        .unwrap()
        .push((head, String::from_utf8_lossy(&body).into_owned()));
    let mut write = async |bytes: &[u8]| -> bool {
        let ok = s.write_all(bytes).await.is_ok() && s.flush().await.is_ok();
        if ok {
            seen.written.fetch_add(bytes.len(), Ordering::SeqCst);
        }
        ok
    };
    match reply {
        Reply::Full(r) => {
            write(r.as_bytes()).await;
        }
        Reply::Pieces {
            head,
            pieces,
            gap,
            hold,
        } => {
            if !write(head.as_bytes()).await {
                return;
            }
            for piece in pieces {
                tokio::time::sleep(gap).await;
                if !write(&piece).await {
                    return;
                }
            }
            if let Some(hold) = hold {
                tokio::time::sleep(hold).await;
            }
        }
        Reply::Endless { head, chunk } => {
            if !write(head.as_bytes()).await {
                return;
            }
            while write(&chunk).await {}
        }
    }
    let _ = s.shutdown().await;
}

/// A plain HTTP server answering every request with `reply`. Returns `http://127.0.0.1:PORT`.
pub async fn http_server(reply: Reply) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(answer(tcp, reply.clone(), s.clone()));
        }
    });
    (format!("http://{addr}"), seen)
}

/// The same over TLS with the test CA. Returns `https://127.0.0.1:PORT`.
pub async fn https_server(tls: &TestTls, reply: Reply) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let (s, acceptor) = (seen.clone(), tls.acceptor.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (reply, s, acceptor) = (reply.clone(), s.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer(tls, reply, s).await;
                }
            });
        }
    });
    (format!("https://{addr}"), seen)
}

/// A raw upgrade responder: answers the first request with `respond(accept_key)` (the right
/// `Sec-WebSocket-Accept` for the client's key) and keeps the socket open a moment.
pub async fn raw_upgrade_server(
    respond: impl Fn(String) -> Vec<u8> + Send + Sync + 'static,
) -> String {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let Some((head, _)) = read_head(&mut tcp).await else {
                    return;
                };
                let key = header(&head, "sec-websocket-key").unwrap_or("").to_owned();
                let reply = respond(derive_accept_key(key.as_bytes()));
                let _ = tcp.write_all(&reply).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    format!("ws://{addr}")
}

/// A `Lemur` builder for a loopback test server at `url`: key `k`, and no proxy taken from the
/// environment (a CI runner's proxy must not stand between the test and its server).
pub fn direct_lemur(url: &str) -> assemblyai_streaming::lemur::LemurBuilder {
    assemblyai_streaming::lemur::Lemur::builder()
        .api_key("k")
        .base_url(url)
        .no_proxy()
}

/// Builds `lemur` (it must build) and asks it to translate "Hello" into "es": the request the
/// transport tests make of a server that answers anything.
pub async fn translate_hello(
    lemur: assemblyai_streaming::lemur::LemurBuilder,
) -> assemblyai_streaming::Result<String> {
    lemur
        .build()
        .expect("the client builds")
        .translate("Hello", "es")
        .await
}

/// SSE `data:` events for these deltas as OpenAI chunk objects, then `data: [DONE]`.
pub fn sse_body(deltas: &[&str], done: bool) -> String {
    let mut out = String::new();
    out.push_str(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    );
    for d in deltas {
        let chunk = serde_json::json!({
            "id": "c", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": null}]
        });
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n");
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out
}
