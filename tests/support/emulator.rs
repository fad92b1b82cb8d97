//! Shared helpers of the emulator tests: speech audio made with espeak-ng + sox, and a raw
//! tokio-tungstenite client that streams at real-time pace.
#![allow(dead_code)]

pub mod sdk;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use assemblyai_streaming::protocol::{ServerMessage, Turn};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// 16 kHz mono s16le speech of `text`, or `None` (with a notice) when espeak-ng or sox is
/// missing. Under `CI=true` a missing tool fails the test instead.
pub fn speech(text: &str) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join("assemblyai-emulator-tests");
    let _ = std::fs::create_dir_all(&dir);
    let name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect();
    let raw: PathBuf = dir.join(format!("{name}-{}.raw", text.len()));
    if let Ok(bytes) = std::fs::read(&raw) {
        if !bytes.is_empty() {
            return Some(bytes);
        }
    }
    let ok = espeak_to_raw(text, &raw, None).is_ok();
    if !ok {
        let msg = "espeak-ng and sox are needed to make speech audio for this test (apt-get install espeak-ng sox)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    std::fs::read(&raw).ok()
}

/// Speaks `text` with espeak-ng into `raw` as 16 kHz mono s16le (converted by sox; `pad` adds
/// that many seconds of silence before and after).
pub fn espeak_to_raw(text: &str, raw: &Path, pad: Option<(f32, f32)>) -> Result<(), String> {
    let wav = raw.with_extension(format!("{}.wav", std::process::id()));
    let mut sox = Command::new("sox");
    sox.arg(&wav)
        .args([
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
        ])
        .arg(raw);
    if let Some((before, after)) = pad {
        sox.args(["pad", &before.to_string(), &after.to_string()]);
    }
    let result = sdk::run_ok(
        Command::new("espeak-ng")
            .args(["-v", "en-us", "-w"])
            .arg(&wav)
            .arg(text),
    )
    .and_then(|()| sdk::run_ok(&mut sox));
    let _ = std::fs::remove_file(&wav);
    result
}

/// `ms` of digital silence at 16 kHz s16le.
pub fn silence(ms: u32) -> Vec<u8> {
    vec![0; (ms * 32) as usize]
}

