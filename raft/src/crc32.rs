//! CRC-32 (IEEE 802.3, the one of zip and PNG), to detect a damaged state file.

/// The reversed IEEE polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// The CRC-32 of `bytes`. Computed bit by bit: the state file is 29 bytes, so a lookup
/// table would buy nothing.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let low_bit_set = crc & 1 == 1;
            crc >>= 1;
            if low_bit_set {
                crc ^= POLYNOMIAL;
            }
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::crc32;

    /// The standard check value of CRC-32/IEEE, so files stay readable by other tools.
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
