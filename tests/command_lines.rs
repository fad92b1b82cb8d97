//! What every command-line example promises about its command line: `--help` describes every
//! flag on stdout and exits 0; an unknown flag is named and exits 2; files named on the command
//! line are checked (and named in the error) before anything listens or connects. The outputs
//! of a run are tested next to each example (`transcribe_example`, `translate_example`).

mod support;

use std::process::{Command, Output};

/// Each example and every flag its `--help` must describe.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "transcribe",
        &[
            "--url",
            "--param",
            "--no-format-turns",
            "--fast",
            "--format",
            "--channels",
            "--resilient",
            "<FILE.wav>",
        ],
    ),
    (
        "translate",
        &[
            "--lang",
            "--base-url",
            "--model",
            "--legacy-lemur",
            "[TEXT]",
        ],
    ),
    (
        "emulator",
        &[
            "--port",
            "--host",
            "--api-key",
            "--script",
            "--legacy-formatting",
            "--stamp-send-time",
            "--max-sessions",
            "--http-401",
            "--max-session-seconds",
            "--realtime-tolerance-ms",
            "--drop-after-ms",
            "--no-termination",
            "--delay-begin-ms",
            "--unknown-message",
            "--error-then-close",
            "--malformed-frame",
            "--slow-ms",
            "--untyped-error",
            "--tls",
            "--tls-cert",
            "--tls-key",
            "--tls-ca",
        ],
    ),
    (
        "load",
        &[
            "--url",
            "--sessions",
            "--seconds",
            "--json",
            "--threads",
            "--ramp-ms",
            "--frame-ms",
            "--emulator-pid",
            "--client",
            "--together",
            "--disable-lifo-slot",
        ],
    ),
    ("mic_translate", &["--lang", "--wav", "--device", "--input"]),
];

fn run(example: &str, args: &[&str]) -> Output {
    Command::new(support::server::example_binary(example))
        .args(args)
        .output()
        .unwrap()
}

/// Asserts a usage error as the examples promise it: exit 2, `named` in stderr, nothing on
/// stdout (`case` says which run failed). Returns stderr.
#[track_caller]
fn assert_usage_error_naming(out: &Output, named: &str, case: &str) -> String {
    assert_eq!(out.status.code(), Some(2), "{case}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains(named), "{case}: {stderr}");
    assert!(out.stdout.is_empty(), "{case} printed to stdout: {out:?}");
    stderr
}

#[test]
fn help_exits_0_and_describes_every_flag() {
    for (example, flags) in EXAMPLES {
        let out = run(example, &["--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{example} --help: {out:?}");
        assert!(out.stderr.is_empty(), "{example} --help wrote to stderr");
        let lines: Vec<&str> = help.lines().map(str::trim).collect();
        for flag in *flags {
            // clap's long help: the flag's own line, then its description on the next line.
            let at = lines
                .iter()
                .position(|l| {
                    let first = l.split(' ').next().unwrap_or("");
                    first.trim_end_matches("...") == *flag
                })
                .unwrap_or_else(|| panic!("{example} --help does not list {flag}:\n{help}"));
            let description = lines.get(at + 1).copied().unwrap_or("");
            assert!(
                !description.is_empty() && !description.starts_with('-'),
                "{example} --help lists {flag} without a description:\n{help}"
            );
        }
    }
}

#[test]
fn an_unknown_flag_exits_2_and_is_named() {
    for (example, _) in EXAMPLES {
        let out = run(example, &["--no-such-flag"]);
        assert_usage_error_naming(&out, "--no-such-flag", example);
    }
}

#[test]
fn transcribe_help_warns_that_fast_ends_in_3007_where_real_time_is_enforced() {
    let help = String::from_utf8(run("transcribe", &["--help"]).stdout).unwrap();
    let fast = &help[help.find("--fast").unwrap()..];
    let fast = &fast[..fast.find("--format").unwrap()];
    assert!(fast.contains("3007"), "{fast}");
    assert!(fast.contains("real time"), "{fast}");
}

#[test]
fn the_emulator_names_a_missing_script_and_exits_2_before_listening() {
    let out = run(
        "emulator",
        &["--port", "0", "--script", "/no/such/script.json"],
    );
    assert_usage_error_naming(&out, "--script /no/such/script.json", "emulator --script");
}

#[test]
fn the_emulator_names_a_missing_tls_file_and_exits_2_before_listening() {
    let out = run(
        "emulator",
        &[
            "--port",
            "0",
            "--tls-cert",
            "/no/such/chain.pem",
            "--tls-key",
            "/no/such/key.pem",
        ],
    );
    assert_usage_error_naming(&out, "/no/such/chain.pem", "emulator --tls-cert");
}

#[test]
fn the_emulator_keeps_its_value_syntax_and_rejects_half_a_tls_pair() {
    // `--error-then-close` takes CODE:REASON; a CODE that is not a number is a usage error.
    let out = run("emulator", &["--error-then-close", "abc:reason"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--error-then-close"));
    // A certificate without its key (and the reverse) is a usage error, not a silent plain run.
    for half in [
        ["--tls-cert", "chain.pem"],
        ["--tls-key", "key.pem"],
        ["--tls-ca", "ca.pem"],
    ] {
        let out = run("emulator", &half);
        assert_eq!(out.status.code(), Some(2), "{half:?}: {out:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn load_rejects_a_json_report_into_a_missing_directory_before_any_session() {
    let out = run(
        "load",
        &[
            "--sessions",
            "1",
            "--seconds",
            "1",
            "--json",
            "/no/such/dir/report.json",
        ],
    );
    // No report on stdout: the run never started.
    let stderr = assert_usage_error_naming(&out, "/no/such/dir/report.json", "load --json");
    assert!(
        stderr.contains("/no/such/dir "),
        "names the directory: {stderr}"
    );
}

#[test]
fn load_needs_sessions_and_seconds_of_at_least_1() {
    for args in [
        &["--seconds", "1"][..],
        &["--sessions", "1"],
        &["--sessions", "0", "--seconds", "1"],
        &["--sessions", "1", "--seconds", "0"],
        &["--sessions", "1", "--seconds", "1", "--client", "fast"],
        // Side by side needs both clients; the LIFO experiment needs a tokio_unstable build
        // (and the multi-thread runtime).
        &["--sessions", "1", "--seconds", "1", "--together"],
        &["--sessions", "1", "--seconds", "1", "--disable-lifo-slot"],
    ] {
        let out = run("load", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn load_runs_the_crate_and_the_floor_together_and_reports_both_with_their_ratios() {
    let dir = std::env::temp_dir().join(format!("load-together-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let out = run(
        "load",
        &[
            "--sessions",
            "3",
            "--seconds",
            "1",
            "--ramp-ms",
            "100",
            "--client",
            "both",
            "--together",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Each client's report is printed whole (not interleaved), crate first.
    let crate_at = stdout.find("== crate ==").expect("crate report");
    let raw_at = stdout.find("== raw ==").expect("raw report");
    assert!(crate_at < raw_at, "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // The crate's report at the top (as with `--client crate`), the floor's under `raw`.
    for (client, r) in [("crate", &report), ("raw", &report["raw"])] {
        assert_eq!(r["sessions_completed"], 3, "{client}: {report}");
        assert_eq!(r["errors"], serde_json::json!({}), "{client}: {report}");
    }
    assert!(report["ratios"]["cpu_seconds"].is_number(), "{report}");
    assert!(report["ratios"]["latency_p99"].is_number(), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
