//! Helpers of the official-SDK tests (`python_sdk`, `node_sdk`): tools, speech files, the
//! standalone emulator as a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Whether a command is on `PATH`.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Reports why an SDK test cannot run: a notice and a skip, or a failure under `CI=true`.
pub fn unavailable(why: &str) {
    let msg = format!("official SDK conformance test cannot run: {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

/// Runs an SDK driver (`what` names it in failures) and parses the JSON report on the last
/// line of its stdout; a failed run, or a last line that is not JSON, fails the test with the
/// driver's output.
pub fn driver_report(cmd: &mut Command, what: &str) -> serde_json::Value {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run the {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{what} output is not JSON ({e}): {stdout}\n{stderr}"))
}

pub fn run_ok(cmd: &mut Command) -> Result<(), String> {
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

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A throwaway virtual environment with the SDK (removed with the work directory).
pub fn venv_python(dir: &Path) -> Result<PathBuf, String> {
    let python = dir.join("bin/python");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    run_ok(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "assemblyai==1.8.2"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )?;
    Ok(python)
}

/// Speech of `text` as 16 kHz mono s16le in `dir`, with 0.3 s of silence before and 1.5 s
/// after (so the last turn ends).
pub fn make_speech(text: &str, dir: &Path) -> Result<PathBuf, String> {
    let raw = dir.join("speech.raw");
    super::espeak_to_raw(text, &raw, Some((0.3, 1.5)))?;
    Ok(raw)
}

/// The standalone emulator, stopped on drop.
pub struct Standalone {
    child: Child,
    /// The first stdout line: the plain `ws://` base URL.
    pub url: String,
    /// With `--tls`: the `wss://` base URL and the CA file from the `tls:` line.
    pub tls: Option<(String, PathBuf)>,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the standalone emulator (the `emulator` example) with `--port 0`, the key, the
/// script and `extra` flags, and reads its start-up lines.
pub fn start_emulator(script: &Path, key: &str, extra: &[&str]) -> Result<Standalone, String> {
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
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", target_exe.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let url = line.trim().to_string();
    if !url.starts_with("ws://") {
        let _ = child.kill();
        return Err(format!("emulator printed {url:?} instead of its URL"));
    }
    let mut tls = None;
    if extra.contains(&"--tls") {
        // `tls: wss://HOST:PORT  ca certificate: PATH`, after the other start-up lines.
        for _ in 0..8 {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                break;
            }
            if let Some(rest) = line.trim().strip_prefix("tls: ") {
                if let Some((wss, ca)) = rest.split_once("  ca certificate: ") {
                    tls = Some((wss.to_string(), PathBuf::from(ca)));
                }
                break;
            }
        }
        if tls.is_none() {
            let _ = child.kill();
            return Err("the emulator printed no tls: line".into());
        }
    }
    Ok(Standalone { child, url, tls })
}

/// Removes the work directory (venv, audio) even when an assertion fails.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
