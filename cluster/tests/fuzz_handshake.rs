//! Fuzzing the handshake through a real socket: the introduction parser is private, so
//! arbitrary bytes are written to a running server's port exactly as a hostile client
//! would. Proptest rather than cargo-fuzz, for the reasons given in `fuzz_wire.rs`.
//!
//! For every input the server must answer exactly as the documented layout says (a
//! reference parser here computes the expected status byte, or no answer when the
//! input ends before a whole introduction), close the connection, and keep serving
//! its real peers. The parser refuses a length above the longest possible introduction
//! (270 bytes) before reading or reserving anything, so its allocations are bounded by
//! construction; `fuzz_wire.rs` measures the frame decoder's.
//!
//! `cargo test` runs a few hundred cases; `PROPTEST_CASES=100000 cargo test --release
//! -p cluster --test fuzz_handshake` runs a long one.

mod common;

use std::time::Duration;

use cluster::PROTOCOL_VERSION;
use common::{hello, note, Note};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Magic, version, sender id, name length.
const FIXED_LEN: usize = 15;

/// The cluster name of the servers under test (the default).
const NAME: &str = "cluster";

/// What the server should answer to `bytes` when it is server 1 of servers 1 to 3:
/// `None` when the input ends before a whole introduction (the server closes without
/// answering), else the status byte of the documented layout.
fn expected_answer(bytes: &[u8]) -> Option<u8> {
    let header: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(header) as usize;
    if !(FIXED_LEN..=FIXED_LEN + 255).contains(&len) {
        return Some(1);
    }
    let payload = bytes.get(4..4 + len)?;
    if &payload[..4] != b"CLST" || payload.len() != FIXED_LEN + payload[14] as usize {
        return Some(1);
    }
    let Ok(name) = std::str::from_utf8(&payload[FIXED_LEN..]) else {
        return Some(1);
    };
    let version = u16::from_be_bytes([payload[4], payload[5]]);
    let mut sender = [0u8; 8];
    sender.copy_from_slice(&payload[6..14]);
    let sender = u64::from_be_bytes(sender);
    Some(if version != PROTOCOL_VERSION {
        2
    } else if name != NAME {
        3
    } else if sender == 1 {
        5
    } else if !(1..=3).contains(&sender) {
        4
    } else {
        0
    })
}

/// Garbage, introductions with random fields (some valid), and valid introductions
/// with bytes overwritten or cut, each possibly followed by more bytes.
fn hostile_introductions() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just(NAME.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..20)
    ];
    let version = prop_oneof![Just(PROTOCOL_VERSION), any::<u16>()];
    let sender = prop_oneof![0u64..5, any::<u64>()];
    let introduction = (version, name, sender).prop_map(|(v, n, s)| hello(v, &n, s));
    let damaged = (
        introduction.clone(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(mut bytes, at, byte, cut)| {
            let at = at.index(bytes.len());
            if cut {
                bytes.truncate(at);
            } else {
                bytes[at] = byte;
            }
            bytes
        });
    let head = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        introduction,
        damaged,
    ];
    (head, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(mut head, tail)| {
        head.extend(tail);
        head
    })
}

/// Writes `bytes` in chunks of `cut` bytes, closes the writing half and returns
/// everything the server sent until it closed.
async fn exchange(address: std::net::SocketAddr, bytes: &[u8], cut: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    for chunk in bytes.chunks(cut) {
        // The server may close early (after a refusal); later writes may then fail.
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = stream.shutdown().await;

    let mut answer = Vec::new();
    let read = tokio::time::timeout(common::PATIENCE, stream.read_to_end(&mut answer));
    // A reset after a refusal is a close too; what arrived before it counts.
    let _ = read.await.expect("the server closes in time");
    answer
}

/// Any bytes sent as an introduction get exactly the documented answer, or none when
/// they end too early, and the connection is closed; afterwards servers 2 and 3 still
/// exchange messages with server 1.
#[test]
fn hostile_introductions_get_the_documented_answer_and_peers_carry_on() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (config, mut servers) = runtime.block_on(common::start_tcp::<Note>(3));
    let address = config.address_of(1).expect("server 1");

    let mut proptest_config = ProptestConfig::with_cases(300);
    if let Some(cases) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        proptest_config.cases = cases;
    }
    proptest_config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(
        "proptest-regressions/fuzz_handshake.txt",
    )));
    let mut runner = TestRunner::new(proptest_config);
    let result = runner.run(&(hostile_introductions(), 1usize..64), |(bytes, cut)| {
        let answer = runtime.block_on(exchange(address, &bytes, cut));
        let expected = expected_answer(&bytes).map(|code| vec![0, 0, 0, 1, code]);
        prop_assert_eq!(answer, expected.unwrap_or_default());
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }

    runtime.block_on(async {
        for from in [1usize, 2] {
            let mut seq = 0;
            loop {
                // An accepted hostile connection claiming this id replaced the real one,
                // which is then dialled again: resend until a message gets through.
                seq += 1;
                servers[from].send(1, seq, &note(seq)).expect("send");
                let wait = tokio::time::timeout(Duration::from_millis(200), servers[0].recv());
                if let Ok(Some(envelope)) = wait.await {
                    // A hostile connection may have delivered a Note too; only ours
                    // carry the note of their own message id.
                    let ours = envelope.message == note(envelope.message_id);
                    if ours && envelope.from == from as u64 + 1 {
                        break;
                    }
                }
                assert!(seq < 100, "server {} cannot reach server 1", from + 1);
            }
        }
        common::shutdown_all(servers).await;
    });
}
