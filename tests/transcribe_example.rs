//! The `transcribe` example's output formats: JSON lines (the default, unchanged), WebVTT and
//! SRT of the final turns.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::emulator::{bundled_sample, fast_emulator, stereo_call};

fn sample_wav() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/assets/sample.wav")
}

async fn transcribe(args: &[&str], wav: &std::path::Path) -> Output {
    let (_, script) = bundled_sample();
    let emu = fast_emulator(script).await;
    let bin = support::server::example_binary("transcribe");
    let url = emu.ws_url();
    let key = emu.api_key().to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let wav = wav.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["--url", &url, "--fast"])
            .args(&args)
            .arg(&wav)
            .env("ASSEMBLYAI_API_KEY", key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    drop(emu);
    out
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The JSON lines with the per-session values (ids, times) blanked.
fn normalized_json(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for key in ["id", "expires_at", "session_duration_seconds"] {
                if let Some(field) = v.get_mut(key) {
                    *field = serde_json::Value::Null;
                }
            }
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn json_is_the_default_and_keeps_its_contract() {
    let default = stdout(&transcribe(&[], &sample_wav()).await);
    let explicit = stdout(&transcribe(&["--format", "json"], &sample_wav()).await);
    let lines = normalized_json(&default);
    assert_eq!(lines, normalized_json(&explicit));
    assert_eq!(lines[0]["type"], "Begin");
    assert_eq!(lines.last().unwrap()["type"], "Termination");
    let finals: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "Turn" && l["final"] == true)
        .map(|l| l["transcript"].as_str().unwrap())
        .collect();
    assert_eq!(finals.len(), 3);
    assert!(lines.iter().all(|l| l.get("channel").is_none()));
    // Every Turn carries "final"; nothing else does.
    assert!(
        lines
            .iter()
            .all(|l| (l["type"] == "Turn") == l.get("final").is_some())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vtt_and_srt_hold_the_three_finals() {
    let (_, script) = bundled_sample();
    let vtt = stdout(&transcribe(&["--format", "vtt"], &sample_wav()).await);
    assert!(vtt.starts_with("WEBVTT\n\n1\n00:00:00."), "{vtt}");
    let srt = stdout(&transcribe(&["--format", "srt"], &sample_wav()).await);
    assert!(srt.starts_with("1\n00:00:00,"), "{srt}");
    for (text, what) in [(&vtt, "vtt"), (&srt, "srt")] {
        let body: String = text
            .lines()
            .filter(|l| !l.contains("-->"))
            .collect::<Vec<_>>()
            .join(" ");
        for turn in &script.turns {
            for word in turn.text.split_whitespace() {
                assert!(body.contains(word), "{what} lacks {word:?}: {text}");
            }
        }
    }
    assert_eq!(srt.matches(" --> ").count(), vtt.matches(" --> ").count());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_format_is_a_usage_error() {
    let out = transcribe(&["--format", "xml"], &sample_wav()).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn separate_channels_tag_every_line_and_merge_by_audio_time() {
    let (_, script) = bundled_sample();
    let out = transcribe(&["--channels", "separate"], &stereo_call()).await;
    let lines = normalized_json(&stdout(&out));
    assert!(
        lines.iter().all(|l| l["channel"] == 0 || l["channel"] == 1),
        "{lines:?}"
    );
    let finals: Vec<(u64, i64)> = lines
        .iter()
        .filter(|l| l["type"] == "Turn" && l["final"] == true)
        .map(|l| {
            (
                l["channel"].as_u64().unwrap(),
                l["words"][0]["start"].as_i64().unwrap(),
            )
        })
        .collect();
    // Left speaks at 0.3 s, right at 4.5 s. (One emulator serves both sessions, and each session
    // takes its script from the top, so both finals carry the script's first sentence.)
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert_eq!(finals[0].0, 0);
    assert_eq!(finals[1].0, 1);
    assert!(finals[0].1 < 1_000 && finals[1].1 > 4_000, "{finals:?}");
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "Termination").count(),
        2
    );
    let first = lines.iter().find(|l| l["final"] == true).unwrap();
    assert_eq!(first["transcript"], script.turns[0].text.as_str());

    // Captions name the channel of each cue.
    let vtt = stdout(
        &transcribe(
            &["--channels", "separate", "--format", "vtt"],
            &stereo_call(),
        )
        .await,
    );
    assert!(
        vtt.contains("<v channel 0>") && vtt.contains("<v channel 1>"),
        "{vtt}"
    );
    assert!(vtt.find("<v channel 0>") < vtt.find("<v channel 1>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_separate_channels_a_stereo_file_is_one_session_and_has_no_channel_field() {
    let lines = normalized_json(&stdout(&transcribe(&[], &stereo_call()).await));
    assert!(lines.iter().all(|l| l.get("channel").is_none()));
    assert_eq!(lines.iter().filter(|l| l["type"] == "Begin").count(), 1);
}

/// Runs the example against a port nobody serves; the checks below fail before connecting.
fn transcribe_offline(args: &[&str], key: Option<&str>) -> (Output, bool) {
    let port = support::server::UntouchedPort::new();
    let mut command = Command::new(support::server::example_binary("transcribe"));
    command.args(["--url", &port.url("ws")]).args(args);
    match key {
        Some(key) => command.env("ASSEMBLYAI_API_KEY", key),
        None => command.env_remove("ASSEMBLYAI_API_KEY"),
    };
    let out = command.output().unwrap();
    (out, port.was_contacted())
}

fn error_line(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[test]
fn a_missing_file_is_named_before_anything_connects() {
    for mode in [&[][..], &["--channels", "separate"], &["--resilient"]] {
        let args = [mode, &["/no/such/recording.wav"]].concat();
        let (out, contacted) = transcribe_offline(&args, Some("any-key"));
        assert_eq!(out.status.code(), Some(1), "{mode:?}: {out:?}");
        assert!(
            !contacted,
            "{mode:?}: it connected before checking the file"
        );
        let e = error_line(&out);
        assert_eq!(e["error"]["kind"], "io");
        assert!(e["error"]["code"].is_null());
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("/no/such/recording.wav"), "{message}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn without_a_key_it_explains_both_ways_out_before_connecting() {
    for key in [None, Some("")] {
        let (out, contacted) = transcribe_offline(&[sample_wav().to_str().unwrap()], key);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(!contacted, "it connected without a key");
        // The contract's error line; only the message says more than before.
        let e = error_line(&out);
        assert_eq!(e["error"]["kind"], "config");
        assert!(e["error"]["code"].is_null());
        let message = e["error"]["message"].as_str().unwrap();
        for way_out in [
            "set ASSEMBLYAI_API_KEY",
            "cargo run --example emulator",
            "--url",
        ] {
            assert!(message.contains(way_out), "{message} lacks {way_out:?}");
        }
        assert!(!message.contains("api_key()"), "{message}");
    }
}

#[test]
fn usage_errors_exit_2_and_name_what_is_wrong() {
    let wav = sample_wav();
    let wav = wav.to_str().unwrap();
    for (args, named) in [
        (&["--param", "no-equals-sign", wav][..], "--param"),
        (&["--channels", "both", wav], "--channels"),
        (
            &["--resilient", "--channels", "separate", wav],
            "--resilient",
        ),
        (&["--fast"], "FILE.wav"),
    ] {
        let (out, contacted) = transcribe_offline(args, Some("any-key"));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!contacted);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_log_shows_the_session_lifecycle_on_stderr_and_nothing_by_default() {
    let (_, script) = bundled_sample();
    let emu = fast_emulator(script).await;
    let bin = support::server::example_binary("transcribe");
    let (url, key) = (emu.ws_url(), emu.api_key().to_owned());
    let run = move |rust_log: Option<&'static str>| {
        let (bin, url, key) = (bin.clone(), url.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new(bin);
            command
                .args(["--url", &url, "--fast"])
                .arg(sample_wav())
                .env("ASSEMBLYAI_API_KEY", &key);
            match rust_log {
                Some(filter) => command.env("RUST_LOG", filter),
                None => command.env_remove("RUST_LOG"),
            };
            (command.output().unwrap(), key)
        })
    };
    let (quiet, _) = run(None).await.unwrap();
    stdout(&quiet);
    assert!(quiet.stderr.is_empty(), "{quiet:?}");

    let (debug, key) = run(Some("debug")).await.unwrap();
    let stdout_text = stdout(&debug);
    let stderr = String::from_utf8_lossy(&debug.stderr);
    let begin: serde_json::Value =
        serde_json::from_str(stdout_text.lines().next().unwrap()).unwrap();
    assert_eq!(begin["type"], "Begin");
    let id = begin["id"].as_str().unwrap();
    assert!(stderr.contains("assemblyai_streaming"), "{stderr}");
    assert!(stderr.contains(id), "the session's spans name it: {stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no colour codes when not a terminal"
    );
    assert!(!stderr.contains(&key), "the key was logged: {stderr}");
    drop(emu);
}

#[tokio::test(flavor = "multi_thread")]
async fn resilient_reconnects_after_a_dropped_connection_and_keeps_every_final_on_one_timeline() {
    // The first connection drops 4 s in (no close frame); the script goes on across sessions.
    let emu = support::resilient::sample_emulator(support::resilient::drop_first_session_after(
        std::time::Duration::from_secs(4),
    ))
    .await;
    let (_, script) = bundled_sample();
    let bin = support::server::example_binary("transcribe");
    let (url, key) = (emu.ws_url(), emu.api_key().to_owned());
    // At real time: the sample is 12 s.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["--url", &url, "--resilient"])
            .arg(sample_wav())
            .env("ASSEMBLYAI_API_KEY", key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reconnected: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "Reconnected")
        .collect();
    assert_eq!(reconnected.len(), 1, "{lines:#?}");
    assert_eq!(reconnected[0]["attempt"], 1);
    assert!(
        reconnected[0]["cause"]["kind"].is_string(),
        "{:?}",
        reconnected[0]
    );
    assert_eq!(lines.last().unwrap()["type"], "Termination");
    // Every scripted word is in a final, and the finals' word times only go forward: one
    // timeline across both connections.
    let finals: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["type"] == "Turn" && l["final"] == true)
        .collect();
    let said: String = finals
        .iter()
        .map(|t| t["transcript"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    for turn in &script.turns {
        for word in turn.text.split_whitespace() {
            let word = word
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            assert!(said.contains(&word), "{word:?} missing from {said:?}");
        }
    }
    let starts: Vec<i64> = finals
        .iter()
        .flat_map(|t| t["words"].as_array().unwrap().iter())
        .map(|w| w["start"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}
