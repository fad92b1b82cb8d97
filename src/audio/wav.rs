//! WAV files in and out (feature `wav`): any WAV converted for a session, and a recorder of the
//! audio a session sent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use super::{AudioChunk, AudioConverter, DEFAULT_CHUNK_DURATION};
use crate::error::{Error, Result};

/// How the samples of a WAV file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WavSampleFormat {
    /// Integer PCM (8-bit unsigned, 16/24/32-bit signed).
    Int,
    /// IEEE float PCM (32-bit).
    Float,
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
    /// Integer or float samples.
    pub sample_format: WavSampleFormat,
    /// Frames (samples per channel) in the file.
    pub frames: u64,
}

impl WavInfo {
    /// The file's duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames as f64 / f64::from(self.sample_rate.max(1)))
    }
}

fn wav_error(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) => Error::from(io),
        other => Error::Audio(format!("{}: {other}", path.display())),
    }
}

/// Reads a WAV file of any rate, channel count and sample format and converts it into mono
/// 16-bit 100 ms chunks at `target_rate` (the same path as microphone input: downmix,
/// anti-aliased resampling, s16le). The last chunk may be shorter.
///
/// The whole file is converted into memory; for long files, iterate with [`open_wav`].
///
/// ```no_run
/// # fn main() -> assemblyai_streaming::Result<()> {
/// let (chunks, info) = assemblyai_streaming::audio::read_wav("call.wav", 16_000)?;
/// println!("{} Hz, {} channel(s), {:?} → {} chunks", info.sample_rate, info.channels,
///          info.duration(), chunks.len());
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
    let chunks = open_wav(path, target_rate)?.with_chunk_duration(chunk)?;
    let info = chunks.info();
    Ok((chunks.collect::<Result<Vec<_>>>()?, info))
}

/// Opens a WAV file of any format for conversion chunk by chunk (see [`WavChunks`]).
///
/// ```no_run
/// # fn main() -> assemblyai_streaming::Result<()> {
/// let chunks = assemblyai_streaming::audio::open_wav("long-call.wav", 16_000)?;
/// println!("{:?} of audio", chunks.info().duration());
/// for chunk in chunks {
///     let chunk = chunk?; // 100 ms of 16 kHz mono s16le
///     # let _ = chunk;
/// }
/// # Ok(()) }
/// ```
pub fn open_wav(path: impl AsRef<Path>, target_rate: u32) -> Result<WavChunks> {
    let path = path.as_ref().to_path_buf();
    let reader = hound::WavReader::open(&path).map_err(|e| wav_error(&path, e))?;
    let spec = reader.spec();
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: spec.bits_per_sample,
        sample_format: match spec.sample_format {
            hound::SampleFormat::Int => WavSampleFormat::Int,
            hound::SampleFormat::Float => WavSampleFormat::Float,
        },
        frames: u64::from(reader.duration()),
    };
    let converter = AudioConverter::new(spec.sample_rate, spec.channels, target_rate)
        .map_err(|e| Error::Audio(format!("{}: {e}", path.display())))?;
    Ok(WavChunks {
        reader,
        converter,
        info,
        path,
        ready: std::collections::VecDeque::new(),
        buf: Vec::new(),
        finished: false,
    })
}

/// A WAV file being converted, as an iterator of chunks (mono s16le at the target rate, 100 ms
/// by default; the last one may be shorter). Reads the file block by block, so memory use does
/// not depend on its length. Made by [`open_wav`].
pub struct WavChunks {
    reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
    converter: AudioConverter,
    info: WavInfo,
    path: PathBuf,
    ready: std::collections::VecDeque<AudioChunk>,
    buf: Vec<f32>,
    finished: bool,
}

