//! Copies of small messages' bytes, packed into shared blocks.
//!
//! tungstenite hands each message out as a slice of its read buffer. A slice kept beside its
//! record (`Meta::raw`, for dead letters) keeps that buffer shared, and tungstenite's buffer
//! then cannot be reused: each following frame gets a fresh allocation of only its own size,
//! and each read of the socket fills only that (measured: 57 000 `recvfrom` calls for
//! 1 000 000 messages of 130 bytes instead of 900). Copying the message into a block of ours
//! and dropping tungstenite's slice at once keeps its buffer whole; one allocation per block
//! rather than per message.

use bytes::{Bytes, BytesMut};

/// Size of one block.
const BLOCK: usize = 64 * 1024;
/// Messages at least this large keep tungstenite's slice: it is about their own size, and a
/// copy would cost more than it saves.
pub(crate) const COPY_BELOW: usize = 16 * 1024;

/// Packs copies of byte strings into blocks of [`BLOCK`] bytes; each copy is a `Bytes` sharing
/// its block, which is freed once every copy in it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    block: BytesMut,
}

impl Arena {
    /// A copy of `bytes`, in the current block or in a new one when it has no room left.
    pub(crate) fn copy(&mut self, bytes: &[u8]) -> Bytes {
        if self.block.capacity() - self.block.len() < bytes.len() {
            // The full block lives on in the copies that hold it.
            self.block = BytesMut::with_capacity(BLOCK.max(bytes.len()));
        }
        self.block.extend_from_slice(bytes);
        self.block.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_blocks_and_keep_their_bytes() {
        let mut arena = Arena::default();
        let messages: Vec<Vec<u8>> =
            (0..2000u32).map(|i| format!("{{\"id\":{i},\"pad\":\"{}\"}}", "x".repeat((i % 90) as usize)).into_bytes()).collect();
        let copies: Vec<Bytes> = messages.iter().map(|m| arena.copy(m)).collect();
        for (m, c) in messages.iter().zip(&copies) {
            assert_eq!(&c[..], &m[..]);
        }
        // Consecutive copies sit next to each other in one block, until it is full.
        let total: usize = messages.iter().map(Vec::len).sum();
        let mut blocks = 1;
        for pair in copies.windows(2) {
            if pair[0].as_ptr().wrapping_add(pair[0].len()) != pair[1].as_ptr() {
                blocks += 1;
            }
        }
        let least = total.div_ceil(BLOCK);
        assert!(least >= 2, "the test spans blocks");
        assert!((least..=least + 1).contains(&blocks), "{blocks} blocks for {total} bytes");
    }

    #[test]
    fn a_message_larger_than_a_block_gets_a_block_of_its_own() {
        let mut arena = Arena::default();
        let small = arena.copy(b"abc");
        let big = arena.copy(&vec![7u8; BLOCK + 10]);
        assert_eq!(big.len(), BLOCK + 10);
        assert!(big.iter().all(|&b| b == 7));
        assert_eq!(&small[..], b"abc");
        let after = arena.copy(b"def");
        assert_eq!(&after[..], b"def");
    }
}
