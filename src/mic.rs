//! Microphone capture (feature `mic`): a cpal input device as a stream of [`AudioChunk`]s ready
//! for a session.
//!
//! Whatever the device delivers (i16, u16, i32, f32, ...; any rate; any channel count) is
//! downmixed, resampled and cut by the same [`AudioConverter`] that serves WAV files. The work is
//! split so that the audio callback stays real-time safe:
//!
//! * the **cpal callback** only copies the samples (as `f32`) into a recycled buffer and hands
//!   it over with a non-blocking `try_send` on a bounded queue; when the queue is full the block
//!   is dropped and counted ([`Microphone::dropped_frames`]; the capture thread logs a `tracing`
//!   warning at most once a second);
//! * a **capture thread** owns the cpal `Stream` (which is not `Send`), converts the blocks and
//!   passes chunks to the async side;
//! * the [`Microphone`] is a `futures::Stream<Item = Result<AudioChunk>>`. A device error or a
//!   device that disappears ends it with an [`Error::Audio`].
//!
// no_run: needs a microphone (a sound card), which CI machines and containers lack.
//! ```no_run
//! # async fn run() -> assemblyai_streaming::Result<()> {
//! use assemblyai_streaming::mic::{MicConfig, Microphone};
//! use futures::StreamExt;
//!
//! let mut mic = Microphone::open_async(MicConfig::default()).await?;
//! println!("recording from {}", mic.device_name());
//! while let Some(chunk) = mic.next().await {
//!     let chunk = chunk?; // 100 ms of 16 kHz mono s16le
//!     println!("level {:.2}", mic.input_level());
//!     # let _ = chunk;
//! }
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::audio::{AudioChunk, AudioConverter, DEFAULT_CHUNK_DURATION, rms_level};
use crate::error::{Error, Result};

/// How long the capture thread waits for audio before checking for a stop request.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Dropped audio is reported at most this often.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Which format to ask the device for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeviceFormat {
    /// Ask for mono 16-bit at the target rate when the device supports it (no conversion
    /// needed; sound servers such as PulseAudio resample well), else use the device's default.
    #[default]
    PreferTarget,
    /// Always use the device's default configuration and convert here.
    DeviceDefault,
}

/// Microphone settings. `MicConfig::default()` is the default input device, 100 ms chunks at
/// 16 kHz.
#[derive(Debug, Clone)]
pub struct MicConfig {
    /// Input device name (as listed by [`list_input_devices`]: its name or id); `None` for the
    /// system default.
    pub device: Option<String>,
    /// Duration of each chunk (50 ms to 1 s; default 100 ms).
    pub chunk: Duration,
    /// Output sample rate in Hz, i.e. the session's (default 16000).
    pub sample_rate: u32,
    /// Which format to ask the device for (default [`DeviceFormat::PreferTarget`]).
    pub device_format: DeviceFormat,
    /// Blocks of captured audio that may wait for conversion before new ones are dropped
    /// (default 64, i.e. about 0.5 s to several seconds depending on the device's period).
    pub queue_blocks: usize,
}

impl Default for MicConfig {
    fn default() -> Self {
        Self {
            device: None,
            chunk: DEFAULT_CHUNK_DURATION,
            sample_rate: 16_000,
            device_format: DeviceFormat::default(),
            queue_blocks: 64,
        }
    }
}

impl MicConfig {
    /// Picks an input device by name or id.
    pub fn device(mut self, name: impl Into<String>) -> Self {
        self.device = Some(name.into());
        self
    }

    /// Sets the chunk duration.
    pub fn chunk(mut self, chunk: Duration) -> Self {
        self.chunk = chunk;
        self
    }

    /// Sets the output sample rate.
    pub fn sample_rate(mut self, rate: u32) -> Self {
        self.sample_rate = rate;
        self
    }

    /// Sets which format to ask the device for.
    pub fn device_format(mut self, format: DeviceFormat) -> Self {
        self.device_format = format;
        self
    }
}

/// An input device, as listed by [`list_input_devices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDevice {
    /// Human-readable name.
    pub name: String,
    /// Stable id (e.g. `alsa:default`), also accepted by [`MicConfig::device`].
    pub id: String,
    /// Whether it is the system's default input.
    pub is_default: bool,
}

/// The format the device actually captures in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureFormat {
    /// Device sample rate in Hz.
    pub sample_rate: u32,
    /// Device channel count.
    pub channels: u16,
    /// Device sample format (e.g. `i16`, `f32`).
    pub sample_format: SampleFormat,
}

