//! Conformance with the official AssemblyAI Python SDK (`assemblyai==1.8.2`).
//!
//! Creates a throwaway virtual environment, installs the SDK from PyPI, starts the standalone
//! emulator (the `emulator` example binary) and drives the SDK's `StreamingClient` against it with
//! speech made by espeak-ng, then its `LLMGateway` client (chat, stream, model list).
//!
//! Needs python3 (with venv), network access to PyPI, espeak-ng and sox, so it is `#[ignore]`d:
//! the plain `cargo test` stays offline. `.ci/run` runs it with
//! `cargo test --test python_sdk -- --ignored`. When a tool is missing the test says why and is
//! skipped, except under `CI=true`, where it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SCRIPT_TEXT: &str = "The quick brown fox jumps over the lazy dog.";

fn unavailable(why: &str) {
    let msg = format!("python SDK conformance test cannot run: {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A throwaway virtual environment with the SDK (removed with the work directory).
fn venv_python(dir: &Path) -> Result<PathBuf, String> {
    let python = dir.join("bin/python");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    run_ok(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "assemblyai==1.8.2"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )?;
    Ok(python)
}

fn make_speech(text: &str, dir: &Path) -> Result<PathBuf, String> {
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.raw");
    run_ok(
        Command::new("espeak-ng")
            .args(["-v", "en-us", "-w"])
            .arg(&wav)
            .arg(text),
    )?;
    run_ok(
        Command::new("sox")
            .arg(&wav)
            .args([
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                "-t",
                "raw",
            ])
            .arg(&raw)
            .args(["pad", "0.3", "1.5"]),
    )?;
    Ok(raw)
}

/// The standalone emulator, stopped on drop.
struct Standalone {
    child: Child,
    url: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(script: &Path, key: &str) -> Result<Standalone, String> {
    // `cargo test --test python_sdk` builds only this test, so build the example binary here
    // (a no-op when it is up to date).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_ok(
        Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--example",
                "emulator",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")),
    )?;
    let target_exe = target_dir().join("debug/examples/emulator");
    let mut child = Command::new(&target_exe)
        .args(["--port", "0", "--api-key", key, "--script"])
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", target_exe.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let url = line.trim().to_string();
    if !url.starts_with("ws://") {
        let _ = child.kill();
        return Err(format!("emulator printed {url:?} instead of its URL"));
    }
    Ok(Standalone { child, url })
}

fn drive(python: &Path, url: &str, key: &str, audio: &Path, extra: &[&str]) -> serde_json::Value {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_driver.py");
    let out = Command::new(python)
        .arg(driver)
        .args([url, key])
        .arg(audio)
        .args(extra)
        .output()
        .expect("run the SDK driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "driver failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!(
            "driver output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
#[ignore = "needs PyPI, python3, espeak-ng and sox; run by .ci/run with --ignored"]
fn official_python_sdk_works_against_the_emulator() {
    for tool in ["python3", "espeak-ng", "sox"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return unavailable(&format!("{tool} is not installed"));
        }
    }
    let work = std::env::temp_dir().join(format!("aai-python-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let _cleanup = RemoveOnDrop(work.clone());
    let python = match venv_python(&work.join("venv")) {
        Ok(p) => p,
        Err(e) => return unavailable(&format!("cannot install assemblyai==1.8.2: {e}")),
    };
    let audio = match make_speech(SCRIPT_TEXT, &work) {
        Ok(a) => a,
        Err(e) => return unavailable(&e),
    };
    let script = work.join("script.json");
    std::fs::write(
        &script,
        serde_json::json!({"turns": [{"text": SCRIPT_TEXT}]}).to_string(),
    )
    .unwrap();
    let key = "python-sdk-test-key";
    let emulator = start_emulator(&script, key).expect("start the standalone emulator");

    let report = drive(&python, &emulator.url, key, &audio, &[]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["begin_id"].as_str().is_some_and(|id| id.len() == 36),
        "{report}"
    );
    assert!(report["partials"].as_u64().unwrap() > 5, "{report}");
    let finals = report["finals"].as_array().unwrap();
    assert_eq!(finals.len(), 1, "{report}");
    assert_eq!(finals[0]["transcript"], SCRIPT_TEXT, "{report}");
    assert_eq!(finals[0]["formatted"], true, "{report}");
    let term = &report["termination"];
    assert!(
        term["audio_duration_seconds"].as_u64().unwrap() >= 3,
        "{report}"
    );

    // A wrong key: the SDK reports the server's 1008.
    // A temporary token, which the SDK sends in the Authorization header.
    let report = drive(&python, &emulator.url, key, &audio, &["--temporary-token"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["finals"][0]["transcript"], SCRIPT_TEXT, "{report}");
    assert!(report["termination"].is_object(), "{report}");

    let report = drive(&python, &emulator.url, "wrong-key", &audio, &[]);
    let errors = report["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{report}");
    assert_eq!(errors[0]["code"], 1008, "{report}");
    assert!(report["begin_id"].is_null(), "{report}");

    // The LLMGateway client: its pydantic models validate usage, SSE chunks and the model list.
    let http_url = emulator.url.replacen("ws://", "http://", 1);
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gateway_driver.py");
    let out = Command::new(&python)
        .arg(driver)
        .args([http_url.as_str(), key])
        .output()
        .expect("run the gateway driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gateway driver failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("gateway driver JSON");
    let chat = &report["chat"];
    assert!(chat["prompt_tokens"].as_u64().unwrap() > 0, "{report}");
    assert!(chat["completion_tokens"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["stream"]["text"], chat["content"], "{report}");
    assert!(report["stream"]["chunks"].as_u64().unwrap() > 3, "{report}");
    assert_eq!(report["stream"]["finish"], "stop", "{report}");
    assert!(
        report["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "gpt-5"),
        "{report}"
    );
}

/// Removes the work directory (venv, audio) even when an assertion fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
