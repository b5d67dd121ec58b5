//! The wire encoding of envelopes: length-prefixed frames with a bincode payload.
//!
//! This is the only module that uses bincode, so the payload encoding can be swapped
//! here without touching connections or the in-process network.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::Decoder;

use crate::error::{FrameError, SendError};

/// Bytes taken by the big-endian `u32` length prefix of every frame.
pub(crate) const HEADER_LEN: usize = 4;

/// Room reserved for a typical small envelope, so most encodings need one allocation.
const TYPICAL_FRAME: usize = 128;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends encoded bytes straight to the frame buffer. Serde hands over many tiny
/// pieces (one byte per `u8` of a `Vec<u8>`), so this path must be short.
struct FrameWriter(BytesMut);

impl bincode::enc::write::Writer for FrameWriter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Encodes one envelope as a complete frame (length prefix included), ready to be
/// written as is. Fails if the frame would exceed `max_frame_size` bytes.
///
/// Public for tools and tests that speak the protocol on a raw socket.
pub fn encode_frame<M: Serialize>(
    message_id: u64,
    message: &M,
    max_frame_size: usize,
) -> Result<Bytes, SendError> {
    let mut writer = FrameWriter(BytesMut::with_capacity(TYPICAL_FRAME));
    writer.0.put_u32(0);
    bincode::serde::encode_into_writer((message_id, message), &mut writer, bincode_config())
        .map_err(|e| SendError::Encode(e.to_string()))?;
    let mut buf = writer.0;

    let size = buf.len();
    if size > max_frame_size {
        return Err(SendError::FrameTooLarge {
            size,
            max: max_frame_size,
        });
    }

    // The payload length fits in u32 because it is below max_frame_size, itself at
    // most MAX_FRAME_SIZE_LIMIT (64 MiB), checked by Config::validate.
    let payload_len = (size - HEADER_LEN) as u32;
    buf[..HEADER_LEN].copy_from_slice(&payload_len.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes an envelope payload (the frame without its length prefix) into the message
/// id and the message. The whole payload must be consumed: trailing bytes are an error.
pub fn decode_payload<M: DeserializeOwned>(payload: &[u8]) -> Result<(u64, M), FrameError> {
    let (value, used) = decode_with_limit::<(u64, M)>(payload)?;
    if used != payload.len() {
        return Err(FrameError::TrailingBytes(payload.len() - used));
    }
    Ok(value)
}

/// Bincode counts toward its limit the in-memory size of what it decodes: 8 bytes for
/// a `u64` even when the varint on the wire took 1, up to 16 for a `u128`. So the limit
/// given is 16 times the payload length, rounded up to a power of two because the limit
/// is a const generic while the length is known only at run time. A string or byte
/// buffer claiming more than that is refused before anything is reserved for it, so one
/// frame can never make the decoder reserve more than 32 times its own length (32 MiB
/// for the default 1 MiB maximum), however large the length it claims inside.
const LIMIT_FACTOR_BITS: u32 = 4;

macro_rules! decode_in_bucket {
    ($payload:expr, $bits:expr, $($k:literal)*) => {
        match $bits {
            $( $k => bincode::serde::decode_from_slice(
                $payload,
                bincode_config().with_limit::<{ 1usize << $k }>(),
            ), )*
            _ => bincode::serde::decode_from_slice(
                $payload,
                bincode_config().with_limit::<{ 1usize << 31 }>(),
            ),
        }
    };
}

fn decode_with_limit<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), FrameError> {
    let bits = payload.len().max(1).next_power_of_two().trailing_zeros() + LIMIT_FACTOR_BITS;
    let decoded: Result<(T, usize), bincode::error::DecodeError> = decode_in_bucket!(
        payload, bits,
        4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
    );
    decoded.map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Splits a byte stream into frame payloads, refusing a length prefix above the
/// maximum before any room is reserved for the frame.
///
/// Follows the tokio-util `Decoder` convention: `Ok(None)` when more bytes are needed,
/// and an error from `decode_eof` when the stream ends inside a frame.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_payload: usize,
    max_frame_size: usize,
}

impl FrameDecoder {
    /// A decoder for frames of at most `max_frame_size` bytes, prefix included.
    pub fn new(max_frame_size: usize) -> FrameDecoder {
        FrameDecoder {
            max_payload: max_frame_size.saturating_sub(HEADER_LEN),
            max_frame_size,
        }
    }
}

impl FrameDecoder {
    /// The payload length of the frame at the start of `src` if all of it is there,
    /// `None` if more bytes are needed, an error if the length is above the maximum.
    /// Lets a reader decode in place without splitting the buffer.
    pub(crate) fn whole_frame(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }

        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&src[..HEADER_LEN]);
        let len = u32::from_be_bytes(header) as usize;
        if len > self.max_payload {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame_size,
            });
        }

        if src.len() < HEADER_LEN + len {
            return Ok(None);
        }
        Ok(Some(len))
    }
}

impl Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.whole_frame(src)? else {
            return Ok(None);
        };
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> io::Error {
        match e {
            FrameError::Io(inner) => inner,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_through_encode_and_decode() {
        let frame = encode_frame(7, &"hello".to_owned(), 1024).unwrap();
        let mut buf = BytesMut::from(&frame[..]);
        let payload = FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
        let (id, text): (u64, String) = decode_payload(&payload).unwrap();
        assert_eq!((id, text.as_str()), (7, "hello"));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_string_claiming_more_bytes_than_the_frame_is_refused() {
        // message id 1, then a string whose varint length claims 2^31 bytes.
        let payload = [1u8, 0xFC, 0, 0, 0, 0x80, 0, 0, 0, 0];
        let result = decode_payload::<String>(&payload);
        assert!(
            matches!(result, Err(FrameError::Malformed(_))),
            "{result:?}"
        );
    }

    #[test]
    fn an_oversized_message_is_refused_at_encode() {
        let big = vec![0u8; 2000];
        let result = encode_frame(1, &big, 1024);
        assert!(matches!(
            result,
            Err(SendError::FrameTooLarge { max: 1024, .. })
        ));
    }
}
