//! Rotation schedules: RotationRules as the wire carries them, their validation, and the
//! windows they define. Pure: times are passed in (epoch milliseconds, UTC).
//!
//! AWS's rules ("Schedule expressions in Secrets Manager rotation"): `AutomaticallyAfterDays`
//! (1–1000) or a `ScheduleExpression`, never both; `rate(N hours|days)` with at least 4
//! hours; `cron(Min Hour DoM Month DoW Year)` with Min `0`, Year `*`, exactly one of DoM and
//! DoW `?`; `Duration` (`3h`) sets the window, which must not run into the next day or the
//! next window. AWS publishes no error text for a bad expression: the messages here say
//! what is wrong, as `InvalidParameterException`.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// RotationRules as the wire carries them (and as they are stored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

/// A validated schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    every: Every,
    /// The window's length in hours, when `Duration` sets it.
    duration_h: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Every {
    /// `AutomaticallyAfterDays` or `rate(N days)`: the UTC day N days after the last rotation.
    Days(i64),
    /// `rate(N hours)`: windows starting at midnight UTC and every N hours after it.
    Hours(i64),
    Cron(Box<Cron>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    hours: [bool; 24],
    months: [bool; 13],
    dom: DayOfMonth,
    dow: DayOfWeek,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    Any,
    Days([bool; 32], bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    Any,
    /// Days 1 (SUN) to 7 (SAT); `d#n` entries; `dL` entries.
    Days([bool; 8], Vec<(u32, u32)>, Vec<u32>),
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter(msg.into())
}

fn validation(field: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::Validation(format!(
        "1 validation error detected: Value '{value}' at 'rotationRules.{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// The member constraints of RotationRules (ValidationException, as AWS's model checks them).
pub fn check_members(r: &RotationRules) -> Result<(), ApiError> {
    if let Some(d) = r.automatically_after_days {
        if d < 1 {
            return Err(validation(
                "automaticallyAfterDays",
                &d.to_string(),
                "Member must have value greater than or equal to 1",
            ));
        }
        if d > 1000 {
            return Err(validation(
                "automaticallyAfterDays",
                &d.to_string(),
                "Member must have value less than or equal to 1000",
            ));
        }
    }
    if let Some(d) = &r.duration {
        let n = d.chars().count();
        if !(2..=3).contains(&n) {
            return Err(validation(
                "duration",
                d,
                "Member must have length between 2 and 3",
            ));
        }
        let ok = d
            .strip_suffix('h')
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(validation(
                "duration",
                d,
                "Member must satisfy regular expression pattern: [0-9]+h",
            ));
        }
    }
    if let Some(e) = &r.schedule_expression {
        let n = e.chars().count();
        if !(1..=256).contains(&n) {
            return Err(validation(
                "scheduleExpression",
                e,
                "Member must have length between 1 and 256",
            ));
        }
        if !e
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()#?*-/, ".contains(c))
        {
            return Err(validation(
                "scheduleExpression",
                e,
                "Member must satisfy regular expression pattern: [0-9A-Za-z\\(\\)#\\?\\*\\-\\/, ]+",
            ));
        }
    }
    Ok(())
}

impl Schedule {
    /// Validate rules (members already checked): `None` when they set no schedule.
    pub fn parse(r: &RotationRules) -> Result<Option<Self>, ApiError> {
        check_members(r)?;
        let every = match (r.automatically_after_days, r.schedule_expression.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "You cannot specify both rotation frequency and schedule expression together.",
                ))
            }
            (Some(d), None) => Every::Days(d),
            (None, Some(e)) => parse_expression(e.trim())?,
            (None, None) => {
                if r.duration.is_some() {
                    return Err(invalid(
                        "A rotation window (Duration) needs a rotation frequency or a schedule expression.",
                    ));
                }
                return Ok(None);
            }
        };
        let duration_h = match &r.duration {
            Some(d) => {
                let h: i64 = d.trim_end_matches('h').parse().map_err(|_| {
                    invalid("The rotation window (Duration) is not a number of hours.")
                })?;
                if !(1..=24).contains(&h) {
                    return Err(invalid(
                        "The rotation window (Duration) must be between 1 and 24 hours.",
                    ));
                }
                Some(h)
            }
            None => None,
        };
        let s = Self { every, duration_h };
        s.check_window()?;
        Ok(Some(s))
    }

    fn check_window(&self) -> Result<(), ApiError> {
        let Some(h) = self.duration_h else {
            return Ok(());
        };
        match &self.every {
            Every::Hours(n) if h > *n => Err(invalid(
                "The rotation window (Duration) must not be longer than the rotation interval.",
            )),
            Every::Cron(c) => {
                let hours: Vec<i64> = (0..24)
                    .filter(|i| c.hours.get(*i).copied().unwrap_or(false))
                    .map(|i| i64::try_from(i).unwrap_or(0))
                    .collect();
                for pair in hours.windows(2) {
                    if let [a, b] = pair {
                        if a + h > *b {
                            return Err(invalid("The rotation window (Duration) must not overlap the next rotation window."));
                        }
                    }
                }
                if hours.last().is_some_and(|l| l + h > 24) {
                    return Err(invalid(
                        "The rotation window (Duration) must not extend into the next UTC day.",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The start of the first window after `after_ms` (the last rotation, or now).
    pub fn next_start(&self, after_ms: i64) -> i64 {
        let day = after_ms.div_euclid(DAY_MS);
        match &self.every {
            Every::Days(n) => (day + n) * DAY_MS,
            Every::Hours(n) => {
                let mut start = day * DAY_MS;
                loop {
                    let mut h = 0;
                    while h < 24 {
                        let t = start + h * HOUR_MS;
                        if t > after_ms {
                            return t;
                        }
                        h += n;
                    }
                    start += DAY_MS;
                }
            }
            Every::Cron(c) => c.next_start(after_ms).unwrap_or(i64::MAX),
        }
    }

    /// The end of the window starting at `start`: `NextRotationDate` ("on or before").
    pub fn window_end(&self, start: i64) -> i64 {
        let day_end = start.div_euclid(DAY_MS) * DAY_MS + DAY_MS - 1000;
        match (self.duration_h, &self.every) {
            (Some(h), _) => (start + h * HOUR_MS - 1000).min(day_end),
            (None, Every::Hours(_)) => start + HOUR_MS - 1000,
            (None, Every::Cron(c)) if c.hours.iter().filter(|h| **h).count() > 1 => {
                start + HOUR_MS - 1000
            }
            (None, _) => day_end,
        }
    }
}

fn parse_expression(e: &str) -> Result<Every, ApiError> {
    if let Some(body) = e.strip_prefix("rate(").and_then(|b| b.strip_suffix(')')) {
        let mut parts = body.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(format!(
                "Invalid rate expression `{e}`: use rate(N hours) or rate(N days)."
            )));
        };
        let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            invalid(format!(
                "Invalid rate expression `{e}`: the value must be a positive integer."
            ))
        })?;
        return match unit {
            "hour" | "hours" if n < 4 => Err(invalid(
                "The schedule expression must rotate at most once every 4 hours.",
            )),
            "hour" | "hours" => Ok(Every::Hours(n)),
            "day" | "days" if n > 1000 => Err(invalid(
                "The schedule expression must rotate at least once every 1000 days.",
            )),
            "day" | "days" => Ok(Every::Days(n)),
            _ => Err(invalid(format!(
                "Invalid rate expression `{e}`: the unit must be hours or days."
            ))),
        };
    }
    if let Some(body) = e.strip_prefix("cron(").and_then(|b| b.strip_suffix(')')) {
        return Ok(Every::Cron(Box::new(parse_cron(e, body)?)));
    }
    Err(invalid(format!(
        "Invalid schedule expression `{e}`: use rate(...) or cron(...)."
    )))
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn parse_cron(e: &str, body: &str) -> Result<Cron, ApiError> {
    let bad = |what: &str| invalid(format!("Invalid cron expression `{e}`: {what}."));
    let f: Vec<&str> = body.split_whitespace().collect();
    let [min, hour, dom, month, dow, year] = f.as_slice() else {
        return Err(bad(
            "it needs 6 fields (minutes hours day-of-month month day-of-week year)",
        ));
    };
    if *min != "0" {
        return Err(bad("the minutes field must be 0"));
    }
    if *year != "*" {
        return Err(bad("the year field must be *"));
    }
    if (*dom == "?") == (*dow == "?") {
        return Err(bad("exactly one of day-of-month and day-of-week must be ?"));
    }
    let mut hours = [false; 24];
    set_field(hour, 0, 23, &[], &mut hours).map_err(|w| bad(&format!("hours: {w}")))?;
    let mut months = [false; 13];
    set_field(month, 1, 12, &MONTHS, &mut months).map_err(|w| bad(&format!("month: {w}")))?;
    let dom = if *dom == "?" {
        DayOfMonth::Any
    } else {
        let mut days = [false; 32];
        let mut last = false;
        let mut rest = Vec::new();
        for item in dom.split(',') {
            if item == "L" {
                last = true;
            } else {
                rest.push(item);
            }
        }
        if !rest.is_empty() {
            set_field(&rest.join(","), 1, 31, &[], &mut days)
                .map_err(|w| bad(&format!("day-of-month: {w}")))?;
        }
        DayOfMonth::Days(days, last)
    };
    let dow = if *dow == "?" {
        DayOfWeek::Any
    } else {
        let mut days = [false; 8];
        let mut nth = Vec::new();
        let mut lasts = Vec::new();
        let mut rest = Vec::new();
        for item in dow.split(',') {
            if let Some((d, n)) = item.split_once('#') {
                let d = value_of(d, 1, 7, &DAYS).map_err(|w| bad(&format!("day-of-week: {w}")))?;
                let n: u32 = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| bad("day-of-week: # takes 1 to 5"))?;
                nth.push((d, n));
            } else if let Some(d) = item.strip_suffix('L').filter(|d| !d.is_empty()) {
                lasts
                    .push(value_of(d, 1, 7, &DAYS).map_err(|w| bad(&format!("day-of-week: {w}")))?);
            } else {
                rest.push(item);
            }
        }
        if !rest.is_empty() {
            set_field(&rest.join(","), 1, 7, &DAYS, &mut days)
                .map_err(|w| bad(&format!("day-of-week: {w}")))?;
        }
        DayOfWeek::Days(days, nth, lasts)
    };
    let selected: Vec<usize> = (0..24)
        .filter(|h| hours.get(*h).copied().unwrap_or(false))
        .collect();
    for pair in selected.windows(2) {
        if let [a, b] = pair {
            if b - a < 4 {
                return Err(invalid(
                    "The schedule expression must rotate at most once every 4 hours.",
                ));
            }
        }
    }
    if let (Some(first), Some(last)) = (selected.first(), selected.last()) {
        if selected.len() > 1 && first + 24 - last < 4 {
            return Err(invalid(
                "The schedule expression must rotate at most once every 4 hours.",
            ));
        }
    }
    Ok(Cron {
        hours,
        months,
        dom,
        dow,
    })
}

fn value_of(s: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    let upper = s.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        return u32::try_from(i).map(|i| i + min).map_err(|e| e.to_string());
    }
    let v: u32 = s.parse().map_err(|_| format!("`{s}` is not a value"))?;
    if !(min..=max).contains(&v) {
        return Err(format!("`{s}` is outside {min}-{max}"));
    }
    Ok(v)
}

/// Mark the values a field selects: `*`, `a`, `a-b`, `a/n`, `*/n`, `a-b/n`, lists of them.
fn set_field<const N: usize>(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    out: &mut [bool; N],
) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("`{item}` has a bad increment"))?,
            ),
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value_of(a, min, max, names)?, value_of(b, min, max, names)?)
        } else {
            let v = value_of(range, min, max, names)?;
            (v, if item.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("`{item}` is an empty range"));
        }
        let mut v = lo;
        while v <= hi {
            if let Some(slot) = usize::try_from(v).ok().and_then(|i| out.get_mut(i)) {
                *slot = true;
            }
            v += step;
        }
    }
    Ok(())
}

