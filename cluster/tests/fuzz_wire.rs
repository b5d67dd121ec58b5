//! Fuzzing the frame decoder and the payload decoder with proptest.
//!
//! cargo-fuzz would need libFuzzer and a nightly toolchain on every machine that runs
//! the tests; proptest runs on stable inside `cargo test`, shrinks a failing input to a
//! small one, and stores it in `proptest-regressions/` so it is replayed forever after.
//!
//! Any bytes, cut into any chunks, fed to `FrameDecoder` and each frame to
//! `decode_payload` for representative message types, must give valid messages or a
//! clean error: never a panic, never a single allocation above the decode limit (at most
//! the maximum frame size) and never more than twice the decode limit live, each plus
//! [`SLACK`], while decoding. A counting global allocator measures the largest single
//! allocation and the peak of live bytes on the decoding thread.
//!
//! `cargo test` runs a few thousand cases; the long run is
//! `PROPTEST_CASES=10000000 cargo test --release -p cluster --test fuzz_wire`.

// The counting allocator must implement `GlobalAlloc`, an unsafe trait; it only
// forwards to `System` and adds bookkeeping, and exists in this test binary alone.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use cluster::{decode_limit, decode_payload, encode_frame, FrameDecoder, FrameError};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::Decoder;

/// What decoding may allocate beyond the maximum frame size: bookkeeping such as the
/// shared header `Bytes` creates when a frame is split off the buffer.
const SLACK: usize = 256;

/// What the codec guarantees (see the crate docs on the decode limit): no sequence or map is
/// reserved room from the length it claims; it grows, by doubling, as its elements are
/// decoded and charged against the decode limit. Vectors of `u8` and `u64`, the only
/// sequences in the fuzzed types, are charged their in-memory size and grow in powers of
/// two from 8 and 32 bytes, so none can outgrow the (power-of-two) decode limit, itself
/// at most the maximum frame size. This bound was 1 MiB until the codec capped the size
/// hint (the first failing inputs are in `proptest-regressions/fuzz_wire.txt`).
fn largest_allowed(max_frame: usize) -> usize {
    decode_limit(max_frame) + SLACK
}

/// The most decoding may hold at once: each vector at most twice what its decoded
/// elements were charged, strings what they were charged, and all those charges within
/// the decode limit. (`Kind::Nested` boxes occupy several times their charge of 5, but
/// the inputs here nest them only a few levels deep, within [`SLACK`].)
fn peak_allowed(max_frame: usize) -> usize {
    2 * decode_limit(max_frame) + SLACK
}

thread_local! {
    /// Whether this thread's allocations are being measured.
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    /// The largest single allocation measured.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated and not yet freed while measuring, and their peak.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// `System`, plus a count of the current thread's allocations while it is tracking.
struct Counting;

fn note_alloc(size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            LARGEST.with(|largest| largest.set(largest.get().max(size)));
            LIVE.with(|live| {
                live.set(live.get() + size as isize);
                PEAK.with(|peak| peak.set(peak.get().max(live.get())));
            });
        }
    });
}

fn note_free(size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            LIVE.with(|live| live.set(live.get() - size as isize));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// bookkeeping touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: `ptr` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation and the peak of live bytes made by `f` on this
/// thread, with its result.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    LARGEST.with(|largest| largest.set(0));
    LIVE.with(|live| live.set(0));
    PEAK.with(|peak| peak.set(0));
    TRACKING.with(|tracking| tracking.set(true));
    let result = f();
    TRACKING.with(|tracking| tracking.set(false));
    let largest = LARGEST.with(Cell::get);
    let peak = PEAK.with(Cell::get).max(0) as usize;
    (result, largest, peak)
}

/// A nested message of the kind a consensus layer sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Request {
    term: u64,
    candidate: u64,
    last_log: Option<(u64, u64)>,
    pre_vote: bool,
    kind: Kind,
    entries: Vec<u64>,
    context: Vec<u8>,
    note: String,
}

/// An enum with unit, tuple and struct variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Heartbeat,
    Vote(u64, bool),
    Append { from: u64, data: Vec<u8> },
    Nested(Option<Box<Kind>>),
}

