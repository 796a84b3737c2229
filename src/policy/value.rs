//! Typed operands of condition operators (IAM.md §3.3): exact decimals, W3C ISO-8601 dates
//! or epoch seconds, booleans, CIDRs and base64 binaries.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;

/// An exact decimal number (`10` equals `10.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    neg: bool,
    /// Integer digits without leading zeros.
    int: Box<str>,
    /// Fraction digits without trailing zeros.
    frac: Box<str>,
}

impl Decimal {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let zero = int.is_empty() && frac.is_empty();
        Some(Self {
            neg: neg && !zero,
            int: int.into(),
            frac: frac.into(),
        })
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.neg, other.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Parse a date: W3C ISO-8601 profile (`2024`, `2024-01`, `2024-01-01`,
/// `2024-01-01T00:00Z`, with seconds and fraction, `Z` or `±hh:mm`) or epoch seconds.
/// Returns nanoseconds since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    let digits = s.bytes().all(|b| b.is_ascii_digit());
    if !(digits && s.len() == 4) && is_epoch(s) {
        return epoch_nanos(s);
    }
    let (date_part, time_part) = match s.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut it = date_part.split('-');
    let year: i32 = num(it.next()?, 4)?.try_into().ok()?;
    let month: u8 = it.next().map_or(Some(1), |m| num(m, 2))?.try_into().ok()?;
    let day: u8 = it.next().map_or(Some(1), |d| num(d, 2))?.try_into().ok()?;
    if it.next().is_some() {
        return None;
    }
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let mut nanos = i128::from(date.midnight().assume_utc().unix_timestamp()) * 1_000_000_000;
    if let Some(t) = time_part {
        nanos += parse_time(t)?;
    } else if date_part.len() != s.len() {
        return None;
    }
    Some(nanos)
}

fn is_epoch(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn epoch_nanos(s: &str) -> Option<i128> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let secs: i128 = int.parse().ok()?;
    let mut frac_ns: i128 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        let exp = u32::try_from(8 - i).ok()?;
        frac_ns += i128::from(b - b'0') * 10i128.pow(exp);
    }
    let v = secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)?;
    Some(if neg { -v } else { v })
}

fn num(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `hh:mm[:ss[.fff]]` followed by `Z`, `±hh:mm` or nothing (UTC); nanoseconds of the day,
/// adjusted to UTC.
fn parse_time(t: &str) -> Option<i128> {
    let (clock, offset_secs) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
        (c, 0i128)
    } else if let Some(pos) = t.rfind(['+', '-']) {
        let (c, off) = t.split_at(pos);
        let sign: i128 = if off.starts_with('-') { -1 } else { 1 };
        let off = off.get(1..)?;
        let (h, m) = off
            .split_once(':')
            .unwrap_or((off.get(..2)?, off.get(2..)?));
        let h = i128::from(num(h, 2)?);
        let m = i128::from(num(m, 2)?);
        (c, sign * (h * 3600 + m * 60))
    } else {
        (t, 0)
    };
    let mut it = clock.split(':');
    let h = i128::from(num(it.next()?, 2)?);
    let m = i128::from(num(it.next()?, 2)?);
    let (sec, frac) = match it.next() {
        None => (0, 0),
        Some(s) => {
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            let sec = i128::from(num(whole, 2)?);
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let frac = epoch_nanos(&format!("0.{frac}"))?;
            (sec, frac)
        }
    };
    if it.next().is_some() || h > 24 || m > 59 || sec > 60 {
        return None;
    }
    Some((h * 3600 + m * 60 + sec - offset_secs) * 1_000_000_000 + frac)
}

/// `true` / `false`, case-insensitive.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A CIDR block; a bare address is a /32 or /128. Host bits are cleared.
pub(crate) fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if s.contains('/') {
        s.parse::<IpNet>().ok().map(|n| n.trunc())
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

/// A request address (a CIDR is accepted and its address used).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<IpNet>().ok().map(|n| n.addr()))
}

/// Standard base64 (padding optional).
pub(crate) fn parse_binary(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD;
    e.decode(s.trim()).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s.trim())
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_exactly() {
        let d = |s| Decimal::parse(s).unwrap();
        assert_eq!(d("10"), d("10.0"));
        assert_eq!(d("-0"), d("0.000"));
        assert!(d("9.99") < d("10"));
        assert!(d("-10") < d("-9.5"));
        assert!(d("123456789012345678901234567890") > d("123456789012345678901234567889"));
        assert!(Decimal::parse("1e3").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse(".").is_none());
        assert_eq!(d(".5"), d("0.5"));
    }

    #[test]
    fn dates_in_every_form() {
        let jan1 = parse_date("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_date("2024"), Some(jan1));
        assert_eq!(parse_date("2024-01"), Some(jan1));
        assert_eq!(parse_date("2024-01-01"), Some(jan1));
        assert_eq!(parse_date("2024-01-01T00:00Z"), Some(jan1));
        assert_eq!(parse_date("2024-01-01T01:00+01:00"), Some(jan1));
        assert_eq!(parse_date("2023-12-31T19:00:00-05:00"), Some(jan1));
        assert_eq!(parse_date("1704067200"), Some(jan1));
        assert_eq!(
            parse_date("2024-01-01T00:00:00.5Z"),
            Some(jan1 + 500_000_000)
        );
        assert_eq!(parse_date("1704067200.5"), Some(jan1 + 500_000_000));
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("yesterday").is_none());
        assert!(parse_date("2024-01-01T25:00Z").is_none());
    }

    #[test]
    fn cidrs_and_addresses() {
        assert_eq!(parse_cidr("203.0.113.7"), "203.0.113.7/32".parse().ok());
        assert_eq!(parse_cidr("203.0.113.7/24"), "203.0.113.0/24".parse().ok());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert_eq!(parse_cidr("2001:DB8::/32"), "2001:db8::/32".parse().ok());
        assert!(parse_ip("nope").is_none());
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_binary("aGk="), Some(b"hi".to_vec()));
        assert_eq!(parse_binary("aGk"), Some(b"hi".to_vec()));
    }
}
