//! Load tool: many concurrent real-time sessions against the emulator (or any URL).
//!
//! ```text
//! cargo run --release --example load -- [--url URL] --sessions N --seconds S [--json FILE]
//!     [--threads T] [--ramp-ms MS] [--frame-ms MS] [--emulator-pid PID]
//!     [--client crate|raw|both] [--together] [--disable-lifo-slot]
//! ```
//!
//! The crate's client runs one task per session: a `select!` over the pacing timer and the
//! session's event stream, each chunk sent through the session's `Sink` (the usual shape of a
//! service that streams and reads in one place). `--client raw` measures a minimal baseline
//! instead of the crate: one task per session, one `select!` over the pacing timer and the
//! socket, a byte scan for `type` and the send stamp (no JSON parse), with the same URL,
//! headers, audio, frames and ramp. `--client both` runs the crate, then the raw client, each
//! in its own process against the same emulator, and reports both and their ratios
//! (crate / raw): the floor and the crate side by side in one run. With `--together` the two
//! run at the same time (N sessions each), so both see the same machine load: the fair way to
//! compare latency tails on a busy machine. `--disable-lifo-slot` (only
//! in a build with `RUSTFLAGS="--cfg tokio_unstable"`) turns off the multi-thread runtime's
//! LIFO slot, an experiment on the latency tail (docs/performance.md).
//!
//! Without `--url` it starts the emulator as a separate process (this same binary, with
//! send-time stamping on) and stops it at the end. Each session streams the bundled speech at
//! real-time pace in 50 ms chunks (sent as 50 ms frames) for S seconds and reads every event.
//! Printed (and written as JSON with `--json`): sessions requested / connected / completed,
//! errors by kind, events, this process's CPU seconds per session-minute of audio, peak RSS and
//! RSS per session (and its anonymous part per session: heap and stacks, without the code
//! pages a bigger program touches once), connect time p50/p99, and client-added latency
//! p50/p99/max (server write → consumer), from the emulator's send-time stamps on `Turn` messages. Failures are counted,
//! never fatal.
//!
//! `--threads 1` runs the sessions on a current-thread tokio runtime, `--threads T` on a
//! multi-thread runtime with T workers; the default is tokio's multi-thread default (one worker
//! per core). `--frame-ms` sets the client's frame duration (default 50: each 50 ms chunk is
//! one websocket frame; the crate's own default is 100). `--emulator-pid` reports the CPU of an
//! emulator started elsewhere (with `--url`).
//!
//! `--help` describes every flag (exit 0). Usage errors (naming the flag; `--sessions` and
//! `--seconds` are required and at least 1) and a `--json` file in a directory that does not
//! exist fail at once with exit status 2, before any session starts. `RUST_LOG=debug` logs each
//! session's lifecycle to stderr.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assemblyai_streaming::audio::read_wav_with_chunk;
use assemblyai_streaming::emulator::{Emulator, Script};
use assemblyai_streaming::{AudioChunk, ConnectionParams, StreamingClient, TurnEvent};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

const KEY: &str = "load-test-key";
const CHUNK_MS: u64 = 50;
const WAV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/assets/sample.wav");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/assets/sample.script.json"
);

/// Load tool: many concurrent real-time sessions against the emulator (or any URL).
///
/// Without --url it starts the emulator as a separate process and stops it at the end. Each
/// session streams the bundled speech at real-time pace for S seconds and reads every event.
/// Prints (and with --json writes) sessions requested / connected / completed, errors by kind,
/// events, CPU seconds per session-minute, peak RSS, RSS and anonymous RSS per session, connect time p50/p99
/// and client-added latency p50/p99/max. Failures are counted, never fatal. Usage errors exit 2.
#[derive(Debug, clap::Parser)]
#[command(name = "load")]
struct Args {
    /// Server to load (key from ASSEMBLYAI_API_KEY); default: start the emulator here.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Concurrent sessions to run (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    sessions: usize,
    /// Seconds of audio each session streams at real-time pace (at least 1).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Also write the report as JSON to FILE (its directory must exist).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// 1: a current-thread tokio runtime; T > 1: T workers; 0 (default): tokio's default (one
    /// worker per core).
    #[arg(long, value_name = "T", default_value_t = 0)]
    threads: usize,
    /// Spread the session starts evenly over this many ms.
    #[arg(long = "ramp-ms", value_name = "MS", default_value_t = 2000)]
    ramp_ms: u64,
    /// Client frame duration in ms (each 50 ms chunk is one frame at the default 50; the
    /// crate's own default is 100).
    #[arg(long, value_name = "MS", default_value_t = CHUNK_MS)]
    frame_ms: u64,
    /// Report the CPU of an emulator started elsewhere (with --url).
    #[arg(long, value_name = "PID")]
    emulator_pid: Option<String>,
    /// `crate`: this crate's client; `raw`: a minimal baseline client; `both`: each in turn
    /// against one emulator, with the ratios crate / raw.
    #[arg(long, value_enum, default_value = "crate")]
    client: ClientKind,
    /// Multi-thread runtime without tokio's LIFO slot (an experiment on the latency tail;
    /// needs a build with RUSTFLAGS="--cfg tokio_unstable").
    #[arg(long)]
    disable_lifo_slot: bool,
    /// With `--client both`: run the crate and the raw client at the same time (N sessions
    /// each), so both see the same machine load and their latency tails compare; the default
    /// runs them one after the other.
    #[arg(long)]
    together: bool,
}

