//! WAV in (any format, converted) and out (the recorder), including the files a killed or
//! interrupted program leaves behind.
#![cfg(feature = "wav")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assemblyai_streaming::AudioChunk;
use assemblyai_streaming::audio::{WavRecorder, WavSampleFormat, read_wav};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aai-audio-wav-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// 16 kHz mono test audio: a recognisable ramp pattern, `n` samples.
fn pattern(n: usize, seed: i32) -> Vec<i16> {
    (0..n as i32)
        .map(|i| ((i * 97 + seed * 13) % 60_000 - 30_000) as i16)
        .collect()
}

fn chunks_of(samples: &[i16]) -> Vec<AudioChunk> {
    samples.chunks(1600).map(AudioChunk::from_pcm16).collect()
}

fn read_back(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("a valid WAV file");
    let samples = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    (reader.spec(), samples)
}

#[tokio::test]
async fn recorder_writes_exactly_what_was_sent() {
    let path = temp_path("finish.wav");
    let audio = pattern(16_000 * 2 + 123, 1);
    let recorder = WavRecorder::create(&path, 16_000).unwrap();
    for chunk in chunks_of(&audio) {
        recorder.write(&chunk).unwrap();
    }
    assert_eq!(recorder.samples_written(), audio.len() as u64);
    assert_eq!(recorder.finish().await.unwrap(), audio.len() as u64);

    let (spec, samples) = read_back(&path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 16_000, 16)
    );
    assert_eq!(samples, audio);
}

#[tokio::test]
async fn dropping_the_recorder_finalizes_the_file() {
    let path = temp_path("drop.wav");
    let audio = pattern(8000, 2);
    {
        let recorder = WavRecorder::create(&path, 16_000).unwrap();
        for chunk in chunks_of(&audio) {
            recorder.write(&chunk).unwrap();
        }
        // No finish(): e.g. an early return with `?`.
    }
    assert_eq!(read_back(&path).1, audio);
}

#[tokio::test]
async fn aborting_the_recording_task_like_ctrl_c_leaves_a_complete_file() {
    // A program that records from a task and aborts that task when Ctrl+C arrives: the task
    // is dropped at its await point, which drops the recorder, which finalizes the header.
    let path = temp_path("abort.wav");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AudioChunk>(4);
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let task_path = path.clone();
    let task = tokio::spawn(async move {
        let recorder = WavRecorder::create(&task_path, 16_000).unwrap();
        while let Some(chunk) = rx.recv().await {
            recorder.write(&chunk).unwrap();
            sent_tx.send(chunk.len() / 2).unwrap();
        }
        std::future::pending::<()>().await;
    });
    let audio = pattern(16_000, 3);
    for chunk in chunks_of(&audio) {
        tx.send(chunk).await.unwrap();
        sent_rx.recv().await.unwrap();
    }
    task.abort(); // the "Ctrl+C"
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(read_back(&path).1, audio);
}

/// Child half of `a_killed_process_leaves_a_valid_file`: records, waits until the writer has
/// caught up, then dies without running any destructor (as with a second Ctrl+C or SIGKILL).
#[test]
fn killed_process_child() {
    let Ok(path) = std::env::var("AAI_RECORDER_CHILD_PATH") else {
        return; // only meaningful when spawned by the parent test
    };
    let recorder = WavRecorder::create(&path, 16_000).unwrap();
    for chunk in chunks_of(&pattern(24_000, 4)) {
        recorder.write(&chunk).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.samples_on_disk() < recorder.samples_written() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::process::abort();
}

#[test]
fn a_killed_process_leaves_a_valid_file() {
    let path = temp_path("killed.wav");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_process_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AAI_RECORDER_CHILD_PATH", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have died, not exited");
    assert_eq!(read_back(&path).1, pattern(24_000, 4));
}

#[test]
fn odd_byte_chunks_are_rejected() {
    let path = temp_path("odd.wav");
    let recorder = WavRecorder::create(&path, 16_000).unwrap();
    let err = recorder
        .write(&AudioChunk::from_bytes(vec![1u8, 2, 3]))
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_audio");
    assert_eq!(recorder.finish_blocking().unwrap(), 0);
}

#[test]
fn an_unwritable_path_fails_at_create() {
    let err = WavRecorder::create("/nonexistent-dir/x/out.wav", 16_000).unwrap_err();
    assert_eq!(err.kind(), "io");
}

fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: hound::WavSpec, samples: &[S]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn any_wav_is_converted_to_16k_mono_chunks() {
    // 1 s of a 500 Hz tone at amplitude 0.5, stereo 44.1 kHz 24-bit and stereo 48 kHz float.
    let tone = |rate: u32, n: usize| {
        0.5 * (std::f64::consts::TAU * 500.0 * n as f64 / f64::from(rate)).sin()
    };
    let p24 = temp_path("in24.wav");
    let spec24 = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let s24: Vec<i32> = (0..44_100)
        .flat_map(|n| {
            let v = (tone(44_100, n) * 8_388_608.0) as i32;
            [v, v]
        })
        .collect();
    write_wav(&p24, spec24, &s24);
    let pf = temp_path("inf32.wav");
    let specf = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let sf: Vec<f32> = (0..48_000)
        .flat_map(|n| {
            let v = tone(48_000, n) as f32;
            [v, v]
        })
        .collect();
    write_wav(&pf, specf, &sf);

    for (path, rate, bits, format) in [
        (&p24, 44_100, 24, WavSampleFormat::Int),
        (&pf, 48_000, 32, WavSampleFormat::Float),
    ] {
        let (chunks, info) = read_wav(path, 16_000).unwrap();
        assert_eq!(info.sample_rate, rate);
        assert_eq!(info.channels, 2);
        assert_eq!(info.bits_per_sample, bits);
        assert_eq!(info.sample_format, format);
        assert_eq!(info.duration(), Duration::from_secs(1));
        assert_eq!(chunks.len(), 10);
        assert!(chunks.iter().all(|c| c.len() == 3200));
        // Same tone at 16 kHz: compare with the ideal away from the edges.
        let pcm: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
        let worst = (800..15_200)
            .map(|n| (f64::from(pcm[n]) / 32768.0 - tone(16_000, n)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.01, "{}: deviation {worst}", path.display());
    }
}

#[test]
fn a_16k_mono_wav_is_read_bit_exact() {
    let path = temp_path("in16.wav");
    let audio = pattern(5000, 5);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_wav(&path, spec, &audio);
    let (chunks, _) = read_wav(&path, 16_000).unwrap();
    let pcm: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
    assert_eq!(pcm, audio);
}

#[test]
fn a_file_that_is_not_wav_is_an_audio_error() {
    let path = temp_path("junk.wav");
    std::fs::write(&path, b"this is not a RIFF file at all").unwrap();
    let err = read_wav(&path, 16_000).unwrap_err();
    assert_eq!(err.kind(), "audio");
    assert!(err.to_string().contains("junk.wav"));
}

#[test]
fn open_wav_streams_the_same_chunks_as_read_wav() {
    let path = temp_path("stream.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    // 3 s: several of open_wav's internal read blocks.
    let samples: Vec<i16> = (0..44_100 * 3 * 2)
        .map(|i| ((i * 31) % 20_000 - 10_000) as i16)
        .collect();
    write_wav(&path, spec, &samples);
    let (all, info) = read_wav(&path, 16_000).unwrap();
    let streamed = assemblyai_streaming::audio::open_wav(&path, 16_000).unwrap();
    assert_eq!(streamed.info(), info);
    let streamed: Vec<AudioChunk> = streamed.map(|c| c.unwrap()).collect();
    assert_eq!(streamed, all);
    assert_eq!(all.iter().map(|c| c.len() / 2).sum::<usize>(), 48_000);
}

#[test]
fn audio_types_can_move_across_threads_and_tasks() {
    fn is_send<T: Send>() {}
    is_send::<assemblyai_streaming::audio::AudioConverter>();
    is_send::<assemblyai_streaming::audio::WavChunks>();
    is_send::<WavRecorder>();
}

/// Every error in `e`'s source chain.
fn chain(e: &assemblyai_streaming::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(e), |&s| s.source()).collect()
}

#[test]
#[cfg(unix)]
fn a_missing_file_is_an_io_error_that_keeps_the_os_error_and_names_the_file() {
    let path = temp_path("does-not-exist.wav");
    let err = read_wav(&path, 16_000).unwrap_err();
    assert_eq!(err.kind().as_str(), "io");
    assert_eq!(
        err.to_string(),
        format!(
            "I/O error: {}: {}",
            path.display(),
            std::io::Error::from_raw_os_error(2)
        )
    );
    let os_codes: Vec<_> = chain(&err)
        .into_iter()
        .filter_map(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| (io.kind(), io.raw_os_error()))
        .collect();
    assert!(
        os_codes.contains(&(std::io::ErrorKind::NotFound, Some(2))),
        "the original io::Error is reachable: {os_codes:?}"
    );
}

#[tokio::test]
#[cfg(target_os = "linux")]
async fn a_recorder_that_cannot_write_keeps_the_wav_library_error() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let err = match WavRecorder::create("/dev/full", 16_000) {
        // The header write reached the device at once: an I/O error, its source kept.
        Err(e) => {
            assert_eq!(e.kind().as_str(), "io", "{e:?}");
            e
        }
        Ok(recorder) => {
            recorder
                .write(&AudioChunk::from_pcm16(&pattern(16_000, 1)))
                .unwrap();
            let e = recorder.finish().await.unwrap_err();
            assert_eq!(e.kind().as_str(), "audio", "{e:?}");
            assert!(e.to_string().starts_with("audio: WAV recorder: "), "{e}");
            assert!(
                chain(&e).iter().any(|s| s.is::<hound::Error>()),
                "hound's error is the source: {e:?}"
            );
            e
        }
    };
    let enospc = chain(&err)
        .into_iter()
        .filter_map(|s| s.downcast_ref::<std::io::Error>())
        .any(|io| io.raw_os_error() == Some(28));
    let hound_io = chain(&err).iter().any(|s| {
        matches!(
            s.downcast_ref::<hound::Error>(),
            Some(hound::Error::IoError(io)) if io.raw_os_error() == Some(28)
        )
    });
    assert!(enospc || hound_io, "ENOSPC is reachable: {err:?}");
}
