//! The websocket opening handshake, done here rather than by tungstenite.
//!
//! tungstenite logs the complete upgrade request at `trace` level, `Authorization` header and
//! query string included, so with its handshake an API key or token would reach any log that
//! records trace output. Writing the request ourselves keeps secrets out of every log, and
//! lets a rejected upgrade keep its status and body.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Cause, Error, Result};
use crate::proxy::{Proxy, ProxySetting, split_host_port};
use crate::redact::Redactor;
use crate::session::wire::Sniff;

/// A client websocket as [`connect`] makes it; [`Sniff`] keeps the close code as received.
pub(crate) type Ws = WebSocketStream<Sniff<MaybeTlsStream<TcpStream>>>;

/// Largest response head or rejection body read during the handshake.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Longest upgrade-rejection body kept in an error, after redaction (all that is read).
const MAX_KEPT_BODY_BYTES: usize = MAX_RESPONSE_BYTES;

/// Longest proxy refusal (reason phrase and body) kept in an error, after redaction.
const MAX_KEPT_PROXY_BYTES: usize = 4 * 1024;

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
        split_host_port(&self.authority, default)
            .ok_or_else(|| Error::config(format!("invalid host {:?}", self.authority)))
    }

    /// The URL without its query, for messages and logs.
    pub fn display_url(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or_default();
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

/// Checks a base URL before any part of it reaches a request line or a `Host` header.
///
/// Rejected with [`Error::Config`]: control characters and whitespace anywhere (a `\r\n` would
/// inject headers), non-ASCII characters (write the host in punycode and the path
/// percent-encoded), a query string and a fragment. A base URL names a server and a path; the
/// connection parameters are built by the client, and merging a second set from the URL would
/// leave it unclear which one the server reads, so a `?` or `#` is refused rather than dropped.
pub(crate) fn check_base_url(url: &str) -> Result<()> {
    if let Some(c) = url
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || !c.is_ascii())
    {
        return Err(Error::config(format!(
            "invalid base URL: character {c:?} is not allowed (control characters, whitespace \
             and non-ASCII text must be percent-encoded, hosts written in punycode)"
        )));
    }
    if url.contains(['?', '#']) {
        return Err(Error::config(
            "invalid base URL: a query string or fragment is not allowed (a base URL names only \
             the server and path; request parameters are set by the client, e.g. through \
             ConnectionParams)",
        ));
    }
    Ok(())
}

/// How the client reaches servers: the proxy (if any) and the TLS roots. Built once per client.
#[derive(Clone, Default)]
pub(crate) struct Transport {
    proxy: Option<Proxy>,
    tls: TlsRoots,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("proxy", &self.proxy)
            .field("extra_roots", &self.tls.count())
            .finish()
    }
}

impl Transport {
    /// Resolves the proxy for `authority` (environment read now, as reqwest does when a client
    /// is built) and parses the extra root certificates (PEM, one or more each).
    pub fn new(
        proxy: &ProxySetting,
        root_pems: &[Vec<u8>],
        secure: bool,
        authority: &str,
    ) -> Result<Self> {
        let host = split_host_port(authority, 0)
            .map(|(h, _)| h)
            .unwrap_or_else(|| authority.to_owned());
        let proxy = crate::proxy::resolve(proxy, secure, &host, |k| std::env::var(k).ok())?;
        Ok(Transport {
            proxy,
            tls: TlsRoots::new(root_pems)?,
        })
    }

    /// The proxy's secrets (password, encoded credentials), for the redactor.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.proxy
            .iter()
            .flat_map(|p| p.secrets.iter().map(String::as_str))
    }
}

