//! State fixed at start-up and shared by every connection: the [`Config`], the session count,
//! the temporary tokens. Its own module so the HTTP side (`server`) and the sessions
//! (`session`) both depend on it instead of on each other.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::llm::LlmState;
use super::script::PreparedTurn;
use super::{Faults, Formatting, ids};

/// Settings fixed when the emulator starts.
pub(crate) struct Config {
    pub api_key: String,
    pub formatting: Formatting,
    pub faults: Faults,
    pub max_sessions: Option<usize>,
    pub reject_with_401: bool,
    pub stamp_send_time: bool,
    pub max_session_duration: Duration,
    pub realtime_tolerance: Duration,
    /// The script is one conversation across sessions (`EmulatorBuilder::script_across_sessions`).
    pub script_across_sessions: bool,
    /// Longest time one write to a client may take.
    pub write_timeout: Duration,
    /// Longest time a connection may take to send a complete request head.
    pub header_read_timeout: Duration,
}

#[derive(Debug)]
struct TokenEntry {
    expires: Instant,
    session_cap: Duration,
    used: bool,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub config: Config,
    pub script: Arc<[Arc<PreparedTurn>]>,
    pub active: AtomicUsize,
    /// Websocket sessions started so far (for `Faults::faulty_sessions`).
    pub started: AtomicUsize,
    /// Script turns finalised by any session (with `script_across_sessions`).
    pub script_done: AtomicUsize,
    pub llm: Arc<LlmState>,
    pub shutdown: watch::Receiver<bool>,
    tokens: Mutex<HashMap<String, TokenEntry>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key and the tokens are secrets; the LLM state is not required to be `Debug`.
        f.debug_struct("Shared")
            .field("script_turns", &self.script.len())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        script: Arc<[Arc<PreparedTurn>]>,
        llm: LlmState,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            config,
            script,
            active: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            script_done: AtomicUsize::new(0),
            llm: Arc::new(llm),
            shutdown,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn mint_token(&self, expires_in: Duration, session_cap: Duration) -> String {
        let token = format!("emu_{:016x}{:016x}", ids::random_u64(), ids::random_u64());
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Forget tokens that can no longer be used (expired long ago), so the map stays small.
        tokens.retain(|_, t| t.expires + Duration::from_secs(600) > now);
        tokens.insert(
            token.clone(),
            TokenEntry {
                expires: now + expires_in,
                session_cap,
                used: false,
            },
        );
        token
    }

    /// Consumes a token: `Ok(session cap)` or the reason it is refused.
    fn use_token(&self, token: &str) -> Result<Duration, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get_mut(token) {
            None => Err("Unauthorized Connection: Invalid token".into()),
            Some(t) if t.used => Err("Unauthorized Connection: Token already used".into()),
            Some(t) if t.expires <= Instant::now() => {
                Err("Unauthorized Connection: Token expired".into())
            }
            Some(t) => {
                t.used = true;
                Ok(t.session_cap)
            }
        }
    }

    /// Decides a websocket request's credentials. `Ok(Some(cap))` for a token.
    pub(crate) fn authorize(
        &self,
        header: Option<&str>,
        query_token: Option<&str>,
    ) -> Result<Option<Duration>, String> {
        if header == Some(self.config.api_key.as_str()) {
            return Ok(None);
        }
        if let Some(token) = query_token {
            return self.use_token(token).map(Some);
        }
        match header {
            None | Some("") => Err("Unauthorized Connection: Missing Authorization header".into()),
            // Like the service (and the Python SDK, which sends a temporary token there), a
            // token in the header is accepted.
            Some(h) => match self.use_token(h) {
                Ok(cap) => Ok(Some(cap)),
                Err(reason) if reason.ends_with("Invalid token") => {
                    Err("Unauthorized Connection: Invalid API key".into())
                }
                Err(reason) => Err(reason),
            },
        }
    }
}
