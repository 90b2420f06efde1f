//! The UTC calendar date and hour of an instant, for time-partitioned names (the `{date}` and
//! `{hour}` of the `s3` key template and of the `file` sink's directory). Pure; no time zone
//! database: the proleptic Gregorian calendar of the Unix clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DD`, the UTC date of `t` (1970-01-01 for an instant before the epoch).
pub(crate) fn date(t: SystemTime) -> String {
    let (y, m, d) = civil_date(secs(t) / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH`, the UTC hour of `t`, `00` to `23`.
pub(crate) fn hour(t: SystemTime) -> String {
    format!("{:02}", (secs(t) % 86_400) / 3600)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(19_783), (2024, 3, 1));
        assert_eq!(civil_date(10_957), (2000, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(47_540), (2100, 2, 28));
        assert_eq!(civil_date(47_541), (2100, 3, 1));
    }

    #[test]
    fn date_and_hour_of_an_instant() {
        // 2024-02-29 13:45:00 UTC, then one second before midnight and midnight.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_214_300);
        assert_eq!((date(t), hour(t)), ("2024-02-29".to_owned(), "13".to_owned()));
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!((date(t), hour(t)), ("2024-02-29".to_owned(), "23".to_owned()));
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_200);
        assert_eq!((date(t), hour(t)), ("2024-03-01".to_owned(), "00".to_owned()));
        assert_eq!(date(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01");
    }
}