impl std::fmt::Debug for WavChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavChunks")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl WavChunks {
    /// What the file holds.
    pub fn info(&self) -> WavInfo {
        self.info
    }

    /// Sets the chunk duration (50 ms to 1 s); call before iterating.
    pub fn with_chunk_duration(mut self, chunk: Duration) -> Result<Self> {
        self.converter = self.converter.with_chunk_duration(chunk)?;
        Ok(self)
    }

    /// Reads and converts the next block of the file into `ready`.
    fn refill(&mut self) -> Result<()> {
        // About 8192 frames per read: large enough to be cheap, small enough to stream.
        let block = 8192 * usize::from(self.info.channels.max(1));
        self.buf.clear();
        let path = &self.path;
        match self.info.sample_format {
            WavSampleFormat::Float => {
                for s in self.reader.samples::<f32>().take(block) {
                    self.buf.push(s.map_err(|e| wav_error(path, e))?);
                }
            }
            WavSampleFormat::Int => {
                // hound yields 8-bit samples (unsigned in the file) already centred on zero.
                let bits = self.info.bits_per_sample.clamp(1, 32);
                let scale = 1.0 / f64::from(1u32 << (bits - 1));
                for s in self.reader.samples::<i32>().take(block) {
                    let s = s.map_err(|e| wav_error(path, e))?;
                    self.buf.push((f64::from(s) * scale) as f32);
                }
            }
        }
        let mut out = if self.buf.is_empty() {
            self.finished = true;
            self.converter.finish()
        } else {
            self.converter.push_interleaved_f32(&self.buf)
        };
        let err = out.error();
        self.ready.extend(&mut out);
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
                // A broken file ends the iteration after reporting it once.
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
    error: Mutex<Option<String>>,
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
/// ```no_run
/// # async fn run(chunks: Vec<assemblyai_streaming::AudioChunk>) -> assemblyai_streaming::Result<()> {
/// use assemblyai_streaming::audio::WavRecorder;
///
/// let recorder = WavRecorder::create("session.wav", 16_000)?;
/// for chunk in &chunks {
///     // ... send `chunk` to the session ...
///     recorder.write(chunk)?;
/// }
/// let samples = recorder.finish().await?;
/// println!("saved {samples} samples");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WavRecorder {
    path: PathBuf,
    sample_rate: u32,
    tx: Option<mpsc::Sender<Bytes>>,
    done: Option<tokio::sync::oneshot::Receiver<Result<u64, String>>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<RecorderShared>,
}

impl WavRecorder {
    /// Creates (or truncates) `path` for 16-bit mono audio at `sample_rate` Hz and starts the
    /// writer thread. Fails if the file cannot be created.
    pub fn create(path: impl AsRef<Path>, sample_rate: u32) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if sample_rate == 0 {
            return Err(Error::Config("WAV sample rate must be positive".into()));
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
            return Err(Error::Audio(format!("WAV recorder: {e}")));
        }
        let Some(tx) = &self.tx else {
            return Err(Error::Audio("WAV recorder is closed".into()));
        };
        tx.send(chunk.clone().into_bytes())
            .map_err(|_| Error::Audio("WAV recorder thread has stopped".into()))?;
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

    fn writer_error(&self) -> Option<String> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Writes everything queued, finalizes the header, and returns the number of samples in
    /// the file. Waits for the writer thread without blocking the async runtime.
    pub async fn finish(mut self) -> Result<u64> {
        self.tx = None;
        let result = match self.done.take() {
            Some(done) => done
                .await
                .unwrap_or_else(|_| Err("writer thread vanished".into())),
            None => Err("already finished".into()),
        };
        if let Some(worker) = self.worker.take() {
            // The thread has reported; joining is immediate.
            let _ = worker.join();
        }
        result.map_err(|e| Error::Audio(format!("WAV recorder: {e}")))
    }

    /// Like [`finish`](WavRecorder::finish), blocking the calling thread (for non-async code).
    pub fn finish_blocking(mut self) -> Result<u64> {
        self.tx = None;
        let result = match self.done.take() {
            Some(done) => done
                .blocking_recv()
                .unwrap_or_else(|_| Err("writer thread vanished".into())),
            None => Err("already finished".into()),
        };
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        result.map_err(|e| Error::Audio(format!("WAV recorder: {e}")))
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
) -> Result<u64, String> {
    let mut written: u64 = 0;
    let mut write = |writer: &mut hound::WavWriter<_>, bytes: Bytes| -> Result<(), String> {
        for b in bytes.chunks_exact(2) {
            writer
                .write_sample(i16::from_le_bytes([b[0], b[1]]))
                .map_err(|e| e.to_string())?;
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
        writer.flush().map_err(|e| e.to_string())?;
        shared
            .flushed
            .store(u64::from(writer.len()), Ordering::Release);
    }
    writer.finalize().map_err(|e| e.to_string())?;
    shared.flushed.store(written, Ordering::Release);
    Ok(written)
}
