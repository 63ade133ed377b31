//! The messages agent and server exchange, and their sizes on the wire.
//!
//! Every message starts with a header: one byte of kind and the block index (u64), 9 bytes.
//! - agent → server, one per compared block: [`DigestMessage`], the header plus a 32-byte
//!   blake3 digest, or the header alone when the block reads zeros (nothing was hashed);
//! - server → agent, one per differing block: [`BlockRequest`], the header alone;
//! - agent → server, the answer: [`BlockMessage`], the header plus the block's bytes (those
//!   not excluded), or the header alone when the block reads zeros.

/// Bytes of a message header: kind (u8) and block index (u64).
pub const HEADER_LEN: u64 = 9;
/// Bytes of a block digest (blake3).
pub const DIGEST_LEN: u64 = 32;

/// What one side knows of a block's content after reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Reads zeros (unallocated, or read and found zero): no bytes were hashed.
    Zero,
    /// The blake3 digest of the block's included bytes, in order.
    Digest([u8; DIGEST_LEN as usize]),
}

/// Agent → server: the summary of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestMessage {
    pub block: u64,
    pub summary: Summary,
}

impl DigestMessage {
    pub fn wire_len(&self) -> u64 {
        match self.summary {
            Summary::Zero => HEADER_LEN,
            Summary::Digest(_) => HEADER_LEN + DIGEST_LEN,
        }
    }
}

/// Server → agent: send me this block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRequest {
    pub block: u64,
}

impl BlockRequest {
    pub fn wire_len(&self) -> u64 {
        HEADER_LEN
    }
}

/// The content of a block the agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The block's included bytes, concatenated in order.
    Data(&'a [u8]),
    /// The block reads zeros: nothing follows the header.
    Zeros,
}

/// Agent → server: one block's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMessage<'a> {
    pub block: u64,
    pub payload: Payload<'a>,
}

impl BlockMessage<'_> {
    /// Bytes of block content carried (the header excluded).
    pub fn payload_len(&self) -> u64 {
        match self.payload {
            Payload::Data(d) => d.len() as u64,
            Payload::Zeros => 0,
        }
    }
    pub fn wire_len(&self) -> u64 {
        HEADER_LEN + self.payload_len()
    }
}
