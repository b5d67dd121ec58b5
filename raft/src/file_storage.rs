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
    /// Where saves stop, for crash tests ([`FileStorage::with_faults`]); `None` in use.
    faults: Option<FaultPlan>,
}

/// The steps of a save, in order. A crash between two of them leaves the old state
/// (up to and including [`SaveStep::Rename`]) or the new one (after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SaveStep {
    /// Create (or truncate) `<path>.tmp`.
    CreateTemporary,
    /// Write the new state into it.
    WriteTemporary,
    /// Flush it to disk.
    SyncTemporary,
    /// Rename it over the state file.
    Rename,
    /// Flush the directory, which makes the rename durable.
    SyncDirectory,
}

impl SaveStep {
    /// Every step, in the order a save takes them.
    const ALL: [SaveStep; 5] = [
        SaveStep::CreateTemporary,
        SaveStep::WriteTemporary,
        SaveStep::SyncTemporary,
        SaveStep::Rename,
        SaveStep::SyncDirectory,
    ];
}

/// Where every save of a [`FileStorage`] stops, for crash tests
/// ([`FileStorage::with_faults`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FaultPlan {
    /// The step that does not happen.
    stop_before: SaveStep,
    /// The error the save returns there, such as `StorageFull` for a full disk.
    error: io::ErrorKind,
    /// With [`SaveStep::SyncTemporary`]: how many bytes of the new state the write
    /// managed before the stop, leaving a torn temporary file.
    torn_write: Option<usize>,
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
    /// [`StorageError::Io`] when the directory of `path` cannot be read or is not a
    /// directory.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileStorage, StorageError> {
        let path = path.into();
        let directory = directory_of(&path);
        let open_error = |source| StorageError::Io {
            path: directory.clone(),
            action: "open state directory",
            source,
        };
        let metadata = fs::metadata(&directory).map_err(open_error)?;
        if !metadata.is_dir() {
            // Said here rather than at the first read, which would blame the state file.
            return Err(open_error(io::Error::from(io::ErrorKind::NotADirectory)));
        }

        let mut temporary_name = path.file_name().map(OsString::from).unwrap_or_default();
        temporary_name.push(".tmp");
        let temporary = path.with_file_name(temporary_name);
        Ok(FileStorage {
            path,
            temporary,
            faults: None,
        })
    }

    /// The steps of a save, in order, as [`FileStorage::with_faults`] numbers them. A
    /// crash before any of the first four leaves the old state; a crash before the
    /// last (the directory sync) may leave either.
    #[doc(hidden)]
    pub const SAVE_STEPS: [&'static str; 5] = [
        "create temporary file",
        "write temporary file",
        "sync temporary file",
        "rename temporary file over state file",
        "sync state directory",
    ];

    /// Test hook for crash tests: as [`FileStorage::open`], but every save stops before
    /// step `stop_before` of [`FileStorage::SAVE_STEPS`] and returns an error of kind
    /// `error`, named by path and step as a real failure there would be (`Other` plays
    /// a crash, `StorageFull` a full disk). With `torn_write` and `stop_before` 2 (the
    /// temporary file's sync), only that many bytes of the new state reach the
    /// temporary file first, as after a crash mid-write.
    ///
    /// It lives here because a [`Storage`] wrapper cannot reach between the steps of a
    /// save; hidden from the docs because only tests need it.
    ///
    /// # Errors
    ///
    /// As [`FileStorage::open`].
    ///
    /// # Panics
    ///
    /// When `stop_before` is not below 5.
    #[doc(hidden)]
    pub fn with_faults(
        path: impl Into<PathBuf>,
        stop_before: usize,
        error: io::ErrorKind,
        torn_write: Option<usize>,
    ) -> Result<FileStorage, StorageError> {
        let mut storage = FileStorage::open(path)?;
        storage.faults = Some(FaultPlan {
            stop_before: SaveStep::ALL[stop_before],
            error,
            torn_write,
        });
        Ok(storage)
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
        self.step(
            SaveStep::CreateTemporary,
            &self.temporary,
            "create temporary file",
        )?;
        let mut file = File::create(&self.temporary)
            .map_err(self.io_error(&self.temporary, "create temporary file"))?;

        self.step(
            SaveStep::WriteTemporary,
            &self.temporary,
            "write temporary file",
        )?;
        file.write_all(&bytes)
            .map_err(self.io_error(&self.temporary, "write temporary file"))?;

        if let Some(torn) = self.faults.and_then(|plan| plan.torn_write) {
            if self.stops_before(SaveStep::SyncTemporary) {
                // A crash that let only part of the write reach the file.
                file.set_len(torn.min(bytes.len()) as u64)
                    .map_err(self.io_error(&self.temporary, "tear temporary file"))?;
            }
        }
        self.step(
            SaveStep::SyncTemporary,
            &self.temporary,
            "sync temporary file",
        )?;
        file.sync_all()
            .map_err(self.io_error(&self.temporary, "sync temporary file"))?;
        drop(file);

        self.step(
            SaveStep::Rename,
            &self.path,
            "rename temporary file over state file",
        )?;
        fs::rename(&self.temporary, &self.path)
            .map_err(self.io_error(&self.path, "rename temporary file over state file"))?;

        // The rename lives in the directory: flush it too, or a crash may undo it.
        let directory = directory_of(&self.path);
        self.step(SaveStep::SyncDirectory, &directory, "sync state directory")?;
        sync_directory(&directory)
    }
}

impl FileStorage {
    fn stops_before(&self, step: SaveStep) -> bool {
        self.faults.is_some_and(|plan| plan.stop_before == step)
    }

    /// The injected failure before `step`, if the fault plan stops there: the error
    /// names `path` and `action` exactly as a real failure of that step would.
    fn step(&self, step: SaveStep, path: &Path, action: &'static str) -> Result<(), StorageError> {
        match self.faults {
            Some(plan) if plan.stop_before == step => {
                let source = io::Error::new(plan.error, "injected fault");
                Err(self.io_error(path, action)(source))
            }
            _ => Ok(()),
        }
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
