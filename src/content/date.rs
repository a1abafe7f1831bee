//! Dates: RFC 5322 `Date:` parsing and RFC 3339 UTC formatting, by hand (no chrono).
//!
//! We do not use `mailparse::dateparse`: it returns `Ok(0)` (1970-01-01) for strings with no
//! date in them at all ("garbage", "15", "Mon, 15 Jan"), and does not range-check hours, minutes
//! or days of the month.

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` for a count of days since 1970-01-01 (H. Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
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

/// Formats seconds since the Unix epoch as RFC 3339 UTC, e.g. `2024-03-09T14:05:00Z`.
///
/// Defined for every `i64`: years outside 0000–9999 are written with as many digits as they
/// need (and a leading `-` before year 0), which is no longer strict RFC 3339 but never panics.
/// `parse_rfc5322_date` only produces years 1900–9999.
pub fn format_rfc3339_utc(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let sign = if year < 0 { "-" } else { "" };
    format!("{sign}{:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z", year.unsigned_abs())
}

fn month_number(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let lower = name.to_ascii_lowercase();
    let prefix = lower.get(..3)?;
    let index = MONTHS.iter().position(|m| *m == prefix)?;
    // Accept "Jan", "January", "Sept"; reject "Janitor".
    const FULL: [&str; 12] =
        ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];
    if lower.len() == 3 || FULL[index].starts_with(&lower) {
        Some(index as i64 + 1)
    } else {
        None
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Offset east of UTC in seconds for a zone token; `None` if it is not a zone.
fn zone_offset(token: &str) -> Option<i64> {
    let bytes = token.as_bytes();
    if bytes.len() == 5 && (bytes[0] == b'+' || bytes[0] == b'-') {
        let digits = &token[1..];
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i64 = digits[..2].parse().ok()?;
        let minutes: i64 = digits[2..].parse().ok()?;
        if minutes > 59 {
            return None;
        }
        let offset = hours * 3600 + minutes * 60;
        return Some(if bytes[0] == b'-' { -offset } else { offset });
    }
    let hours = match token.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        // RFC 5322 4.3: military zones were specified backwards in RFC 822; treat them as -0000.
        t if t.len() == 1 && t.as_bytes()[0].is_ascii_alphabetic() => 0,
        _ => return None,
    };
    Some(hours * 3600)
}

/// Parses an RFC 5322 date (`[Day,] DD Mon YYYY HH:MM[:SS] [zone]`, obsolete forms included)
/// into seconds since the Unix epoch. Comments in parentheses are ignored; a missing zone is
/// taken as UTC. Anything that is not recognisably a date gives `None`.
pub(crate) fn parse_rfc5322_date(value: &str) -> Option<i64> {
    // Drop comments such as "(PDT)"; they never nest in real dates, so a flat skip is enough.
    let mut cleaned = String::with_capacity(value.len());
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => cleaned.push(if c == ',' { ' ' } else { c }),
            _ => {}
        }
    }
    let mut tokens = cleaned.split_whitespace().peekable();
    // Optional day of week.
    if tokens.peek().is_some_and(|t| t.bytes().all(|b| b.is_ascii_alphabetic())) {
        tokens.next();
    }
    let day: i64 = tokens.next().filter(|t| t.len() <= 2)?.parse().ok()?;
    let month = month_number(tokens.next()?)?;
    let year_token = tokens.next()?;
    if !(2..=4).contains(&year_token.len()) || !year_token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut year: i64 = year_token.parse().ok()?;
    // RFC 5322 4.3 obsolete years: two digits are 1950–2049, three digits are added to 1900.
    year = match year_token.len() {
        2 if year < 50 => 2000 + year,
        2 | 3 => 1900 + year,
        _ => year,
    };
    if !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let time = tokens.next()?;
    let mut parts = time.split(':');
    let mut field = |max: i64| -> Option<i64> {
        let t = parts.next()?;
        if t.is_empty() || t.len() > 2 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: i64 = t.parse().ok()?;
        (v <= max).then_some(v)
    };
    let hour = field(23)?;
    let minute = field(59)?;
    // Leap seconds are clamped to :59 rather than rejected.
    let second = if time.matches(':').count() == 2 { field(60)?.min(59) } else { 0 };
    let offset = match tokens.next() {
        Some(zone) => zone_offset(zone)?,
        None => 0,
    };
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(local - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_rfc3339_table() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_709_993_100, "2024-03-09T14:05:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
            (-62_167_219_201, "-0001-12-31T23:59:59Z"),
        ];
        for (epoch, want) in cases {
            assert_eq!(format_rfc3339_utc(epoch), want, "epoch {epoch}");
        }
        // Extremes must not panic or overflow.
        assert!(format_rfc3339_utc(i64::MAX).ends_with('Z'));
        assert!(format_rfc3339_utc(i64::MIN).starts_with('-'));
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parse_date_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Sat, 09 Mar 2024 14:05:00 +0000", Some("2024-03-09T14:05:00Z")),
            ("Sat, 9 Mar 2024 15:05:00 +0100", Some("2024-03-09T14:05:00Z")),
            ("Sun, 25 Sep 2016 18:36:33 -0400", Some("2016-09-25T22:36:33Z")),
            ("Fri, 30 Nov 2012 20:57:23 GMT", Some("2012-11-30T20:57:23Z")),
            ("Sun, 02 Oct 2016 07:06:22 -0700 (PDT)", Some("2016-10-02T14:06:22Z")),
            ("2 Oct 2016 07:06 PDT", Some("2016-10-02T14:06:00Z")),
            ("Mon, 1 Jan 2024 00:30:00 +0530", Some("2023-12-31T19:00:00Z")),
            ("Thu, 29 Feb 2024 23:59:60 -1200", Some("2024-03-01T11:59:59Z")),
            ("1 January 99 10:00:00 +0000", Some("1999-01-01T10:00:00Z")),
            ("1 Jan 03 10:00:00 +0000", Some("2003-01-01T10:00:00Z")),
            ("Tue,  1 Jan 2030 10:00:00", Some("2030-01-01T10:00:00Z")),
            ("garbage", None),
            ("15", None),
            ("Mon, 15 Jan", None),
            ("Mon, 15 Jan 2024", None),
            ("31 Feb 2024 10:00:00 +0000", None),
            ("1 Jan 2024 24:00:00 +0000", None),
            ("1 Jan 2024 10:61:00 +0000", None),
            ("1 Janitor 2024 10:00:00 +0000", None),
            ("1 Jan 2024 10:00:00 +2A00", None),
            ("1 Jan 2024 10:00:00 +0099", None),
            ("1 Jan 20245 10:00:00 +0000", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_rfc5322_date(input).map(format_rfc3339_utc);
            assert_eq!(got.as_deref(), *want, "input {input:?}");
        }
    }
}