/// Lists the input devices of the default audio host.
pub fn list_input_devices() -> Result<Vec<InputDevice>> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().and_then(|d| d.id().ok());
    let devices = host
        .input_devices()
        .map_err(|e| Error::audio_caused(format!("cannot list input devices: {e}"), e))?;
    Ok(devices
        .filter_map(|d| {
            let id = d.id().ok()?;
            let name = d
                .description()
                .map(|desc| desc.name().to_string())
                .unwrap_or_else(|_| id.to_string());
            Some(InputDevice {
                name,
                is_default: default_id.as_ref() == Some(&id),
                id: id.to_string(),
            })
        })
        .collect())
}

/// State shared by the [`Microphone`], its capture thread and the cpal callback.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    dropped_frames: AtomicU64,
    /// RMS of the last chunk, as `f32` bits.
    level: AtomicU32,
}

/// A live microphone: a stream of mono 16-bit chunks at the configured rate.
///
/// Dropping it stops the capture; [`stop`](Microphone::stop) ends the stream gracefully (the
/// converter's tail is delivered first).
#[derive(Debug)]
pub struct Microphone {
    rx: tokio::sync::mpsc::Receiver<Result<AudioChunk>>,
    shared: Arc<Shared>,
    device_name: String,
    capture_format: CaptureFormat,
    sample_rate: u32,
}

impl Microphone {
    /// Opens the configured input device and starts capturing.
    ///
    /// Blocks until the device is running (usually milliseconds). On a machine without a
    /// usable input device it fails with `Error::Audio { message: "no microphone: ...", .. }`.
    pub fn open(config: MicConfig) -> Result<Self> {
        // Validate the conversion settings before touching the device.
        AudioConverter::new(config.sample_rate, 1, config.sample_rate)?
            .with_chunk_duration(config.chunk)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let thread_config = config.clone();
        std::thread::Builder::new()
            .name("mic-capture".into())
            .spawn(move || capture_thread(thread_config, thread_shared, tx, ready_tx))
            .map_err(Error::from)?;
        let (device_name, capture_format) = ready_rx
            .recv()
            .map_err(|_| Error::audio("microphone thread ended unexpectedly"))??;
        Ok(Self {
            rx,
            shared,
            device_name,
            capture_format,
            sample_rate: config.sample_rate,
        })
    }