/// Decodes every frame of `bytes`, given in chunks of the sizes in `cuts`, as `M`,
/// measuring each step. Panics (failing the property) on an allocation beyond the
/// frame limit.
fn feed<M: DeserializeOwned>(bytes: &[u8], cuts: &[usize], max_frame: usize) -> Vec<(u64, M)> {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    let mut rest = bytes;
    let mut cut = cuts.iter().cycle();

    loop {
        let take = cut.next().map_or(rest.len(), |&n| n.min(rest.len()));
        let (chunk, tail) = rest.split_at(take);
        buf.extend_from_slice(chunk);
        rest = tail;
        let at_end = rest.is_empty();

        loop {
            let (frame, largest, _) = measure(|| {
                if at_end {
                    decoder.decode_eof(&mut buf)
                } else {
                    decoder.decode(&mut buf)
                }
            });
            assert!(
                largest <= SLACK,
                "splitting a frame allocated {largest} bytes"
            );
            let payload = match frame {
                Ok(Some(payload)) => payload,
                Ok(None) => break,
                Err(FrameError::TooLong { len, max }) => {
                    assert!(len + 4 > max, "{len} refused under {max}");
                    return decoded;
                }
                Err(error) => {
                    assert!(at_end, "only the end of the input can cut a frame: {error}");
                    return decoded;
                }
            };
            assert!(payload.len() + 4 <= max_frame);

            let decode = || decode_payload::<M>(&payload, max_frame);
            let (message, largest, peak) = measure(decode);
            assert!(
                largest <= largest_allowed(max_frame),
                "decoding {} bytes allocated {largest} at once (max frame {max_frame})",
                payload.len()
            );
            assert!(
                peak <= peak_allowed(max_frame),
                "decoding {} bytes held {peak} at once (max frame {max_frame})",
                payload.len()
            );
            match message {
                Ok(message) => decoded.push(message),
                // The stream is closed after a malformed frame, as a connection does.
                Err(_) => return decoded,
            }
        }
        if at_end {
            return decoded;
        }
    }
}

fn any_kind() -> impl Strategy<Value = Kind> {
    let leaf = prop_oneof![
        Just(Kind::Heartbeat),
        (any::<u64>(), any::<bool>()).prop_map(|(a, b)| Kind::Vote(a, b)),
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(from, data)| Kind::Append { from, data }),
    ];
    leaf.prop_recursive(3, 8, 1, |inner| {
        prop::option::of(inner).prop_map(|kind| Kind::Nested(kind.map(Box::new)))
    })
}

fn any_request() -> impl Strategy<Value = Request> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            any::<Option<(u64, u64)>>(),
            any::<bool>(),
        ),
        any_kind(),
        prop::collection::vec(any::<u64>(), 0..20),
        prop::collection::vec(any::<u8>(), 0..100),
        "\\PC{0,30}",
    )
        .prop_map(
            |((term, candidate, last_log, pre_vote), kind, entries, context, note)| Request {
                term,
                candidate,
                last_log,
                pre_vote,
                kind,
                entries,
                context,
                note,
            },
        )
}

/// Maximum frame sizes: the smallest allowed, sizes that are not powers of two (their
/// decode limit is rounded down), and the default.
fn any_max_frame() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(64usize),
        Just(100),
        Just(1000),
        Just(4096),
        Just(1024 * 1024),
    ]
}

/// Valid frames of requests, then damaged: bytes overwritten, inserted or removed, the
/// stream cut short, or a length prefix replaced.
fn damaged_frames() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((any::<u64>(), any_request()), 1..4),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 0..6),
    )
        .prop_map(|(messages, edits)| {
            let mut bytes = Vec::new();
            for (id, message) in &messages {
                // Cannot fail: the messages are far below the 1 MiB frame used here.
                let frame = encode_frame(*id, message, 1024 * 1024).expect("small message");
                bytes.extend_from_slice(&frame);
            }
            for (at, byte, how) in edits {
                let at = at.index(bytes.len() + 1);
                match how {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        })
}

/// Raw garbage, valid frames damaged, or a plausible header with a random length.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        damaged_frames(),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(len, tail)| {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend(tail);
            bytes
        }),
    ]
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..40, 1..6)
}

