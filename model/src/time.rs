//! Calendar time from Unix time, without a clock or a time-zone database (so the server, the
//! browser and the agent format times the same way).

/// UTC calendar fields of a Unix time in milliseconds: (year, month, day, hour, minute, second).
pub fn utc_fields(ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::utc_fields(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(super::utc_fields(951_782_400_000), (2000, 2, 29, 0, 0, 0));
        assert_eq!(super::utc_fields(1_795_000_000_000), (2026, 11, 18, 11, 6, 40));
        assert_eq!(super::utc_fields(-1000), (1969, 12, 31, 23, 59, 59));
    }
}
