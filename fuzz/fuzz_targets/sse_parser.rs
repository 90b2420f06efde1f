//! Fuzz the SSE event-stream parser: arbitrary bytes, cut into chunks at arbitrary points,
//! must never panic, must keep every event within `max_event_bytes`, and must give the same
//! frames and last event id as the same bytes fed whole.
//!
//! `cargo fuzz run sse_parser` (from the repository root, with cargo-fuzz and a nightly
//! toolchain).

#![no_main]

use bytes::Bytes;
use etl::source::sse::frame::{Frame, Parser};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fn parse(chunks: &[&[u8]]) -> (Vec<Frame>, String) {
    let mut parser = Parser::new(MAX);
    let mut frames = Vec::new();
    for chunk in chunks {
        parser.push(Bytes::copy_from_slice(chunk));
        while let Some(frame) = parser.next_frame() {
            if let Frame::Event(event) = &frame {
                assert!(event.data.len() <= MAX, "event data over the limit");
            }
            frames.push(frame);
        }
    }
    (frames, parser.last_event_id().to_owned())
}

fuzz_target!(|input: &[u8]| {
    // The first byte chooses the chunk length, the rest is the stream.
    let Some((&size, stream)) = input.split_first() else { return };
    let size = usize::from(size).max(1);
    let whole = parse(&[stream]);
    let chunks: Vec<&[u8]> = stream.chunks(size).collect();
    assert_eq!(parse(&chunks), whole, "chunking changed the result");
});
