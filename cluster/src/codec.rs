//! The wire encoding of envelopes: length-prefixed frames with a bincode payload.
//!
//! This is the only module that uses bincode, so the payload encoding can be swapped
//! here without touching connections or the in-process network.
//!
//! # Decode limit
//!
//! A frame is at most `max_frame_size` bytes, length prefix included, and its payload
//! must decode to exactly `(message id, message)` with no trailing bytes. The payload
//! decoder runs with a size limit of [`decode_limit`]`(max_frame_size)`: the largest
//! power of two not above `max_frame_size` (bincode's limit is a const generic, so it
//! comes in power-of-two buckets, and rounding down keeps it within the frame limit).
//! Bincode charges against the limit the in-memory size of what it decodes: 1 byte for
//! a `u8` or `bool`, 8 for the message id and for every `u64`, `usize` and length
//! prefix however short its varint on the wire, 16 for a `u128`, 4 for an enum variant
//! index, plus the bytes of every string and byte buffer. So:
//!
//! - a message whose decoded size exceeds the limit is refused as
//!   [`FrameError::Malformed`] even when its frame fits, and a length field claiming
//!   more than the limit is refused before anything is reserved for it, so no frame
//!   makes the decoder reserve more than `max_frame_size` bytes for strings and byte
//!   buffers;
//! - sequences and maps, a plain `Vec<u8>` included (serde treats it as a sequence),
//!   are reserved nothing from the length they claim: the payload is decoded through a
//!   wrapper ([`capped`]) that hides that length from serde's visitors, so a container
//!   starts empty and grows only as its elements are decoded and charged. A `Vec`
//!   doubles, so its buffer is at most twice the in-memory size of the elements
//!   decoded into it, or its first allocation (8 bytes for a `Vec<u8>`, 4 elements up
//!   to 1 KiB each, else 1); other containers follow their own growth (a hash map, with
//!   its 7/8 load factor, up to about 2.5 times its entries). When the in-memory size of the
//!   elements is what bincode charges for them (integers, bools, floats, and tuples and
//!   arrays of them without padding), the vectors of one message together hold at most
//!   twice the limit plus their first allocations, and one of `u8`, `u64` or any other
//!   power-of-two size, growing in powers of two, never exceeds the limit itself;
//! - types whose values occupy more memory than bincode charges for them (boxes,
//!   nested vectors and strings at 24 bytes each, enums with large variants) can make
//!   a message, even a valid one, occupy more than the limit in proportion: that is a
//!   property of the message type. Elements that take no bytes on the wire and are
//!   charged nothing (`()`, `Box<()>`) are bounded only by the length claimed, so a
//!   message type should not contain sequences of them;
//! - a `Vec<u8>` or `String` message decodes to its length plus 16, so the largest
//!   that passes is the limit minus 16 (4080 bytes for a 4096-byte maximum);
//! - [`encode_frame`] counts the same way and refuses what the receiver would refuse
//!   ([`SendError::DecodedTooLarge`]), so sender and receiver agree as long as they
//!   are configured with the same maximum.
//!
//! # Nesting limit
//!
//! Serde decodes a nested value by recursing, so without a bound a recursive message
//! type (an enum holding `Box<Self>`) would let a frame nest as deep as its size allows,
//! and a few hundred kilobytes of it overflow the stack and abort the process. The
//! decoder therefore refuses any value nested deeper than 128 levels as
//! [`FrameError::Malformed`] ("nesting deeper than 128 levels"), before descending into
//! it. The envelope `(message id, message)` is level 0 and the message level 1; each
//! element of a sequence, tuple or array, each field of a struct or variant, each map
//! key and value, the contents of a `Some`, of a newtype struct and of a newtype
//! variant are one level deeper than what holds them. A `Box` is not a level, so each
//! link of `enum K { A, B(Box<K>) }` takes one level (127 links pass) and each link of
//! `Option<Box<K>>` two. 128 levels is ample for any sane message, and their recursion
//! takes well under 256 KiB of stack even unoptimized. [`encode_frame`] does not check
//! the depth: a message nested deeper is sent and then refused by its receiver.

use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::Decoder;

use crate::error::{FrameError, SendError};

mod capped;
mod count;

use capped::CappedSeed;

/// Bytes taken by the big-endian `u32` length prefix of every frame.
pub(crate) const HEADER_LEN: usize = 4;

