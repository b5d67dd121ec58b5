//! Crashes in the middle of saving the term and vote, played by stopping a save at
//! each of its steps (`FileStorage::with_faults`) and then "restarting": opening a fresh
//! `FileStorage` on the same path, as a new process would. The state found must be
//! exactly the old one or the new one, never a mix and never a fresh start. Also the
//! errors an operator sees for a full disk, a directory that is not one, and a torn
//! state file.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use raft::{FileStorage, HardState, Storage, StorageError};

const OLD: HardState = HardState {
    term: 3,
    voted_for: Some(2),
};

const NEW: HardState = HardState {
    term: 4,
    voted_for: Some(5),
};

/// Size of a version 1 state file.
const FILE_LEN: usize = 33;

/// Index of the directory sync in `FileStorage::SAVE_STEPS`: the only step a crash
/// before which may already show the new state.
const SYNC_DIRECTORY: usize = 4;

/// A directory whose state file holds `OLD`.
fn with_old_state() -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("state");
    FileStorage::open(&path)
        .expect("open")
        .save(&OLD)
        .expect("save");
    (directory, path)
}

/// What a server restarted on `path` loads.
fn restart(path: &Path) -> Result<Option<HardState>, StorageError> {
    FileStorage::open(path).expect("open").load()
}

/// A crash before any step of a save leaves the old term and vote whole up to the
/// rename, and the new ones after it; the error names the step and its file.
#[test]
fn a_crash_at_every_step_of_a_save_leaves_the_old_or_the_new_state() {
    for (step, action) in FileStorage::SAVE_STEPS.iter().enumerate() {
        let (_directory, path) = with_old_state();
        let mut storage =
            FileStorage::with_faults(&path, step, ErrorKind::Other, None).expect("open");

        let error = storage.save(&NEW).expect_err("the save stops");
        assert!(error.to_string().contains(action), "step {step}: {error}");

        let found = restart(&path).expect("a readable state").expect("a state");
        let expected = if step < SYNC_DIRECTORY { OLD } else { NEW };
        assert_eq!(found, expected, "crash before {action}");

        // The restarted server saves again over whatever the crash left.
        let mut again = FileStorage::open(&path).expect("open");
        again.save(&NEW).expect("save after the crash");
        assert_eq!(restart(&path).expect("load"), Some(NEW), "after {action}");
    }
}

/// The same for the very first save: a crash leaves no state (a fresh server that
/// never voted) or the new one, never a damaged file.
#[test]
fn a_crash_during_the_first_save_leaves_no_state_or_the_new_one() {
    for step in 0..FileStorage::SAVE_STEPS.len() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("state");
        let mut storage =
            FileStorage::with_faults(&path, step, ErrorKind::Other, None).expect("open");
        storage.save(&NEW).expect_err("the save stops");

        let expected = if step < SYNC_DIRECTORY {
            None
        } else {
            Some(NEW)
        };
        assert_eq!(restart(&path).expect("load"), expected, "step {step}");
    }
}

/// A crash that left only part of the new state in the temporary file, at every
/// length, leaves the old state readable: the temporary file is never read.
#[test]
fn a_torn_temporary_file_leaves_the_old_state() {
    for written in 0..=FILE_LEN {
        let (directory, path) = with_old_state();
        let mut storage =
            FileStorage::with_faults(&path, 2, ErrorKind::Other, Some(written)).expect("open");
        storage.save(&NEW).expect_err("the save stops");

        let temporary = directory.path().join("state.tmp");
        let torn = fs::metadata(&temporary)
            .expect("the torn temporary file")
            .len();
        assert_eq!(torn, written as u64);
        assert_eq!(restart(&path).expect("load"), Some(OLD), "{written} bytes");
    }
}

/// A state file cut short at any length (a disk that lost the end of it) is refused
/// as corrupt, naming the file, rather than read as a fresh server.
#[test]
fn a_torn_state_file_is_corrupt_and_named() {
    for length in 0..FILE_LEN {
        let (_directory, path) = with_old_state();
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..length]).expect("truncate");

        let error = restart(&path).expect_err("a torn file is refused");
        assert!(
            matches!(&error, StorageError::Corrupt { path: named, .. } if *named == path),
            "{length} bytes: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains("restore the file from a backup"),
            "{message}"
        );
    }
}

/// A full disk at any step fails the save with an error that names the file or
/// directory, says the disk is full and what to do; the old state stays readable.
#[test]
fn a_full_disk_names_the_path_and_says_to_free_space() {
    for step in 0..SYNC_DIRECTORY {
        let (directory, path) = with_old_state();
        let mut storage =
            FileStorage::with_faults(&path, step, ErrorKind::StorageFull, None).expect("open");
        let error = storage.save(&NEW).expect_err("the disk is full");

        let message = error.to_string();
        let named = directory.path().display().to_string();
        assert!(message.contains(&named), "step {step}: {message}");
        assert!(message.contains("free space"), "step {step}: {message}");
        let kind = match &error {
            StorageError::Io { source, .. } => Some(source.kind()),
            StorageError::Corrupt { .. } => None,
        };
        assert_eq!(kind, Some(ErrorKind::StorageFull), "{error:?}");
        assert_eq!(restart(&path).expect("load"), Some(OLD), "step {step}");
    }
}

/// A data directory that is a regular file (what a test running as root can use for
/// "cannot write here": permissions do not stop root) is refused at open, naming it
/// and saying what to do.
#[test]
fn a_state_directory_that_is_a_file_is_refused_with_advice() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let not_a_directory = directory.path().join("data");
    fs::write(&not_a_directory, b"a file").expect("write");
    let path = not_a_directory.join("state");

    let error = FileStorage::open(&path).expect_err("not a directory");
    let message = error.to_string();
    assert!(
        message.contains(&not_a_directory.display().to_string()),
        "{message}"
    );
    assert!(message.contains("use another data directory"), "{message}");
}
