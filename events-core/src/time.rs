//! Times written as RFC 3339 in UTC, for every time the framework prints
//! or sends (the CLI, webhook bodies, the HTTP API).
//!
//! Unlike `humantime`'s formatters these never panic: a time before the
//! epoch is written as the epoch, and past 9999-12-31 the year takes more
//! digits than RFC 3339 allows rather than the process aborting on a
//! stored record with a far-future time.

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` in UTC to the millisecond: `2026-12-06T22:30:40.123Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let at = UNIX_EPOCH + Duration::from_millis(1_796_596_240_123);
/// assert_eq!(events_core::time::rfc3339_millis(at), "2026-12-06T22:30:40.123Z");
/// ```
pub fn rfc3339_millis(at: SystemTime) -> String {
    let ms = millis(at);
    let (date, in_day) = date_of(ms);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// `at` in UTC to the second: `2026-12-06T22:30:40Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let at = UNIX_EPOCH + Duration::from_millis(1_796_596_240_999);
/// assert_eq!(events_core::time::rfc3339_seconds(at), "2026-12-06T22:30:40Z");
/// ```
pub fn rfc3339_seconds(at: SystemTime) -> String {
    let ms = millis(at);
    let (date, in_day) = date_of(ms);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60
    )
}

/// Milliseconds since the epoch, 0 before it.
fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `YYYY-MM-DD` of the day `ms` falls in, and the milliseconds into it.
fn date_of(ms: u64) -> (String, u64) {
    let days = i64::try_from(ms / 86_400_000).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    (format!("{year:04}-{month:02}-{day:02}"), ms % 86_400_000)
}

/// The date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn agrees_with_humantime_where_humantime_can_write() {
        for ms in [
            0u64,
            951_782_400_000,     // 2000-02-29
            1_796_596_240_123,   // 2026-12-06
            4_107_542_399_999,   // 2100-02-28T23:59:59.999
            253_402_300_799_999, // 9999-12-31T23:59:59.999
        ] {
            let at = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(
                rfc3339_millis(at),
                humantime::format_rfc3339_millis(at).to_string()
            );
            assert_eq!(
                rfc3339_seconds(at),
                humantime::format_rfc3339_seconds(at).to_string()
            );
        }
    }

    #[test]
    fn past_the_year_9999_and_before_the_epoch_write_without_panicking() {
        let far = UNIX_EPOCH + Duration::from_millis(253_402_300_800_000);
        assert_eq!(rfc3339_millis(far), "10000-01-01T00:00:00.000Z");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339_seconds(before), "1970-01-01T00:00:00Z");
        let furthest = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert!(rfc3339_seconds(furthest).ends_with('Z'));
    }
}
