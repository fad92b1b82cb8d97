//! The client's decoder of server frames: any text is a message or a typed `DecodeError`.
#![no_main]

use assemblyai_streaming::protocol::ServerMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(message) = ServerMessage::from_json(text) {
            // Whatever decoded must re-encode without panicking.
            let _ = message.to_json();
        }
    }
});
