//! A [`Storage`] that keeps the state in one small file, replaced atomically.
//!
//! # File format (version 1, 33 bytes, integers little-endian)
//!
//! | bytes  | content                                                   |
//! |--------|-----------------------------------------------------------|
//! | 0..8   | magic `RAFTSTAT`                                          |
//! | 8..12  | format version, `u32` (1)                                 |
//! | 12..20 | term, `u64`                                               |
//! | 20     | vote flag: 0 no vote, 1 voted                             |
//! | 21..29 | the id voted for, `u64` (0 when there is no vote)         |
//! | 29..33 | CRC-32 (IEEE) of bytes 0..29, `u32`                       |

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::crc32::crc32;
use crate::storage::{HardState, Storage, StorageError};

const MAGIC: &[u8; 8] = b"RAFTSTAT";
const VERSION: u32 = 1;
const BODY_LEN: usize = 29;
const FILE_LEN: usize = BODY_LEN + 4;

/// Keeps the [`HardState`] in a file, written crash-safely: each save writes a
/// temporary file next to it, flushes it to disk, renames it over the real file and
/// flushes the directory, so a crash leaves either the old or the new state, whole.
///
/// A missing file means a fresh server. A file that is truncated, fails its checksum or
/// was not written by this format is an error ([`StorageError::Corrupt`]), never a
/// fresh start: starting over could make the server vote twice in a term (§5.2).
#[derive(Debug)]
pub struct FileStorage {
    path: PathBuf,
    temporary: PathBuf,
}

impl FileStorage {
    /// Uses the state file at `path`; its directory must exist. Nothing is read or
    /// written until [`Storage::load`] or [`Storage::save`].
    ///
    /// A temporary file left by a save that crashed (`<path>.tmp`) is never read: the
    /// next save overwrites it.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when the directory of `path` cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileStorage, StorageError> {
        let path = path.into();
        let directory = directory_of(&path);
        fs::metadata(&directory).map_err(|source| StorageError::Io {
            path: directory.clone(),
            action: "open state directory",
            source,
        })?;

        let mut temporary_name = path.file_name().map(OsString::from).unwrap_or_default();
        temporary_name.push(".tmp");
        let temporary = path.with_file_name(temporary_name);
        Ok(FileStorage { path, temporary })
    }

    /// The path of the state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<HardState, StorageError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(self.corrupt("missing magic RAFTSTAT: not a raft state file"));
        }
        if bytes.len() < 12 {
            return Err(self.corrupt(format!("truncated: {} bytes", bytes.len())));
        }
        let version = u32::from_le_bytes(array(&bytes[8..12]));
        if version != VERSION {
            return Err(self.corrupt(format!("unknown format version {version}")));
        }
        if bytes.len() != FILE_LEN {
            return Err(self.corrupt(format!("length {} bytes, expected {FILE_LEN}", bytes.len())));
        }

        let stored_crc = u32::from_le_bytes(array(&bytes[BODY_LEN..]));
        let actual_crc = crc32(&bytes[..BODY_LEN]);
        if stored_crc != actual_crc {
            return Err(self.corrupt(format!(
                "checksum mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
            )));
        }

        let term = u64::from_le_bytes(array(&bytes[12..20]));
        let voted_id = u64::from_le_bytes(array(&bytes[21..29]));
        let voted_for = match bytes[20] {
            0 if voted_id == 0 => None,
            1 => Some(voted_id),
            flag => return Err(self.corrupt(format!("invalid vote flag {flag} (id {voted_id})"))),
        };
        Ok(HardState { term, voted_for })
    }

    fn io_error(
        &self,
        path: &Path,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io {
            path,
            action,
            source,
        }
    }
}

impl Storage for FileStorage {
    fn load(&mut self) -> Result<Option<HardState>, StorageError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io_error(&self.path, "read state file")(error)),
        };
        self.decode(&bytes).map(Some)
    }

    fn save(&mut self, state: &HardState) -> Result<(), StorageError> {
        let bytes = encode(state);

        // Write and flush a whole new file first: the real file is only ever replaced by
        // a complete one, so a crash mid-write cannot lose the old term and vote.
        let mut file = File::create(&self.temporary)
            .map_err(self.io_error(&self.temporary, "create temporary file"))?;
        file.write_all(&bytes)
            .map_err(self.io_error(&self.temporary, "write temporary file"))?;
        file.sync_all()
            .map_err(self.io_error(&self.temporary, "sync temporary file"))?;
        drop(file);

        fs::rename(&self.temporary, &self.path)
            .map_err(self.io_error(&self.path, "rename temporary file over state file"))?;

        // The rename lives in the directory: flush it too, or a crash may undo it.
        sync_directory(&directory_of(&self.path))
    }
}

fn encode(state: &HardState) -> [u8; FILE_LEN] {
    let mut bytes = [0u8; FILE_LEN];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&state.term.to_le_bytes());
    if let Some(id) = state.voted_for {
        bytes[20] = 1;
        bytes[21..29].copy_from_slice(&id.to_le_bytes());
    }
    let crc = crc32(&bytes[..BODY_LEN]);
    bytes[BODY_LEN..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Copies a slice whose length the caller has checked into an array.
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut array = [0u8; N];
    array.copy_from_slice(slice);
    array
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_directory(directory: &Path) -> Result<(), StorageError> {
    let to_error = |action| {
        move |source| StorageError::Io {
            path: directory.to_path_buf(),
            action,
            source,
        }
    };
    let handle = File::open(directory).map_err(to_error("open state directory"))?;
    handle.sync_all().map_err(to_error("sync state directory"))
}

/// Directories cannot be opened for flushing on this platform; the rename is left to
/// the file system's own ordering.
#[cfg(not(unix))]
fn sync_directory(_directory: &Path) -> Result<(), StorageError> {
    Ok(())
}
