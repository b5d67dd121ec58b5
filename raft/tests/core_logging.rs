//! The core's log lines: one fixed wording per event, with structured fields that
//! always include the node, so operators can grep and aggregate them.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use raft::{Config, HardState, LogPosition, Message, Node, VoteRequest};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A log sink shared between the subscriber and the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `body` with info-level logs captured and returns the lines written.
fn info_lines(body: impl FnOnce()) -> Vec<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, body);

    let bytes = captured
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn node(id: u64, voters: &[u64]) -> Node {
    let config = Config::new(id, voters.iter().copied());
    let rng = ChaCha8Rng::seed_from_u64(id);
    Node::new(config, HardState::default(), LogPosition::default(), rng).unwrap()
}

/// An election logs each role change and its start with the fixed wordings and the
/// node and term fields (§5.2 roles; thesis §9.6 pre-vote).
#[test]
fn an_election_logs_each_step_with_its_fixed_wording() {
    let lines = info_lines(|| {
        let _ = node(1, &[1]).tick();
    });

    let expected = [
        "INFO became pre-candidate node=1 term=0",
        "INFO election started node=1 term=1 pre_vote=true transfer=false",
        "INFO became candidate node=1 term=1",
        "INFO election started node=1 term=1 pre_vote=false transfer=false",
        "INFO became leader node=1 term=1 votes=[1]",
    ];
    let trimmed: Vec<&str> = lines.iter().map(|line| line.trim()).collect();
    assert_eq!(trimmed, expected);
}

/// Vote decisions log the candidate, the kind of vote and, for a refusal, the reason.
#[test]
fn vote_decisions_log_candidate_and_reason() {
    let lines = info_lines(|| {
        let mut voter = node(2, &[1, 2, 3]);
        let request = |term| {
            let last_log = LogPosition::default();
            Message::VoteRequest(VoteRequest {
                term,
                pre_vote: false,
                last_log,
                transfer: false,
            })
        };
        let _ = voter.step(1, request(1));
        let _ = voter.step(3, request(1));
    });

    assert!(
        lines[0].contains("became follower node=2 term=1"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("vote granted node=2 term=1 candidate=1 pre_vote=false"),
        "{lines:#?}"
    );
    assert!(
        lines[2].contains(
            "vote refused node=2 term=1 candidate=3 pre_vote=false reason=already voted for 1"
        ),
        "{lines:#?}"
    );
}
