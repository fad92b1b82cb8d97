//! One emulated session: the websocket conversation after the upgrade.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Interval, MissedTickBehavior, sleep, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::engine::Engine;
use super::ids;
use super::query::{MAX_KEYTERM_CHARS, SessionParams, check_update};
use super::state::Shared;
use crate::Error;
use crate::protocol::{
    Begin, BeginConfiguration, ClientMessage, ErrorFrame, SENT_AT_FIELD, ServerMessage, Warning,
};

/// `Warning` code when key terms longer than 50 characters are ignored (spec §1.2 says they
/// are ignored; the service's warning code is undocumented, the emulator uses the
/// input-validation number).
pub const WARNING_KEYTERMS_IGNORED: i64 = 3006;
/// `Warning` code a minute before the session cap closes the session with 3008 (text as in the
/// fixtures, line 51: "session ending soon"; the code is undocumented, the emulator uses 3008's).
pub const WARNING_SESSION_ENDING: i64 = 3008;
/// How long before the session cap the "session ending soon" `Warning` comes.
const SESSION_ENDING_NOTICE: Duration = Duration::from_secs(60);

/// The `Warning` for key terms that are too long, if any.
fn keyterms_warning(terms: &[String]) -> Option<ServerMessage> {
    let long = terms
        .iter()
        .filter(|t| t.chars().count() > MAX_KEYTERM_CHARS)
        .count();
    (long > 0).then(|| {
        ServerMessage::Warning(Warning {
            warning_code: WARNING_KEYTERMS_IGNORED,
            warning: format!(
                "keyterms_prompt: {long} term(s) longer than {MAX_KEYTERM_CHARS} characters ignored"
            ),
        })
    })
}

/// How long the emulator waits for the client's half of the closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Everything the HTTP side learned before the upgrade.
pub(crate) struct SessionSetup {
    pub shared: Arc<Shared>,
    pub query: String,
    /// `Ok(cap)`: authorised (with the token's session cap, if any); `Err(reason)`: close 1008.
    pub auth: Result<Option<Duration>, String>,
    /// The client's `AssemblyAI-Version` header, echoed in `Begin.configuration.api_version`.
    pub api_version: Option<String>,
}

/// Parses one client text frame as the service does. `Err` is the [`Error::Closed`] (code 3006)
/// the emulator closes the session with, carrying the service's reason text (`Invalid JSON: …`,
/// `Invalid Message Type: …` or `Invalid Message: …`).
///
/// ```
/// use assemblyai_streaming::emulator::parse_client_message;
/// use assemblyai_streaming::protocol::ClientMessage;
///
/// assert_eq!(parse_client_message(r#"{"type":"KeepAlive"}"#).unwrap(), ClientMessage::KeepAlive);
/// let err = parse_client_message("[]").unwrap_err();
/// assert_eq!(err.code(), Some(3006));
/// assert!(err.to_string().contains("Invalid Message: []"));
/// ```
pub fn parse_client_message(text: &str) -> Result<ClientMessage, Error> {
    parse_client_text(text).map_err(|reason| Error::closed(3006, reason))
}

fn parse_client_text(text: &str) -> Result<ClientMessage, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| format!("Invalid JSON: {}", clip(text, 200)))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(format!("Invalid Message: {}", clip(text, 200)));
    };
    match kind {
        "UpdateConfiguration" | "ForceEndpoint" | "KeepAlive" | "Terminate" => {}
        other => return Err(format!("Invalid Message Type: {}", clip(other, 200))),
    }
    let msg: ClientMessage = serde_json::from_value(value)
        .map_err(|e| format!("Invalid Message: {}", clip(&e.to_string(), 200)))?;
    if let ClientMessage::UpdateConfiguration(u) = &msg {
        check_update(u)?;
    }
    Ok(msg)
}

fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The writing half, with the send-time stamp and the slow-message fault. Every write is
/// bounded (by `write_timeout`, and never past the session cap plus that), so a client that
/// stops reading cannot hold its session open: the write fails and the session ends.
struct Conn<S> {
    ws: WebSocketStream<S>,
    stamp: bool,
    slow: Option<Duration>,
    write_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn feed_text(&mut self, mut text: String) -> bool {
        if let Some(d) = self.slow {
            sleep(d).await;
        }
        if self.stamp && text.ends_with('}') {
            let ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default();
            text.pop();
            use std::fmt::Write;
            let _ = write!(text, ",\"{SENT_AT_FIELD}\":{ns}}}");
        }
        let limit = self.write_timeout;
        matches!(
            tokio::time::timeout(limit, self.ws.feed(Message::text(text))).await,
            Ok(Ok(()))
        )
    }

    /// Flushes what was fed, within the write limit; `false` when the client is gone or not
    /// reading.
    async fn flush(&mut self) -> bool {
        let limit = self.write_timeout;
        matches!(
            tokio::time::timeout(limit, self.ws.flush()).await,
            Ok(Ok(()))
        )
    }

    /// Sends messages and flushes; `false` when the client is gone.
    async fn send_all(&mut self, msgs: &mut Vec<ServerMessage>) -> bool {
        if msgs.is_empty() {
            return true;
        }
        for m in msgs.drain(..) {
            if !self.feed_text(m.to_json()).await {
                return false;
            }
        }
        self.flush().await
    }

    async fn send(&mut self, msg: ServerMessage) -> bool {
        self.send_all(&mut vec![msg]).await
    }