/// Most bincode charges against its decode limit per payload byte: 16 for a `u128`
/// whose varint took one byte.
const MAX_CHARGE_PER_BYTE: usize = 16;

/// Room reserved for a typical small envelope, so most encodings need one allocation.
const TYPICAL_FRAME: usize = 128;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends encoded bytes straight to the frame buffer. Serde hands over many tiny
/// pieces (one byte per `u8` of a `Vec<u8>`), so this path must be short.
struct FrameWriter<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for FrameWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Encodes one envelope as a complete frame (length prefix included), ready to be
/// written as is. Fails if the frame would exceed `max_frame_size` bytes
/// ([`SendError::FrameTooLarge`]) or if the receiver could not decode it within its
/// limit ([`decode_limit`], [`SendError::DecodedTooLarge`]), so that every frame this
/// accepts is accepted by a receiver with the same maximum, except a message nested
/// deeper than the receiver allows, which is not checked here (see the module docs).
///
/// Public for tools and tests that speak the protocol on a raw socket.
pub fn encode_frame<M: Serialize>(
    message_id: u64,
    message: &M,
    max_frame_size: usize,
) -> Result<Bytes, SendError> {
    let mut buf = BytesMut::with_capacity(TYPICAL_FRAME);
    append_frame(message_id, message, max_frame_size, &mut buf)?;
    Ok(buf.freeze())
}

thread_local! {
    /// Each thread's buffer for encoding frames on the send path, kept between sends
    /// so that sending a message allocates nothing.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(TYPICAL_FRAME));
}

/// Scratch buffers that grew beyond this for one large frame are not kept.
const SCRATCH_KEPT: usize = 64 * 1024;

/// Encodes one envelope as [`encode_frame`] does and passes the frame to `use_frame`,
/// without allocating: the frame lives in a buffer of this thread's, reused.
pub(crate) fn with_frame<M: Serialize, R>(
    message_id: u64,
    message: &M,
    max_frame_size: usize,
    use_frame: impl FnOnce(&[u8]) -> R,
) -> Result<R, SendError> {
    SCRATCH.with(|scratch| {
        // A message whose serialization itself sends (re-entering here) gets a
        // buffer of its own rather than a panic.
        let Ok(mut buf) = scratch.try_borrow_mut() else {
            let frame = encode_frame(message_id, message, max_frame_size)?;
            return Ok(use_frame(&frame));
        };

        buf.clear();
        let encoded = append_frame(message_id, message, max_frame_size, &mut buf);
        let result = encoded.map(|()| use_frame(&buf));
        if buf.capacity() > SCRATCH_KEPT {
            *buf = BytesMut::with_capacity(TYPICAL_FRAME);
        }
        result
    })
}

/// Appends one frame to `buf`, or says why not; a failure may leave part of a frame
/// behind, so callers start from an empty buffer.
fn append_frame<M: Serialize>(
    message_id: u64,
    message: &M,
    max_frame_size: usize,
    buf: &mut BytesMut,
) -> Result<(), SendError> {
    let start = buf.len();
    buf.put_u32(0);
    let mut writer = FrameWriter(buf);
    bincode::serde::encode_into_writer((message_id, message), &mut writer, bincode_config())
        .map_err(|e| SendError::Encode(e.to_string()))?;

    let size = buf.len() - start;
    if size > max_frame_size {
        return Err(SendError::FrameTooLarge {
            size,
            max: max_frame_size,
        });
    }

    // Refuse here what the receiver's decode limit would refuse. Bincode charges at
    // most 16 per payload byte (a u128 in a one-byte varint), so only payloads above a
    // sixteenth of the limit need the count, which walks the message a second time.
    let limit = decode_limit(max_frame_size);
    if (size - HEADER_LEN).saturating_mul(MAX_CHARGE_PER_BYTE) > limit {
        let decoded = count::decoded_size(&(message_id, message))
            .map_err(|e| SendError::Encode(e.to_string()))?;
        if decoded > limit {
            return Err(SendError::DecodedTooLarge {
                size: decoded,
                max: limit,
            });
        }
    }

    // The payload length fits in u32 because it is below max_frame_size, itself at
    // most MAX_FRAME_SIZE_LIMIT (64 MiB), checked by Config::validate.
    let payload_len = (size - HEADER_LEN) as u32;
    buf[start..start + HEADER_LEN].copy_from_slice(&payload_len.to_be_bytes());
    Ok(())
}

