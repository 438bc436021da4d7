//! Times as the API reads and writes them: RFC 3339 out (UTC, to the
//! millisecond), RFC 3339 with any offset or milliseconds since the epoch
//! in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last time RFC 3339 can write: 9999-12-31T23:59:59.999Z, in
/// milliseconds since the epoch.
const LAST_MS: u64 = 253_402_300_799_999;

/// `at` as RFC 3339 in UTC to the millisecond (`2026-12-06T22:30:40.123Z`);
/// see [`events_core::time`] for times outside RFC 3339's range.
pub(crate) fn format(at: SystemTime) -> String {
    events_core::time::rfc3339_millis(at)
}

/// Reads a time given as RFC 3339 (`2026-12-06T22:30:40Z`,
/// `2026-12-06T23:30:40.5+01:00`) or as whole milliseconds since the epoch
/// (`1796596240000`); the error says which forms are taken.
pub(crate) fn parse(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a time: give RFC 3339 (`2026-12-06T22:30:40Z`, `2026-12-06T23:30:40+01:00`) or milliseconds since the epoch (`1796596240000`)"
        )
    };
    let at = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text.parse().map_err(|_| bad())?;
        UNIX_EPOCH
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad)?
    } else {
        rfc3339(text).ok_or_else(bad)?
    };
    if at > UNIX_EPOCH + Duration::from_millis(LAST_MS) {
        return Err(format!(
            "`{text}` is after 9999-12-31T23:59:59.999Z, the last time RFC 3339 can write"
        ));
    }
    Ok(at)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t` and a space are
/// taken for `T`, `z` for `Z`.
fn rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    let second = digits(17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut nanos: u64 = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 9 {
                nanos = nanos * 10 + u64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start).min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_seconds = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let hours = digits(at + 1, 2)?;
            let minutes = digits(at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    // A leap second reads as the second after it.
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, u32::try_from(nanos).ok()?))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(at: SystemTime) -> u128 {
        at.duration_since(UNIX_EPOCH).unwrap().as_millis()
    }

    #[test]
    fn rfc3339_reads_what_it_writes() {
        for ms_in in [
            0u64,
            1,
            951_782_400_123,
            1_709_164_800_000,
            1_796_596_240_000,
            4_102_444_799_999,
            LAST_MS,
        ] {
            let at = UNIX_EPOCH + Duration::from_millis(ms_in);
            let text = format(at);
            assert_eq!(parse(&text).unwrap(), at, "{text}");
            assert_eq!(humantime::parse_rfc3339(&text).unwrap(), at, "{text}");
        }
    }

    #[test]
    fn far_times_are_refused_in_and_written_out() {
        let error = parse("879186499042835").unwrap_err();
        assert!(error.contains("after 9999-12-31"), "{error}");
        assert!(parse(&(LAST_MS + 1).to_string()).is_err());
        assert!(parse(&LAST_MS.to_string()).is_ok());
        let far = UNIX_EPOCH + Duration::from_millis(879_186_499_042_835);
        assert!(format(far).starts_with("29830-"), "{}", format(far));
        assert_eq!(
            format(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn offsets_and_epoch_millis() {
        let utc = parse("2026-12-06T22:30:40Z").unwrap();
        assert_eq!(parse("2026-12-06T23:30:40+01:00").unwrap(), utc);
        assert_eq!(parse("2026-12-06T17:00:40-05:30").unwrap(), utc);
        assert_eq!(parse("2026-12-06t22:30:40z").unwrap(), utc);
        assert_eq!(parse(&ms(utc).to_string()).unwrap(), utc);
        assert_eq!(ms(parse("2026-12-06T22:30:40.5Z").unwrap()), ms(utc) + 500);
        assert_eq!(
            ms(parse("2026-12-06T22:30:40.123456789Z").unwrap()),
            ms(utc) + 123
        );
    }

    #[test]
    fn bad_times_say_what_is_taken() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-12-06T22:30:40",
            "2026-12-06T22:30:40+0100",
            "2026-12-06T24:00:00Z",
            "2026-12-06T22:30:40.Z",
            "-5",
            "99999999999999999999999",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
        assert!(parse("2024-02-29T00:00:00Z").is_ok());
    }
}
