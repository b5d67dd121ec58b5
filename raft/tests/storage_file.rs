//! The file storage keeps a server's term and vote across restarts and refuses to
//! start afresh from a damaged file (Raft paper Figure 2, "persistent state").

use std::fs;
use std::path::PathBuf;

use raft::{FileStorage, HardState, Storage, StorageError};

fn state_path(directory: &tempfile::TempDir) -> PathBuf {
    directory.path().join("state")
}

fn saved_bytes(state: HardState) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let directory = tempfile::tempdir().unwrap();
    let path = state_path(&directory);
    FileStorage::open(&path).unwrap().save(&state).unwrap();
    let bytes = fs::read(&path).unwrap();
    (directory, path, bytes)
}

fn assert_corrupt(path: &PathBuf, expected_reason: &str) {
    let error = FileStorage::open(path).unwrap().load().unwrap_err();
    match &error {
        StorageError::Corrupt {
            path: reported,
            reason,
        } => {
            assert_eq!(reported, path);
            assert!(reason.contains(expected_reason), "reason: {reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

/// A server that never saved anything starts fresh: a missing file loads as `None`.
#[test]
fn a_missing_file_is_a_fresh_server() {
    let directory = tempfile::tempdir().unwrap();
    let mut storage = FileStorage::open(state_path(&directory)).unwrap();

    assert_eq!(storage.load().unwrap(), None);
}

/// What is saved is loaded back, by a new handle as after a restart, with and without
/// a vote (term and vote must survive a crash, §5.2).
#[test]
fn saved_state_is_loaded_back_after_reopening() {
    let directory = tempfile::tempdir().unwrap();
    let path = state_path(&directory);

    for state in [
        HardState {
            term: 0,
            voted_for: None,
        },
        HardState {
            term: 7,
            voted_for: Some(3),
        },
        HardState {
            term: u64::MAX,
            voted_for: Some(u64::MAX),
        },
        HardState {
            term: 8,
            voted_for: None,
        },
    ] {
        FileStorage::open(&path).unwrap().save(&state).unwrap();
        assert_eq!(
            FileStorage::open(&path).unwrap().load().unwrap(),
            Some(state)
        );
    }
}

/// A truncated file is an error naming the file, not a fresh start.
#[test]
fn a_truncated_file_is_corrupt() {
    let (_directory, path, bytes) = saved_bytes(HardState {
        term: 3,
        voted_for: Some(1),
    });

    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert_corrupt(&path, "length");

    fs::write(&path, &bytes[..10]).unwrap();
    assert_corrupt(&path, "truncated");

    fs::write(&path, b"").unwrap();
    assert_corrupt(&path, "magic");
}

/// A flipped bit anywhere in the term or vote fails the checksum.
#[test]
fn a_damaged_file_fails_its_checksum() {
    let (_directory, path, bytes) = saved_bytes(HardState {
        term: 3,
        voted_for: Some(1),
    });

    for position in 12..29 {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x10;
        fs::write(&path, &damaged).unwrap();
        assert_corrupt(&path, "checksum");
    }
}

/// A file from something else, or from a future format, is refused.
#[test]
fn a_foreign_or_unknown_version_file_is_corrupt() {
    let (_directory, path, bytes) = saved_bytes(HardState {
        term: 3,
        voted_for: None,
    });

    fs::write(
        &path,
        b"{\"term\": 3, \"voted_for\": null, \"padding\": 1234}",
    )
    .unwrap();
    assert_corrupt(&path, "magic");

    let mut future = bytes.clone();
    future[8] = 2;
    fs::write(&path, &future).unwrap();
    assert_corrupt(&path, "version 2");
}

/// A temporary file left by a save that crashed before its rename is never read, and
/// the next save replaces it.
#[test]
fn a_leftover_temporary_file_is_ignored_and_overwritten() {
    let directory = tempfile::tempdir().unwrap();
    let path = state_path(&directory);
    let temporary = directory.path().join("state.tmp");
    let old = HardState {
        term: 2,
        voted_for: Some(1),
    };
    FileStorage::open(&path).unwrap().save(&old).unwrap();

    fs::write(&temporary, b"RAFTSTAT half-writ").unwrap();
    assert_eq!(FileStorage::open(&path).unwrap().load().unwrap(), Some(old));

    let new = HardState {
        term: 3,
        voted_for: None,
    };
    FileStorage::open(&path).unwrap().save(&new).unwrap();
    assert_eq!(FileStorage::open(&path).unwrap().load().unwrap(), Some(new));
    assert!(
        !temporary.exists(),
        "the save renamed the temporary file away"
    );
}

/// Opening in a directory that does not exist fails early, naming the directory.
#[test]
fn opening_in_a_missing_directory_is_an_io_error() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("nowhere");

    let error = FileStorage::open(missing.join("state")).unwrap_err();

    assert!(
        matches!(&error, StorageError::Io { path, .. } if *path == missing),
        "{error:?}"
    );
}