/// A few thousand cases by default; `PROPTEST_CASES` overrides the count. Failures are
/// kept in `cluster/proptest-regressions/fuzz_wire.txt` (the tests run in `cluster/`).
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(2000);
    if let Some(cases) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        config.cases = cases;
    }
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(
        "proptest-regressions/fuzz_wire.txt",
    )));
    config
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes in any chunks decode as nested requests, or fail cleanly, within the
    /// frame limit.
    #[test]
    fn hostile_bytes_decode_as_requests_or_fail_cleanly_within_the_frame_limit(
        bytes in hostile_bytes(), cuts in cuts(), max_frame in any_max_frame(),
    ) {
        feed::<Request>(&bytes, &cuts, max_frame);
    }

    /// The same for byte buffers, strings, bare varints and enums.
    #[test]
    fn hostile_bytes_decode_as_simple_types_or_fail_cleanly_within_the_frame_limit(
        bytes in hostile_bytes(), cuts in cuts(), max_frame in any_max_frame(),
    ) {
        feed::<Vec<u8>>(&bytes, &cuts, max_frame);
        feed::<String>(&bytes, &cuts, max_frame);
        feed::<u64>(&bytes, &cuts, max_frame);
        feed::<Option<Kind>>(&bytes, &cuts, max_frame);
    }

    /// Valid frames cut into any chunks decode to exactly what was sent.
    #[test]
    fn valid_frames_in_any_chunks_decode_to_what_was_sent(
        messages in prop::collection::vec((any::<u64>(), any_request()), 0..5),
        cuts in cuts(),
    ) {
        let max_frame = 1024 * 1024;
        let mut bytes = Vec::new();
        for (id, message) in &messages {
            bytes.extend_from_slice(&encode_frame(*id, message, max_frame).unwrap());
        }
        prop_assert_eq!(feed::<Request>(&bytes, &cuts, max_frame), messages);
    }
}

/// A string whose length claims more than the decode limit is refused before anything
/// is reserved for it; one that claims less than the limit, in a frame far shorter,
/// reserves at most the limit.
#[test]
fn a_claimed_string_length_reserves_at_most_the_decode_limit() {
    let max_frame = 4096;
    assert_eq!(decode_limit(max_frame), 4096);

    // id 0, then the varint marker 251 and a u16 length: 5000, then 4000.
    let over = [0u8, 251, 0x88, 0x13, b'x'];
    let (result, largest, _) = measure(|| decode_payload::<String>(&over, max_frame));
    assert!(result.is_err());
    assert!(largest < 64, "allocated {largest}");

    let under = [0u8, 251, 0xA0, 0x0F, b'x'];
    let (result, largest, _) = measure(|| decode_payload::<String>(&under, max_frame));
    assert!(result.is_err());
    assert!(largest <= max_frame, "allocated {largest}");
}

/// A sequence claiming 2^40 elements in an 11-byte payload is refused without
/// reserving room for them: only the one element present is decoded and stored.
#[test]
fn a_claimed_sequence_length_reserves_at_most_the_frame_limit() {
    let max_frame = 4096;
    // id 0, then the varint marker 253 and a u64 length of 2^40, then one element.
    let payload = [0u8, 253, 0, 0, 0, 0, 0, 1, 0, 0, 7];
    let (result, largest, peak) = measure(|| decode_payload::<Vec<u64>>(&payload, max_frame));
    assert!(result.is_err());
    assert!(largest <= max_frame + SLACK, "allocated {largest}");
    assert!(peak <= peak_allowed(max_frame), "held {peak}");
}

/// The first input the fuzzer found: a byte vector claiming 4,353 bytes in an 11-byte
/// payload under a 64-byte maximum reserves no more than the bytes it holds.
#[test]
fn a_claimed_byte_vector_length_reserves_at_most_the_frame_limit() {
    let max_frame = 64;
    // id 0, then the varint marker 251 and a u16 length of 4,353, then 7 bytes.
    let payload = [0u8, 251, 1, 17, 0, 0, 0, 0, 0, 0, 0];
    let (result, largest, _) = measure(|| decode_payload::<Vec<u8>>(&payload, max_frame));
    assert!(result.is_err());
    assert!(largest <= SLACK, "allocated {largest}");
}

/// Maps are covered too: a map claiming 2^40 entries reserves nothing for them.
#[test]
fn a_claimed_map_length_reserves_at_most_the_frame_limit() {
    let max_frame = 4096;
    // id 0, then the varint marker 253 and a u64 length of 2^40, then one entry.
    let payload = [0u8, 253, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2];
    let decode = || decode_payload::<std::collections::HashMap<u64, u64>>(&payload, max_frame);
    let (result, largest, _) = measure(decode);
    assert!(result.is_err());
    assert!(largest <= max_frame + SLACK, "allocated {largest}");
}