/// Opens the connection (through the proxy, if any) and performs the upgrade with the given
/// extra headers. Server-provided text kept in errors goes through `redactor` first.
pub(crate) async fn connect(
    target: &Target,
    headers: &[(&str, &str)],
    config: WebSocketConfig,
    transport: &Transport,
    redactor: &Redactor,
) -> Result<Ws> {
    let url = target.display_url();
    let connect_error = |message: String| Error::Connect {
        url: url.clone(),
        message,
        source: None,
    };
    // A socket failure keeps the io::Error as its source.
    let io_error = |e: std::io::Error| Error::Connect {
        url: url.clone(),
        message: e.to_string(),
        source: Some(Cause::new(e)),
    };
    let (host, port) = target.host_port()?;
    let tcp = match &transport.proxy {
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(io_error)?,
        Some(proxy) => tunnel(proxy, &host, port, redactor)
            .await
            .map_err(|e| match e {
                Error::Connect {
                    message, source, ..
                } => Error::Connect {
                    url: url.clone(),
                    message,
                    source,
                },
                other => other,
            })?,
    };
    // Each audio frame should leave at once rather than wait for the previous one's ACK.
    let _ = tcp.set_nodelay(true);
    let mut stream = if target.secure {
        tls(tcp, &host, &transport.tls).await.map_err(|e| match e {
            e @ Error::Config { .. } => e,
            // Typed, so it is never retried (crate::retry).
            Error::Certificate {
                message, source, ..
            } => Error::Certificate {
                url: url.clone(),
                message,
                source,
            },
            // A failed TLS handshake is a connect failure, keeping the TLS error as its source.
            Error::WebSocket { message, source } => Error::Connect {
                url: url.clone(),
                message: format!("websocket error: {message}"),
                source,
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
        .map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;

    let (head, mut buf) =
        read_head(&mut stream)
            .await
            .map_err(|(message, source)| Error::Connect {
                url: url.clone(),
                message,
                source,
            })?;
    if head.status != 101 {
        let body = read_body(&mut stream, buf, head.content_length).await;
        return Err(Error::HandshakeRejected {
            status: head.status,
            body: redactor.redact_truncated(&body, MAX_KEPT_BODY_BYTES),
        });
    }
    if head.accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(connect_error(
            "server answered the upgrade with a wrong Sec-WebSocket-Accept".into(),
        ));
    }
    check_upgrade(&head)?;
    let leftover = std::mem::take(&mut buf);
    let stream = Sniff::new(stream, &leftover);
    Ok(WebSocketStream::from_partially_read(stream, leftover, Role::Client, Some(config)).await)
}

/// The parts of a response head the handshake looks at.
#[derive(Debug, Default)]
struct Head {
    status: u16,
    reason: String,
    accept: Option<String>,
    content_length: Option<usize>,
    /// Every `Upgrade` / `Connection` value, comma lists split, lower-cased.
    upgrade: Vec<String>,
    connection: Vec<String>,
    /// `Sec-WebSocket-Extensions` / `Sec-WebSocket-Protocol` values, when present.
    extensions: Option<String>,
    protocol: Option<String>,
}

/// Reads a response head (bounded to [`MAX_RESPONSE_BYTES`]); returns it and the bytes read past
/// it. Errors are the message and source for [`Error::Connect`] (the socket's `io::Error`
/// when reading failed).
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::result::Result<(Head, Vec<u8>), (String, Option<Cause>)> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 2048];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| (e.to_string(), Some(Cause::new(e))))?;
        if n == 0 {
            return Err((
                "connection closed during the websocket handshake".into(),
                None,
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut header_storage = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut header_storage);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let values = |name: &str| {
                    response
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                        .collect::<Vec<_>>()
                };
                let tokens = |name: &str| {
                    values(name)
                        .iter()
                        .flat_map(|v| v.split(','))
                        .map(|t| t.trim().to_ascii_lowercase())
                        .filter(|t| !t.is_empty())
                        .collect::<Vec<_>>()
                };
                let joined = |name: &str| {
                    let v = values(name);
                    (!v.is_empty()).then(|| v.join(", "))
                };
                let head = Head {
                    status: response.code.unwrap_or(0),
                    reason: response.reason.unwrap_or_default().to_owned(),
                    accept: values("sec-websocket-accept").into_iter().next(),
                    content_length: values("content-length")
                        .first()
                        .and_then(|v| v.parse::<usize>().ok()),
                    upgrade: tokens("upgrade"),
                    connection: tokens("connection"),
                    extensions: joined("sec-websocket-extensions"),
                    protocol: joined("sec-websocket-protocol"),
                };
                return Ok((head, buf.split_off(head_len)));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_BYTES => {}
            Ok(httparse::Status::Partial) => {
                return Err(("handshake response head too large".into(), None));
            }
            // httparse's error names the rule broken, never the bytes: safe to keep.
            Err(e) => {
                return Err((
                    format!("invalid handshake response: {e}"),
                    Some(Cause::new(e)),
                ));
            }
        }
    }
}

