//! The node's data directory: where its state file lives, guarded by a lock file so
//! that two servers never share one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A data directory this process holds the lock of. The lock is released when the
/// value is dropped or the process ends, however it ends.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    // Held only for its lock.
    _lock: File,
}

impl DataDir {
    /// Creates `path` if needed and takes its lock, or says why it cannot.
    pub fn open(path: &Path) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("data directory {}: cannot create it", path.display()))?;

        let lock_path = path.join("LOCK");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| {
                format!(
                    "data directory {}: cannot write in it (check its permissions)",
                    path.display()
                )
            })?;

        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                bail!(
                    "data directory {} is already used by a running server (pid {}); \
                     stop it or pass another --data-dir",
                    path.display(),
                    holder.trim()
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("{}: cannot lock", lock_path.display()))
            }
        }

        // Record who holds the lock, for the message a second server prints.
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .with_context(|| format!("{}: cannot write", lock_path.display()))?;

        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The file that holds the node's term and vote.
    pub fn state_file(&self) -> PathBuf {
        self.path.join("state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second holder of the same directory is refused with a message naming it.
    #[test]
    fn second_open_of_one_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();

        let error = DataDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("already used by a running server"),
            "{error}"
        );
        assert!(error.contains(&std::process::id().to_string()), "{error}");

        drop(first);
        DataDir::open(dir.path()).expect("the lock is free again once released");
    }
}
