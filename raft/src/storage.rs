//! Where a server keeps the state that must survive a restart: its term and its vote.

use std::path::PathBuf;

use thiserror::Error;

use crate::message::{NodeId, Term};

/// The state a server must persist before it answers anyone (Raft paper Figure 2).
///
/// Forgetting it breaks safety: a server that restarts with an older term or without
/// its vote could vote twice in one term and let two leaders be elected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The latest term the server has seen.
    pub term: Term,
    /// The candidate that received this server's vote in `term`, if any.
    pub voted_for: Option<NodeId>,
}

/// Durable storage for a server's [`HardState`].
pub trait Storage {
    /// Reads the stored state; `Ok(None)` for a server that never stored anything.
    fn load(&mut self) -> Result<Option<HardState>, StorageError>;

    /// Stores `state` durably: when this returns `Ok`, a crash cannot lose it.
    fn save(&mut self, state: &HardState) -> Result<(), StorageError>;
}

/// Why the state could not be read or written. Every variant that concerns a file
/// names its path, so an operator knows what to look at.
#[derive(Debug, Error)]
pub enum StorageError {
    /// Reading or writing failed. The message ends with what an operator can do.
    #[error("{path}: {action}: {source}; {}", advice(source.kind()))]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done, such as "write temporary file".
        action: &'static str,
        /// The error the system returned.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but does not hold a valid state: it is truncated, corrupted or
    /// was written by something else. The server must not start over as if new.
    #[error(
        "{path}: not a valid state file ({reason}); refusing to start with a fresh state: \
         restore the file from a backup (deleting it would let this server vote a second \
         time in terms it has already voted in)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What to do about a failed read or write, by its kind.
fn advice(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "the disk is full: free space on it, then start the server again"
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            "give the server's user write access there, or use another data directory"
        }
        ErrorKind::NotFound | ErrorKind::NotADirectory => {
            "create the directory, or use another data directory"
        }
        _ => {
            "fix the cause and start the server again; the state file holds the last \
              term and vote saved in full"
        }
    }
}