impl Cron {
    fn day_matches(&self, date: time::Date) -> bool {
        let month = u8::from(date.month());
        if !self
            .months
            .get(usize::from(month))
            .copied()
            .unwrap_or(false)
        {
            return false;
        }
        let dom = u32::from(date.day());
        let last_dom = u32::from(date.month().length(date.year()));
        let dow = u32::from(date.weekday().number_from_sunday());
        let dom_ok = match &self.dom {
            DayOfMonth::Any => true,
            DayOfMonth::Days(days, last) => {
                (*last && dom == last_dom)
                    || usize::try_from(dom)
                        .ok()
                        .and_then(|d| days.get(d))
                        .copied()
                        .unwrap_or(false)
            }
        };
        let dow_ok = match &self.dow {
            DayOfWeek::Any => true,
            DayOfWeek::Days(days, nth, lasts) => {
                usize::try_from(dow)
                    .ok()
                    .and_then(|d| days.get(d))
                    .copied()
                    .unwrap_or(false)
                    || nth
                        .iter()
                        .any(|(d, n)| *d == dow && (dom - 1) / 7 + 1 == *n)
                    || lasts.iter().any(|d| *d == dow && dom + 7 > last_dom)
            }
        };
        dom_ok && dow_ok
    }

    /// The first matching hour after `after_ms`, within about five years.
    fn next_start(&self, after_ms: i64) -> Option<i64> {
        let first_day = after_ms.div_euclid(DAY_MS);
        for d in first_day..first_day + 366 * 5 {
            let date = time::OffsetDateTime::from_unix_timestamp(d * 86_400)
                .ok()?
                .date();
            if !self.day_matches(date) {
                continue;
            }
            for h in 0..24_i64 {
                let on = usize::try_from(h)
                    .ok()
                    .and_then(|i| self.hours.get(i))
                    .copied()
                    .unwrap_or(false);
                let t = d * DAY_MS + h * HOUR_MS;
                if on && t > after_ms {
                    return Some(t);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(days: Option<i64>, expr: Option<&str>, dur: Option<&str>) -> RotationRules {
        RotationRules {
            automatically_after_days: days,
            schedule_expression: expr.map(str::to_owned),
            duration: dur.map(str::to_owned),
        }
    }

    fn at(s: &str) -> i64 {
        crate::audit::parse_rfc3339_ms(s).unwrap()
    }

    #[test]
    fn days_and_expression_together_are_refused_in_aws_words() {
        let e = Schedule::parse(&rules(Some(1), Some("rate(10 hours)"), None)).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException");
        assert_eq!(
            e.message(),
            "You cannot specify both rotation frequency and schedule expression together."
        );
    }

    #[test]
    fn member_limits_are_validation_errors() {
        for r in [
            rules(Some(0), None, None),
            rules(Some(1001), None, None),
            rules(Some(1), None, Some("3")),
            rules(Some(1), None, Some("1000h")),
            rules(None, Some("cron(0 1 * * ? *);"), None),
        ] {
            assert_eq!(
                Schedule::parse(&r).unwrap_err().code(),
                "ValidationException",
                "{r:?}"
            );
        }
    }

    #[test]
    fn bad_expressions_are_refused() {
        for e in [
            "rate(2 hours)",
            "rate(0 days)",
            "rate(5 weeks)",
            "cron(5 1 * * ? *)",
            "cron(0 1 * * ? 2027)",
            "cron(0 1 * * * *)",
            "cron(0 1 ? * ? *)",
            "cron(0 1,3 * * ? *)",
            "cron(0 25 * * ? *)",
            "cron(0 1 * *)",
            "every day",
        ] {
            let err = Schedule::parse(&rules(None, Some(e), None)).unwrap_err();
            assert_eq!(err.code(), "InvalidParameterException", "{e}");
        }
        let err = Schedule::parse(&rules(None, Some("rate(4 hours)"), Some("5h"))).unwrap_err();
        assert_eq!(err.code(), "InvalidParameterException");
    }

    #[test]
    fn windows_follow_aws_rules() {
        let s = Schedule::parse(&rules(Some(30), None, None))
            .unwrap()
            .unwrap();
        let start = s.next_start(at("2026-05-01T10:00:00Z"));
        assert_eq!(start, at("2026-05-31T00:00:00Z"));
        assert_eq!(s.window_end(start), at("2026-05-31T23:59:59Z"));

        let s = Schedule::parse(&rules(None, Some("rate(10 hours)"), None))
            .unwrap()
            .unwrap();
        assert_eq!(
            s.next_start(at("2026-05-01T10:05:00Z")),
            at("2026-05-01T20:00:00Z")
        );
        assert_eq!(
            s.next_start(at("2026-05-01T21:00:00Z")),
            at("2026-05-02T00:00:00Z")
        );

        let s = Schedule::parse(&rules(None, Some("cron(0 2/10 * * ? *)"), None))
            .unwrap()
            .unwrap();
        assert_eq!(
            s.next_start(at("2026-05-01T12:00:00Z")),
            at("2026-05-01T22:00:00Z")
        );
        let start = s.next_start(at("2026-05-01T23:00:00Z"));
        assert_eq!(start, at("2026-05-02T02:00:00Z"));
        assert_eq!(s.window_end(start), at("2026-05-02T02:59:59Z"));

        // 2026-05-19 is the third Tuesday of May 2026.
        let s = Schedule::parse(&rules(None, Some("cron(0 10 ? MAY TUE#3 *)"), Some("3h")))
            .unwrap()
            .unwrap();
        let start = s.next_start(at("2026-05-01T00:00:00Z"));
        assert_eq!(start, at("2026-05-19T10:00:00Z"));
        assert_eq!(s.window_end(start), at("2026-05-19T12:59:59Z"));

        let s = Schedule::parse(&rules(None, Some("cron(0 8 L * ? *)"), None))
            .unwrap()
            .unwrap();
        assert_eq!(
            s.next_start(at("2026-02-03T00:00:00Z")),
            at("2026-02-28T08:00:00Z")
        );
        assert!(Schedule::parse(&rules(None, None, None)).unwrap().is_none());
    }
}
