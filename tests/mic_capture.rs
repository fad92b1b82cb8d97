//! Real capture through cpal and ALSA, without a sound card: ALSA's default device is pointed
//! at a raw PCM file (`tests/alsa/fakemic.conf`: 16 kHz mono s16; `fakemic48.conf`: 48 kHz
//! stereo f32), and the samples that come out of [`Microphone`] are checked against the file.
//!
//! alsa-lib reads its configuration once per process, so each scenario runs in a child process
//! (this test binary re-invoked) with its own `ALSA_CONFIG_PATH`. Needs `--features mic`, the
//! ALSA library, and `/usr/share/alsa/alsa.conf`; without them the tests print a notice and
//! skip, except under `CI=true`, where they fail.
#![cfg(all(feature = "mic", target_os = "linux"))]

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use assemblyai_streaming::AudioChunk;
use assemblyai_streaming::mic::{DeviceFormat, MicConfig, Microphone};
use futures::StreamExt;

const ALSA_CONF: &str = "/usr/share/alsa/alsa.conf";
const CHILD_ENV: &str = "AAI_MIC_TEST_CHILD";
/// The fixture: one second of a 440 Hz tone at half scale, 16 kHz mono s16le.
const TONE_SAMPLES: usize = 16_000;

fn tone() -> Vec<i16> {
    (0..TONE_SAMPLES)
        .map(|n| (0.5 * 32767.0 * (TAU * 440.0 * n as f64 / 16_000.0).sin()).round() as i16)
        .collect()
}

/// The same tone as a sound card would deliver it: 48 kHz stereo f32.
fn tone_48k_stereo() -> Vec<f32> {
    (0..48_000)
        .flat_map(|n| {
            let v = (0.5 * (TAU * 440.0 * n as f64 / 48_000.0).sin()) as f32;
            [v, v]
        })
        .collect()
}

