//! Wall-clock instants as the JSON logs write them: RFC 3339 in UTC with a `Z`, such
//! as `2026-12-03T16:41:30.307899Z`, held as microseconds since the Unix epoch.
//!
//! tracing-subscriber writes exactly this shape, and the demo writes its own actions
//! the same way, so that server logs and demo actions sort on one axis.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// The current wall-clock time.
pub fn now() -> Micros {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_micros() as Micros,
        Err(before) => -(before.duration().as_micros() as Micros),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; any other shape is `None`.
pub fn parse(text: &str) -> Option<Micros> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;

    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }

    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    // Only the first six digits count: finer than a microsecond is of no use here.
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
    let micros: i64 = digits.parse().ok()?;

    let days = days_from_civil(year, month, day);
    let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
    Some(seconds * MICROS_PER_SECOND + micros)
}

/// Formats as the logs do, with six fractional digits.
pub fn format(at: Micros) -> String {
    let seconds = at.div_euclid(MICROS_PER_SECOND);
    let micros = at.rem_euclid(MICROS_PER_SECOND);
    let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
    format!(
        "{year:04}-{month:02}-{day:02}T{}.{micros:06}Z",
        time_of_day(seconds)
    )
}

/// `HH:MM:SS.mmm` (UTC), for the demo's log of events.
pub fn clock_millis(at: Micros) -> String {
    let seconds = at.div_euclid(MICROS_PER_SECOND);
    let millis = at.rem_euclid(MICROS_PER_SECOND) / 1000;
    format!("{}.{millis:03}", time_of_day(seconds))
}

/// `HH:MM:SS` (UTC), for the timeline's axis.
pub fn clock_seconds(at: Micros) -> String {
    time_of_day(at.div_euclid(MICROS_PER_SECOND))
}

fn time_of_day(seconds: i64) -> String {
    let in_day = seconds.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar, counted in
/// 400-year eras of 146,097 days that begin on 1 March, so the leap day ends a year.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log timestamp parses to the instant `date -d` gives for it, and formats back.
    #[test]
    fn log_timestamp_round_trips() {
        let text = "2026-12-03T16:41:30.307899Z";
        let at = parse(text).unwrap();

        // date -u -d 2026-12-03T16:41:30Z +%s
        assert_eq!(at, 1_796_316_090 * 1_000_000 + 307_899);
        assert_eq!(format(at), text);
        assert_eq!(clock_millis(at), "16:41:30.307");
        assert_eq!(clock_seconds(at), "16:41:30");
    }

    /// Leap days, the epoch, and fractions of any length.
    #[test]
    fn calendar_edges_parse() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("1970-01-01T00:00:00.5Z"), Some(500_000));
        assert_eq!(parse("1970-01-01T00:00:00.123456789Z"), Some(123_456));
        let leap = parse("2024-02-29T12:00:00Z").unwrap();
        assert_eq!(format(leap), "2024-02-29T12:00:00.000000Z");
        assert_eq!(format(leap + 86_400_000_000), "2024-03-01T12:00:00.000000Z");
    }

    /// Anything but the log's own shape is refused rather than misread.
    #[test]
    fn other_shapes_are_refused() {
        for text in [
            "",
            "2026-12-03 16:41:30Z",
            "2026-12-03T16:41:30+01:00",
            "2026-13-03T16:41:30Z",
            "2026-12-03T16:41:30.x1Z",
            "yesterday",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
