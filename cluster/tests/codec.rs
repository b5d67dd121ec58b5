//! The frame codec on its own: partial input, many frames per read, truncation,
//! oversized and absurd lengths, trailing bytes, and arbitrary garbage.

mod common;

use bytes::{BufMut, BytesMut};
use cluster::{decode_limit, decode_payload, encode_frame, FrameDecoder, FrameError, SendError};
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
        out.push(decode_payload(&payload, MAX).expect("valid payload"));
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
    let result = decode_payload::<Note>(&payload, MAX);
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
    let result = decode_payload::<Note>(&payload, MAX);
    assert!(
        matches!(result, Err(FrameError::Malformed(_))),
        "{result:?}"
    );
}

/// The decode limit is the largest power of two not above the maximum frame size: the
/// maximum itself when it is a power of two, rounded down otherwise.
#[test]
fn the_decode_limit_rounds_the_maximum_frame_size_down_to_a_power_of_two() {
    assert_eq!(decode_limit(1024 * 1024), 1024 * 1024);
    assert_eq!(decode_limit(4096), 4096);
    assert_eq!(decode_limit(4095), 2048);
    assert_eq!(decode_limit(1000), 512);
    assert_eq!(decode_limit(64), 64);
    assert_eq!(decode_limit(64 * 1024 * 1024), 64 * 1024 * 1024);
}

/// Message id 1, then a string or byte buffer whose length claims 1 MiB (a `u32`
/// varint), and only a few bytes of it.
fn payload_claiming_a_mebibyte() -> Vec<u8> {
    let mut payload = vec![1u8, 0xFC];
    payload.extend_from_slice(&(1u32 << 20).to_le_bytes());
    payload.extend_from_slice(b"abc");
    payload
}

/// Under a 4 KiB frame limit, a payload claiming a 1 MiB string gets a clean error: the
/// claim is above the decode limit, so nothing is reserved for it.
#[test]
fn a_string_claiming_a_mebibyte_is_refused_under_a_four_kib_limit() {
    let result = decode_payload::<String>(&payload_claiming_a_mebibyte(), 4096);
    assert!(
        matches!(result, Err(FrameError::Malformed(_))),
        "{result:?}"
    );
}

/// Bincode counts in-memory sizes, so a frame well within the maximum can still decode
/// to more than the limit: 600 `u64`s of value 1 take 600 bytes on the wire but count
/// 4800. The sender refuses such a message, and so would the receiver.
#[test]
fn a_message_decoding_to_more_than_the_limit_is_refused_on_both_sides() {
    let message = vec![1u64; 600];
    let frame = encode_frame(1, &message, MAX).expect("fits the larger limit");
    assert!(frame.len() < 4096, "the frame itself fits: {}", frame.len());

    let sent = encode_frame(1, &message, 4096);
    assert!(
        matches!(sent, Err(SendError::DecodedTooLarge { max: 4096, .. })),
        "{sent:?}"
    );
    let received = decode_payload::<Vec<u64>>(&frame[4..], 4096);
    assert!(
        matches!(received, Err(FrameError::Malformed(_))),
        "{received:?}"
    );
}

/// Whether a receiver with frame limit `max` accepts `frame`: the header check first,
/// then the payload decoder.
fn receiver_accepts<M: serde::de::DeserializeOwned>(frame: &[u8], max: usize) -> bool {
    let mut buf = BytesMut::from(frame);
    match FrameDecoder::new(max).decode(&mut buf) {
        Ok(Some(payload)) => decode_payload::<M>(&payload, max).is_ok(),
        _ => false,
    }
}

/// For byte payloads (`Vec<u8>`, `String`) of every size around the limit, with short
/// and long message ids, `encode_frame` accepts exactly the frames a receiver with the
/// same maximum accepts, whether or not the maximum is a power of two.
#[test]
fn the_sender_accepts_exactly_the_byte_payloads_the_receiver_accepts() {
    for max in [4096, 1000, 64] {
        let limit = decode_limit(max);
        let mut largest_accepted = 0;
        for len in limit.saturating_sub(40)..=max + 8 {
            for id in [1, u64::MAX] {
                let bytes = vec![7u8; len];
                let frame = encode_frame(id, &bytes, MAX).expect("fits the larger limit");
                let sent = encode_frame(id, &bytes, max);
                assert_eq!(
                    sent.is_ok(),
                    receiver_accepts::<Vec<u8>>(&frame, max),
                    "Vec<u8> of {len}, id {id}, max {max}: {sent:?}"
                );
                if sent.is_ok() {
                    largest_accepted = largest_accepted.max(len);
                }

                let text = "x".repeat(len);
                let frame = encode_frame(id, &text, MAX).expect("fits the larger limit");
                let sent = encode_frame(id, &text, max);
                assert_eq!(
                    sent.is_ok(),
                    receiver_accepts::<String>(&frame, max),
                    "String of {len}, id {id}, max {max}: {sent:?}"
                );
            }
        }

        // Both sides charge 8 bytes for the id and 8 for the length.
        assert_eq!(largest_accepted, limit - 16, "max {max}");
    }
}

/// A byte payload just below the limit round-trips through encode_frame and
/// decode_payload intact.
#[test]
fn a_byte_payload_just_below_the_limit_round_trips() {
    let bytes: Vec<u8> = (0..4096 - 16).map(|i| i as u8).collect();
    let frame = encode_frame(9, &bytes, 4096).expect("fits");
    let mut buf = BytesMut::from(&frame[..]);
    let payload = FrameDecoder::new(4096)
        .decode(&mut buf)
        .expect("valid")
        .expect("whole");
    let (id, back): (u64, Vec<u8>) = decode_payload(&payload, 4096).expect("decodes");
    assert_eq!((id, back), (9, bytes));
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
                    let _ = decode_payload::<Note>(&payload, 1024);
                    let _ = decode_payload::<Vec<String>>(&payload, 1024);
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
        let _ = decode_payload::<Note>(&bytes, MAX);
        let _ = decode_payload::<(u64, Vec<u64>, Option<String>)>(&bytes, MAX);
    }
}