/// Writes the fixture for the device `conf` describes, padded with two seconds of silence (the
/// fake device repeats its last period after the end of the file; the padding makes that
/// exact zeros).
fn write_fixture(dir: &Path, conf: &str) -> PathBuf {
    let path = dir.join("fake_mic.raw");
    let mut bytes: Vec<u8> = if conf == "fakemic48.conf" {
        let mut b: Vec<u8> = tone_48k_stereo()
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        b.resize(b.len() + 2 * 48_000 * 2 * 4, 0);
        b
    } else {
        let mut b: Vec<u8> = tone().iter().flat_map(|s| s.to_le_bytes()).collect();
        b.resize(b.len() + 2 * 16_000 * 2, 0);
        b
    };
    bytes.shrink_to_fit();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs the child test `name` with ALSA configured by `conf` (a file in tests/alsa/);
/// returns false when the environment cannot run it (after printing why).
fn run_child(name: &str, conf: &str) -> bool {
    // The unpaced fake device keeps a core busy; children running side by side on a small
    // machine would starve each other.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !Path::new(ALSA_CONF).exists() {
        let why = format!("{ALSA_CONF} not found (install libasound2 / alsa-utils)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("mic capture test cannot run under CI: {why}");
        }
        eprintln!("NOTICE: skipping mic capture test {name}: {why}");
        return false;
    }
    let dir = std::env::temp_dir().join(format!("aai-mic-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = write_fixture(&dir, conf);
    let conf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/alsa")
        .join(conf);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(
            "ALSA_CONFIG_PATH",
            format!("{ALSA_CONF}:{}", conf.display()),
        )
        .env("FAKE_MIC_RAW", &fixture)
        // A reachable PulseAudio server would take over ALSA's default device.
        .env_remove("PULSE_SERVER")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "child {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The child's own test harness must have run exactly that one test.
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    true
}

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Reads chunks until `n` samples have arrived (the fake device is faster than real time).
async fn capture(mic: &mut Microphone, n: usize) -> Vec<i16> {
    let mut samples = Vec::with_capacity(n);
    let read = async {
        while samples.len() < n {
            let chunk: AudioChunk = mic.next().await.expect("stream ended early").unwrap();
            assert_eq!(chunk.len(), 3200, "100 ms chunks");
            samples.extend(chunk.to_pcm16());
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("capture timed out");
    samples.truncate(n);
    samples
}

#[test]
fn fake_mic_at_16k_mono_is_captured_bit_exact() {
    run_child("child_bit_exact_capture", "fakemic.conf");
}

#[test]
fn fake_mic_at_48k_stereo_f32_is_converted_to_the_same_tone() {
    run_child("child_converted_capture", "fakemic48.conf");
}

#[test]
fn a_default_device_that_cannot_be_configured_means_no_microphone() {
    run_child("child_no_microphone", "nomic.conf");
}

#[tokio::test]
async fn child_bit_exact_capture() {
    if !is_child() {
        return;
    }
    let config = MicConfig {
        queue_blocks: 4096, // the unpaced fake device must not overrun the queue
        ..MicConfig::default()
    };
    let mut mic = Microphone::open(config).unwrap();
    let format = mic.capture_format();
    assert_eq!(
        (format.sample_rate, format.channels),
        (16_000, 1),
        "{format:?}"
    );
    let got = capture(&mut mic, TONE_SAMPLES).await;
    assert_eq!(got, tone(), "captured samples differ from the file");
    assert!(mic.input_level() >= 0.0);
    assert!(!mic.device_name().is_empty());
}

#[tokio::test]
async fn child_converted_capture() {
    if !is_child() {
        return;
    }
    let config = MicConfig {
        queue_blocks: 4096,
        ..MicConfig::default().device_format(DeviceFormat::DeviceDefault)
    };
    let mut mic = Microphone::open(config).unwrap();
    let format = mic.capture_format();
    // The fake device's default is what a typical sound card offers.
    assert_eq!(
        (format.sample_rate, format.channels, format.sample_format),
        (48_000, 2, cpal::SampleFormat::F32),
        "{format:?}"
    );
    let got = capture(&mut mic, TONE_SAMPLES).await;
    assert_eq!(mic.dropped_frames(), 0);
    // Converted, the tone must match the ideal 16 kHz tone (away from the edges, where the
    // filter ramps in and out), with the right frequency and level.
    let steady = &got[1600..TONE_SAMPLES - 1600];
    let ideal = tone();
    let worst = (1600..TONE_SAMPLES - 1600)
        .map(|n| (f64::from(got[n]) - f64::from(ideal[n])).abs() / 32768.0)
        .fold(0.0, f64::max);
    assert!(worst < 0.01, "deviation from the ideal tone: {worst}");
    let mut crossings = Vec::new();
    for (i, w) in steady.windows(2).enumerate() {
        let (a, b) = (f64::from(w[0]), f64::from(w[1]));
        if a < 0.0 && b >= 0.0 {
            crossings.push(i as f64 + a / (a - b));
        }
    }
    let span = crossings[crossings.len() - 1] - crossings[0];
    let freq = (crossings.len() - 1) as f64 * 16_000.0 / span;
    assert!((freq - 440.0).abs() < 1.0, "frequency {freq} Hz");
    let rms = (steady
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum::<f64>()
        / steady.len() as f64)
        .sqrt();
    assert!((rms - 0.3536).abs() < 0.005, "RMS {rms}");

    // stop() ends the stream after the audio already captured has been delivered.
    mic.stop();
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        let mut n = 0;
        while let Some(chunk) = mic.next().await {
            chunk.unwrap();
            n += 1;
        }
        n
    })
    .await
    .expect("the stream must end after stop()");
    assert!(drained < 100_000);
    assert!((0.0..=1.0).contains(&mic.input_level()));
}

#[test]
fn overflow_is_counted_not_hidden() {
    run_child("child_overflow", "fakemic.conf");
}

#[test]
fn child_overflow() {
    if !is_child() {
        return;
    }
    // Nobody reads the stream and the queue is tiny, while the unpaced device keeps
    // delivering: blocks must be dropped, and counted.
    let config = MicConfig {
        queue_blocks: 2,
        ..MicConfig::default()
    };
    let mic = Microphone::open(config).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mic.dropped_frames() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(mic.dropped_frames() > 0, "overflow was not counted");
}

#[test]
fn a_microphone_can_be_moved_into_a_task() {
    fn is_send<T: Send + 'static>() {}
    is_send::<Microphone>();
}

#[test]
fn child_no_microphone() {
    if !is_child() {
        return;
    }
    let err = Microphone::open(MicConfig::default()).unwrap_err();
    assert_eq!(err.kind(), "audio");
    assert!(err.to_string().contains("no microphone"), "{err}");
    // The device library's error is kept as the source, not only as text.
    let cpal_error = std::iter::successors(std::error::Error::source(&err), |&s| s.source())
        .any(|s| s.is::<cpal::Error>());
    assert!(cpal_error, "{err:?}");

    let err = Microphone::open(MicConfig::default().device("No Such Device")).unwrap_err();
    assert!(err.to_string().contains("No Such Device"), "{err}");
}
