//! WAV input a service meets: audio in memory, streaming WAVs whose header has no true length
//! (as sox and ffmpeg write to a pipe), truncated tails, 64-bit float and G.711, and bad input
//! reported as `Error::Audio` (a 400) rather than `Error::Io` (a 5xx).
#![cfg(feature = "wav")]

use std::io::Cursor;

use assemblyai_streaming::audio::{
    WavSampleFormat, open_wav, open_wav_reader, read_wav, read_wav_bytes,
};

/// 16 kHz mono test audio: a recognisable ramp pattern, `n` samples.
fn pattern(n: usize) -> Vec<i16> {
    (0..n as i32)
        .map(|i| ((i * 97) % 60_000 - 30_000) as i16)
        .collect()
}

/// A canonical 44-byte-header WAV with the given format fields, lengths and sample bytes.
fn wav(
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    riff_len: u32,
    data_len: u32,
    data: &[u8],
) -> Vec<u8> {
    let block = channels.wrapping_mul(bits.div_ceil(8));
    let mut v = Vec::new();
    v.extend(b"RIFF");
    v.extend(riff_len.to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(tag.to_le_bytes());
    v.extend(channels.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend(rate.wrapping_mul(u32::from(block)).to_le_bytes());
    v.extend(block.to_le_bytes());
    v.extend(bits.to_le_bytes());
    v.extend(b"data");
    v.extend(data_len.to_le_bytes());
    v.extend(data);
    v
}

/// [`wav`] with the lengths a complete file has (RIFF: 36 + data; data: its length).
fn wav_of(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    wav(
        tag,
        channels,
        rate,
        bits,
        36 + data.len() as u32,
        data.len() as u32,
        data,
    )
}

fn pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn decoded(bytes: Vec<u8>) -> Vec<i16> {
    let (chunks, _) = read_wav_bytes(bytes, 16_000).unwrap();
    chunks.iter().flat_map(|c| c.to_pcm16()).collect()
}

#[test]
fn a_wav_in_memory_reads_like_the_same_file() {
    let audio = pattern(8000);
    let data = pcm16(&audio);
    let bytes = wav_of(1, 1, 16_000, 16, &data);
    let path = std::env::temp_dir().join(format!("aai-wav-input-{}.wav", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();

    let (from_file, file_info) = read_wav(&path, 16_000).unwrap();
    let (from_bytes, bytes_info) = read_wav_bytes(bytes.clone(), 16_000).unwrap();
    let from_reader: Vec<_> = open_wav_reader(Cursor::new(bytes), 16_000)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(from_file, from_bytes);
    assert_eq!(from_bytes, from_reader);
    assert_eq!(file_info, bytes_info);
    assert_eq!(bytes_info.frames, 8000);
    let pcm: Vec<i16> = from_bytes.iter().flat_map(|c| c.to_pcm16()).collect();
    assert_eq!(pcm, audio, "16 kHz mono 16-bit is passed through bit-exact");
}

#[test]
fn streaming_wavs_with_placeholder_lengths_stream_what_is_present() {
    let audio = pattern(4000);
    let data = pcm16(&audio);
    // sox to a pipe: 0x7ffff000 in both lengths; ffmpeg: 0xFFFFFFFF; some writers: 0 and 0.
    for (riff, data_len) in [
        (0x7fff_f024, 0x7fff_f000),
        (u32::MAX, u32::MAX),
        (0, 0),
        (36 + data.len() as u32, u32::MAX),
    ] {
        let bytes = wav(1, 1, 16_000, 16, riff, data_len, &data);
        let (chunks, info) = read_wav_bytes(bytes, 16_000)
            .unwrap_or_else(|e| panic!("lengths {riff:#x}/{data_len:#x}: {e}"));
        let pcm: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
        assert_eq!(pcm, audio, "lengths {riff:#x}/{data_len:#x}");
        assert_eq!(info.frames, 4000, "frames actually present");
    }
}

#[test]
fn truncated_tails_and_overlong_lengths_yield_every_whole_frame() {
    let audio = pattern(3000);
    let data = pcm16(&audio);
    // The header promises 10 000 bytes more than there are; the last sample is cut in half.
    let mut cut = data.clone();
    cut.pop();
    let bytes = wav(1, 1, 16_000, 16, 36 + 16_000, 16_000, &cut);
    assert_eq!(decoded(bytes), audio[..2999]);

    // Stereo cut mid-frame: the partial frame is dropped, the rest is downmixed.
    let stereo: Vec<u8> = audio
        .iter()
        .flat_map(|s| [s.to_le_bytes(), s.to_le_bytes()])
        .flatten()
        .collect();
    let bytes = wav(
        1,
        2,
        16_000,
        16,
        0x7fff_f024,
        0x7fff_f000,
        &stereo[..stereo.len() - 3],
    );
    assert_eq!(decoded(bytes), audio[..2999]);
}

#[test]
fn a_data_length_shorter_than_the_file_stops_at_the_chunk_end() {
    let audio = pattern(2000);
    let mut data = pcm16(&audio);
    // A LIST chunk after the data must not be read as audio.
    data.extend(b"LIST\x04\0\0\0abcd");
    let bytes = wav(1, 1, 16_000, 16, 36 + data.len() as u32, 4000, &data);
    assert_eq!(decoded(bytes), audio);
}

#[test]
fn float64_and_g711_wavs_are_read() {
    let tone: Vec<f64> = (0..16_000)
        .map(|n| 0.5 * (std::f64::consts::TAU * 440.0 * f64::from(n) / 16_000.0).sin())
        .collect();
    let data: Vec<u8> = tone.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = wav_of(3, 1, 16_000, 64, &data);
    let (chunks, info) = read_wav_bytes(bytes, 16_000).unwrap();
    assert_eq!(info.sample_format, WavSampleFormat::Float);
    assert_eq!(info.bits_per_sample, 64);
    let pcm: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
    assert_eq!(pcm.len(), 16_000);
    let worst = pcm
        .iter()
        .zip(&tone)
        .map(|(&s, &t)| (f64::from(s) / 32_768.0 - t).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "deviation {worst}");

    // μ-law 0xFF and A-law 0xD5 are (near) silence; μ-law 0x80 is full scale.
    let mulaw = wav(7, 1, 8000, 8, 40, 4, &[0xff, 0x80, 0x00, 0xff]);
    let (_, info) = read_wav_bytes(mulaw.clone(), 8000).unwrap();
    assert_eq!(info.sample_format, WavSampleFormat::MuLaw);
    assert_eq!(decoded_at(mulaw, 8000), vec![0, 32_124, -32_124, 0]);
    let alaw = wav(6, 1, 8000, 8, 38, 2, &[0xd5, 0x55]);
    assert_eq!(decoded_at(alaw, 8000), vec![8, -8]);
}

fn decoded_at(bytes: Vec<u8>, rate: u32) -> Vec<i16> {
    let (chunks, _) = read_wav_bytes(bytes, rate).unwrap();
    chunks.iter().flat_map(|c| c.to_pcm16()).collect()
}

#[test]
fn wave_format_extensible_is_read_by_its_sub_format() {
    let audio = pattern(1600);
    let data = pcm16(&audio);
    let mut v = Vec::new();
    v.extend(b"RIFF\0\0\0\0WAVEfmt ");
    v.extend(40u32.to_le_bytes());
    v.extend(0xFFFEu16.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(16_000u32.to_le_bytes());
    v.extend(32_000u32.to_le_bytes());
    v.extend(2u16.to_le_bytes());
    v.extend(16u16.to_le_bytes());
    v.extend(22u16.to_le_bytes()); // cbSize
    v.extend(16u16.to_le_bytes()); // valid bits
    v.extend(4u32.to_le_bytes()); // channel mask
    v.extend(b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"); // KSDATAFORMAT_SUBTYPE_PCM
    v.extend(b"data");
    v.extend((data.len() as u32).to_le_bytes());
    v.extend(&data);
    assert_eq!(decoded(v), audio);
}

#[test]
fn bad_audio_is_an_audio_error_naming_the_source() {
    let valid = wav(1, 1, 16_000, 16, 36, 0, &[]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not RIFF", b"hello, this is not a WAV file at all".to_vec()),
        ("short junk", b"junk".to_vec()),
        ("a RIFF fragment", b"RIF".to_vec()),
        (
            "RIFF but not WAVE",
            b"RIFF\0\0\0\0AVI LIST\0\0\0\0".to_vec(),
        ),
        ("truncated header", valid[..30].to_vec()),
        ("no data chunk", valid[..36].to_vec()),
        ("0 channels", wav(1, 0, 16_000, 16, 36, 0, &[])),
        ("0 Hz", wav(1, 1, 0, 16, 36, 0, &[])),
        ("4 GHz", wav(1, 1, 4_000_000_000, 16, 36, 0, &[])),
        ("1000 channels", wav(1, 1000, 16_000, 16, 36, 0, &[])),
        ("12-byte samples", wav(1, 1, 16_000, 96, 36, 0, &[])),
        ("unknown format tag", wav(0x55, 1, 16_000, 16, 36, 0, &[])),
    ];
    for (what, bytes) in cases {
        let err = read_wav_bytes(bytes, 16_000).expect_err(what);
        assert_eq!(err.kind(), "audio", "{what}: {err}");
        assert!(err.to_string().contains("WAV input"), "{what}: {err}");
    }
    // A file: the error names it. A missing file is I/O, not bad audio.
    let path = std::env::temp_dir().join(format!("aai-empty-{}.wav", std::process::id()));
    std::fs::write(&path, b"").unwrap();
    let err = open_wav(&path, 16_000).unwrap_err();
    assert_eq!(err.kind(), "audio");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let missing = std::env::temp_dir().join("aai-no-such-file.wav");
    let err = open_wav(&missing, 16_000).unwrap_err();
    assert_eq!(err.kind(), "io", "{err}");
    assert!(err.to_string().contains("aai-no-such-file.wav"), "{err}");
}

#[test]
fn a_valid_wav_without_samples_is_empty_not_an_error() {
    let (chunks, info) = read_wav_bytes(wav(1, 1, 16_000, 16, 36, 0, &[]), 16_000).unwrap();
    assert!(chunks.is_empty());
    assert_eq!(info.frames, 0);
}

#[test]
fn one_channel_of_a_stereo_wav_can_be_taken_alone() {
    let left = pattern(3200);
    let right: Vec<i16> = left.iter().map(|s| s / 2).collect();
    let data: Vec<u8> = left
        .iter()
        .zip(&right)
        .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()])
        .flatten()
        .collect();
    let bytes = wav_of(1, 2, 16_000, 16, &data);
    for (channel, want) in [(0, &left), (1, &right)] {
        let pcm: Vec<i16> = open_wav_reader(Cursor::new(bytes.clone()), 16_000)
            .unwrap()
            .only_channel(channel)
            .unwrap()
            .flat_map(|c| c.unwrap().to_pcm16())
            .collect();
        assert_eq!(&pcm, want, "channel {channel}");
    }
    let err = open_wav_reader(Cursor::new(bytes), 16_000)
        .unwrap()
        .only_channel(2)
        .unwrap_err();
    assert_eq!(err.kind(), "audio");
}

/// sox writing 64-bit float WAV to a pipe (length unknown): header lengths `0x7ffff000`, a
/// `fact` chunk before the data. Needs sox; missing sox skips the test, except under `CI=true`,
/// where it fails.
#[test]
fn a_wav_that_sox_wrote_to_a_pipe_reads_in_full() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let audio = pattern(16_000);
    let child = Command::new("sox")
        .args([
            "-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", "-",
        ])
        .args(["-t", "wav", "-e", "floating-point", "-b", "64", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: sox not available ({e})");
            return;
        }
        Err(e) => panic!("sox is required under CI=true: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let raw = pcm16(&audio);
    let writer = std::thread::spawn(move || stdin.write_all(&raw));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert_eq!(
        &out.stdout[54..58],
        &0x7fff_f000u32.to_le_bytes()[..],
        "sox wrote a placeholder length"
    );
    let (chunks, info) = read_wav_bytes(out.stdout, 16_000).unwrap();
    assert_eq!(
        (info.sample_format, info.bits_per_sample),
        (WavSampleFormat::Float, 64)
    );
    assert_eq!(info.frames, 16_000);
    let pcm: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
    assert_eq!(pcm, audio);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes: a result, never a panic; a failure is bad audio or (never here) I/O.
        #[test]
        fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(e) = read_wav_bytes(bytes, 16_000) {
                prop_assert_eq!(e.kind(), "audio");
            }
        }

        /// A valid header with any format fields and lengths, then some audio bytes.
        #[test]
        fn on_any_header_fields(
            tag in prop_oneof![Just(1u16), Just(3), Just(6), Just(7), Just(0xFFFE), any::<u16>()],
            channels in 0u16..12,
            rate in prop_oneof![Just(8_000u32), Just(44_100), Just(48_000), 0u32..2_000_000],
            bits in 0u16..80,
            riff_len in any::<u32>(),
            data_len in prop_oneof![Just(0u32), Just(u32::MAX), Just(0x7fff_f000), 0u32..5_000],
            body in proptest::collection::vec(any::<u8>(), 0..4_000),
        ) {
            let bytes = wav(tag, channels, rate, bits, riff_len, data_len, &body);
            if let Err(e) = read_wav_bytes(bytes, 16_000) {
                prop_assert_eq!(e.kind(), "audio");
            }
        }
    }
}