/// RFC 6455 §4.1, the client's checks of a `101` (the accept key is checked by the caller):
/// `Upgrade` must name `websocket` and `Connection` must hold the `upgrade` token (both
/// case-insensitive), and since this client offers no extension and no subprotocol, a response
/// selecting either fails the connection.
fn check_upgrade(head: &Head) -> Result<()> {
    let fail = |reason: String| Err(Error::InvalidUpgrade { reason });
    if !head.upgrade.iter().any(|t| t == "websocket") {
        return fail("the 101 response has no `Upgrade: websocket` (RFC 6455 §4.1)".into());
    }
    if !head.connection.iter().any(|t| t == "upgrade") {
        return fail("the 101 response has no `Connection: upgrade` (RFC 6455 §4.1)".into());
    }
    // Header values are server text: named, not echoed (they could carry anything).
    if head.extensions.is_some() {
        return fail(
            "the server selected a websocket extension the client did not offer (RFC 6455 §4.1)"
                .into(),
        );
    }
    if head.protocol.is_some() {
        return fail(
            "the server selected a subprotocol the client did not offer (RFC 6455 §4.1)".into(),
        );
    }
    Ok(())
}

/// Opens a `CONNECT` tunnel to `host:port` through `proxy` (RFC 9110 §9.3.6). A refusal is
/// [`Error::ProxyRejected`] with the proxy's status; other failures are [`Error::Connect`]
/// messages (the caller adds the URL).
async fn tunnel(proxy: &Proxy, host: &str, port: u16, redactor: &Redactor) -> Result<TcpStream> {
    let connect_error = |message: String| Error::Connect {
        url: String::new(),
        message,
        source: None,
    };
    let io_error = |e: std::io::Error| Error::Connect {
        url: String::new(),
        message: format!("proxy {}: {e}", proxy.display()),
        source: Some(Cause::new(e)),
    };
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(io_error)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.map_err(io_error)?;
    let (head, rest) = read_head(&mut tcp)
        .await
        .map_err(|(m, source)| Error::Connect {
            url: String::new(),
            message: format!("proxy {}: {m}", proxy.display()),
            source,
        })?;
    if !(200..300).contains(&head.status) {
        let body = read_body(&mut tcp, rest, head.content_length).await;
        // The reason phrase and body are the proxy's text, which may echo our credentials.
        let text = format!("{} {}", head.reason, body.trim());
        return Err(Error::ProxyRejected {
            status: head.status,
            message: redactor.redact_truncated(text.trim(), MAX_KEPT_PROXY_BYTES),
        });
    }
    if !rest.is_empty() {
        // The server cannot have spoken yet; bytes here would be mistaken for its answer.
        return Err(connect_error(format!(
            "proxy {} sent data after its CONNECT response",
            proxy.display()
        )));
    }
    tracing::debug!(proxy = %proxy.display(), "CONNECT tunnel open");
    Ok(tcp)
}

/// Reads a rejection body: what `Content-Length` says, or until EOF, bounded in size and time.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
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

/// Extra trust anchors for `wss://`, on top of the platform's (webpki roots for rustls).
#[derive(Clone, Default)]
struct TlsRoots {
    #[cfg(feature = "rustls")]
    config: Option<std::sync::Arc<rustls::ClientConfig>>,
    #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
    certs: Vec<native_tls_crate::Certificate>,
    count: usize,
}

impl TlsRoots {
    fn count(&self) -> usize {
        self.count
    }

    /// Parses every certificate of every PEM; an unreadable PEM or one without a certificate
    /// is [`Error::Config`].
    fn new(pems: &[Vec<u8>]) -> Result<Self> {
        let mut ders = Vec::new();
        for pem in pems {
            ders.extend(parse_pem(pem)?);
        }
        if ders.is_empty() {
            return Ok(TlsRoots::default());
        }
        let count = ders.len();
        #[cfg(feature = "rustls")]
        {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            for der in ders {
                roots.add(der).map_err(|e| {
                    Error::config_caused(
                        format!("add_root_certificate: unusable certificate: {e}"),
                        e,
                    )
                })?;
            }
            let config = rustls_config(roots)?;
            Ok(TlsRoots {
                config: Some(config),
                count,
            })
        }
        #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
        {
            let certs = ders
                .iter()
                .map(|d| native_tls_crate::Certificate::from_der(d.as_ref()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::config_caused(
                        format!("add_root_certificate: unusable certificate: {e}"),
                        e,
                    )
                })?;
            Ok(TlsRoots { certs, count })
        }
        #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
        {
            let _ = count;
            Err(Error::config(
                "add_root_certificate needs the `rustls` or `native-tls` feature",
            ))
        }
    }
}

/// The certificates of a PEM document (`-----BEGIN CERTIFICATE-----` blocks).
pub(crate) fn parse_pem(pem: &[u8]) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config_caused(format!("add_root_certificate: invalid PEM: {e}"), e))?;
    if certs.is_empty() {
        return Err(Error::config(
            "add_root_certificate: no CERTIFICATE block in the PEM",
        ));
    }
    Ok(certs)
}

