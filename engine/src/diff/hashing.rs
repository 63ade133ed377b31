//! Checking and digesting a block: one that reads zeros is never hashed; any other is
//! hashed whole with blake3.

use super::protocol::Summary;
use crate::vhdx::is_zero;

/// The summary of one block's included bytes (`None`: not read, it is unallocated).
pub(crate) fn summarise(bytes: Option<&[u8]>) -> Summary {
    match bytes {
        Some(b) if !is_zero(b) => Summary::Digest(*blake3::hash(b).as_bytes()),
        _ => Summary::Zero,
    }
}
