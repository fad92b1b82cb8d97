//! WAV files in and out (feature `wav`): any WAV converted for a session, and a recorder of the
//! audio a session sent.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use super::wav_decode::{self, Codec, Header, HeaderError};
use super::{AudioChunk, AudioConverter, DEFAULT_CHUNK_DURATION};
use crate::error::{Error, Result};

/// How the samples of a WAV file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WavSampleFormat {
    /// Integer PCM (8-bit unsigned, 16/24/32-bit signed).
    Int,
    /// IEEE float PCM (32 or 64-bit).
    Float,
    /// 8-bit A-law (ITU-T G.711).
    ALaw,
    /// 8-bit μ-law (ITU-T G.711).
    MuLaw,
}

/// What a WAV file held before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// The file's channel count.
    pub channels: u16,
    /// Bits per sample in the file.
    pub bits_per_sample: u16,
    /// Integer, float or G.711 samples.
    pub sample_format: WavSampleFormat,
    /// Frames (samples per channel) in the file: from the header when it holds a real length
    /// that the input covers, otherwise (a streaming WAV with a placeholder length, or a
    /// truncated one) the whole frames actually present.
    pub frames: u64,
}

impl WavInfo {
    /// The file's duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames as f64 / f64::from(self.sample_rate.max(1)))
    }
}

/// `"{source}: {message}"` as [`Error::Audio`]: bad input, which a service answers with 400.
fn audio_error(source: &str, message: impl std::fmt::Display) -> Error {
    Error::audio(format!("{source}: {message}"))
}

/// An I/O failure (not bad audio), keeping its kind, naming the source, and keeping the
/// original `io::Error` (its OS code) as the source of the named one.
fn io_error(source: &str, e: std::io::Error) -> Error {
    let kind = e.kind();
    Error::from(std::io::Error::new(
        kind,
        Named {
            name: source.to_owned(),
            error: e,
        },
    ))
}

/// An `io::Error` with the name of the file (or input) it happened on: `"{name}: {error}"`,
/// the error itself as its source.
#[derive(Debug)]
struct Named {
    name: String,
    error: std::io::Error,
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.error)
    }
}

impl std::error::Error for Named {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

fn header_error(source: &str, e: HeaderError) -> Error {
    match e {
        HeaderError::Bad(message) => audio_error(source, message),
        HeaderError::Io(e) => io_error(source, e),
    }
}

fn wav_error(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::from(io),
        other => Error::audio_caused(format!("{}: {other}", path.display()), other),
    }
}

/// The name errors use for audio that is not a file.
const IN_MEMORY: &str = "WAV input";

/// Reads a WAV file of any rate, channel count and sample format and converts it into mono
/// 16-bit 100 ms chunks at `target_rate` (the same path as microphone input: downmix,
/// anti-aliased resampling, s16le). The last chunk may be shorter.
///
/// The whole file is converted into memory; for long files, iterate with [`open_wav`].
/// Errors: [`Error::Audio`] (naming the file) for input that is not usable audio — empty, not a
/// WAV, a bad or truncated header, an unsupported format; [`Error::Io`] when the file cannot be
/// read. Streaming WAVs (placeholder lengths) and truncated tails are read as far as they go.
///
/// ```
/// use assemblyai_streaming::audio::read_wav;
///
/// # fn main() -> assemblyai_streaming::Result<()> {
/// let (chunks, info) = read_wav("examples/assets/sample.wav", 16_000)?;
/// println!("{} Hz, {} channel(s), {:?} → {} chunks", info.sample_rate, info.channels,
///          info.duration(), chunks.len());
/// # assert_eq!((info.sample_rate, info.channels), (16_000, 1));
/// # // 100 ms chunks, the last one shorter
/// # assert_eq!(chunks.len() as u64, info.frames.div_ceil(1_600));
/// # assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 3_200));
/// # Ok(()) }
/// ```
pub fn read_wav(path: impl AsRef<Path>, target_rate: u32) -> Result<(Vec<AudioChunk>, WavInfo)> {
    read_wav_with_chunk(path, target_rate, DEFAULT_CHUNK_DURATION)
}

