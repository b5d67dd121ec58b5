//! The JSON log lines the process back end measures with, and their timestamps.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use serde_json::Value;

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

/// Parses an RFC 3339 UTC timestamp as tracing-subscriber writes it
/// (`2026-12-03T16:41:30.307899Z`, any number of fraction digits) into microseconds
/// since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
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
