//! Durations in a PeerGroup spec: `"30d"`, `"720h"`, `"1h30m"`, `"45s"`.
//!
//! One parser for every duration field, so that the CRD pattern, the render checks and the
//! certificate planner agree on what a valid value is. Go's `time.ParseDuration` has no day
//! unit, and certificate lifetimes read better in days, hence our own small grammar.

use std::time::Duration;

/// The pattern the CRD enforces on every duration field; [`parse_duration`] accepts exactly
/// the strings that match it (minus values too large to represent).
pub const DURATION_PATTERN: &str = "^([0-9]+(d|h|m|s))+$";

/// Longest accepted duration text: keeps the CEL cost estimate and our arithmetic bounded.
pub const DURATION_MAX_LEN: usize = 32;

/// Why a duration string was refused. The message names the value and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "duration is empty: write a number and a unit, e.g. \"30d\", \"720h\", \"90m\", \"45s\""
    )]
    Empty,
    #[error("duration {0:?} is longer than {DURATION_MAX_LEN} characters")]
    TooLong(String),
    #[error(
        "duration {value:?} is not valid at {at:?}: write numbers each followed by a unit \
         d, h, m or s (e.g. \"30d\", \"720h\", \"1h30m\")"
    )]
    Syntax { value: String, at: String },
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses `<number><unit>` groups (units `d`, `h`, `m`, `s`) and adds them up.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.len() > DURATION_MAX_LEN {
        return Err(DurationError::TooLong(text.to_string()));
    }
    let syntax = |at: &str| DurationError::Syntax {
        value: text.to_string(),
        at: at.to_string(),
    };
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(syntax(rest));
        }
        let (number, after) = rest.split_at(digits);
        let unit_seconds = match after.bytes().next() {
            Some(b'd') => 86_400,
            Some(b'h') => 3_600,
            Some(b'm') => 60,
            Some(b's') => 1,
            _ => return Err(syntax(after)),
        };
        let overflow = || DurationError::Overflow(text.to_string());
        let n: u64 = number.parse().map_err(|_| overflow())?;
        total = n
            .checked_mul(unit_seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(overflow)?;
        rest = &after[1..];
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_sums() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("720h"), Ok(Duration::from_secs(720 * 3_600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_with_the_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        let err = parse_duration("30").expect_err("no unit");
        assert!(err.to_string().contains("unit d, h, m or s"), "{err}");
        assert!(matches!(parse_duration("3w"), Err(DurationError::Syntax { at, .. }) if at == "w"));
        assert!(matches!(
            parse_duration("h"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            parse_duration("1.5h"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            parse_duration("-1h"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration(&"1s".repeat(20)),
            Err(DurationError::TooLong(_))
        ));
    }
}