/// Like [`read_wav`], with a chunk duration between 50 ms and 1 s.
pub fn read_wav_with_chunk(
    path: impl AsRef<Path>,
    target_rate: u32,
    chunk: Duration,
) -> Result<(Vec<AudioChunk>, WavInfo)> {
    open_wav(path, target_rate)?
        .with_chunk_duration(chunk)?
        .collect_all()
}

/// Like [`read_wav`], for a WAV held in memory (e.g. an HTTP upload). Errors name the source
/// as "WAV input".
///
/// ```
/// # fn main() -> assemblyai_streaming::Result<()> {
/// use assemblyai_streaming::audio::read_wav_bytes;
///
/// // 44-byte header of a 16 kHz mono 16-bit WAV, then 1600 samples (100 ms) of silence.
/// let mut wav = b"RIFF\xa4\x0c\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\x7d\0\0\x02\0\x10\0data\x80\x0c\0\0".to_vec();
/// wav.extend([0u8; 3200]);
/// let (chunks, info) = read_wav_bytes(wav, 16_000)?;
/// assert_eq!((chunks.len(), info.frames), (1, 1600));
///
/// let err = read_wav_bytes(&b"not audio"[..], 16_000).unwrap_err();
/// assert_eq!(err.kind(), "audio"); // bad input, not an I/O failure
/// # Ok(()) }
/// ```
pub fn read_wav_bytes(
    bytes: impl Into<Bytes>,
    target_rate: u32,
) -> Result<(Vec<AudioChunk>, WavInfo)> {
    open_wav_reader(std::io::Cursor::new(bytes.into()), target_rate)?.collect_all()
}

/// Opens a WAV file of any format for conversion chunk by chunk (see [`WavChunks`]).
///
/// ```
/// # fn main() -> assemblyai_streaming::Result<()> {
/// let chunks = assemblyai_streaming::audio::open_wav("examples/assets/sample.wav", 16_000)?;
/// println!("{:?} of audio", chunks.info().duration());
/// # let frames = chunks.info().frames;
/// # let mut samples = 0;
/// for chunk in chunks {
///     let chunk = chunk?; // 100 ms of 16 kHz mono s16le
///     # samples += chunk.len() as u64 / 2;
/// }
/// # assert_eq!(samples, frames); // the same rate: every frame, once
/// # Ok(()) }
/// ```
pub fn open_wav(path: impl AsRef<Path>, target_rate: u32) -> Result<WavChunks> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| io_error(&source, e))?;
    open_seekable(std::io::BufReader::new(file), target_rate, source)
}

/// Opens a WAV from any reader that can seek (a file, a `Cursor` over bytes, ...) for
/// conversion chunk by chunk. Seeking is used only to learn how much audio is present when the
/// header's length is a placeholder. Errors name the source as "WAV input".
pub fn open_wav_reader<R>(reader: R, target_rate: u32) -> Result<WavChunks>
where
    R: Read + Seek + Send + 'static,
{
    open_seekable(reader, target_rate, IN_MEMORY.to_string())
}

fn open_seekable<R>(mut reader: R, target_rate: u32, source: String) -> Result<WavChunks>
where
    R: Read + Seek + Send + 'static,
{
    let header = wav_decode::read_header(&mut reader).map_err(|e| header_error(&source, e))?;
    let here = reader.stream_position().map_err(|e| io_error(&source, e))?;
    let end = reader
        .seek(SeekFrom::End(0))
        .map_err(|e| io_error(&source, e))?;
    reader
        .seek(SeekFrom::Start(here))
        .map_err(|e| io_error(&source, e))?;
    let present = end.saturating_sub(here);
    WavChunks::new(Box::new(reader), header, Some(present), target_rate, source)
}

/// A WAV being converted, as an iterator of chunks (mono s16le at the target rate, 100 ms by
/// default; the last one may be shorter). Reads the input block by block, so memory use does
/// not depend on its length. Made by [`open_wav`] and [`open_wav_reader`].
///
/// A read failure ends the iteration after one `Err` item ([`Error::Io`]); a partial frame at
/// the end of the input is dropped.
pub struct WavChunks {
    reader: Box<dyn Read + Send>,
    header: Header,
    converter: AudioConverter,
    info: WavInfo,
    source: String,
    /// Bytes of sample data still to read; `None`: up to the end of the input.
    remaining: Option<u64>,
    /// Only this channel, instead of the downmix of all.
    channel: Option<u16>,
    /// The bytes of a frame split across two reads.
    carry: Vec<u8>,
    bytes: Vec<u8>,
    ready: std::collections::VecDeque<AudioChunk>,
    buf: Vec<f32>,
    finished: bool,
}

