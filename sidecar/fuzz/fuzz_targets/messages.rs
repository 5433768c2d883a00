//! Frame decoder + one session's message decoder over an arbitrary byte stream.
#![no_main]

use bytes::BytesMut;
use haproxy_peers_sidecar::codec::{FrameCodec, RxState};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let (mut buf, mut frames, mut rx) = (BytesMut::from(data), FrameCodec::new(), RxState::new());
    while let Ok(Some(frame)) = frames.decode(&mut buf) {
        if rx.decode(&frame).is_err() {
            break;
        }
    }
});
