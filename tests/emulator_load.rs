//! Scale check of the emulator alone: N concurrent real-time sessions against the standalone
//! emulator (release build), measuring the emulator process's CPU time.
//!
//! Ignored by default (it takes a while and wants a release build):
//!
//! ```text
//! EMULATOR_LOAD_SESSIONS=1000 EMULATOR_LOAD_SECONDS=20 \
//!   cargo test --release --features emulator --test emulator_load -- --ignored --nocapture
//! ```

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use support::emulator::*;
use tokio_tungstenite::tungstenite::Message;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "load check: run with --release --ignored"]
fn many_real_time_sessions() {
    let sessions = env_num("EMULATOR_LOAD_SESSIONS", 1000) as usize;
    let seconds = env_num("EMULATOR_LOAD_SECONDS", 20);
    let Some(speech) =
        speech("Hello, this is a load test of the emulator. Thank you for listening.")
    else {
        return;
    };
    // EMULATOR_LOAD_PID + EMULATOR_LOAD_URL: measure an emulator started elsewhere (e.g. under a
    // profiler); otherwise start the release build of the example.
    let external = std::env::var("EMULATOR_LOAD_URL").ok().zip(
        std::env::var("EMULATOR_LOAD_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok()),
    );
    let mut child = None;
    let (url, pid) = match external {
        Some(ext) => ext,
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "--release",
                    "--example",
                    "emulator",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .status()
                .unwrap();
            assert!(status.success());
            let exe =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/examples/emulator");
            let mut c = Command::new(exe)
                .args(["--port", "0"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let pid = c.id();
            child = Some(c);
            (line.trim().to_string(), pid)
        }
    };

    // Speech then silence, looped: turns keep coming.
    let clip = concat(&[&speech, &silence(1500)]);
    let frames_per_session = (seconds * 20) as usize;
    let frames: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..frames_per_session)
            .map(|i| {
                let at = (i * 1600) % (clip.len() - 1600);
                clip[at..at + 1600].to_vec()
            })
            .collect(),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let messages = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let results: Vec<Result<(), String>> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..sessions {
            let url = url.clone();
            let frames = frames.clone();
            let messages = messages.clone();
            tasks.push(tokio::spawn(async move {
                // Stagger connects over ~2 s.
                tokio::time::sleep(Duration::from_millis((i as u64 * 2000) / sessions as u64))
                    .await;
                let ws = try_connect(&url, Q, Auth::Header("emulator-dev-key"))
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let (mut sink, mut source) = ws.split();
                let writer = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(50));
                    for f in frames.iter() {
                        tick.tick().await;
                        sink.send(Message::binary(f.clone()))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    sink.send(Message::text(r#"{"type":"Terminate"}"#))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(sink)
                });
                let mut close = None;
                let mut terminated = false;
                while let Some(m) = source.next().await {
                    match m {
                        Ok(Message::Text(t)) => {
                            messages.fetch_add(1, Ordering::Relaxed);
                            terminated |= t.contains("\"Termination\"");
                        }
                        Ok(Message::Close(c)) => {
                            close = c.map(|c| u16::from(c.code));
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                let _sink = writer.await.map_err(|e| e.to_string())??;
                match (terminated, close) {
                    (true, Some(1000)) => Ok(()),
                    other => Err(format!("ended with {other:?}")),
                }
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        results
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let rss = rss_kb(pid);
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let session_minutes = sessions as f64 * seconds as f64 / 60.0;
    println!(
        "sessions={sessions} seconds={seconds} wall={wall:.1}s completed={} failures={} messages={}",
        sessions - failures.len(),
        failures.len(),
        messages.load(Ordering::Relaxed)
    );
    println!(
        "emulator cpu={cpu:.2}s ({:.1}% of one core) = {:.4} cpu-s per session-minute; rss at end={} KB",
        100.0 * cpu / wall,
        cpu / session_minutes,
        rss
    );
    if let Some(f) = failures.first() {
        println!("first failure: {f}");
    }
    assert!(failures.is_empty(), "{} sessions failed", failures.len());
}
