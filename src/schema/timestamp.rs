//! ISO 8601 UTC timestamps as Zod's `z.string().datetime()` accepts them.

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM[:SS[.f+]]Z`, None when not of that form or not a
/// real date/time. Seconds are optional, as in Zod's regex (`HH:MM(:SS(\.\d+)?)?Z`);
/// fractional digits past milliseconds are cut.
pub(super) fn parse_utc_bytes(b: &[u8]) -> Option<i64> {
    if b.len() < 17 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let (second, millis) = match &b[16..] {
        b"Z" => (0, 0),
        [b':', s1, s2, rest @ ..] => {
            let second = digits(&[*s1, *s2])?;
            let millis = match rest {
                b"Z" => 0,
                [b'.', frac @ .., b'Z']
                    if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) =>
                {
                    // Only the first three digits count; ".1" is 100 ms.
                    frac.iter()
                        .chain(b"000")
                        .take(3)
                        .fold(0, |ms, d| ms * 10 + i64::from(d - b'0'))
                }
                _ => return None,
            };
            (second, millis)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Value of a run of ASCII digits; None if any byte is not a digit.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &d| {
        d.is_ascii_digit()
            .then(|| acc.saturating_mul(10) + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
