//! Conversion between Unix nanoseconds and RFC 3339 timestamps, in UTC.
//!
//! Only the proleptic Gregorian calendar from year 1970 on is handled, since
//! record times are unsigned Unix nanoseconds. Leap seconds (`:60`) are
//! rejected.

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// A timestamp that is neither RFC 3339 nor a count of Unix nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {value:?}: {problem} (expected RFC 3339 such as 2026-12-04T21:30:00Z, or Unix nanoseconds)")]
pub struct TimeError {
    pub value: String,
    pub problem: &'static str,
}

/// Parses RFC 3339 (`2026-12-04T21:30:00.5+01:00`) or a decimal count of
/// Unix nanoseconds into Unix nanoseconds.
pub fn parse(value: &str) -> Result<u64, TimeError> {
    let invalid = |problem| TimeError { value: value.to_owned(), problem };
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse().map_err(|_| invalid("does not fit 64 bits"));
    }
    parse_rfc3339(value).map_err(invalid)
}

fn parse_rfc3339(value: &str) -> Result<u64, &'static str> {
    // The fields below are cut at byte positions, which must not fall
    // inside a character of several bytes.
    if !value.is_ascii() {
        return Err("contains a character that is not ASCII");
    }
    let bytes = value.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return Err("not of the form YYYY-MM-DDTHH:MM:SS");
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err("date and time are not separated by T");
    }
    let number = |range: std::ops::Range<usize>| -> Result<u64, &'static str> {
        let text = &value[range];
        if !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err("a date or time field is not a number");
        }
        text.parse().map_err(|_| "a date or time field is not a number")
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("the date does not exist or is before 1970");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("the time of day is out of range");
    }

    let mut rest = &value[19..];
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err("the fraction of a second has no digits");
        }
        // Digits past nanoseconds are dropped, not rounded.
        for (position, digit) in fraction.bytes().take(digits).take(9).enumerate() {
            nanos += u64::from(digit - b'0') * 10_u64.pow(8 - u32::try_from(position).expect("below 9"));
        }
        rest = &fraction[digits..];
    }
    let offset_seconds: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let offset = rest.as_bytes();
            if offset.len() != 6 || !matches!(offset[0], b'+' | b'-') || offset[3] != b':' {
                return Err("the UTC offset is not Z, +HH:MM or -HH:MM");
            }
            let hours: i64 = rest[1..3].parse().map_err(|_| "the UTC offset is not a number")?;
            let minutes: i64 = rest[4..6].parse().map_err(|_| "the UTC offset is not a number")?;
            if hours > 23 || minutes > 59 {
                return Err("the UTC offset is out of range");
            }
            let magnitude = hours * 3600 + minutes * 60;
            if offset[0] == b'-' { -magnitude } else { magnitude }
        }
    };

    let local = days_since_epoch(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
    let utc = i64::try_from(local).map_err(|_| "the time is out of range")? - offset_seconds;
    let utc = u64::try_from(utc).map_err(|_| "the time is before 1970")?;
    utc.checked_mul(NANOS_PER_SECOND).and_then(|ns| ns.checked_add(nanos)).ok_or("the time does not fit 64 bits")
}

/// Formats Unix nanoseconds as RFC 3339 in UTC with nine fraction digits,
/// such as `2026-12-04T21:30:00.000000000Z`.
pub fn format_rfc3339(time_ns: u64) -> String {
    let seconds = time_ns / NANOS_PER_SECOND;
    let nanos = time_ns % NANOS_PER_SECOND;
    let (year, month, day) = civil_from_days(seconds / SECONDS_PER_DAY);
    let second_of_day = seconds % SECONDS_PER_DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Counts the days from 1970-01-01 to a date at or after it.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let whole_years: u64 = (1970..year).map(|y| if is_leap(y) { 366 } else { 365 }).sum();
    let whole_months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    whole_years + whole_months + day - 1
}

/// Returns the date `days` days after 1970-01-01.
fn civil_from_days(mut days: u64) -> (u64, u64, u64) {
    let mut year = 1970;
    loop {
        let length = if is_leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    (year, month, days + 1)
}

#[cfg(test)]
mod tests {
    use super::{format_rfc3339, parse};

    #[test]
    fn parse_utc_and_offset() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse("2024-02-29T12:00:00.5Z"), Ok(1_709_208_000_500_000_000));
        assert_eq!(parse("2024-02-29T13:30:00.5+01:30"), Ok(1_709_208_000_500_000_000));
        assert_eq!(parse("1700000000000000000"), Ok(1_700_000_000_000_000_000));
    }

    #[test]
    fn parse_rejects_invalid() {
        for value in ["", "yesterday", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00", "1969-12-31T23:59:59Z"] {
            assert!(parse(value).is_err(), "{value} parsed");
        }
    }

    #[test]
    fn parse_rejects_characters_of_several_bytes() {
        // Each one puts a field boundary inside a character.
        for value in ["2024-01-01T00:00:0\u{e9}Z", "2024-01-01T00:00:0\u{20ac}Z", "2024-01-0\u{e9}T00:00:00Z"] {
            assert_eq!(parse(value).map_err(|error| error.problem), Err("contains a character that is not ASCII"));
        }
    }

    #[test]
    fn format_round_trips() {
        for time_ns in [0, 1_709_208_000_500_000_000, 1_700_000_000_123_456_789, 4_102_444_800_000_000_000] {
            assert_eq!(parse(&format_rfc3339(time_ns)), Ok(time_ns));
        }
        assert_eq!(format_rfc3339(1_709_208_000_500_000_000), "2024-02-29T12:00:00.500000000Z");
    }
}
