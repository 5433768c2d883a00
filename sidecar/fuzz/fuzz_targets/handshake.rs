//! Hello and status decoding, and the status decision, over arbitrary bytes.
#![no_main]

use haproxy_peers_sidecar::codec::{check_hello, decode_hello, decode_status, early_status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = early_status(data, "A");
    let _ = decode_status(data);
    if let Ok(Some((lines, used))) = decode_hello(data) {
        assert!(used <= data.len());
        let _ = check_hello(&lines, "A", |name| name == "B");
    }
});
