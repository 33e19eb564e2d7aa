//! Wall-clock time: Unix seconds, RFC 5322 dates for message headers and ISO 8601 stamps
//! for log lines, without a date crate. Always UTC: the appliance has no time zone
//! database and needs none.
//!
//! `sntp` asks a time server for the clock's offset (init applies it to the clock).

pub mod sntp;

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Thu, 01 Jan 1970 00:00:00 +0000` (RFC 5322 §3.3).
pub fn rfc5322_date(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[((days + 4) % 7) as usize];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Seconds since the Unix epoch; 0 if the clock is set before it.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-26T05:10:00` (UTC) of a Unix time: the form log lines start with.
pub fn iso8601(secs: u64) -> String {
    let (year, month, day) = civil(secs / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs % 86_400 / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-11-26T05:10:00.123Z` for log lines.
pub fn iso8601_now() -> String {
    let mut out = String::with_capacity(24);
    push_iso8601_now(&mut out);
    out
}

/// Appends [`iso8601_now`] to `out` (a log line is built in one buffer).
pub fn push_iso8601_now(out: &mut String) {
    use std::fmt::Write;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (year, month, day) = civil(secs / 86_400);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs % 86_400 / 3_600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    );
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01, in the proleptic
/// Gregorian calendar (H. Hinnant's `civil_from_days`, for non-negative days).
pub fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates_format_as_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            rfc5322_date(4_102_444_799),
            "Thu, 31 Dec 2099 23:59:59 +0000"
        );
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut last = civil(0);
        for day in 1..200_000 {
            let (y, m, d) = civil(day);
            let next_ok = (y, m, d) > last && (d == last.2 + 1 || d == 1);
            assert!(next_ok, "day {day}: {last:?} -> {:?}", (y, m, d));
            last = (y, m, d);
        }
    }
}
