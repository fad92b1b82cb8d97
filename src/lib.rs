#![doc = include_str!("docs/tutorial.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod audio;
pub mod captions;
pub mod channels;
mod client;
#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;
pub mod error;
mod handshake;
pub mod lemur;
#[cfg(feature = "mic")]
#[cfg_attr(docsrs, doc(cfg(feature = "mic")))]
pub mod mic;
pub mod params;
pub mod protocol;
mod proxy;
mod redact;
pub mod resilient;
pub mod retry;
mod session;
mod stream_audio;
pub mod translate;

pub use audio::AudioChunk;
pub use client::{API_KEY_ENV, Region, Secret, StreamingClient, StreamingClientBuilder};
pub use error::{Cause, CloseKind, Error, ErrorKind, Result, TimeoutKind};
pub use params::{ConnectionParams, Encoding, SpeechModel};
pub use resilient::{ResilientEvent, ResilientSession};
pub use retry::RetryPolicy;
pub use session::{
    AudioSink, EventStream, SessionHandle, SessionInfo, StreamingSession, TurnEvent,
};
pub use stream_audio::{AudioItem, PumpedEvents};

// The README's code blocks are tests too, so they cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
