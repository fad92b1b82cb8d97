//! The `translate` example's command-line contract: flags, one translation per line on stdout,
//! and the JSON error line on stderr with a non-zero exit. Other tools script these formats.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use assemblyai_streaming::emulator::{Emulator, EmulatorHandle, Script, ScriptTurn};

/// The `translate` example's binary (built once per test process).
fn example_binary() -> PathBuf {
    support::server::example_binary("translate")
}

async fn emulator() -> EmulatorHandle {
    let turn = |text: &str, es: &str| ScriptTurn {
        text: text.into(),
        translations: [("es".to_owned(), es.to_owned())].into(),
        ..Default::default()
    };
    Emulator::builder()
        .api_key("example-key-31337")
        .script(Script {
            turns: vec![
                turn("Good morning.", "Buenos días."),
                turn("Thank you.", "Gracias."),
            ],
        })
        .start()
        .await
        .unwrap()
}

fn run(emu: &EmulatorHandle, key: &str, args: &[&str], stdin: Option<&str>) -> Output {
    run_at(&emu.http_url(), key, args, stdin)
}

fn run_at(base_url: &str, key: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(example_binary())
        .args(["--lang", "es", "--base-url", base_url])
        .args(args)
        .env("ASSEMBLYAI_API_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn error_line(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn translates_the_text_argument() {
    let emu = emulator().await;
    let out = run(&emu, emu.api_key(), &["Good", "morning."], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Buenos días.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn translates_stdin_line_by_line() {
    let emu = emulator().await;
    let out = run(
        &emu,
        emu.api_key(),
        &[],
        Some("Good morning.\n\nThank you.\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Buenos días.\n\nGracias.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_bad_key_prints_the_json_error_and_fails() {
    let emu = emulator().await;
    let out = run(&emu, "not-the-key-777", &["Thank you."], None);
    assert_eq!(out.status.code(), Some(1));
    let e = error_line(&out);
    assert_eq!(e["error"]["kind"], "unauthorized");
    assert_eq!(e["error"]["code"], 401);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid API key")
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("not-the-key-777"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_legacy_flag_reports_the_shutdown_as_a_404() {
    let emu = emulator().await;
    let out = run(&emu, emu.api_key(), &["--legacy-lemur", "Thank you."], None);
    assert_eq!(out.status.code(), Some(1));
    let e = error_line(&out);
    assert_eq!(e["error"]["kind"], "lemur_shut_down");
    assert_eq!(e["error"]["code"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn usage_errors_have_a_null_code_and_exit_2() {
    let emu = emulator().await;
    let out = run(&emu, emu.api_key(), &["--bogus"], None);
    assert_eq!(out.status.code(), Some(2));
    let e = error_line(&out);
    assert_eq!(e["error"]["kind"], "config");
    assert!(e["error"]["code"].is_null());
}

/// A server echoing the key in an error, in a completion or in an undecodable body: the
/// example's stdout and stderr carry no run of 8 characters of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_server_echoing_the_key_never_gets_it_printed() {
    use support::transport::{Reply, http_server, json_response};
    const KEY: &str = "canary-cli-key-5Hs9Qe2Wv7Xb";
    let parts: Vec<String> = KEY
        .chars()
        .collect::<Vec<_>>()
        .windows(8)
        .map(|w| w.iter().collect())
        .collect();
    let echo = format!("you sent {KEY} (prefix {})", &KEY[..15]);
    let quoted = serde_json::to_string(&echo).unwrap();
    let replies = [
        ("401 Unauthorized", format!(r#"{{"error":{quoted}}}"#), 1),
        ("400 Bad Request", format!("{}{echo}", "x".repeat(500)), 1),
        (
            "200 OK",
            format!(r#"{{"choices":[{{"message":{{"content":{quoted}}}}}]}}"#),
            0,
        ),
        ("200 OK", format!(r#"{{"choices":[{quoted}"#), 1),
    ];
    for (status, body, exit) in replies {
        let (url, _) = http_server(Reply::Full(json_response(status, &body))).await;
        let out = run_at(&url, KEY, &["Hello."], None);
        assert_eq!(out.status.code(), Some(exit), "{status} {body}: {out:?}");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The server's own words are kept around the redaction (a decode error prints only
        // the decoder's complaint).
        assert!(
            ["you sent", "xxxx", "unexpected LLM response"]
                .iter()
                .any(|w| printed.contains(w)),
            "{printed}"
        );
        for part in &parts {
            assert!(
                !printed.contains(part.as_str()),
                "{part:?} printed: {printed}"
            );
        }
    }
}

/// Runs the example against a port nobody serves; the checks below fail before connecting.
fn translate_offline(args: &[&str], key: Option<&str>) -> (Output, bool) {
    let port = support::server::UntouchedPort::new();
    let mut command = Command::new(support::server::example_binary("translate"));
    command
        .args(["--base-url", &port.url("http")])
        .args(args)
        .stdin(Stdio::null());
    match key {
        Some(key) => command.env("ASSEMBLYAI_API_KEY", key),
        None => command.env_remove("ASSEMBLYAI_API_KEY"),
    };
    let out = command.output().unwrap();
    (out, port.was_contacted())
}

#[test]
fn help_is_printed_on_stdout_and_exits_0() {
    let (out, contacted) = translate_offline(&["--help"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!contacted);
    assert!(out.stderr.is_empty(), "help is not an error line: {out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--lang") && help.contains("ASSEMBLYAI_API_KEY"),
        "{help}"
    );
}

#[test]
fn without_a_key_it_explains_both_ways_out_before_connecting() {
    for key in [None, Some("")] {
        let (out, contacted) = translate_offline(&["--lang", "es", "Hello."], key);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(!contacted, "it connected without a key");
        let e = error_line(&out);
        assert_eq!(e["error"]["kind"], "config");
        assert!(e["error"]["code"].is_null());
        let message = e["error"]["message"].as_str().unwrap();
        for way_out in [
            "set ASSEMBLYAI_API_KEY",
            "cargo run --example emulator",
            "--base-url",
        ] {
            assert!(message.contains(way_out), "{message} lacks {way_out:?}");
        }
        assert!(!message.contains("LemurBuilder"), "{message}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn usage_errors_name_the_flag_in_the_json_line() {
    for (args, named) in [
        (&["--lang", "es", "--bogus"][..], "--bogus"),
        (&["Hello."], "--lang"),
        (&["--lang"], "--lang"),
    ] {
        let (out, contacted) = translate_offline(args, Some("any-key"));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!contacted);
        let e = error_line(&out);
        assert_eq!(e["error"]["kind"], "config");
        assert!(e["error"]["code"].is_null());
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{args:?}: {message}");
    }
}
