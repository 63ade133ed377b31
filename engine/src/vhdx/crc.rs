//! CRC-32C as VHDX's structures use it. A header (4 KiB) or a region table (64 KiB) is
//! mostly zeros after its fields; appending zeros to a CRC is a linear map of its state,
//! kept for each power of two from 64 bytes up, so a structure's checksum costs its used
//! bytes and a few table lookups instead of a pass over its whole size.

use std::sync::OnceLock;

/// Bytes of the smallest precomputed run of zeros (shorter runs are summed directly).
const LINE: u64 = 64;
/// Runs of `LINE << i` zeros for i in 0..LEVELS: up to 2^41 bytes in one map each.
const LEVELS: usize = 36;

static ZEROS: [u8; LINE as usize] = [0; LINE as usize];

/// Column j of level i: the state after `LINE << i` zeros from the state `1 << j`.
type ZeroMap = [u32; 32];

fn zero_maps() -> &'static [ZeroMap; LEVELS] {
    static MAPS: OnceLock<[ZeroMap; LEVELS]> = OnceLock::new();
    MAPS.get_or_init(|| {
        let mut maps = [[0u32; 32]; LEVELS];
        // The crate's CRC inverts its state on the way in and out; the map is of the
        // state itself.
        for (j, col) in maps[0].iter_mut().enumerate() {
            *col = !crc32c::crc32c_append(!(1u32 << j), &ZEROS);
        }
        for i in 1..LEVELS {
            let half = maps[i - 1];
            for j in 0..32 {
                maps[i][j] = apply(&half, half[j]);
            }
        }
        maps
    })
}

/// The state `x` after the zeros of `map`: the XOR of the columns of `x`'s set bits.
fn apply(map: &ZeroMap, x: u32) -> u32 {
    map.iter()
        .enumerate()
        .fold(0, |r, (j, col)| r ^ (col & 0u32.wrapping_sub((x >> j) & 1)))
}

/// `crc` extended by `n` zero bytes, as `crc32c_append` over them would give it.
pub fn append_zeros(crc: u32, n: u64) -> u32 {
    let (lines, rest) = (n / LINE, (n % LINE) as usize);
    let mut state = !crc;
    let maps = zero_maps();
    for (i, map) in maps.iter().enumerate() {
        if lines >> i & 1 == 1 {
            state = apply(map, state);
        }
    }
    // Beyond the largest map (never in an image of this world): the largest, repeated.
    for _ in 0..lines >> LEVELS {
        for _ in 0..2 {
            state = apply(&maps[LEVELS - 1], state);
        }
    }
    crc32c::crc32c_append(!state, &ZEROS[..rest])
}

/// The length of `bytes` without its trailing zeros (scanned a line at a time).
pub fn used_len(bytes: &[u8]) -> usize {
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(LINE as usize);
        let line = &bytes[start..end];
        // An OR over the line vectorises; only a line with data is searched.
        if line.iter().fold(0, |a, &b| a | b) != 0 {
            return start + line.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        }
        end = start;
    }
    0
}

/// CRC-32C of `buf` with the 4-byte checksum field at `field` taken as zero.
pub fn crc32c_with_zeroed_field(buf: &[u8], field: usize) -> u32 {
    let c = crc32c::crc32c(&buf[..field]);
    let c = crc32c::crc32c_append(c, &[0u8; 4]);
    let tail = &buf[field + 4..];
    let used = used_len(tail);
    let c = crc32c::crc32c_append(c, &tail[..used]);
    append_zeros(c, (tail.len() - used) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_zeros_equals_summing_them() {
        let zeros = vec![0u8; 300_000];
        for start in [0u32, 1, 0xDEAD_BEEF, u32::MAX] {
            for n in [
                0usize,
                1,
                63,
                64,
                65,
                4096,
                4097,
                65_536 - 20,
                131_072,
                300_000,
            ] {
                assert_eq!(
                    append_zeros(start, n as u64),
                    crc32c::crc32c_append(start, &zeros[..n]),
                    "{n} zeros after {start:#x}"
                );
            }
        }
    }

    #[test]
    fn zeroed_field_checksum_equals_the_plain_one() {
        for used in [0usize, 3, 8, 9, 100, 4095, 4096] {
            let mut b = vec![0u8; 4096];
            for (i, x) in b[..used].iter_mut().enumerate() {
                *x = (i % 251) as u8 + 1;
            }
            let mut plain = b.clone();
            plain[4..8].fill(0);
            assert_eq!(
                crc32c_with_zeroed_field(&b, 4),
                crc32c::crc32c(&plain),
                "{used} bytes used"
            );
        }
    }

    #[test]
    fn used_len_drops_only_trailing_zeros() {
        assert_eq!(used_len(&[]), 0);
        assert_eq!(used_len(&[0; 200]), 0);
        for at in [0usize, 1, 63, 64, 65, 127, 199] {
            let mut b = vec![0u8; 200];
            b[at] = 7;
            assert_eq!(used_len(&b), at + 1, "last byte with data at {at}");
            b[0] = 1;
            assert_eq!(used_len(&b), at + 1, "and a byte before it");
        }
    }
}