    /// Like [`open`](Microphone::open), without blocking the async runtime while the device
    /// starts (some sound servers take a second for their first client).
    pub async fn open_async(config: MicConfig) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::open(config))
            .await
            .map_err(|e| Error::audio_caused(format!("microphone start-up failed: {e}"), e))?
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The format the device captures in (before conversion).
    pub fn capture_format(&self) -> CaptureFormat {
        self.capture_format
    }

    /// Sample rate of the chunks, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Input frames dropped because conversion fell behind the device (0 in a healthy setup).
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped_frames.load(Ordering::Relaxed)
    }

    /// RMS level of the last chunk, 0.0 (silence) to 1.0, for a level meter.
    pub fn input_level(&self) -> f32 {
        f32::from_bits(self.shared.level.load(Ordering::Relaxed))
    }

    /// Stops capturing; the stream then yields the remaining audio and ends.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// A cloneable handle for stopping the capture and reading the level from other tasks,
    /// while the stream itself is consumed elsewhere.
    pub fn control(&self) -> MicControl {
        MicControl {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Controls a [`Microphone`] from other tasks (see [`Microphone::control`]).
#[derive(Debug, Clone)]
pub struct MicControl {
    shared: Arc<Shared>,
}

impl MicControl {
    /// Stops capturing; the microphone's stream then yields the remaining audio and ends.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// RMS level of the last chunk, 0.0 (silence) to 1.0, for a level meter.
    pub fn input_level(&self) -> f32 {
        f32::from_bits(self.shared.level.load(Ordering::Relaxed))
    }

    /// Input frames dropped because conversion fell behind the device.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped_frames.load(Ordering::Relaxed)
    }
}

impl futures::Stream for Microphone {
    type Item = Result<AudioChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        // The thread notices within POLL_INTERVAL (or at its next send) and drops the stream.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

type Ready = Result<(String, CaptureFormat)>;

fn no_mic(e: impl std::fmt::Display) -> Error {
    Error::audio(format!("no microphone: {e}"))
}

/// [`no_mic`] keeping the device library's error as the source.
fn no_mic_caused(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::audio_caused(format!("no microphone: {what}{e}"), e)
}

fn find_device(host: &cpal::Host, name: Option<&str>) -> Result<cpal::Device> {
    match name {
        None => host
            .default_input_device()
            .ok_or_else(|| no_mic("the system has no default input device")),
        Some(wanted) => {
            let devices = host
                .input_devices()
                .map_err(|e| no_mic_caused("cannot list input devices: ", e))?;
            let mut names = Vec::new();
            for d in devices {
                let id = d.id().map(|id| id.to_string()).unwrap_or_default();
                let name = d
                    .description()
                    .map(|n| n.name().to_string())
                    .unwrap_or_default();
                if id == wanted || name == wanted {
                    return Ok(d);
                }
                names.push(if name.is_empty() { id } else { name });
            }
            Err(Error::audio(format!(
                "no input device named {wanted:?} (available: {})",
                names.join(", ")
            )))
        }
    }
}

/// Chooses the device configuration: see [`DeviceFormat`].
fn choose_config(
    device: &cpal::Device,
    target_rate: u32,
    format: DeviceFormat,
) -> Result<cpal::SupportedStreamConfig> {
    // On a machine without a sound card, ALSA still offers a "default" device; asking for its
    // configuration is where it fails. That is "no microphone".
    let default = device
        .default_input_config()
        .map_err(|e| no_mic_caused("", e))?;
    if format == DeviceFormat::PreferTarget
        && let Ok(ranges) = device.supported_input_configs()
    {
        let ranges: Vec<_> = ranges.collect();
        let preferred = [SampleFormat::I16, SampleFormat::F32]
            .into_iter()
            .flat_map(|f| ranges.iter().filter(move |r| r.sample_format() == f))
            .filter(|r| r.channels() == 1)
            .find_map(|r| r.try_with_sample_rate(target_rate));
        if let Some(config) = preferred {
            return Ok(config);
        }
    }
    Ok(default)
}

fn capture_thread(
    config: MicConfig,
    shared: Arc<Shared>,
    tx: tokio::sync::mpsc::Sender<Result<AudioChunk>>,
    ready: mpsc::SyncSender<Ready>,
) {
    let (blocks_tx, blocks_rx) = mpsc::sync_channel::<Vec<f32>>(config.queue_blocks.max(2));
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<f32>>(config.queue_blocks.max(2));
    let (err_tx, err_rx) = mpsc::sync_channel::<cpal::Error>(8);

    let opened = (|| -> Result<(cpal::Stream, String, CaptureFormat, AudioConverter)> {
        let host = cpal::default_host();
        let device = find_device(&host, config.device.as_deref())?;
        let name = device
            .description()
            .map(|d| d.name().to_string())
            .or_else(|_| device.id().map(|id| id.to_string()))
            .unwrap_or_else(|_| "unknown device".into());
        let supported = choose_config(&device, config.sample_rate, config.device_format)?;
        let format = CaptureFormat {
            sample_rate: supported.sample_rate(),
            channels: supported.channels(),
            sample_format: supported.sample_format(),
        };
        let converter =
            AudioConverter::new(format.sample_rate, format.channels, config.sample_rate)?
                .with_chunk_duration(config.chunk)?;
        let callback = Callback {
            blocks: blocks_tx,
            free: free_rx,
            shared: Arc::clone(&shared),
            channels: usize::from(format.channels.max(1)),
        };
        let stream = build_stream(&device, &supported, callback, err_tx)?;
        stream
            .play()
            .map_err(|e| Error::audio_caused(format!("cannot start {name}: {e}"), e))?;
        tracing::debug!(device = %name, ?format, "microphone started");
        Ok((stream, name, format, converter))
    })();

    let (stream, mut converter) = match opened {
        Ok((stream, name, format, converter)) => {
            if ready.send(Ok((name, format))).is_err() {
                return;
            }
            (stream, converter)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };

    // Sends one chunk to the consumer; false when the consumer is gone.
    let deliver = |chunk: AudioChunk| -> bool {
        shared
            .level
            .store(rms_level(&chunk).to_bits(), Ordering::Relaxed);
        tx.blocking_send(Ok(chunk)).is_ok()
    };

    let mut reported_drops = 0;
    let mut last_report: Option<std::time::Instant> = None;
    loop {
        let dropped = shared.dropped_frames.load(Ordering::Relaxed);
        if dropped != reported_drops
            && last_report.is_none_or(|t| t.elapsed() >= DROP_REPORT_INTERVAL)
        {
            tracing::warn!(
                dropped_frames = dropped,
                "microphone audio dropped: conversion or the consumer is not keeping up"
            );
            reported_drops = dropped;
            last_report = Some(std::time::Instant::now());
        }
        if let Ok(e) = err_rx.try_recv() {
            if is_fatal(&e) {
                tracing::warn!(error = %e, "microphone failed");
                drop(stream);
                let _ = tx.blocking_send(Err(Error::audio_caused(
                    format!("microphone failed: {e}"),
                    e,
                )));
                return;
            }
            tracing::warn!(error = %e, "microphone glitch");
            continue;
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        match blocks_rx.recv_timeout(POLL_INTERVAL) {
            Ok(block) => {
                let mut chunks = converter.push_interleaved_f32(&block);
                if let Some(e) = chunks.error() {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
                for chunk in chunks {
                    if !deliver(chunk) {
                        return;
                    }
                }
                // Hand the buffer back to the callback for reuse (dropped if the pool is full).
                let _ = free_tx.try_send(block);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = tx.blocking_send(Err(Error::audio("microphone stream ended unexpectedly")));
                return;
            }
        }
    }
    // Graceful stop: stop the device, convert what it already delivered, flush the tail.
    drop(stream);
    while let Ok(block) = blocks_rx.try_recv() {
        for chunk in converter.push_interleaved_f32(&block) {
            if !deliver(chunk) {
                return;
            }
        }
    }
    for chunk in converter.finish() {
        if !deliver(chunk) {
            return;
        }
    }
}

/// Errors after which the stream cannot go on.
fn is_fatal(e: &cpal::Error) -> bool {
    !matches!(
        e.kind(),
        cpal::ErrorKind::Xrun | cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied
    )
}

/// What the real-time callback owns. It never blocks; it allocates only when no recycled
/// buffer is available, and at most `queue_blocks` buffers circulate.
struct Callback {
    blocks: mpsc::SyncSender<Vec<f32>>,
    free: mpsc::Receiver<Vec<f32>>,
    shared: Arc<Shared>,
    channels: usize,
}

impl Callback {
    fn on_data<T>(&mut self, data: &[T])
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        if self.shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let mut buf = self.free.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend(data.iter().map(|&s| f32::from_sample_(s)));
        if let Err(mpsc::TrySendError::Full(_) | mpsc::TrySendError::Disconnected(_)) =
            self.blocks.try_send(buf)
        {
            // Counted here, reported by the capture thread: logging could block this thread.
            let frames = (data.len() / self.channels) as u64;
            self.shared
                .dropped_frames
                .fetch_add(frames, Ordering::Relaxed);
        }
    }
}

fn build_stream(
    device: &cpal::Device,
    supported: &cpal::SupportedStreamConfig,
    callback: Callback,
    errors: mpsc::SyncSender<cpal::Error>,
) -> Result<cpal::Stream> {
    fn build<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
        mut callback: Callback,
        errors: mpsc::SyncSender<cpal::Error>,
    ) -> Result<cpal::Stream>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        device
            .build_input_stream::<T, _, _>(
                config,
                move |data: &[T], _: &cpal::InputCallbackInfo| callback.on_data(data),
                move |e| {
                    // Never block the audio thread; a full error queue means one is pending.
                    let _ = errors.try_send(e);
                },
                None,
            )
            .map_err(|e| Error::audio_caused(format!("cannot open the input stream: {e}"), e))
    }

    let config = supported.config();
    match supported.sample_format() {
        SampleFormat::I8 => build::<i8>(device, config, callback, errors),
        SampleFormat::I16 => build::<i16>(device, config, callback, errors),
        SampleFormat::I24 => build::<cpal::I24>(device, config, callback, errors),
        SampleFormat::I32 => build::<i32>(device, config, callback, errors),
        SampleFormat::I64 => build::<i64>(device, config, callback, errors),
        SampleFormat::U8 => build::<u8>(device, config, callback, errors),
        SampleFormat::U16 => build::<u16>(device, config, callback, errors),
        SampleFormat::U24 => build::<cpal::U24>(device, config, callback, errors),
        SampleFormat::U32 => build::<u32>(device, config, callback, errors),
        SampleFormat::U64 => build::<u64>(device, config, callback, errors),
        SampleFormat::F32 => build::<f32>(device, config, callback, errors),
        SampleFormat::F64 => build::<f64>(device, config, callback, errors),
        other => Err(Error::audio(format!(
            "unsupported device sample format {other}"
        ))),
    }
}
