//! The state file of `raft::FileStorage`, written and read independently of it so the
//! tests can give a server a state it never had (version 1, 33 bytes, little-endian:
//! magic `RAFTSTAT`, version `u32`, term `u64`, vote flag `u8`, voted-for `u64`, then
//! the CRC-32 (IEEE) of the 29 bytes before it).

const MAGIC: &[u8; 8] = b"RAFTSTAT";
const BODY_LEN: usize = 29;

/// The bytes of a state file holding `term` and `voted_for`.
pub fn encode_state(term: u64, voted_for: Option<u64>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(BODY_LEN + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&term.to_le_bytes());
    bytes.push(u8::from(voted_for.is_some()));
    bytes.extend_from_slice(&voted_for.unwrap_or(0).to_le_bytes());
    let crc = crc32(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// The term and vote of a state file, or `None` if the bytes are not a valid one.
pub fn decode_state(bytes: &[u8]) -> Option<(u64, Option<u64>)> {
    let version = 1u32.to_le_bytes();
    if bytes.len() != BODY_LEN + 4 || &bytes[..8] != MAGIC || bytes[8..12] != version {
        return None;
    }
    let stored_crc = u32::from_le_bytes(bytes[BODY_LEN..].try_into().ok()?);
    if stored_crc != crc32(&bytes[..BODY_LEN]) {
        return None;
    }
    let term = u64::from_le_bytes(bytes[12..20].try_into().ok()?);
    let voted_id = u64::from_le_bytes(bytes[21..29].try_into().ok()?);
    match bytes[20] {
        0 => Some((term, None)),
        1 => Some((term, Some(voted_id))),
        _ => None,
    }
}

/// CRC-32 as in zlib and Ethernet: reflected polynomial 0xEDB88320, all ones in and out.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard check value of CRC-32 over "123456789".
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// What is encoded decodes to the same term and vote.
    #[test]
    fn encoded_state_decodes_to_itself() {
        for state in [(0, None), (7, Some(3)), (u64::MAX, Some(u64::MAX))] {
            assert_eq!(decode_state(&encode_state(state.0, state.1)), Some(state));
        }
    }
}
