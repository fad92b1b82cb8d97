//! Conformance with the official AssemblyAI Node SDK (`assemblyai@4.41.5` from npm), unchanged,
//! over `wss://` (the only scheme it accepts, spec §1.1) against the standalone emulator started
//! with `--tls`; its CA is trusted through `NODE_EXTRA_CA_CERTS`.
//!
//! Cases: the API key (with `updateConfiguration` and `forceEndpoint` mid-sentence), a temporary
//! token minted over `https://`, a wrong key, and an out-of-bounds `updateConfiguration`.
//!
//! Needs node, npm (network access to the npm registry), espeak-ng and sox, so it is
//! `#[ignore]`d: the plain `cargo test` stays offline. `.ci/run` runs it with
//! `cargo test --test node_sdk -- --ignored`. When a tool is missing the test says why and is
//! skipped, except under `CI=true`, where it fails.

mod support;

use std::path::Path;
use std::process::Command;

use support::emulator::sdk::*;

const FIRST: &str = "The quick brown fox jumps over the lazy dog.";
const SECOND: &str = "Pack my box with five dozen liquor jugs.";

fn plain(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the driver in `work` (where `node_modules` is) and parses its JSON report.
fn drive(work: &Path, ca: &Path, args: [&str; 5], force_at_ms: u32) -> serde_json::Value {
    driver_report(
        Command::new("node")
            .arg(work.join("sdk_driver.mjs"))
            .args(args)
            .env("NODE_EXTRA_CA_CERTS", ca)
            .env("FORCE_AT_MS", force_at_ms.to_string()),
        "Node SDK driver",
    )
}

#[test]
#[ignore = "needs npm, node, espeak-ng and sox; run by .ci/run with --ignored"]
fn official_node_sdk_works_against_the_emulator_over_wss() {
    for tool in ["node", "npm", "espeak-ng", "sox"] {
        if !have(tool) {
            return unavailable(&format!("{tool} is not installed"));
        }
    }
    let work = std::env::temp_dir().join(format!("aai-node-sdk-{}", std::process::id()));
    std::fs::create_dir_all(work.join("a")).unwrap();
    std::fs::create_dir_all(work.join("b")).unwrap();
    let _cleanup = RemoveOnDrop(work.clone());
    if let Err(e) = run_ok(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&work)
            .arg("assemblyai@4.41.5"),
    ) {
        return unavailable(&format!("cannot install assemblyai@4.41.5: {e}"));
    }
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/sdk_driver.mjs"),
        work.join("sdk_driver.mjs"),
    )
    .unwrap();
    // Two sentences, each with 0.3 s before and 1.5 s after.
    let (a, b) = match (
        make_speech(FIRST, &work.join("a")),
        make_speech(SECOND, &work.join("b")),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return unavailable(&e),
    };
    let audio = work.join("speech.raw");
    let bytes = [std::fs::read(a).unwrap(), std::fs::read(b).unwrap()].concat();
    std::fs::write(&audio, bytes).unwrap();
    let script = work.join("script.json");
    std::fs::write(
        &script,
        serde_json::json!({"turns": [{"text": FIRST}, {"text": SECOND}]}).to_string(),
    )
    .unwrap();
    let key = "node-sdk-test-key";
    let emulator = start_emulator(&script, key, &["--tls"]).expect("start the emulator");
    let (wss, ca) = emulator.tls.clone().unwrap();
    let https = wss.replacen("wss://", "https://", 1);
    let audio = audio.to_str().unwrap();

    // The key, with updateConfiguration at 0.5 s and forceEndpoint 1.5 s into the first
    // sentence (0.3 s of silence first): the forced final holds what was heard, the rest of
    // the sentence comes next, and the second sentence stays aligned.
    let report = drive(&work, &ca, [&wss, &https, key, audio, "key"], 1800);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["begin_id"].as_str().is_some_and(|id| id.len() == 36),
        "{report}"
    );
    assert!(report["partials"].as_u64().unwrap() > 5, "{report}");
    let finals: Vec<String> = report["finals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| plain(f["transcript"].as_str().unwrap()))
        .collect();
    assert_eq!(finals.len(), 3, "{report}");
    let first = plain(FIRST);
    assert!(
        !finals[0].is_empty() && finals[0].len() < first.len(),
        "{report}"
    );
    assert_eq!(format!("{} {}", finals[0], finals[1]), first, "{report}");
    assert_eq!(finals[2], plain(SECOND), "{report}");
    // close() returned at `Termination`, long before its 5 s timeout; the server did not close.
    assert!(report["close"].is_null(), "{report}");
    assert!(report["close_ms"].as_u64().unwrap() < 3000, "{report}");

    // A temporary token minted over https:// by the SDK itself, used in the query.
    let report = drive(&work, &ca, [&wss, &https, key, audio, "token"], 0);
    assert_eq!(report["token_minted"], true, "{report}");
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["finals"].as_array().unwrap().len(), 2, "{report}");

    // A wrong key: the connect fails with the server's 1008, and no session begins.
    let report = drive(&work, &ca, [&wss, &https, key, audio, "wrong-key"], 0);
    assert!(report["begin_id"].is_null(), "{report}");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0]["code"], 1008, "{report}");

    // UpdateConfiguration beyond the query parser's bounds: 3006.
    let report = drive(&work, &ca, [&wss, &https, key, audio, "bad-update"], 0);
    assert_eq!(report["close"]["code"], 3006, "{report}");
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == 3006),
        "{report}"
    );
}