impl Args {
    fn ramp(&self) -> Duration {
        Duration::from_millis(self.ramp_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientKind {
    Crate,
    Raw,
    Both,
}

/// The `--json` file must be writable where it is going, checked before the run rather than
/// after minutes of load.
fn check_output(args: &Args) -> Result<(), String> {
    if let Some(path) = &args.json {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "cannot write --json {}: directory {} does not exist",
                path.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--serve-emulator") {
        args.next();
        serve_emulator(args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000));
        return;
    }
    let args = <Args as clap::Parser>::parse();
    // RUST_LOG=debug shows each session's lifecycle on stderr (stdout keeps the report).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(message) = check_output(&args) {
        eprintln!("load: {message}");
        std::process::exit(2)
    }
    if args.together && args.client != ClientKind::Both {
        eprintln!("load: --together needs --client both");
        std::process::exit(2)
    }
    if args.disable_lifo_slot && (args.threads == 1 || !cfg!(tokio_unstable)) {
        eprintln!(
            "load: --disable-lifo-slot needs the multi-thread runtime (--threads 0 or > 1) and a \
             build with RUSTFLAGS=\"--cfg tokio_unstable\""
        );
        std::process::exit(2)
    }
    let runtime = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                builder.worker_threads(n);
            }
            #[cfg(tokio_unstable)]
            if args.disable_lifo_slot {
                builder.disable_lifo_slot();
            }
            builder.enable_all().build()
        }
    }
    .unwrap_or_else(|e| {
        eprintln!("cannot start the tokio runtime: {e}");
        std::process::exit(1)
    });
    runtime.block_on(run(args));
}

/// The emulator half: serve until stdin closes (the parent ended).
fn serve_emulator(max_sessions: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // The bundled speech's script, so Turns carry real words of realistic length.
        let script = Script::from_json_file(SCRIPT).unwrap_or_else(|e| {
            eprintln!("cannot read {SCRIPT}: {e}");
            std::process::exit(1)
        });
        let emulator = Emulator::builder()
            .api_key(KEY)
            .script(script)
            .stamp_send_time(true)
            .max_concurrent_sessions(max_sessions)
            .start()
            .await
            .expect("start emulator");
        println!("{}", emulator.ws_url());
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await;
        emulator.shutdown().await;
    });
}

fn spawn_emulator(max_sessions: usize) -> std::io::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve-emulator", &max_sessions.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("ws://") {
        let _ = child.kill();
        return Err(std::io::Error::other("the emulator did not start"));
    }
    Ok((child, line.trim().to_string()))
}

/// (user + system) CPU seconds of a process and all its threads, from /proc (10 ms ticks).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th
    // fields of the line, the 12th and 13th after the name.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0) // USER_HZ is 100 on Linux
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The 1-minute load average: the machine is shared, so every report says how busy it was.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Speech to stream: the bundled sample, as 50 ms chunks, looped by the sessions.
fn load_audio() -> Vec<AudioChunk> {
    match read_wav_with_chunk(WAV, 16_000, Duration::from_millis(CHUNK_MS)) {
        // The last chunk may be short; a frame under 50 ms is a protocol violation.
        Ok((chunks, _)) => chunks
            .into_iter()
            .filter(|c| c.len() == 32 * CHUNK_MS as usize)
            .collect(),
        Err(e) => {
            eprintln!("cannot read {WAV}: {e}");
            std::process::exit(1)
        }
    }
}

