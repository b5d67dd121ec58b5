//! Reading the servers' JSON logs (`--log-format json`).

use std::path::Path;

use serde_json::Value;

/// One line of a JSON log: its message and its fields.
#[derive(Clone, Debug)]
pub struct LogEvent {
    /// The `message` of the line, such as "became leader".
    pub message: String,
    /// The whole object, for the event's fields (`node`, `term`, ...).
    pub fields: Value,
}

impl LogEvent {
    /// The unsigned integer field `name`, if the line has one.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.fields.get(name)?.as_u64()
    }
}

/// Every event of the JSON log at `path`.
///
/// # Panics
///
/// When the file cannot be read or a line is not a JSON object with a `message`: the
/// servers run with `--log-format json`, so anything else is a bug worth seeing.
pub fn read_log(path: &Path) -> Vec<LogEvent> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read log {}: {error}", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Value = serde_json::from_str(line).unwrap_or_else(|error| {
                panic!("{}: not a JSON line ({error}): {line}", path.display())
            });
            let message = fields
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{}: no message in: {line}", path.display()))
                .to_string();
            LogEvent { message, fields }
        })
        .collect()
}

/// Every "became leader" of the log at `path`, as (term, node) pairs in log order.
///
/// # Panics
///
/// As [`read_log`], and when a "became leader" line lacks its `term` or `node`.
pub fn leaders_in_log(path: &Path) -> Vec<(u64, u64)> {
    read_log(path)
        .into_iter()
        .filter(|event| event.message == "became leader")
        .map(|event| {
            let term = event.number("term");
            let node = event.number("node");
            match (term, node) {
                (Some(term), Some(node)) => (term, node),
                _ => panic!(
                    "{}: incomplete \"became leader\": {}",
                    path.display(),
                    event.fields
                ),
            }
        })
        .collect()
}
