//! The emulator's parser of client text frames: any text is a message or a 3006 close whose
//! reason stays short.
#![no_main]

use assemblyai_streaming::emulator::parse_client_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = parse_client_message(text) {
            assert_eq!(e.code(), Some(3006));
            assert!(e.to_string().len() < 600, "reason echoes the input");
        }
    }
});