/// Latency histogram: 1 µs buckets below 10 ms, 100 µs buckets up to 10 s, then overflow.
struct Histogram {
    counts: Vec<AtomicU64>,
    max_ns: AtomicU64,
}

const FINE_US: u64 = 10_000;
const COARSE_US: u64 = 100;
const COARSE_BUCKETS: u64 = 99_900;

impl Histogram {
    fn new() -> Self {
        let n = (FINE_US + COARSE_BUCKETS + 1) as usize;
        Self {
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
        }
    }

    fn record(&self, ns: u64) {
        let us = ns / 1000;
        let bucket = if us < FINE_US {
            us
        } else {
            FINE_US + ((us - FINE_US) / COARSE_US).min(COARSE_BUCKETS)
        };
        self.counts[bucket as usize].fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The upper bound of the bucket holding the p-th value, in ms.
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let target = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= target {
                let b = b as u64;
                let upper_us = if b < FINE_US {
                    b + 1
                } else {
                    FINE_US + (b - FINE_US + 1) * COARSE_US
                };
                return Some(upper_us as f64 / 1000.0);
            }
        }
        None
    }

    fn max_ms(&self) -> Option<f64> {
        let ns = self.max_ns.load(Ordering::Relaxed);
        (self.count() > 0).then(|| ns as f64 / 1e6)
    }
}

struct Stats {
    connected: AtomicU64,
    completed: AtomicU64,
    events: AtomicU64,
    latency: Histogram,
    errors: Mutex<BTreeMap<String, u64>>,
    connect_ms: Mutex<Vec<f64>>,
}

impl Stats {
    /// A session connected, `started` ago.
    fn connected_after(&self, started: Instant) {
        if let Ok(mut c) = self.connect_ms.lock() {
            c.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, kind: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(kind.to_string()).or_default() += 1;
        }
    }
}

