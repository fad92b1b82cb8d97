//! The `live_captions` example in a real browser: headless Chromium with a fake microphone
//! playing the bundled sample, driven through WebDriver (chromedriver + fantoccini).
//!
//! Needs the Debian packages `chromium` and `chromium-driver`, so it is `#[ignore]`d in the
//! plain `cargo test`; `.ci/run` runs it with `--ignored`. Under `CI=true` missing packages fail
//! the test; elsewhere they skip it with a notice.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Kills a child process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/assets")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the example without a key (so it serves the emulator); returns it and its URL.
fn start_service() -> (Killed, String) {
    let mut child = Command::new(support::server::example_binary("live_captions"))
        .args(["--port", "0", "--lang", "es"])
        .env_remove("ASSEMBLYAI_API_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start live_captions");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "first line: {url:?}");
    (Killed(child), url)
}

async fn health(url: &str) -> Value {
    reqwest::get(format!("{url}health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tools_present() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg =
        format!("missing {missing:?}: apt-get install chromium chromium-driver (Debian packages)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and chromium-driver; run by .ci/run"]
async fn live_captions_in_headless_chromium() {
    if !tools_present() {
        return;
    }
    let script: Value = serde_json::from_str(
        &std::fs::read_to_string(assets().join("sample.script.json")).unwrap(),
    )
    .unwrap();
    let turns = script["turns"].as_array().unwrap().clone();
    let (_service, url) = start_service();

    let driver_port = free_port();
    let _driver = Killed(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = std::env::temp_dir().join(format!("aai-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    // 16 kHz mono 16-bit PCM WAV, which Chromium's fake capture reads as is; `%noloop` plays it
    // once, then silence.
    let fake_audio = format!("{}%noloop", assets().join("sample.wav").display());
    let args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1000,800".into(),
        format!("--user-data-dir={}", profile.display()),
        "--use-fake-ui-for-media-stream".into(),
        "--use-fake-device-for-media-stream".into(),
        format!("--use-file-for-fake-audio-capture={fake_audio}"),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": args}),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = wait_for(Duration::from_secs(20), "chromedriver", || {
        let builder = {
            let mut b = ClientBuilder::new(connector.clone());
            b.capabilities(caps.clone());
            b
        };
        let driver_url = driver_url.clone();
        async move { builder.connect(&driver_url).await.ok() }
    })
    .await;

    browser.goto(&url).await.unwrap();
    let status = browser.find(Locator::Id("status")).await.unwrap();
    wait_for(Duration::from_secs(10), "the page to be ready", || {
        let status = status.clone();
        async move { status.text().await.ok().filter(|t| t.starts_with("Ready")) }
    })
    .await;
    assert!(status.text().await.unwrap().contains("emulated"));
    browser
        .find(Locator::Id("partial"))
        .await
        .expect("#partial");
    browser
        .find(Locator::Id("start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The sample is 12 s of speech at real-time pace; each final is followed by its translation.
    let partial_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finals = wait_for(
        Duration::from_secs(60),
        "three finals with translations",
        || {
            let browser = browser.clone();
            let partial_seen = partial_seen.clone();
            async move {
                let partial = browser.find(Locator::Id("partial")).await.ok()?;
                if !partial.text().await.ok()?.trim().is_empty() {
                    partial_seen.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let finals = browser
                    .find_all(Locator::Css(".final[data-turn-order]"))
                    .await
                    .ok()?;
                let translated = browser
                    .find_all(Locator::Css(".final[data-turn-order] .translation[lang]"))
                    .await
                    .ok()?;
                (finals.len() >= 3 && translated.len() >= 3).then_some(finals)
            }
        },
    )
    .await;
    assert!(status.text().await.unwrap().contains("emulated"));
    assert!(
        partial_seen.load(std::sync::atomic::Ordering::Relaxed),
        "#partial showed the turn in progress"
    );
    assert_eq!(finals.len(), 3, "exactly the three scripted turns");
    for (i, (final_el, turn)) in finals.iter().zip(&turns).enumerate() {
        assert_eq!(
            final_el.attr("data-turn-order").await.unwrap().as_deref(),
            Some(i.to_string().as_str())
        );
        let text = final_el
            .find(Locator::Css(".text"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, turn["text"].as_str().unwrap());
        let translations = final_el
            .find_all(Locator::Css(".translation[lang]"))
            .await
            .unwrap();
        assert_eq!(translations.len(), 1);
        assert_eq!(
            translations[0].attr("lang").await.unwrap().as_deref(),
            Some("es")
        );
        assert_eq!(
            translations[0].text().await.unwrap(),
            turn["translations"]["es"].as_str().unwrap()
        );
    }
    let png = browser.screenshot().await.unwrap();
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/live_captions.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // The service offers the session's captions as WebVTT, transcript and translation.
    let vtt = reqwest::get(format!("{url}captions/1.vtt?lang=es"))
        .await
        .unwrap();
    assert_eq!(vtt.status(), 200);
    let vtt = vtt.text().await.unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n1\n"), "{vtt}");
    assert_eq!(vtt.matches(" --> ").count(), 3, "{vtt}");
    let unwrapped = vtt.replace('\n', " ");
    for turn in &turns {
        let es = turn["translations"]["es"].as_str().unwrap();
        assert!(unwrapped.contains(es), "{es:?} not in {vtt}");
    }

    let open = health(&url).await;
    assert_eq!(
        (
            open["sessions"].as_u64(),
            open["emulator_sessions"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // Close the tab (another one stays open, as a person's browser would).
    let original = browser.window().await.unwrap();
    let other = browser.new_window(true).await.unwrap();
    browser.switch_to_window(original).await.unwrap();
    browser.close_window().await.unwrap();
    browser.switch_to_window(other.handle).await.unwrap();
    wait_for(Duration::from_secs(10), "the session to end", || {
        let url = url.clone();
        async move {
            let h = health(&url).await;
            (h["sessions"] == 0 && h["emulator_sessions"] == 0).then_some(())
        }
    })
    .await;
    browser.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}