#[cfg(feature = "rustls")]
fn rustls_config(roots: rustls::RootCertStore) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    // An explicit provider avoids rustls' process-wide default, which panics when no provider
    // or two providers are compiled into the application.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| std::sync::Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|_| Error::config("rustls has no usable protocol version"))
}

#[cfg(feature = "rustls")]
async fn tls(tcp: TcpStream, host: &str, roots: &TlsRoots) -> Result<MaybeTlsStream<TcpStream>> {
    use std::sync::{Arc, OnceLock};
    static DEFAULT: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let config = match &roots.config {
        Some(c) => c.clone(),
        None => DEFAULT
            .get_or_init(|| {
                rustls_config(rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                })
                .ok()
            })
            .clone()
            .ok_or_else(|| Error::config("rustls has no usable protocol version"))?,
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::config_caused(format!("invalid TLS server name {host:?}: {e}"), e))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| match crate::retry::certificate_failure(&e) {
            Some(message) => Error::Certificate {
                url: String::new(),
                message,
                source: Some(rustls_cause(e)),
            },
            None => Error::WebSocket {
                message: format!("TLS: {e}"),
                source: Some(rustls_cause(e)),
            },
        })?;
    Ok(MaybeTlsStream::Rustls(stream))
}

/// tokio-rustls reports a TLS failure as an `io::Error` wrapping the `rustls::Error`: the
/// latter is the cause kept (so `downcast_ref::<rustls::Error>()` finds it), a plain socket
/// error stays as it is.
#[cfg(feature = "rustls")]
fn rustls_cause(e: std::io::Error) -> Cause {
    if !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return Cause::new(e);
    }
    let kind = e.kind();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(tls)) => Cause::new(*tls),
        // Not reached (checked above); an io::Error of the same kind rather than a panic.
        Some(Err(other)) => Cause::new(std::io::Error::new(kind, other)),
        None => Cause::new(std::io::Error::from(kind)),
    }
}

#[cfg(all(feature = "native-tls", not(feature = "rustls")))]
async fn tls(tcp: TcpStream, host: &str, roots: &TlsRoots) -> Result<MaybeTlsStream<TcpStream>> {
    let mut builder = native_tls_crate::TlsConnector::builder();
    for cert in &roots.certs {
        builder.add_root_certificate(cert.clone());
    }
    let connector = builder
        .build()
        .map_err(|e| Error::config_caused(format!("native TLS: {e}"), e))?;
    let stream = tokio_native_tls::TlsConnector::from(connector)
        .connect(host, tcp)
        .await
        .map_err(|e| match crate::retry::certificate_failure(&e) {
            Some(message) => Error::Certificate {
                url: String::new(),
                message,
                source: Some(Cause::new(e)),
            },
            None => Error::WebSocket {
                message: format!("TLS: {e}"),
                source: Some(Cause::new(e)),
            },
        })?;
    Ok(MaybeTlsStream::NativeTls(stream))
}

#[cfg(not(any(feature = "rustls", feature = "native-tls")))]
async fn tls(_tcp: TcpStream, _host: &str, _roots: &TlsRoots) -> Result<MaybeTlsStream<TcpStream>> {
    Err(Error::config(
        "wss:// needs the `rustls` or `native-tls` feature",
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

    /// The first error of `T` in `e`'s source chain.
    fn find<T: std::error::Error + 'static>(e: &Error) -> Option<&T> {
        std::iter::successors(std::error::Error::source(e), |&s| s.source())
            .find_map(|s| s.downcast_ref::<T>())
    }

    #[test]
    fn unusable_root_certificates_keep_the_parser_error() {
        let bad_base64 = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let e = TlsRoots::new(&[bad_base64.to_vec()]).err().unwrap();
        assert_eq!(e.kind().as_str(), "config");
        assert!(
            e.to_string()
                .starts_with("invalid configuration: add_root_certificate: invalid PEM: "),
            "{e}"
        );
        assert!(find::<rustls_pki_types::pem::Error>(&e).is_some(), "{e:?}");

        // Well-formed PEM around bytes that are no certificate ("garbage").
        #[cfg(feature = "rustls")]
        {
            let not_der = b"-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n";
            let e = TlsRoots::new(&[not_der.to_vec()]).err().unwrap();
            assert!(
                e.to_string().starts_with(
                    "invalid configuration: add_root_certificate: unusable certificate: "
                ),
                "{e}"
            );
            assert!(find::<rustls::Error>(&e).is_some(), "{e:?}");
        }
    }

    #[test]
    fn display_url_drops_the_query() {
        assert_eq!(target("h:1", true).display_url(), "wss://h:1/v3/ws");
    }
}
