//! TEMPORARY SHIM (lemur branch): a minimal emulator following the shared contract's
//! signatures, serving ONLY the LLM routes (`POST /v1/chat/completions`, `POST /lemur/v3/*`),
//! so that `llm.rs` and the `Lemur` client are tested end to end on this branch alone.
//!
//! The emulator helper's real `mod.rs` (websocket, token route, faults, …) replaces this file at
//! merge; the LEMUR branch's tests only use `Emulator::builder().api_key().script().llm()
//! .start()`, `EmulatorHandle::http_url()` and `EmulatorHandle::api_key()`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub mod llm;
mod script;

pub use llm::{LegacyLemur, LlmOptions};
pub use script::{Script, ScriptTurn, ScriptWord};

/// The fixed development key accepted by default.
const DEV_KEY: &str = "emulator-dev-key";

/// Entry point of the local emulator.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Settings of the emulator.
#[derive(Debug, Clone, Default)]
pub struct EmulatorBuilder {
    api_key: Option<String>,
    script: Option<Script>,
    llm: LlmOptions,
    bind: Option<SocketAddr>,
}

impl EmulatorBuilder {
    /// The accepted API key. Default `"emulator-dev-key"`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
    /// What is "said" (and its translations).
    pub fn script(mut self, script: Script) -> Self {
        self.script = Some(script);
        self
    }
    /// LLM route behaviour.
    pub fn llm(mut self, options: LlmOptions) -> Self {
        self.llm = options;
        self
    }
    /// Address to listen on. Default `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Starts serving on a background task.
    pub async fn start(self) -> std::io::Result<EmulatorHandle> {
        let addr = self
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let api_key = self.api_key.unwrap_or_else(|| DEV_KEY.to_owned());
        let script = self.script.unwrap_or_default();
        let state = Arc::new(llm::LlmState::new(self.llm, api_key.clone(), &script));
        let task = tokio::spawn(async move {
            // Connections live in the set, so stopping the server stops them too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(route(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(EmulatorHandle {
            local_addr,
            api_key,
            task,
        })
    }
}

async fn route(
    state: Arc<llm::LlmState>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/v1/chat/completions" || path.starts_with("/lemur/v3/") {
        return llm::handle(state, req).await;
    }
    let mut response =
        hyper::Response::new(Full::new(Bytes::from_static(br#"{"error":"Not found"}"#)));
    *response.status_mut() = hyper::StatusCode::NOT_FOUND;
    response
}

/// A running emulator; dropping it stops the server.
#[derive(Debug)]
pub struct EmulatorHandle {
    local_addr: SocketAddr,
    api_key: String,
    task: tokio::task::JoinHandle<()>,
}

impl EmulatorHandle {
    /// `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.local_addr)
    }
    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// The accepted key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
    /// Stops the server.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