    /// Sends an `Error` frame, closes with `code` and waits briefly for the client's close.
    async fn fail(&mut self, code: u16, reason: &str) {
        let frame = ServerMessage::Error(ErrorFrame {
            error_code: Some(i64::from(code)),
            error: reason.to_string(),
        });
        if self.send(frame).await {
            self.close(code, reason).await;
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            // A close reason is limited to 123 bytes by RFC 6455.
            reason: clip(reason, 123).to_string().into(),
        };
        let limit = self.write_timeout;
        if !matches!(
            tokio::time::timeout(limit, self.ws.close(Some(frame))).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// Counts the session in `Shared::active` for as long as it lives.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn heartbeat_interval() -> Interval {
    let mut i = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// Runs one session to its end.
pub(crate) async fn run<S>(ws: WebSocketStream<S>, setup: SessionSetup)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = setup.shared;
    let opened = Instant::now();
    let index = shared.started.fetch_add(1, Ordering::AcqRel);
    let faults = if shared
        .config
        .faults
        .faulty_sessions
        .is_none_or(|n| index < n)
    {
        shared.config.faults.clone()
    } else {
        super::Faults::default()
    };
    let faults = &faults;
    let mut conn = Conn {
        ws,
        stamp: shared.config.stamp_send_time,
        slow: faults.slow_messages,
        write_timeout: shared.config.write_timeout,
    };
    let mut shutdown = shared.shutdown.clone();
    let drop_at = faults.drop_after.map(|d| opened + d);
    let close_at = faults.close_after.map(|(d, code)| (opened + d, code));
    let session = async {
        let token_cap = match setup.auth {
            Ok(cap) => cap,
            Err(reason) => {
                conn.fail(1008, &reason).await;
                return;
            }
        };
        let active = shared.active.fetch_add(1, Ordering::AcqRel) + 1;
        let _guard = ActiveGuard(shared.clone());
        if shared.config.max_sessions.is_some_and(|max| active > max) {
            conn.fail(
                3009,
                "Unauthorized Connection: Too many concurrent sessions",
            )
            .await;
            return;
        }
        let params = match SessionParams::from_query(&setup.query) {
            Ok(p) => p,
            Err(reason) => {
                conn.fail(3006, &reason).await;
                return;
            }
        };
        run_session(
            &mut conn,
            &shared,
            faults,
            params,
            token_cap,
            setup.api_version,
            opened,
        )
        .await;
    };
    let close_with = tokio::select! {
        _ = session => None,
        _ = async { match drop_at { Some(at) => sleep_until(at).await, None => std::future::pending().await } } => {
            // Fault: the TCP connection goes away without a close frame.
            None
        }
        // Fault: the server ends the session mid-stream with a close code.
        _ = async { match close_at { Some((at, _)) => sleep_until(at).await, None => std::future::pending().await } } => close_at.map(|(_, code)| code),
        _ = shutdown.wait_for(|stop| *stop) => None,
    };
    if let Some(code) = close_with {
        conn.fail(code, crate::error::CloseKind::meaning(code))
            .await;
    }
}

async fn run_session<S>(
    conn: &mut Conn<S>,
    shared: &Arc<Shared>,
    faults: &super::Faults,
    params: SessionParams,
    token_cap: Option<Duration>,
    api_version: Option<String>,
    opened: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &shared.config;
    let cap = token_cap.unwrap_or(config.max_session_duration);
    if let Some(d) = faults.delay_begin {
        sleep(d).await;
    }
    let started = Instant::now();
    let expires = started + cap;
    let begin = ServerMessage::Begin(Begin {
        id: ids::uuid_v4(),
        expires_at: unix_now() + cap.as_secs() as i64,
        configuration: Some(BeginConfiguration {
            model: Some(params.model.as_str().to_string()),
            mode: Some(
                params
                    .mode
                    .clone()
                    .unwrap_or_else(|| "balanced".to_string()),
            ),
            api_version: Some(api_version.unwrap_or_else(|| "1.0.0".to_string())),
        }),
    });
    if !conn.send(begin).await {
        return;
    }
    if faults.unknown_message {
        let text = json!({"type": "EmulatorUnknownMessage", "detail": "injected by Faults::unknown_message"}).to_string();
        if !conn.feed_text(text).await || !conn.flush().await {
            return;
        }
    }
    if faults.malformed_frame {
        let text = r#"{"type":"Turn","turn_order":"#.to_string();
        if !conn.feed_text(text).await || !conn.flush().await {
            return;
        }
    }
    if let Some((code, reason)) = &faults.error_then_close {
        conn.fail(*code, reason).await;
        return;
    }
    if faults.untyped_error {
        // The catch-all server error in its untyped form (fixtures line 50), then 3005.
        let reason = "Session Cancelled: An error occurred";
        if conn.feed_text(json!({ "error": reason }).to_string()).await && conn.flush().await {
            conn.close(3005, reason).await;
        }
        return;
    }
    if let Some(w) = keyterms_warning(&params.keyterms_prompt) {
        if !conn.send(w).await {
            return;
        }
    }
    let ending_notice = expires
        .checked_sub(SESSION_ENDING_NOTICE)
        .filter(|at| *at > started);
    let mut ending_warned = ending_notice.is_none();

    let mut engine = Engine::new(&params, config.formatting, shared.script.clone());
    let across = config.script_across_sessions;
    // With a conversation across sessions, record the script turns this one finalised.
    let record = |engine: &Engine| {
        if across {
            shared
                .script_done
                .fetch_max(engine.next_script(), Ordering::AcqRel);
        }
    };
    let mut out: Vec<ServerMessage> = Vec::with_capacity(4);
    let bytes_per_sample = params.encoding.bytes_per_sample() as u64;
    let rate = u64::from(params.sample_rate);
    let tolerance_ms = config.realtime_tolerance.as_millis() as i64;
    let inactivity = params
        .inactivity_timeout
        .map(|s| Duration::from_secs(u64::from(s)));
    let mut last_activity = Instant::now();
    let mut heartbeat = params.session_heartbeat.then(heartbeat_interval);

    loop {
        let idle_deadline = inactivity.map(|d| last_activity + d);
        tokio::select! {
            frame = conn.ws.next() => {
                let Some(Ok(frame)) = frame else { return };
                last_activity = Instant::now();
                match frame {
                    Message::Binary(bytes) => {
                        let samples = bytes.len() as u64 / bytes_per_sample;
                        if samples * 1000 < 50 * rate || samples * 1000 > 1000 * rate {
                            let ms = (samples * 1000 + rate / 2) / rate;
                            let reason = format!("Input duration violation: {ms} ms. Expected between 50 and 1000 ms");
                            conn.fail(3007, &reason).await;
                            return;
                        }
                        if across {
                            // Another session may have carried the conversation on meanwhile
                            // (a session opened ahead of a rollover).
                            engine.continue_script_at(shared.script_done.load(Ordering::Acquire));
                        }
                        engine.push_audio(&bytes, &mut out);
                        record(&engine);
                        // Measured from the upgrade, so audio a client sends while `Begin` is
                        // delayed does not count against it.
                        let wall_ms = opened.elapsed().as_millis() as i64;
                        let audio_ms = engine.audio_ms();
                        if audio_ms > wall_ms + tolerance_ms {
                            let reason = format!(
                                "Audio Transmission Rate Exceeded: Received {:.1} sec. audio in {:.1} sec",
                                audio_ms as f64 / 1000.0,
                                wall_ms as f64 / 1000.0
                            );
                            conn.fail(3007, &reason).await;
                            return;
                        }
                        if !conn.send_all(&mut out).await {
                            return;
                        }
                    }
                    Message::Text(text) => match parse_client_text(&text) {
                        Err(reason) => {
                            conn.fail(3006, &reason).await;
                            return;
                        }
                        Ok(ClientMessage::Terminate) => {
                            engine.flush(&mut out);
                            record(&engine);
                            engine.closing_messages(&mut out);
                            if !conn.send_all(&mut out).await {
                                return;
                            }
                            if faults.no_termination {
                                // Fault: stay silent until the client gives up.
                                while let Some(Ok(_)) = conn.ws.next().await {}
                                return;
                            }
                            let audio = engine.audio_ms() as f64 / 1000.0;
                            let session = started.elapsed().as_secs_f64();
                            let text = json!({
                                "type": "Termination",
                                "audio_duration_seconds": audio.round() as i64,
                                "session_duration_seconds": session.round() as i64,
                            }).to_string();
                            if conn.feed_text(text).await && conn.flush().await {
                                conn.close(1000, "").await;
                            }
                            return;
                        }
                        Ok(ClientMessage::ForceEndpoint) => {
                            engine.force_endpoint(&mut out);
                            record(&engine);
                            if !conn.send_all(&mut out).await {
                                return;
                            }
                        }
                        Ok(ClientMessage::KeepAlive) => {}
                        Ok(ClientMessage::UpdateConfiguration(u)) => {
                            engine.update(&u);
                            if let Some(w) = u.keyterms_prompt.as_deref().and_then(keyterms_warning) {
                                if !conn.send(w).await {
                                    return;
                                }
                            }
                            match u.session_heartbeat {
                                Some(true) if heartbeat.is_none() => heartbeat = Some(heartbeat_interval()),
                                Some(false) => heartbeat = None,
                                _ => {}
                            }
                        }
                    },
                    Message::Ping(_) => {
                        // tungstenite queued the pong; push it out.
                        if !conn.flush().await {
                            return;
                        }
                    }
                    Message::Close(_) => {
                        // tungstenite answers the close; read until the stream ends.
                        while let Some(Ok(_)) = conn.ws.next().await {}
                        return;
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            _ = async { match ending_notice { Some(at) if !ending_warned => sleep_until(at).await, _ => std::future::pending().await } } => {
                ending_warned = true;
                let w = ServerMessage::Warning(Warning {
                    warning_code: WARNING_SESSION_ENDING,
                    warning: format!(
                        "session ending soon: the maximum session duration is reached in {} seconds",
                        SESSION_ENDING_NOTICE.as_secs()
                    ),
                });
                if !conn.send(w).await {
                    return;
                }
            }
            _ = sleep_until(expires) => {
                conn.fail(3008, "Session Expired: Maximum session duration exceeded").await;
                return;
            }
            _ = async { match idle_deadline { Some(at) => sleep_until(at).await, None => std::future::pending().await } } => {
                let reason = format!(
                    "Session Cancelled: No audio or message received for {} seconds (inactivity_timeout)",
                    inactivity.map_or(0, |d| d.as_secs())
                );
                conn.fail(INACTIVITY_CLOSE_CODE, &reason).await;
                return;
            }
            _ = tick(&mut heartbeat) => {
                let total = started.elapsed().as_millis() as i64;
                let hb = engine.heartbeat(total);
                if !conn.send(hb).await {
                    return;
                }
            }
        }
    }
}

/// Close code for `inactivity_timeout`. The service does not document one for v3; the emulator
/// uses the catch-all 3005 ("Session Cancelled"), the code every server-side close used before
/// the 2026-02 renumbering.
pub const INACTIVITY_CLOSE_CODE: u16 = 3005;

#[cfg(test)]
mod tests {
    //! Long sessions in compressed time: an in-memory duplex pipe instead of a socket, so tokio's
    //! paused clock can jump straight to the next timer.

    use super::*;
    use crate::emulator::llm::{LlmOptions, LlmState};
    use crate::emulator::state::{Config, Shared};
    use crate::emulator::{Faults, Formatting, Script};
    use tokio::sync::watch;
    use tokio_tungstenite::tungstenite::protocol::Role;

    fn shared() -> (Arc<Shared>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let config = Config {
            api_key: "k".into(),
            formatting: Formatting::InModel,
            faults: Faults::default(),
            max_sessions: None,
            reject_with_401: false,
            stamp_send_time: false,
            max_session_duration: Duration::from_secs(10_800),
            realtime_tolerance: Duration::from_secs(1),
            write_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            script_across_sessions: false,
        };
        let llm = LlmState::new(LlmOptions::default(), "k".into(), &Script::default());
        (
            Arc::new(Shared::new(config, Arc::from(Vec::new()), llm, rx)),
            tx,
        )
    }

    async fn open(
        query: &str,
    ) -> (
        WebSocketStream<tokio::io::DuplexStream>,
        watch::Sender<bool>,
    ) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (shared, stop) = shared();
        let setup = SessionSetup {
            shared,
            query: query.into(),
            auth: Ok(None),
            api_version: None,
        };
        tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
            run(ws, setup).await;
        });
        let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        (client, stop)
    }

    async fn next_message(ws: &mut WebSocketStream<tokio::io::DuplexStream>) -> ServerMessage {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return ServerMessage::from_json(&t).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("stream ended: {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_is_warned_a_minute_before_and_closed_with_3008_after_three_hours() {
        let (mut ws, _stop) = open("speech_model=universal-streaming-english").await;
        assert!(matches!(
            next_message(&mut ws).await,
            ServerMessage::Begin(_)
        ));
        let t0 = Instant::now();
        let ServerMessage::Warning(w) = next_message(&mut ws).await else {
            panic!()
        };
        assert_eq!(w.warning_code, WARNING_SESSION_ENDING);
        assert!(w.warning.starts_with("session ending soon"), "{w:?}");
        assert_eq!(t0.elapsed().as_secs(), 10_800 - 60);
        let ServerMessage::Error(e) = next_message(&mut ws).await else {
            panic!()
        };
        assert_eq!(e.error_code, Some(3008));
        assert_eq!(t0.elapsed().as_secs(), 10_800);
        let Some(Ok(Message::Close(Some(c)))) = ws.next().await else {
            panic!()
        };
        assert_eq!(u16::from(c.code), 3008);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_holds_an_idle_session_open_until_the_cap() {
        let (mut ws, _stop) =
            open("speech_model=universal-streaming-english&inactivity_timeout=3600").await;
        assert!(matches!(
            next_message(&mut ws).await,
            ServerMessage::Begin(_)
        ));
        let t0 = Instant::now();
        // A KeepAlive every 50 minutes: never 3600 s without a message.
        let keep_alive = async {
            loop {
                sleep(Duration::from_secs(3000)).await;
                let msg = Message::text(r#"{"type":"KeepAlive"}"#);
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10_799), keep_alive).await;
        let mut msg = next_message(&mut ws).await;
        if let ServerMessage::Warning(_) = msg {
            msg = next_message(&mut ws).await;
        }
        let ServerMessage::Error(e) = msg else {
            panic!()
        };
        assert_eq!(e.error_code, Some(3008), "{e:?}");
        assert_eq!(t0.elapsed().as_secs(), 10_800);
    }

    #[tokio::test(start_paused = true)]
    async fn without_keep_alive_inactivity_closes_first() {
        let (mut ws, _stop) =
            open("speech_model=universal-streaming-english&inactivity_timeout=3600").await;
        assert!(matches!(
            next_message(&mut ws).await,
            ServerMessage::Begin(_)
        ));
        let t0 = Instant::now();
        let ServerMessage::Error(e) = next_message(&mut ws).await else {
            panic!()
        };
        assert_eq!(e.error_code, Some(i64::from(INACTIVITY_CLOSE_CODE)));
        assert_eq!(t0.elapsed().as_secs(), 3600);
    }

    #[tokio::test(start_paused = true)]
    async fn too_long_key_terms_are_ignored_with_a_warning() {
        let long = "x".repeat(51);
        let query = format!(
            "speech_model=universal-streaming-english&keyterms_prompt=%5B%22ok%22%2C%22{long}%22%5D"
        );
        let (mut ws, _stop) = open(&query).await;
        assert!(matches!(
            next_message(&mut ws).await,
            ServerMessage::Begin(_)
        ));
        let ServerMessage::Warning(w) = next_message(&mut ws).await else {
            panic!()
        };
        assert_eq!(w.warning_code, WARNING_KEYTERMS_IGNORED);
        assert!(w.warning.contains("1 term(s) longer than 50"), "{w:?}");
        // The same through UpdateConfiguration.
        let update =
            format!(r#"{{"type":"UpdateConfiguration","keyterms_prompt":["{long}","{long}"]}}"#);
        ws.send(Message::text(update)).await.unwrap();
        let ServerMessage::Warning(w) = next_message(&mut ws).await else {
            panic!()
        };
        assert!(w.warning.contains("2 term(s)"), "{w:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_loses_its_slot_at_the_write_limit() {
        // A 4 KB pipe: the server's partials fill it within seconds once the client stops
        // reading, and every server write then blocks.
        let (client_io, server_io) = tokio::io::duplex(4 * 1024);
        let (shared, _stop) = shared();
        let setup = SessionSetup {
            shared: shared.clone(),
            query: "speech_model=universal-streaming-english&inactivity_timeout=5".into(),
            auth: Ok(None),
            api_version: None,
        };
        let server = tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
            run(ws, setup).await;
        });
        let mut ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let tone: Vec<u8> = (0..800)
            .flat_map(|i| ((((i as f64) * 0.17).sin() * 8000.0) as i16).to_le_bytes())
            .collect();
        let t0 = Instant::now();
        // Audio every 50 ms (so inactivity_timeout never fires), never a read.
        let sender = async {
            loop {
                sleep(Duration::from_millis(50)).await;
                if ws.send(Message::binary(tone.clone())).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), sender).await;
        assert!(server.is_finished(), "the session still runs after 60 s");
        // Ended by the 10 s write limit, not by anything the client did.
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
        assert_eq!(shared.active.load(Ordering::Acquire), 0);
    }

    #[test]
    fn update_configuration_has_the_query_bounds() {
        for (field, bad, good) in [
            ("max_turn_silence", "4294967295", "60000"),
            ("max_turn_silence", "60001", "0"),
            ("min_turn_silence", "60001", "1280"),
            ("min_end_of_turn_silence_when_confident", "100000", "160"),
            ("end_of_turn_confidence_threshold", "1.5", "1"),
            ("vad_threshold", "-0.1", "0"),
        ] {
            let msg = |v: &str| format!(r#"{{"type":"UpdateConfiguration","{field}":{v}}}"#);
            let err = parse_client_text(&msg(bad)).unwrap_err();
            assert!(err.starts_with("Invalid Message"), "{field}={bad}: {err}");
            assert!(
                SessionParams::from_query(&format!("speech_model=u3-rt-pro&{field}={bad}"))
                    .is_err(),
                "the query parser rejects {field}={bad} too"
            );
            assert!(parse_client_text(&msg(good)).is_ok(), "{field}={good}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        let msg =
            serde_json::json!({"type":"UpdateConfiguration","keyterms_prompt":many}).to_string();
        assert!(parse_client_text(&msg).is_err());
    }

    #[test]
    fn client_message_parsing_never_panics_on_odd_input() {
        for text in [
            "",
            "{",
            "null",
            "1",
            "\"Terminate\"",
            "{\"type\":null}",
            "{\"type\":1}",
            "{\"type\":\"UpdateConfiguration\",\"vad_threshold\":7}",
            "{\"type\":\"Terminate\",\"extra\":[1,2,3]}",
        ] {
            let _ = parse_client_text(text);
        }
        let deep = "[".repeat(10_000);
        assert!(
            parse_client_text(&deep)
                .unwrap_err()
                .starts_with("Invalid JSON")
        );
        assert_eq!(
            parse_client_text("{\"type\":\"Terminate\",\"extra\":1}"),
            Ok(ClientMessage::Terminate)
        );
    }
}