impl std::fmt::Debug for WavChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavChunks")
            .field("source", &self.source)
            .field("info", &self.info)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl WavChunks {
    fn new(
        reader: Box<dyn Read + Send>,
        header: Header,
        present: Option<u64>,
        target_rate: u32,
        source: String,
    ) -> Result<Self> {
        let remaining = match (header.data_len, present) {
            (Some(len), Some(present)) => Some(len.min(present)),
            (len, _) => len,
        };
        let frames = remaining.or(present).unwrap_or(0) / header.block_align.max(1) as u64;
        let info = WavInfo {
            sample_rate: header.sample_rate,
            channels: header.channels,
            bits_per_sample: header.bits_per_sample,
            sample_format: match header.codec {
                Codec::Int(_) => WavSampleFormat::Int,
                Codec::Float(_) => WavSampleFormat::Float,
                Codec::ALaw => WavSampleFormat::ALaw,
                Codec::MuLaw => WavSampleFormat::MuLaw,
            },
            frames,
        };
        let converter = AudioConverter::new(header.sample_rate, header.channels, target_rate)
            .map_err(|e| Error::audio_caused(format!("{source}: {e}"), e))?;
        Ok(WavChunks {
            reader,
            header,
            converter,
            info,
            source,
            remaining,
            channel: None,
            carry: Vec::new(),
            bytes: Vec::new(),
            ready: std::collections::VecDeque::new(),
            buf: Vec::new(),
            finished: false,
        })
    }

    /// What the input holds.
    pub fn info(&self) -> WavInfo {
        self.info
    }

    /// Sets the chunk duration (50 ms to 1 s); call before iterating.
    pub fn with_chunk_duration(mut self, chunk: Duration) -> Result<Self> {
        self.converter = self.converter.with_chunk_duration(chunk)?;
        Ok(self)
    }

    /// Converts only channel `channel` (0-based: 0 is left) instead of the downmix of all
    /// channels; for per-channel sessions of call recordings. Call before iterating.
    /// Fails with [`Error::Audio`] when the file has no such channel.
    pub fn only_channel(mut self, channel: u16) -> Result<Self> {
        if channel >= self.info.channels {
            return Err(audio_error(
                &self.source,
                format!(
                    "no channel {channel} (the audio has {} channel(s))",
                    self.info.channels
                ),
            ));
        }
        let chunk = self.converter.chunk_samples();
        let rate = self.converter.output_rate();
        self.converter = AudioConverter::new(self.info.sample_rate, 1, rate)?.with_chunk_duration(
            Duration::from_micros(chunk as u64 * 1_000_000 / u64::from(rate.max(1))),
        )?;
        self.channel = Some(channel);
        Ok(self)
    }

    fn collect_all(self) -> Result<(Vec<AudioChunk>, WavInfo)> {
        let info = self.info;
        Ok((self.collect::<Result<Vec<_>>>()?, info))
    }

    /// Reads and converts the next block of the input into `ready`.
    fn refill(&mut self) -> Result<()> {
        // Up to 8192 frames and 256 KiB per read: large enough to be cheap, small enough to
        // stream with bounded memory whatever the frame size.
        let align = self.header.block_align.max(1);
        let mut want = (8192 * align).min((256 << 10) / align * align).max(align);
        if let Some(remaining) = self.remaining {
            want = want.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        self.bytes.clear();
        self.bytes.append(&mut self.carry);
        let start = self.bytes.len();
        self.bytes.resize(start + want, 0);
        let got = wav_decode::read_up_to(&mut self.reader, &mut self.bytes[start..])
            .map_err(|e| io_error(&self.source, e))?;
        self.bytes.truncate(start + got);
        if let Some(remaining) = &mut self.remaining {
            *remaining -= got as u64;
        }
        let at_end = got == 0 || self.remaining == Some(0);
        // Whole frames only; a split frame waits for the next read (or is dropped at the end).
        let whole = self.bytes.len() / align * align;
        self.carry.extend_from_slice(&self.bytes[whole..]);
        self.bytes.truncate(whole);

        self.buf.clear();
        match self.channel {
            None => wav_decode::decode(self.header.codec, &self.bytes, &mut self.buf),
            Some(channel) => {
                let width = align / usize::from(self.header.channels.max(1));
                let at = usize::from(channel) * width;
                for frame in self.bytes.chunks_exact(align) {
                    wav_decode::decode(self.header.codec, &frame[at..at + width], &mut self.buf);
                }
            }
        }
        let mut out = self.converter.push_interleaved_f32(&self.buf);
        let mut err = out.error();
        self.ready.extend(&mut out);
        if at_end {
            self.finished = true;
            let mut tail = self.converter.finish();
            err = err.or(tail.error());
            self.ready.extend(&mut tail);
        }
        err.map_or(Ok(()), Err)
    }
}

impl Iterator for WavChunks {
    type Item = Result<AudioChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(Ok(chunk));
            }
            if self.finished {
                return None;
            }
            if let Err(e) = self.refill() {
                // A broken input ends the iteration after reporting it once.
                self.finished = true;
                return Some(Err(e));
            }
        }
    }
}

