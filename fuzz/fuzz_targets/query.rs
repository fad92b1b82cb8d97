//! The emulator's query-string parser: any query is parameters or a 3006 close; accepted
//! parameters re-encoded by the client are accepted again.
#![no_main]

use assemblyai_streaming::emulator::parse_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    match parse_query(&query) {
        Ok(params) => {
            let again = params.to_query();
            assert!(parse_query(&again).is_ok(), "{query:?} -> {again:?} rejected");
        }
        Err(e) => {
            assert_eq!(e.code(), Some(3006));
            assert!(e.to_string().len() < 600, "reason echoes the input");
        }
    }
});
