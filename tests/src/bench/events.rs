//! The JSON log lines the process back end measures with, and their timestamps.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use serde_json::Value;

use crate::logs::parse_timestamp;

/// One log line: when, what, and its fields.
#[derive(Clone, Debug)]
pub struct Event {
    /// Microseconds since the Unix epoch, from the line's `timestamp`.
    pub at_us: i64,
    /// The line's `message`, such as "following leader".
    pub message: String,
    /// The whole line.
    pub fields: Value,
}

impl Event {
    /// The unsigned integer field `name`.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.fields.get(name)?.as_u64()
    }
}

/// The length of the file at `path` now (0 when it does not exist yet): where the
/// lines of a trial begin.
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The events of the log at `path` from byte `offset` on. Lines that are not JSON
/// objects with a timestamp and a message (a panic message, a half-written last line)
/// are skipped.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<Event>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<Event> {
    let fields: Value = serde_json::from_str(line).ok()?;
    let at_us = parse_timestamp(fields.get("timestamp")?.as_str()?)?;
    let message = fields.get("message")?.as_str()?.to_string();
    Some(Event {
        at_us,
        message,
        fields,
    })
}