/// Counters shared between a [`WavRecorder`] and its writer thread.
#[derive(Debug, Default)]
struct RecorderShared {
    /// Samples handed to `write`.
    queued: AtomicU64,
    /// Samples on disk with a header that covers them.
    flushed: AtomicU64,
    /// The writer's first failure.
    error: Mutex<Option<Error>>,
}

/// Records the audio a session sent to a 16-bit mono WAV file.
///
/// [`write`](WavRecorder::write) never blocks: chunks go over a channel to a writer thread,
/// so it is safe to call from async code and from the path that sends audio to the service.
/// The writer updates the WAV header whenever it has caught up with the queue, so even a
/// process killed without any cleanup leaves a valid file holding everything written until
/// shortly before. The header is finalized on [`finish`](WavRecorder::finish), and also when the
/// recorder is dropped (e.g. when a task holding it is aborted on Ctrl+C).
///
/// ```
/// use assemblyai_streaming::AudioChunk;
/// use assemblyai_streaming::audio::{WavRecorder, read_wav};
///
/// # #[tokio::main]
/// # async fn main() -> assemblyai_streaming::Result<()> {
/// let chunks = vec![AudioChunk::from_pcm16(&[0; 1_600]); 5]; // 5 × 100 ms at 16 kHz
/// let path = std::env::temp_dir().join("session.wav");
/// # let path = std::env::temp_dir().join(format!("wav-recorder-doc-{}.wav", std::process::id()));
/// let recorder = WavRecorder::create(&path, 16_000)?;
/// for chunk in &chunks {
///     // ... send `chunk` to the session ...
///     recorder.write(chunk)?;
/// }
/// let samples = recorder.finish().await?;
/// println!("saved {samples} samples to {}", path.display());
/// # assert_eq!(samples, 8_000);
/// # let (_, info) = read_wav(&path, 16_000)?;
/// # assert_eq!((info.sample_rate, info.channels, info.frames), (16_000, 1, 8_000));
/// # std::fs::remove_file(&path)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WavRecorder {
    path: PathBuf,
    sample_rate: u32,
    tx: Option<mpsc::Sender<Bytes>>,
    done: Option<tokio::sync::oneshot::Receiver<Result<u64>>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<RecorderShared>,
}