/// A quiet noise floor (about -60 dBFS), like a real microphone in a quiet room.
pub fn noise(ms: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((ms * 32) as usize);
    let mut x: u32 = 12345;
    for _ in 0..ms * 16 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let s = ((x >> 16) % 64) as i16 - 32;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

pub enum Auth<'a> {
    Header(&'a str),
    None,
}

/// Opens `/v3/ws?query` on the emulator.
pub async fn connect(base: &str, query: &str, auth: Auth<'_>) -> Ws {
    try_connect(base, query, auth)
        .await
        .expect("websocket connect")
}

pub async fn try_connect(
    base: &str,
    query: &str,
    auth: Auth<'_>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("{base}/v3/ws?{query}").into_client_request()?;
    if let Auth::Header(key) = auth {
        req.headers_mut()
            .insert("Authorization", HeaderValue::from_str(key).unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// Opens `/v3/ws` on `emu` with the standard query ([`Q`]) and `emu`'s key.
pub async fn open_ws(emu: &assemblyai_streaming::emulator::EmulatorHandle) -> Ws {
    open_ws_with(emu, "").await
}

/// [`open_ws`] with `extra` (`&name=value…`) appended to the standard query.
pub async fn open_ws_with(emu: &assemblyai_streaming::emulator::EmulatorHandle, extra: &str) -> Ws {
    connect(
        &emu.ws_url(),
        &format!("{Q}{extra}"),
        Auth::Header(emu.api_key()),
    )
    .await
}

/// Reads from `socket` until the server closes it (EOF or an error), discarding what it sends
/// (a 408, say); whether that happened within `limit`.
pub async fn server_closes_within(socket: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(limit, async {
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// The next frame the server sends on `ws`, which must be a text frame.
pub async fn next_text(ws: &mut Ws) -> String {
    let frame = ws.next().await.expect("a frame").expect("a readable frame");
    frame.to_text().expect("a text frame").to_string()
}

/// Everything the server sent, and how it closed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub messages: Vec<ServerMessage>,
    /// Close code and reason (`None`: the connection ended without a close frame).
    pub close: Option<(u16, String)>,
    /// Text frames that did not decode.
    pub undecodable: Vec<String>,
}

impl Outcome {
    pub fn turns(&self) -> Vec<&Turn> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Turn(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    pub fn finals(&self) -> Vec<&Turn> {
        self.turns().into_iter().filter(|t| t.end_of_turn).collect()
    }

    pub fn count(&self, type_name: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.type_name() == Some(type_name))
            .count()
    }

    pub fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|c| c.0)
    }

    pub fn error_frame(&self) -> Option<(Option<i64>, String)> {
        self.messages.iter().find_map(|m| match m {
            ServerMessage::Error(e) => Some((e.error_code, e.error.clone())),
            _ => None,
        })
    }
}

/// What to do while streaming.
#[derive(Default)]
pub struct Plan {
    /// Bytes per audio frame (default 1600 = 50 ms at 16 kHz s16le).
    pub frame_bytes: usize,
    /// Frame interval (default: real time for 16 kHz s16le frames).
    pub interval: Option<Duration>,
    /// Text frames to send after the given number of audio frames.
    pub texts: Vec<(usize, String)>,
    /// Send `Terminate` at the end (default false; `stream` sets it).
    pub terminate: bool,
    /// Give up reading after this long.
    pub timeout: Option<Duration>,
}

/// Streams `audio` in real time, sends `Terminate`, and reads until the server closes.
pub async fn stream(ws: Ws, audio: &[u8]) -> Outcome {
    run(
        ws,
        audio,
        Plan {
            terminate: true,
            ..Default::default()
        },
    )
    .await
}

/// Reads what the server sends, sending nothing, until it closes or `limit` passes.
pub async fn listen(ws: Ws, limit: Duration) -> Outcome {
    run(
        ws,
        &[],
        Plan {
            timeout: Some(limit),
            ..Default::default()
        },
    )
    .await
}

/// Runs a plan: the writer streams at real-time pace while the reader collects every message.
pub async fn run(ws: Ws, audio: &[u8], plan: Plan) -> Outcome {
    let (mut sink, mut source) = ws.split();
    let frame_bytes = if plan.frame_bytes == 0 {
        1600
    } else {
        plan.frame_bytes
    };
    let interval = plan.interval.unwrap_or(Duration::from_micros(
        frame_bytes as u64 * 1_000_000 / 32_000,
    ));
    // The last frame is padded with silence: the service refuses frames under 50 ms.
    let frames: Vec<Vec<u8>> = audio
        .chunks(frame_bytes)
        .map(|c| {
            let mut f = c.to_vec();
            f.resize(frame_bytes, 0);
            f
        })
        .collect();
    let texts = plan.texts;
    let terminate = plan.terminate;
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        for (i, frame) in frames.into_iter().enumerate() {
            for (_, t) in texts.iter().filter(|(at, _)| *at == i) {
                if sink.send(Message::text(t.clone())).await.is_err() {
                    return sink;
                }
            }
            tick.tick().await;
            if sink.send(Message::binary(frame)).await.is_err() {
                return sink;
            }
        }
        let n = usize::MAX;
        for (_, t) in texts.iter().filter(|(at, _)| *at == n) {
            let _ = sink.send(Message::text(t.clone())).await;
        }
        if terminate {
            let _ = sink
                .send(Message::text(r#"{"type":"Terminate"}"#.to_string()))
                .await;
        }
        sink
    });
    let mut out = Outcome::default();
    let read = async {
        while let Some(frame) = source.next().await {
            match frame {
                Ok(Message::Text(t)) => match ServerMessage::from_json(&t) {
                    Ok(m) => out.messages.push(m),
                    Err(_) => out.undecodable.push(t.to_string()),
                },
                Ok(Message::Close(c)) => {
                    out.close = c.map(|c| (u16::from(c.code), c.reason.to_string()));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    let limit = plan.timeout.unwrap_or(Duration::from_secs(60));
    let _ = tokio::time::timeout(limit, read).await;
    if let Ok(mut sink) = writer.await {
        let _ = sink.close().await;
    }
    out
}

/// Concatenates audio pieces.
pub fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

pub const Q: &str = "speech_model=universal-streaming-english&sample_rate=16000";

/// The bundled spoken sample (`examples/assets/sample.wav`, 16 kHz chunks of 100 ms) and its
/// script (three sentences with es/fr/de translations). The sentences span about 0.3–3.1 s,
/// 4.6–7.2 s and 8.7–11.1 s.
pub fn bundled_sample() -> (
    Vec<assemblyai_streaming::AudioChunk>,
    assemblyai_streaming::emulator::Script,
) {
    let assets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/assets");
    let (chunks, _) = assemblyai_streaming::audio::read_wav(assets.join("sample.wav"), 16_000)
        .expect("bundled sample");
    let script =
        assemblyai_streaming::emulator::Script::from_json_file(assets.join("sample.script.json"))
            .expect("bundled script");
    (chunks, script)
}

/// An emulator with `script` and otherwise default settings (audio must come at real time).
pub async fn emulator_with_script(
    script: assemblyai_streaming::emulator::Script,
) -> assemblyai_streaming::emulator::EmulatorHandle {
    assemblyai_streaming::emulator::Emulator::builder()
        .script(script)
        .start()
        .await
        .expect("emulator")
}

/// An emulator with `script` that accepts audio faster than real time (turn detection follows
/// the audio clock, so results equal a real-time stream's, only sooner).
pub async fn fast_emulator(
    script: assemblyai_streaming::emulator::Script,
) -> assemblyai_streaming::emulator::EmulatorHandle {
    assemblyai_streaming::emulator::Emulator::builder()
        .script(script)
        .realtime_tolerance(Duration::from_secs(3600))
        .start()
        .await
        .expect("emulator")
}

/// A client of `emu`'s streaming endpoint.
pub fn emulator_client(
    emu: &assemblyai_streaming::emulator::EmulatorHandle,
) -> assemblyai_streaming::StreamingClient {
    assemblyai_streaming::StreamingClient::builder()
        .api_key(emu.api_key())
        .base_url(emu.ws_url())
        .build()
        .expect("client")
}

/// A session on `emu` with formatted turns (what captions and translations are made of).
pub async fn formatted_session(
    emu: &assemblyai_streaming::emulator::EmulatorHandle,
) -> assemblyai_streaming::StreamingSession {
    emulator_client(emu)
        .connect(assemblyai_streaming::ConnectionParams::new().format_turns(true))
        .await
        .expect("session")
}

/// A `Lemur` client of `emu`'s LLM Gateway.
pub fn emulator_lemur(
    emu: &assemblyai_streaming::emulator::EmulatorHandle,
) -> assemblyai_streaming::lemur::Lemur {
    assemblyai_streaming::lemur::Lemur::builder()
        .api_key(emu.api_key())
        .base_url(emu.http_url())
        .build()
        .expect("lemur")
}

/// Waits (up to 5 s) until `emu` has no session open; returns the count at the end.
pub async fn sessions_drained(emu: &assemblyai_streaming::emulator::EmulatorHandle) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while emu.active_sessions() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emu.active_sessions()
}

/// A stereo call made from the bundled sample, 16 kHz 16-bit, 8.3 s: the left channel says the
/// first sentence (0.3–3.1 s), the right channel the second (4.5–7.2 s). Returns its path.
/// Written once per test process (tests run in parallel and share it).
pub fn stereo_call() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(write_stereo_call).clone()
}

fn write_stereo_call() -> PathBuf {
    let (chunks, _) = bundled_sample();
    let pcm: Vec<i16> = chunks.iter().flat_map(|c| c.to_pcm16()).collect();
    let (split, end) = (4 * 16_000, 8 * 16_000 + 4_800);
    let path = std::env::temp_dir().join(format!("aai-stereo-call-{}.wav", std::process::id()));
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create the stereo WAV");
    for (n, &sample) in pcm.iter().enumerate().take(end) {
        let (left, right) = if n < split { (sample, 0) } else { (0, sample) };
        w.write_sample(left).expect("write");
        w.write_sample(right).expect("write");
    }
    w.finalize().expect("finalize");
    path
}
