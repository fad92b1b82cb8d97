//! The websocket opening handshake, done here rather than by tungstenite.
//!
//! tungstenite logs the complete upgrade request at `trace` level, `Authorization` header and
//! query string included, so with its handshake an API key or token would reach any log that
//! records trace output. Writing the request ourselves keeps secrets out of every log, and
//! lets a rejected upgrade keep its status and body.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};
use crate::session::wire::Sniff;

/// A client websocket as [`connect`] makes it; [`Sniff`] keeps the close code as received.
pub(crate) type Ws = WebSocketStream<Sniff<MaybeTlsStream<TcpStream>>>;

/// Largest response head or rejection body read during the handshake.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A `ws://` or `wss://` target, split for the handshake.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub secure: bool,
    /// `host[:port]` as written (the `Host` header).
    pub authority: String,
    /// Path and query (may hold a token: never logged).
    pub path_and_query: String,
}

impl Target {
    fn host_port(&self) -> Result<(String, u16)> {
        let default = if self.secure { 443 } else { 80 };
        let bad = || Error::Config(format!("invalid host {:?}", self.authority));
        if let Some(rest) = self.authority.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default,
                None => return Err(bad()),
            };
            return Ok((host.to_string(), port));
        }
        match self.authority.rsplit_once(':') {
            Some((host, port)) => Ok((host.to_string(), port.parse().map_err(|_| bad())?)),
            None => Ok((self.authority.clone(), default)),
        }
    }

    /// The URL without its query, for messages and logs.
    pub fn display_url(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or_default();
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

/// Opens the connection and performs the upgrade with the given extra headers.
pub(crate) async fn connect(
    target: &Target,
    headers: &[(&str, &str)],
    config: WebSocketConfig,
) -> Result<Ws> {
    let url = target.display_url();
    let connect_error = |message: String| Error::Connect {
        url: url.clone(),
        message,
    };
    let (host, port) = target.host_port()?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    // Each audio frame should leave at once rather than wait for the previous one's ACK.
    let _ = tcp.set_nodelay(true);
    let mut stream = if target.secure {
        tls(tcp, &host).await.map_err(|e| match e {
            Error::Config(m) => Error::Config(m),
            // Typed, so it is never retried (crate::retry).
            Error::Certificate { message, .. } => Error::Certificate {
                url: url.clone(),
                message,
            },
            other => connect_error(other.to_string()),
        })?
    } else {
        MaybeTlsStream::Plain(tcp)
    };

    let key = generate_key();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n",
        target.path_and_query, target.authority
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    stream
        .flush()
        .await
        .map_err(|e| connect_error(e.to_string()))?;

    let mut buf = Vec::with_capacity(1024);
    let (status, accept, content_length, head_len) = loop {
        let mut chunk = [0u8; 2048];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        if n == 0 {
            return Err(connect_error(
                "connection closed during the websocket handshake".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut header_storage = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut header_storage);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                };
                break (
                    response.code.unwrap_or(0),
                    header("sec-websocket-accept"),
                    header("content-length").and_then(|v| v.parse::<usize>().ok()),
                    head_len,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_BYTES => {}
            Ok(httparse::Status::Partial) => {
                return Err(connect_error("handshake response head too large".into()));
            }
            Err(e) => return Err(connect_error(format!("invalid handshake response: {e}"))),
        }
    };

    if status != 101 {
        let body = read_body(&mut stream, buf.split_off(head_len), content_length).await;
        return Err(Error::HandshakeRejected { status, body });
    }
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(connect_error(
            "server answered the upgrade with a wrong Sec-WebSocket-Accept".into(),
        ));
    }
    let leftover = buf.split_off(head_len);
    let stream = Sniff::new(stream, &leftover);
    Ok(WebSocketStream::from_partially_read(stream, leftover, Role::Client, Some(config)).await)
}

/// Reads a rejection body: what `Content-Length` says, or until EOF, bounded in size and time.
async fn read_body(
    stream: &mut MaybeTlsStream<TcpStream>,
    mut body: Vec<u8>,
    content_length: Option<usize>,
) -> String {
    let want = content_length
        .unwrap_or(MAX_RESPONSE_BYTES)
        .min(MAX_RESPONSE_BYTES);
    let read = async {
        let mut chunk = [0u8; 2048];
        while body.len() < want {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    body.truncate(want);
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(feature = "rustls")]
async fn tls(tcp: TcpStream, host: &str) -> Result<MaybeTlsStream<TcpStream>> {
    use std::sync::{Arc, OnceLock};
    // An explicit provider avoids rustls' process-wide default, which panics when no provider
    // or two providers are compiled into the application.
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        })
        .clone()
        .ok_or_else(|| Error::Config("rustls has no usable protocol version".into()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::Config(format!("invalid TLS server name {host:?}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| match crate::retry::certificate_failure(&e) {
            Some(message) => Error::Certificate {
                url: String::new(),
                message,
            },
            None => Error::WebSocket(format!("TLS: {e}")),
        })?;
    Ok(MaybeTlsStream::Rustls(stream))
}

#[cfg(all(feature = "native-tls", not(feature = "rustls")))]
async fn tls(tcp: TcpStream, host: &str) -> Result<MaybeTlsStream<TcpStream>> {
    let connector = native_tls_crate::TlsConnector::new()
        .map_err(|e| Error::Config(format!("native TLS: {e}")))?;
    let stream = tokio_native_tls::TlsConnector::from(connector)
        .connect(host, tcp)
        .await
        .map_err(|e| Error::WebSocket(format!("TLS: {e}")))?;
    Ok(MaybeTlsStream::NativeTls(stream))
}

#[cfg(not(any(feature = "rustls", feature = "native-tls")))]
async fn tls(_tcp: TcpStream, _host: &str) -> Result<MaybeTlsStream<TcpStream>> {
    Err(Error::Config(
        "wss:// needs the `rustls` or `native-tls` feature".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(authority: &str, secure: bool) -> Target {
        Target {
            secure,
            authority: authority.into(),
            path_and_query: "/v3/ws?token=secret".into(),
        }
    }

    #[test]
    fn hosts_and_ports_including_ipv6() {
        assert_eq!(
            target("127.0.0.1:8080", false).host_port().unwrap(),
            ("127.0.0.1".into(), 8080)
        );
        assert_eq!(
            target("streaming.assemblyai.com", true)
                .host_port()
                .unwrap(),
            ("streaming.assemblyai.com".into(), 443)
        );
        assert_eq!(
            target("[::1]:9", false).host_port().unwrap(),
            ("::1".into(), 9)
        );
        assert_eq!(
            target("[::1]", false).host_port().unwrap(),
            ("::1".into(), 80)
        );
        assert!(target("host:notaport", false).host_port().is_err());
    }

    #[test]
    fn display_url_drops_the_query() {
        assert_eq!(target("h:1", true).display_url(), "wss://h:1/v3/ws");
    }
}