impl WavRecorder {
    /// Creates (or truncates) `path` for 16-bit mono audio at `sample_rate` Hz and starts the
    /// writer thread. Fails if the file cannot be created.
    pub fn create(path: impl AsRef<Path>, sample_rate: u32) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if sample_rate == 0 {
            return Err(Error::config("WAV sample rate must be positive"));
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // Created here, not in the thread, so a bad path is reported to the caller at once.
        let writer = hound::WavWriter::create(&path, spec).map_err(|e| wav_error(&path, e))?;
        let (tx, rx) = mpsc::channel::<Bytes>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let shared = Arc::new(RecorderShared::default());
        let thread_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("wav-recorder".into())
            .spawn(move || {
                let result = write_loop(writer, &rx, &thread_shared);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "WAV recorder failed");
                    if let Ok(mut slot) = thread_shared.error.lock() {
                        slot.get_or_insert_with(|| e.clone());
                    }
                }
                let _ = done_tx.send(result);
            })
            .map_err(Error::from)?;
        Ok(Self {
            path,
            sample_rate,
            tx: Some(tx),
            done: Some(done_rx),
            worker: Some(worker),
            shared,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Queues a chunk of s16le mono audio (as sent to the session) for writing. Never blocks.
    ///
    /// Fails if the writer has already failed (e.g. disk full) or the chunk has an odd number
    /// of bytes.
    pub fn write(&self, chunk: &AudioChunk) -> Result<()> {
        if chunk.len() % 2 != 0 {
            return Err(Error::InvalidAudio(format!(
                "16-bit PCM needs an even byte count, got {}",
                chunk.len()
            )));
        }
        if let Some(e) = self.writer_error() {
            return Err(e);
        }
        let Some(tx) = &self.tx else {
            return Err(Error::audio("WAV recorder is closed"));
        };
        tx.send(chunk.clone().into_bytes())
            .map_err(|_| Error::audio("WAV recorder thread has stopped"))?;
        self.shared
            .queued
            .fetch_add(chunk.len() as u64 / 2, Ordering::Relaxed);
        Ok(())
    }

    /// Samples queued with [`write`](WavRecorder::write) so far.
    pub fn samples_written(&self) -> u64 {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Samples already on disk under an up-to-date header: what a reader would find if the
    /// process died now.
    pub fn samples_on_disk(&self) -> u64 {
        self.shared.flushed.load(Ordering::Acquire)
    }

    fn writer_error(&self) -> Option<Error> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Writes everything queued, finalizes the header, and returns the number of samples in
    /// the file. Waits for the writer thread without blocking the async runtime.
    pub async fn finish(mut self) -> Result<u64> {
        self.tx = None;
        let result = match self.done.take() {
            Some(done) => done
                .await
                .unwrap_or_else(|_| Err(Error::audio("WAV recorder: writer thread vanished"))),
            None => Err(Error::audio("WAV recorder: already finished")),
        };
        if let Some(worker) = self.worker.take() {
            // The thread has reported; joining is immediate.
            let _ = worker.join();
        }
        result
    }

    /// Like [`finish`](WavRecorder::finish), blocking the calling thread (for non-async code).
    pub fn finish_blocking(mut self) -> Result<u64> {
        self.tx = None;
        let result = match self.done.take() {
            Some(done) => done
                .blocking_recv()
                .unwrap_or_else(|_| Err(Error::audio("WAV recorder: writer thread vanished"))),
            None => Err(Error::audio("WAV recorder: already finished")),
        };
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        result
    }
}

impl Drop for WavRecorder {
    fn drop(&mut self) {
        // Closing the channel makes the writer drain the queue and finalize the header. Waiting
        // for it is brief (the queue is small) and makes "dropped" mean "file complete".
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn write_loop(
    mut writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    rx: &mpsc::Receiver<Bytes>,
    shared: &RecorderShared,
) -> Result<u64> {
    // The writer's failure keeps hound's error (and through it the `io::Error`) as its source.
    let failed = |e: hound::Error| Error::audio_caused(format!("WAV recorder: {e}"), e);
    let mut written: u64 = 0;
    let mut write = |writer: &mut hound::WavWriter<_>, bytes: Bytes| -> Result<()> {
        for b in bytes.chunks_exact(2) {
            writer
                .write_sample(i16::from_le_bytes([b[0], b[1]]))
                .map_err(failed)?;
        }
        written += bytes.len() as u64 / 2;
        Ok(())
    };
    // Block for the next chunk; then take whatever else is queued; then, being caught up,
    // update the header so the file on disk is valid if the process dies now.
    while let Ok(bytes) = rx.recv() {
        write(&mut writer, bytes)?;
        while let Ok(more) = rx.try_recv() {
            write(&mut writer, more)?;
        }
        writer.flush().map_err(failed)?;
        shared
            .flushed
            .store(u64::from(writer.len()), Ordering::Release);
    }
    writer.finalize().map_err(failed)?;
    shared.flushed.store(written, Ordering::Release);
    Ok(written)
}
