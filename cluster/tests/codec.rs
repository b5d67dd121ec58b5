//! The frame codec on its own: partial input, many frames per read, truncation,
//! oversized and absurd lengths, trailing bytes, and arbitrary garbage.

mod common;

use bytes::{BufMut, BytesMut};
use cluster::{decode_payload, encode_frame, FrameDecoder, FrameError};
use common::{note, Note};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const MAX: usize = 1024 * 1024;

fn frames(count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in 0..count {
        out.extend_from_slice(&encode_frame(seq, &note(seq), MAX).expect("encode"));
    }
    out
}

/// Decodes every whole frame in `buf` into notes.
fn drain(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<(u64, Note)> {
    let mut out = Vec::new();
    while let Some(payload) = decoder.decode(buf).expect("valid input") {
        out.push(decode_payload(&payload).expect("valid payload"));
    }
    out
}

/// Three frames split into two reads at every possible point decode to the same
/// three envelopes, and nothing is produced before a frame is whole.
#[test]
fn input_split_at_every_point_decodes_the_same_frames() {
    let bytes = frames(3);
    for split in 0..=bytes.len() {
        let mut decoder = FrameDecoder::new(MAX);
        let mut buf = BytesMut::from(&bytes[..split]);
        let mut got = drain(&mut decoder, &mut buf);
        buf.extend_from_slice(&bytes[split..]);
        got.extend(drain(&mut decoder, &mut buf));

        let expected: Vec<(u64, Note)> = (0..3).map(|s| (s, note(s))).collect();
        assert_eq!(got, expected, "split at {split}");
        assert!(buf.is_empty());
        assert!(decoder.decode_eof(&mut buf).expect("clean end").is_none());
    }
}

/// A thousand frames arriving in one read all decode, in order.
#[test]
fn many_frames_in_one_read_all_decode_in_order() {
    let mut buf = BytesMut::from(&frames(1000)[..]);
    let got = drain(&mut FrameDecoder::new(MAX), &mut buf);
    assert_eq!(got.len(), 1000);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (id, n))| *id == i as u64 && *n == note(*id)));
}

/// A header cut by the end of the stream is "not yet" while the stream is open and
/// an error at its end; so is a frame body cut short.
#[test]
fn a_frame_cut_by_end_of_stream_is_an_error() {
    let bytes = frames(1);
    for cut in [2, 4, bytes.len() - 1] {
        let mut decoder = FrameDecoder::new(MAX);
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert!(decoder.decode(&mut buf).expect("need more").is_none());
        let end = decoder.decode_eof(&mut buf);
        assert!(matches!(end, Err(FrameError::Truncated { buffered }) if buffered == cut));
    }
}

/// A length just above the maximum is refused.
#[test]
fn a_length_above_the_maximum_is_refused() {
    let mut buf = BytesMut::new();
    buf.put_u32(1024 - 4 + 1);
    let result = FrameDecoder::new(1024).decode(&mut buf);
    assert!(matches!(
        result,
        Err(FrameError::TooLong {
            len: 1021,
            max: 1024
        })
    ));

    let mut fits = BytesMut::new();
    fits.put_u32(1024 - 4);
    assert!(FrameDecoder::new(1024)
        .decode(&mut fits)
        .expect("fits")
        .is_none());
}

/// A header claiming 4 GiB is refused at once, without reserving room for the frame.
#[test]
fn a_length_claiming_gigabytes_is_refused_without_allocating() {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(u32::MAX);
    let capacity = buf.capacity();
    let result = FrameDecoder::new(MAX).decode(&mut buf);
    assert!(matches!(result, Err(FrameError::TooLong { .. })));
    assert_eq!(
        buf.capacity(),
        capacity,
        "decoder reserved room for the claimed frame"
    );
}

/// A payload followed by bytes that belong to no field is malformed.
#[test]
fn trailing_bytes_after_the_payload_are_malformed() {
    let frame = encode_frame(1, &note(1), MAX).expect("encode");
    let mut payload = frame[4..].to_vec();
    payload.push(0);
    let result = decode_payload::<Note>(&payload);
    assert!(
        matches!(result, Err(FrameError::TrailingBytes(1))),
        "{result:?}"
    );
}

/// A length field inside the payload claiming gigabytes is refused, not allocated.
#[test]
fn a_string_length_claiming_gigabytes_is_refused() {
    // message id 0, seq 0, then a string length of 2^62 as a varint (0xFD + u64).
    let mut payload = vec![0u8, 0u8, 0xFD];
    payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let result = decode_payload::<Note>(&payload);
    assert!(
        matches!(result, Err(FrameError::Malformed(_))),
        "{result:?}"
    );
}

proptest! {
    /// Arbitrary bytes never panic: every outcome is a frame, "need more", or an error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut decoder = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(payload)) => {
                    let _ = decode_payload::<Note>(&payload);
                    let _ = decode_payload::<Vec<String>>(&payload);
                }
                Ok(None) => {
                    let _ = decoder.decode_eof(&mut buf);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    /// Arbitrary bytes behind a valid length prefix never panic the payload decoder.
    #[test]
    fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload::<Note>(&bytes);
        let _ = decode_payload::<(u64, Vec<u64>, Option<String>)>(&bytes);
    }
}
