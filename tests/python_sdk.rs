//! Conformance with the official AssemblyAI Python SDK (`assemblyai==1.8.2`).
//!
//! Creates a throwaway virtual environment, installs the SDK from PyPI, starts the standalone
//! emulator (the `emulator` example binary, with `--tls`) and drives the SDK's `StreamingClient`
//! against it over `ws://` and `wss://` (CA trusted through `SSL_CERT_FILE`) with
//! speech made by espeak-ng, then its `LLMGateway` client (chat, stream, model list).
//!
//! Needs python3 (with venv), network access to PyPI, espeak-ng and sox, so it is `#[ignore]`d:
//! the plain `cargo test` stays offline. `.ci/run` runs it with
//! `cargo test --test python_sdk -- --ignored`. When a tool is missing the test says why and is
//! skipped, except under `CI=true`, where it fails.

mod support;

use std::path::Path;
use std::process::Command;

use support::emulator::sdk::*;

const SCRIPT_TEXT: &str = "The quick brown fox jumps over the lazy dog.";

fn drive(python: &Path, url: &str, key: &str, audio: &Path, extra: &[&str]) -> serde_json::Value {
    drive_with(python, url, key, audio, extra, None)
}

/// `drive`, trusting `ca` (a PEM file) for `wss://` through `SSL_CERT_FILE`.
fn drive_with(
    python: &Path,
    url: &str,
    key: &str,
    audio: &Path,
    extra: &[&str],
    ca: Option<&Path>,
) -> serde_json::Value {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_driver.py");
    let mut cmd = Command::new(python);
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    driver_report(
        cmd.arg(driver).args([url, key]).arg(audio).args(extra),
        "SDK driver",
    )
}

#[test]
#[ignore = "needs PyPI, python3, espeak-ng and sox; run by .ci/run with --ignored"]
fn official_python_sdk_works_against_the_emulator() {
    for tool in ["python3", "espeak-ng", "sox"] {
        if !have(tool) {
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
    let emulator = start_emulator(&script, key, &["--tls"]).expect("start the standalone emulator");

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

    // The same over wss://, trusting the emulator's CA.
    let (wss, ca) = emulator.tls.clone().unwrap();
    let report = drive_with(&python, &wss, key, &audio, &[], Some(&ca));
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["finals"][0]["transcript"], SCRIPT_TEXT, "{report}");
    assert!(report["termination"].is_object(), "{report}");

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
    let report = driver_report(
        Command::new(&python)
            .arg(driver)
            .args([http_url.as_str(), key]),
        "gateway driver",
    );
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