/// Decodes an envelope payload (the frame without its length prefix) into the message
/// id and the message, with the decode limit of `max_frame_size` (see
/// [`decode_limit`]). The whole payload must be consumed: trailing bytes are an error.
///
/// A payload whose decoded size, as bincode counts it, exceeds the limit is
/// [`FrameError::Malformed`]. No string or byte buffer is reserved beyond the limit, and
/// no sequence or map is reserved anything, whatever length the payload claims (see the
/// module docs for the bound on what they grow to). A value nested deeper than 128
/// levels is [`FrameError::Malformed`] too, so no payload can overflow the stack.
pub fn decode_payload<M: DeserializeOwned>(
    payload: &[u8],
    max_frame_size: usize,
) -> Result<(u64, M), FrameError> {
    let (value, used) = decode_with_limit::<(u64, M)>(payload, max_frame_size)?;
    if used != payload.len() {
        return Err(FrameError::TrailingBytes(payload.len() - used));
    }
    Ok(value)
}

/// The most a payload may decode to, as bincode counts it, for frames of at most
/// `max_frame_size` bytes: the largest power of two not above `max_frame_size`, so
/// exactly `max_frame_size` when that is a power of two (as the default 1 MiB is) and
/// down to just over half of it otherwise (1000 gives 512).
///
/// Bincode's limit is a compile-time constant, so it comes in power-of-two buckets; the
/// bucket is rounded down so that decoding never reserves more than the frame limit.
pub fn decode_limit(max_frame_size: usize) -> usize {
    1 << limit_bits(max_frame_size)
}

/// Bucket exponent of [`decode_limit`]: floor(log2), at least 0, at most
/// `LARGEST_BUCKET_BITS`.
fn limit_bits(max_frame_size: usize) -> u32 {
    let floor_log2 = usize::BITS - 1 - max_frame_size.max(1).leading_zeros();
    floor_log2.min(LARGEST_BUCKET_BITS)
}

/// 64 MiB, the largest maximum frame size `Config::validate` accepts.
const LARGEST_BUCKET_BITS: u32 = 26;

/// Every power-of-two limit from 1 byte to 64 MiB, chosen at run time. The value is
/// decoded through [`capped`], so no sequence or map is reserved room from its claimed
/// length.
macro_rules! decode_in_bucket {
    ($payload:expr, $bits:expr, $($k:literal)*) => {
        match $bits {
            $( $k => bincode::serde::seed_decode_from_slice(
                CappedSeed(PhantomData, 0),
                $payload,
                bincode_config().with_limit::<{ 1usize << $k }>(),
            ), )*
            // limit_bits never exceeds LARGEST_BUCKET_BITS; a smaller limit than asked
            // for is the safe side should that ever change.
            _ => bincode::serde::seed_decode_from_slice(
                CappedSeed(PhantomData, 0),
                $payload,
                bincode_config().with_limit::<{ 1usize << LARGEST_BUCKET_BITS }>(),
            ),
        }
    };
}

fn decode_with_limit<T: DeserializeOwned>(
    payload: &[u8],
    max_frame_size: usize,
) -> Result<(T, usize), FrameError> {
    let decoded: Result<(T, usize), bincode::error::DecodeError> = decode_in_bucket!(
        payload, limit_bits(max_frame_size),
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25
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

    /// A frame made by encode_frame decodes back to the same id and message.
    #[test]
    fn a_frame_round_trips_through_encode_and_decode() {
        let frame = encode_frame(7, &"hello".to_owned(), 1024).unwrap();
        let mut buf = BytesMut::from(&frame[..]);
        let payload = FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
        let (id, text): (u64, String) = decode_payload(&payload, 1024).unwrap();
        assert_eq!((id, text.as_str()), (7, "hello"));
        assert!(buf.is_empty());
    }

    /// A string length far beyond the decode limit is refused, not reserved.
    #[test]
    fn a_string_claiming_more_bytes_than_the_frame_is_refused() {
        // message id 1, then a string whose varint length claims 2^31 bytes.
        let payload = [1u8, 0xFC, 0, 0, 0, 0x80, 0, 0, 0, 0];
        let result = decode_payload::<String>(&payload, 1024 * 1024);
        assert!(
            matches!(result, Err(FrameError::Malformed(_))),
            "{result:?}"
        );
    }

    /// A message whose frame exceeds the maximum is refused before it is sent.
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