/// One tick per chunk at real time, on the wall clock of the first one (late ticks catch up).
fn pacing() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(CHUNK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn one_session(
    client: StreamingClient,
    audio: Arc<Vec<AudioChunk>>,
    seconds: u64,
    stats: Arc<Stats>,
) {
    let started = Instant::now();
    let mut session = match client
        .connect(ConnectionParams::new().format_turns(true))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            stats.error(e.kind().as_str());
            return;
        }
    };
    stats.connected_after(started);
    // One task per session, like the floor: a `select!` over the pacing timer and the
    // session's events; each chunk goes through the session's `Sink` (written at once while
    // the socket keeps up), and closing the sink sends `Terminate`.
    let chunks = (seconds * 1000 / CHUNK_MS) as usize;
    let mut tick = pacing();
    let mut sent = 0;
    let mut closed = false;
    let mut terminated = false;
    loop {
        tokio::select! {
            _ = tick.tick(), if !closed => {
                if session.send(audio[sent % audio.len()].clone()).await.is_err() {
                    closed = true;
                } else {
                    sent += 1;
                    if sent == chunks {
                        // The audio is over: flush, then Terminate.
                        let _ = session.close().await;
                        closed = true;
                    }
                }
            }
            event = session.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(event) => {
                        stats.events.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent) = event.turn().and_then(|t| t.emulator_sent_at_ns) {
                            stats.latency.record(now_ns().saturating_sub(sent));
                        }
                        terminated |= matches!(event, TurnEvent::Termination(_));
                    }
                    Err(e) => stats.error(e.kind().as_str()),
                }
            }
        }
    }
    if terminated {
        stats.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The floor: what any client must do for one session, and nothing more. One task, one
/// `select!` over the pacing timer and the socket, a byte scan for the message type and the
/// send stamp, no JSON parse, no channels.
async fn raw_session(
    url: String,
    key: String,
    audio: Arc<Vec<AudioChunk>>,
    seconds: u64,
    stats: Arc<Stats>,
) {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    let started = Instant::now();
    let query = ConnectionParams::new().format_turns(true).to_query();
    let Ok(mut request) = format!("{url}/v3/ws?{query}").into_client_request() else {
        stats.error("config");
        return;
    };
    let Ok(auth) = key.parse() else {
        stats.error("config");
        return;
    };
    request.headers_mut().insert("authorization", auth);
    let Some(host) = request.uri().authority().map(|a| a.to_string()) else {
        stats.error("config");
        return;
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(&host).await.ok()?;
        let _ = tcp.set_nodelay(true);
        // The crate's read buffer, so both read the same way.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .ok()?;
        Some(ws)
    };
    let Ok(Some(mut ws)) = tokio::time::timeout(Duration::from_secs(20), connect).await else {
        stats.error("connect");
        return;
    };
    // Begin first, as the crate's connect() waits for it.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if scan_type(t.as_bytes()) == Some(b"Begin") => break,
            Some(Ok(_)) => {}
            _ => {
                stats.error("connect");
                return;
            }
        }
    }
    stats.connected_after(started);
    let chunks = (seconds * 1000 / CHUNK_MS) as usize;
    let mut tick = pacing();
    let mut sent = 0;
    let mut terminated = false;
    loop {
        tokio::select! {
            _ = tick.tick(), if sent <= chunks => {
                let message = if sent < chunks {
                    Message::Binary(audio[sent % audio.len()].clone().into_bytes())
                } else {
                    Message::text(r#"{"type":"Terminate"}"#)
                };
                sent += 1;
                if ws.send(message).await.is_err() {
                    stats.error("connection_lost");
                    break;
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(t))) => {
                    stats.events.fetch_add(1, Ordering::Relaxed);
                    let bytes = t.as_bytes();
                    match scan_type(bytes) {
                        Some(b"Turn") => {
                            if let Some(at) = scan_stamp(bytes) {
                                stats.latency.record(now_ns().saturating_sub(at));
                            }
                        }
                        Some(b"Termination") => {
                            terminated = true;
                            let _ = ws.close(None).await;
                            break;
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    stats.error("closed");
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    stats.error("connection_lost");
                    break;
                }
            }
        }
    }
    if terminated {
        stats.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The value of `"type":"…"` in a server message, by byte search.
fn scan_type(bytes: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = br#""type":""#;
    let at = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = bytes[at..].iter().position(|b| *b == b'"')?;
    Some(&bytes[at..at + len])
}

/// The emulator's send stamp (`"_emulator_sent_at_ns":<digits>`), by byte search.
fn scan_stamp(bytes: &[u8]) -> Option<u64> {
    const KEY: &[u8] = br#""_emulator_sent_at_ns":"#;
    let at = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&bytes[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

async fn run(args: Args) {
    if args.client == ClientKind::Both {
        return run_both(args).await;
    }
    let audio = Arc::new(load_audio());
    let (mut child, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => match spawn_emulator(args.sessions + 16) {
            Ok((child, url)) => (Some(child), url),
            Err(e) => {
                eprintln!("cannot start the emulator: {e}");
                std::process::exit(1)
            }
        },
    };
    let emulator_pid = child
        .as_ref()
        .map(|c| c.id().to_string())
        .or(args.emulator_pid.clone());
    // Our own emulator accepts our fixed key; another server gets the environment's key.
    let key = match (&args.url, std::env::var("ASSEMBLYAI_API_KEY")) {
        (Some(_), Ok(k)) if !k.is_empty() => k,
        _ => KEY.to_string(),
    };
    let client = StreamingClient::builder()
        .api_key(key.clone())
        .base_url(&url)
        .frame_duration(Duration::from_millis(args.frame_ms))
        .connect_timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let stats = Arc::new(Stats {
        connected: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        events: AtomicU64::new(0),
        latency: Histogram::new(),
        errors: Mutex::new(BTreeMap::new()),
        connect_ms: Mutex::new(Vec::with_capacity(args.sessions)),
    });

    let load_before = loadavg();
    let rss_before_kb = status_kb("VmRSS:");
    // VmRSS counts the program's code pages too: a fixed cost (more code runs in the crate than
    // in the floor) that is no session's. The anonymous part (heap, stacks) is per-session
    // memory; sampled, as the kernel keeps no peak of it.
    let anon_before_kb = status_kb("RssAnon:");
    let anon_peak_kb = Arc::new(AtomicU64::new(anon_before_kb));
    let sampler = {
        let peak = anon_peak_kb.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                peak.fetch_max(status_kb("RssAnon:"), Ordering::Relaxed);
            }
        })
    };
    let cpu_before = cpu_seconds("self");
    let emu_cpu_before = emulator_pid.as_deref().and_then(cpu_seconds);
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        // Spread connects over the ramp so the handshakes do not all land in one instant.
        let at = args.ramp().mul_f64(i as f64 / args.sessions as f64);
        let (client, audio, stats) = (client.clone(), audio.clone(), stats.clone());
        let seconds = args.seconds;
        let raw = (args.client == ClientKind::Raw).then(|| (client.url(), key.clone()));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(at).await;
            match raw {
                Some((url, key)) => {
                    let base = url.trim_end_matches("/v3/ws").to_string();
                    raw_session(base, key, audio, seconds, stats).await
                }
                None => one_session(client, audio, seconds, stats).await,
            }
        }));
    }
    for t in tasks {
        if t.await.is_err() {
            stats.error("task_panicked");
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self")
        .zip(cpu_before)
        .map(|(a, b)| a - b)
        .unwrap_or(f64::NAN);
    let emu_cpu = emulator_pid
        .as_deref()
        .and_then(cpu_seconds)
        .zip(emu_cpu_before)
        .map(|(a, b)| a - b);
    let peak_rss_kb = status_kb("VmHWM:");
    sampler.abort();
    let anon_peak_kb = anon_peak_kb
        .load(Ordering::Relaxed)
        .max(status_kb("RssAnon:"));
    let load_after = loadavg();
    if let Some(child) = child.as_mut() {
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
    }

    let session_minutes = args.sessions as f64 * args.seconds as f64 / 60.0;
    let mut connect = stats
        .connect_ms
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    connect.sort_by(f64::total_cmp);
    let errors = stats.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let report: Vec<(&str, Value)> = vec![
        (
            "client",
            json!(match args.client {
                ClientKind::Raw => "raw baseline (tokio-tungstenite, no JSON parse)",
                _ => "assemblyai-streaming (rust)",
            }),
        ),
        ("sessions_requested", json!(args.sessions)),
        (
            "sessions_connected",
            json!(stats.connected.load(Ordering::Relaxed)),
        ),
        (
            "sessions_completed",
            json!(stats.completed.load(Ordering::Relaxed)),
        ),
        ("errors", json!(errors)),
        (
            "events_received",
            json!(stats.events.load(Ordering::Relaxed)),
        ),
        ("latency_samples", json!(stats.latency.count())),
        ("audio_seconds_per_session", json!(args.seconds)),
        ("frame_ms", json!(args.frame_ms)),
        ("wall_seconds", json!(wall_s)),
        (
            "runtime",
            json!(match args.threads {
                0 => "multi-thread (default workers)".to_string(),
                1 => "current-thread".to_string(),
                n => format!("multi-thread ({n} workers)"),
            }),
        ),
        ("client_cpu_seconds", json!(cpu)),
        (
            "client_cpu_seconds_per_session_minute",
            json!(cpu / session_minutes),
        ),
        (
            "client_cpu_percent_of_one_core",
            json!(100.0 * cpu / wall_s),
        ),
        ("emulator_cpu_seconds", json!(emu_cpu)),
        (
            "emulator_cpu_percent_of_one_core",
            json!(emu_cpu.map(|c| 100.0 * c / wall_s)),
        ),
        ("peak_rss_kb", json!(peak_rss_kb)),
        (
            "rss_per_session_kb",
            json!(peak_rss_kb.saturating_sub(rss_before_kb) as f64 / args.sessions as f64),
        ),
        (
            "anon_rss_per_session_kb",
            json!(anon_peak_kb.saturating_sub(anon_before_kb) as f64 / args.sessions as f64),
        ),
        ("connect_ms_p50", json!(percentile(&connect, 0.50))),
        ("connect_ms_p99", json!(percentile(&connect, 0.99))),
        ("latency_ms_p50", json!(stats.latency.percentile_ms(0.50))),
        ("latency_ms_p99", json!(stats.latency.percentile_ms(0.99))),
        ("latency_ms_max", json!(stats.latency.max_ms())),
        ("loadavg_1min_before", json!(load_before)),
        ("loadavg_1min_after", json!(load_after)),
    ];
    for (k, v) in &report {
        println!("{k:40} {v}");
    }
    if let Some(path) = &args.json {
        // Written by hand to keep the order above (serde_json's map would sort the keys).
        let body: Vec<String> = report
            .iter()
            .map(|(k, v)| format!("  {}: {v}", json!(k)))
            .collect();
        if let Err(e) = std::fs::write(path, format!("{{\n{}\n}}\n", body.join(",\n"))) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

/// `--client both`: the crate and the raw baseline, each in its own process (so CPU and RSS
/// are each one's own) against one emulator, one after the other or (`--together`) at the
/// same time; prints and writes both, and the ratios.
async fn run_both(args: Args) {
    let runs = if args.together { 2 } else { 1 };
    let (mut child, url, pid) = match &args.url {
        Some(url) => (None, url.clone(), args.emulator_pid.clone()),
        None => match spawn_emulator(args.sessions * runs + 16) {
            Ok((child, url)) => {
                let pid = child.id().to_string();
                (Some(child), url, Some(pid))
            }
            Err(e) => {
                eprintln!("cannot start the emulator: {e}");
                std::process::exit(1)
            }
        },
    };
    let dir = std::env::temp_dir();
    let ours = child.is_some();
    let command = |kind: &str, path: &std::path::Path| {
        let mut cmd = Command::new(std::env::current_exe().unwrap_or_else(|_| "load".into()));
        cmd.args(["--client", kind, "--url", &url])
            .args(["--sessions", &args.sessions.to_string()])
            .args(["--seconds", &args.seconds.to_string()])
            .args(["--threads", &args.threads.to_string()])
            .args(["--ramp-ms", &args.ramp().as_millis().to_string()])
            .args(["--frame-ms", &args.frame_ms.to_string()])
            .arg("--json")
            .arg(path)
            .stdout(Stdio::piped());
        if let Some(pid) = &pid {
            cmd.args(["--emulator-pid", pid]);
        }
        if args.disable_lifo_slot {
            cmd.arg("--disable-lifo-slot");
        }
        if ours {
            // Our emulator accepts our key only.
            cmd.env("ASSEMBLYAI_API_KEY", KEY);
        }
        cmd
    };
    let kinds = ["crate", "raw"];
    let paths = kinds.map(|kind| dir.join(format!("load-{}-{kind}.json", std::process::id())));
    let outputs: Vec<std::io::Result<std::process::Output>> = if args.together {
        let started: Vec<_> = kinds
            .iter()
            .zip(&paths)
            .map(|(kind, path)| command(kind, path).spawn())
            .collect();
        started
            .into_iter()
            .map(|run| run.and_then(|c| c.wait_with_output()))
            .collect()
    } else {
        kinds
            .iter()
            .zip(&paths)
            .map(|(kind, path)| command(kind, path).output())
            .collect()
    };
    // Each run's report, printed whole once it ended (side by side they would interleave).
    let mut reports = Vec::new();
    for ((kind, path), out) in kinds.iter().zip(&paths).zip(outputs) {
        println!("== {kind} ==");
        let ok = match out {
            Ok(out) => {
                print!("{}", String::from_utf8_lossy(&out.stdout));
                out.status.success()
            }
            Err(_) => false,
        };
        let report: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let _ = std::fs::remove_file(path);
        if !ok || report.is_null() {
            eprintln!("the {kind} run failed");
        }
        reports.push(report);
    }
    if let Some(child) = child.as_mut() {
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
    }
    let (krate, raw) = (&reports[0], &reports[1]);
    let ratio = |key: &str| -> Value {
        match (krate[key].as_f64(), raw[key].as_f64()) {
            (Some(a), Some(b)) if b > 0.0 => json!(a / b),
            _ => Value::Null,
        }
    };
    let ratios = json!({
        "cpu_seconds": ratio("client_cpu_seconds"),
        "rss_per_session": ratio("rss_per_session_kb"),
        "anon_rss_per_session": ratio("anon_rss_per_session_kb"),
        "latency_p50": ratio("latency_ms_p50"),
        "latency_p99": ratio("latency_ms_p99"),
    });
    println!("== crate / raw ==");
    if let Some(map) = ratios.as_object() {
        for (k, v) in map {
            println!("{:40} {v}", format!("ratio_{k}"));
        }
    }
    if let Some(path) = &args.json {
        let mut out = krate.as_object().cloned().unwrap_or_default();
        out.insert("raw".into(), raw.clone());
        out.insert("ratios".into(), ratios);
        let text = serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}
