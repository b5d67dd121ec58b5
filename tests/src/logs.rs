//! Reading the servers' JSON logs (`--log-format json`).

use std::collections::BTreeSet;
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

/// Parses an RFC 3339 UTC timestamp as tracing-subscriber writes it
/// (`2026-12-03T16:41:30.307899Z`, any number of fraction digits) into microseconds
/// since the Unix epoch.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock = clock.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );

    // Microseconds from the first six fraction digits, padded on the right.
    let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
    let micros: i64 = digits.parse().ok()?;

    let seconds = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * 1_000_000 + micros)
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March, so that the leap day ends a year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468 days separate 0000-03-01 from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The ids in a field that lists them, as the `votes` of "became leader" does
/// (`"[1, 2]"`, or an array).
pub(crate) fn ids_in(field: &Value) -> BTreeSet<u64> {
    match field {
        Value::Array(ids) => ids.iter().filter_map(Value::as_u64).collect(),
        other => other
            .as_str()
            .unwrap_or_default()
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|id| id.parse().ok())
            .collect(),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn timestamps_match_the_unix_clock() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        // `date -u -d 2026-12-03T16:41:30 +%s` = 1796316090.
        assert_eq!(
            parse_timestamp("2026-12-03T16:41:30.307899Z"),
            Some(1_796_316_090_307_899)
        );
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:01.5Z"),
            Some(951_782_401_500_000)
        );
    }
}
