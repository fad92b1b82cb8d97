//! One call that pumps an audio stream into a session: [`StreamingSession::stream_audio`].
//!
//! Written against the session's public API only (split, `Sink`, `Stream`), so it is exactly
//! what a service would otherwise write by hand — with the two details that are easy to get
//! wrong: the pump must close the sink when the audio ends (`SinkExt::send_all` does not close
//! it; `StreamExt::forward` does, but stops at the first error), and the pump must not outlive
//! the consumer of the events.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::{SinkExt, Stream, StreamExt};

use crate::audio::AudioChunk;
use crate::error::{Error, Result};
use crate::session::{EventStream, StreamingSession, TurnEvent};

/// An item of an audio stream given to [`StreamingSession::stream_audio`]: a chunk, or a
/// `Result` of one (a microphone, or audio decoded from a client, can fail).
pub trait AudioItem: Send + 'static {
    /// The chunk, or why the audio cannot go on.
    fn into_audio(self) -> Result<AudioChunk>;
}

impl AudioItem for AudioChunk {
    fn into_audio(self) -> Result<AudioChunk> {
        Ok(self)
    }
}

impl AudioItem for Result<AudioChunk> {
    fn into_audio(self) -> Result<AudioChunk> {
        self
    }
}

impl StreamingSession {
    /// Sends `audio` to the session from a background task and returns the session's events.
    ///
    /// - When `audio` ends, the buffered audio is sent and then `Terminate`: the events go on
    ///   with the last turns and [`TurnEvent::Termination`], then end.
    /// - When `audio` yields an `Err`, that error is yielded once by the returned stream (as
    ///   soon as it happens, between session events) and the session is terminated the same
    ///   graceful way, so no turn is lost.
    /// - When the session ends first (a server error, a close), the pump stops; the events say
    ///   why.
    /// - Dropping the returned stream stops the pump and ends the session (the socket closes;
    ///   nothing is left running).
    ///
    /// Audio is not paced: give a live source, or wrap a file's chunks in
    /// [`audio::paced`](crate::audio::paced). Take a [`handle`](Self::handle) first for
    /// control messages. Needs a Tokio runtime (the pump is a task).
    ///
    /// ```
    /// use assemblyai_streaming::audio::{paced, read_wav};
    /// use assemblyai_streaming::{ConnectionParams, Encoding, StreamingClient, TurnEvent};
    /// use futures::StreamExt;
    /// # use assemblyai_streaming::emulator::{Emulator, Script};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = Emulator::builder()
    /// #     .script(Script::from_json_file("examples/assets/sample.script.json")?)
    /// #     .start()
    /// #     .await?;
    /// let client = StreamingClient::builder() // key from ASSEMBLYAI_API_KEY
    /// #   .api_key(emulator.api_key())
    /// #   .base_url(emulator.ws_url())
    ///     .build()?;
    /// let session = client.connect(ConnectionParams::new().format_turns(true)).await?;
    /// let (chunks, _) = read_wav("examples/assets/sample.wav", 16_000)?;
    /// # let chunks = chunks[..40].to_vec(); // its first 4 s (one sentence) keep this test short
    /// let mut events = session.stream_audio(paced(chunks, 16_000, Encoding::PcmS16le));
    /// # let mut finals = Vec::new();
    /// while let Some(event) = events.next().await {
    ///     if let TurnEvent::Final(turn) = event? {
    ///         println!("{}", turn.transcript);
    /// #       finals.push(turn.transcript);
    ///     }
    /// }
    /// # assert_eq!(finals, ["Hello, and welcome to the live translation demo."]);
    /// # Ok(()) }
    /// ```
    pub fn stream_audio<S>(self, audio: S) -> PumpedEvents
    where
        S: Stream + Send + 'static,
        S::Item: AudioItem,
    {
        let (mut sink, events) = self.split();
        let (error_tx, error_rx) = oneshot::channel();
        let pump = tokio::spawn(async move {
            let mut audio = std::pin::pin!(audio);
            while let Some(item) = audio.next().await {
                match item.into_audio() {
                    Ok(chunk) => {
                        if sink.send(chunk).await.is_err() {
                            // The session ended; its event stream reports why.
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = error_tx.send(e);
                        break;
                    }
                }
            }
            // Flush what is buffered, then Terminate.
            let _ = sink.close().await;
        });
        PumpedEvents {
            events,
            audio_error: Some(error_rx),
            pump: pump.abort_handle(),
        }
    }
}

/// The events of a session fed by [`StreamingSession::stream_audio`]: a
/// `Stream<Item = Result<TurnEvent>>` like [`EventStream`], plus at most one `Err` for a failed
/// audio source. Dropping it stops the pump.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled; dropping this ends the session"]
pub struct PumpedEvents {
    events: EventStream,
    audio_error: Option<oneshot::Receiver<Error>>,
    pump: tokio::task::AbortHandle,
}

impl Stream for PumpedEvents {
    type Item = Result<TurnEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(rx) = &mut self.audio_error {
            match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(e)) => {
                    self.audio_error = None;
                    return Poll::Ready(Some(Err(e)));
                }
                // The pump finished without an audio error.
                Poll::Ready(Err(_)) => self.audio_error = None,
                Poll::Pending => {}
            }
        }
        Pin::new(&mut self.events).poll_next(cx)
    }
}

impl Drop for PumpedEvents {
    fn drop(&mut self) {
        self.pump.abort();
    }
}
