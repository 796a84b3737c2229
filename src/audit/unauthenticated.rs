//! Requests refused before their caller was known (no credentials, a bad signature, an
//! unknown key, a web identity token that does not verify, a body that never came): each is
//! recorded like any other up to a budget per source, and the rest of a source's minute is
//! counted and recorded as one `UnauthenticatedRequestsSummarized` event instead.
//!
//! Why: such a caller needs nothing to send requests, and every record costs the store about
//! 700 bytes, kept for the retention period; at the rates one client reaches, a flood would
//! fill the disk, and the audit, failing closed, would then refuse everyone. Authenticated
//! requests, allowed or denied, are never counted here: they are recorded one by one, and
//! the caller's answer is the same either way (only its record differs).
//!
//! Failed web console sign-ins count the same way, under their error message.
//!
//! A source is one IPv4 address or one IPv6 /64 (what one host can use). A source's minute
//! starts with its first refusal; within it the first `per_source` are recorded one by one,
//! as are at most `10 × per_source` from all sources together, and the rest are counted: how
//! many, when the first and last came, and how many of each error code and operation. The
//! summary is recorded once the minute is over (the server looks every few seconds) and at a
//! graceful stop; a server killed mid-minute loses its counts of that minute. Sources beyond
//! [`MAX_SOURCES`] tracked at once share one count, recorded without a source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use super::record::{rfc3339_ms, Draft};

/// The summary event's name (event source `strongroom.local`, type `AwsServiceEvent`).
pub const EVENT_NAME: &str = "UnauthenticatedRequestsSummarized";

/// Sources tracked at once; beyond them, refusals share the overflow count.
pub const MAX_SOURCES: usize = 4096;

/// Distinct error codes and operation names kept per summary (the rest are `other`).
const MAX_KINDS: usize = 16;

/// Characters of an operation name kept in a summary (the name comes from the request).
const MAX_NAME: usize = 64;

/// How many unauthenticated refusals are recorded one by one: `per_source` per source and
/// `window`, `10 × per_source` in all. `per_source == 0` records every refusal one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_source: u32,
    pub window: std::time::Duration,
}

/// The default: 600 a minute per source.
pub const DEFAULT_PER_MINUTE: u32 = 600;

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_source: DEFAULT_PER_MINUTE,
            window: std::time::Duration::from_secs(60),
        }
    }
}

impl Limits {
    fn overall(&self) -> u64 {
        u64::from(self.per_source).saturating_mul(10)
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SourceKey {
    V4([u8; 4]),
    /// The address's first 64 bits.
    V6([u8; 8]),
    /// No address, or one that does not parse.
    Unknown,
}

fn key_of(source_ip: Option<&str>) -> SourceKey {
    match source_ip.and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(ip) => match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&o[..8]);
                SourceKey::V6(prefix)
            }
        },
        None => SourceKey::Unknown,
    }
}

/// What one source's (or the overflow's) unrecorded refusals had in common.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The first counted request's source address (`None` for the overflow).
    pub source_ip: Option<String>,
    /// The first counted request's region.
    pub region: String,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// (error code, count), at most [`MAX_KINDS`] with `other` last.
    pub error_codes: Vec<(String, u64)>,
    /// (operation, count), as the error codes.
    pub operations: Vec<(String, u64)>,
}

fn bump(kinds: &mut Vec<(String, u64)>, name: &str) {
    if let Some(k) = kinds.iter_mut().find(|(n, _)| n == name) {
        k.1 += 1;
        return;
    }
    if kinds.len() + 1 < MAX_KINDS {
        kinds.push((name.to_owned(), 1));
        return;
    }
    match kinds.iter_mut().find(|(n, _)| n == "other") {
        Some(other) => other.1 += 1,
        None => kinds.push(("other".to_owned(), 1)),
    }
}

impl Tally {
    fn add(&mut self, draft: &Draft, overflow: bool) {
        if self.count == 0 {
            self.source_ip = if overflow {
                None
            } else {
                draft.source_ip.clone()
            };
            self.region.clone_from(&draft.region);
            self.first_ms = draft.event_time_ms;
        }
        self.count += 1;
        self.last_ms = self.last_ms.max(draft.event_time_ms);
        // A refusal without an error code (a failed console sign-in) by its message.
        let code: String = match (&draft.error_code, &draft.error_message) {
            (Some(code), _) => code.chars().take(MAX_NAME).collect(),
            (None, Some(message)) => message.chars().take(MAX_NAME).collect(),
            (None, None) => "none".to_owned(),
        };
        bump(&mut self.error_codes, &code);
        let op: String = if draft.event_name.is_empty() {
            "unknown".to_owned()
        } else {
            draft.event_name.chars().take(MAX_NAME).collect()
        };
        bump(&mut self.operations, &op);
    }

    /// The summary event: the counts in its `authorization.reason`, the time span in its
    /// request parameters, the most frequent error code as its error code.
    pub fn draft(&self, limits: Limits) -> Draft {
        let list = |kinds: &[(String, u64)]| {
            let mut sorted: Vec<&(String, u64)> = kinds.iter().collect();
            sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            sorted
                .iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let most = self
            .error_codes
            .iter()
            // Codes only (a console sign-in's kind is its message).
            .filter(|(n, _)| n != "other" && n != "none" && !n.contains(' '))
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(n, _)| n.clone());
        let from = self
            .source_ip
            .as_deref()
            .map_or_else(|| "sources beyond those tracked".to_owned(), str::to_owned);
        let reason = format!(
            "{} unauthenticated requests from {from} were refused and not recorded one by one \
             (over {} a source or {} in all within {} s); error codes: {}; operations: {}",
            self.count,
            limits.per_source,
            limits.overall(),
            limits.window.as_secs_f64(),
            list(&self.error_codes),
            list(&self.operations),
        );
        Draft {
            request_id: uuid::Uuid::new_v4().to_string(),
            event_time_ms: self.last_ms,
            event_source: "strongroom.local".into(),
            event_name: EVENT_NAME.into(),
            region: self.region.clone(),
            source_ip: self.source_ip.clone(),
            event_type: Some("AwsServiceEvent".into()),
            error_code: most,
            decision_reason: Some(reason),
            request_parameters: serde_json::json!({
                "StartTime": rfc3339_ms(self.first_ms),
                "EndTime": rfc3339_ms(self.last_ms),
            }),
            ..Draft::default()
        }
    }
}

#[derive(Debug, Default)]
struct Source {
    window_start: i64,
    recorded: u32,
    unrecorded: Tally,
}

#[derive(Debug, Default)]
struct State {
    overall_start: i64,
    overall_recorded: u64,
    sources: HashMap<SourceKey, Source>,
    overflow: Tally,
    overflow_start: i64,
    /// Tallies whose minute ended, waiting to be recorded.
    due: Vec<Tally>,
}

/// The budget of one server (shared by its request threads).
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    state: Mutex<State>,
    /// Refusals counted instead of recorded one by one, since start (a metric).
    counted: std::sync::atomic::AtomicU64,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
            counted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Refusals counted instead of recorded one by one since the server started.
    pub fn counted_total(&self) -> u64 {
        self.counted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the refusal `draft` (no principal; its error code, source, region, time and
    /// operation set) is recorded one by one; otherwise it has been counted.
    pub fn admit(&self, draft: &Draft) -> bool {
        if self.limits.per_source == 0 {
            return true;
        }
        let now = draft.event_time_ms;
        let window = self.limits.window_ms();
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = &mut *guard;
        if now.saturating_sub(st.overall_start) >= window || now < st.overall_start {
            st.overall_start = now;
            st.overall_recorded = 0;
        }
        let key = key_of(draft.source_ip.as_deref());
        if !st.sources.contains_key(&key) && st.sources.len() >= MAX_SOURCES {
            // Make room from sources whose minute is over before counting in the overflow.
            take_ended(st, now, window);
        }
        let tracked = st.sources.contains_key(&key) || st.sources.len() < MAX_SOURCES;
        if !tracked {
            if st.overflow.count == 0 {
                st.overflow_start = now;
            }
            st.overflow.add(draft, true);
            self.counted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return false;
        }
        let src = st.sources.entry(key).or_insert_with(|| Source {
            window_start: now,
            ..Source::default()
        });
        if now.saturating_sub(src.window_start) >= window || now < src.window_start {
            if src.unrecorded.count > 0 {
                st.due.push(std::mem::take(&mut src.unrecorded));
            }
            src.window_start = now;
            src.recorded = 0;
        }
        if src.recorded < self.limits.per_source && st.overall_recorded < self.limits.overall() {
            src.recorded += 1;
            st.overall_recorded += 1;
            return true;
        }
        src.unrecorded.add(draft, false);
        self.counted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        false
    }

    /// The tallies whose minute is over at `now_ms` (all of them when `all`), removed.
    pub fn take_due(&self, now_ms: i64, all: bool) -> Vec<Tally> {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = &mut *guard;
        let window = if all { 0 } else { self.limits.window_ms() };
        take_ended(st, now_ms, window);
        if st.overflow.count > 0
            && (all
                || now_ms.saturating_sub(st.overflow_start) >= window
                || now_ms < st.overflow_start)
        {
            let t = std::mem::take(&mut st.overflow);
            st.due.push(t);
        }
        std::mem::take(&mut st.due)
    }

    /// Tallies that could not be recorded, kept for the next look.
    pub fn put_back(&self, tallies: Vec<Tally>) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.due.extend(tallies);
    }
}

/// Move the tallies of sources whose minute ended (`window` ms after it started) to `due`,
/// and forget those sources.
fn take_ended(st: &mut State, now: i64, window: i64) {
    let due = &mut st.due;
    st.sources.retain(|_, src| {
        let ended = now.saturating_sub(src.window_start) >= window || now < src.window_start;
        if ended && src.unrecorded.count > 0 {
            due.push(std::mem::take(&mut src.unrecorded));
        }
        !ended
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str, at: i64, code: &str, op: &str) -> Draft {
        Draft {
            event_time_ms: at,
            source_ip: Some(ip.to_owned()),
            region: "us-east-1".into(),
            error_code: Some(code.to_owned()),
            event_name: op.to_owned(),
            ..Draft::default()
        }
    }

    fn limits(per_source: u32) -> Limits {
        Limits {
            per_source,
            window: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn a_source_is_recorded_one_by_one_up_to_its_budget_then_counted() {
        let b = Budget::new(limits(3));
        let admitted: Vec<bool> = (0..5)
            .map(|i| {
                b.admit(&refusal(
                    "203.0.113.7",
                    1_000 + i,
                    "IncompleteSignatureException",
                    "GetSecretValue",
                ))
            })
            .collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert_eq!(b.counted_total(), 2);
        // Another source has a budget of its own.
        assert!(b.admit(&refusal("203.0.113.8", 1_010, "X", "Y")));
        // Nothing is due before the minute is over; then the count, once.
        assert!(b.take_due(60_999, false).is_empty());
        let due = b.take_due(61_000, false);
        assert_eq!(due.len(), 1);
        let t = &due[0];
        assert_eq!(t.count, 2);
        assert_eq!(t.source_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!((t.first_ms, t.last_ms), (1_003, 1_004));
        assert_eq!(
            t.error_codes,
            [("IncompleteSignatureException".to_owned(), 2)]
        );
        assert!(b.take_due(200_000, false).is_empty());
        // A new minute, a new budget.
        assert!(b.admit(&refusal("203.0.113.7", 200_000, "X", "Y")));
    }

    #[test]
    fn a_minute_that_ends_with_the_next_refusal_keeps_its_count() {
        let b = Budget::new(limits(1));
        assert!(b.admit(&refusal("198.51.100.1", 0, "A", "Op")));
        assert!(!b.admit(&refusal("198.51.100.1", 10, "A", "Op")));
        assert!(b.admit(&refusal("198.51.100.1", 60_000, "A", "Op")));
        let due = b.take_due(60_001, false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 1);
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let b = Budget::new(limits(2));
        assert!(b.admit(&refusal("2001:db8:1:2::1", 0, "A", "Op")));
        assert!(b.admit(&refusal("2001:db8:1:2::ffff", 1, "A", "Op")));
        assert!(!b.admit(&refusal("2001:db8:1:2:aaaa::1", 2, "A", "Op")));
        assert!(b.admit(&refusal("2001:db8:1:3::1", 3, "A", "Op")));
        // An IPv4-mapped address is its IPv4 address.
        assert!(b.admit(&refusal("192.0.2.1", 4, "A", "Op")));
        assert!(b.admit(&refusal("::ffff:192.0.2.1", 5, "A", "Op")));
        assert!(!b.admit(&refusal("192.0.2.1", 6, "A", "Op")));
    }

    #[test]
    fn all_sources_together_are_bounded_too() {
        let b = Budget::new(limits(1));
        let recorded = (0..25u8)
            .filter(|i| b.admit(&refusal(&format!("192.0.2.{i}"), 0, "A", "Op")))
            .count();
        assert_eq!(recorded, 10);
        let due = b.take_due(0, true);
        assert_eq!(due.iter().map(|t| t.count).sum::<u64>(), 15);
    }

    #[test]
    fn sources_beyond_the_table_share_one_count_without_an_address() {
        let b = Budget::new(Limits {
            per_source: 1_000_000,
            window: std::time::Duration::from_secs(60),
        });
        for i in 0..MAX_SOURCES {
            let ip = format!("10.{}.{}.1", i / 256, i % 256);
            assert!(b.admit(&refusal(&ip, 0, "A", "Op")));
        }
        assert!(!b.admit(&refusal("172.16.0.1", 1, "A", "Op")));
        assert!(!b.admit(&refusal("172.16.0.2", 2, "A", "Op")));
        // A tracked source keeps its budget.
        assert!(b.admit(&refusal("10.0.0.1", 3, "A", "Op")));
        let due = b.take_due(3, true);
        let overflow: Vec<&Tally> = due.iter().filter(|t| t.source_ip.is_none()).collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].count, 2);
        // Once the sources' minutes are over, they make room again.
        assert!(b.admit(&refusal("172.16.0.1", 120_000, "A", "Op")));
    }

    #[test]
    fn kinds_are_bounded_and_names_cut() {
        let b = Budget::new(limits(1));
        assert!(b.admit(&refusal("192.0.2.9", 0, "A", "Op")));
        let long = "x".repeat(10_000);
        for i in 0..100 {
            assert!(!b.admit(&refusal(
                "192.0.2.9",
                1,
                &format!("Code{i}"),
                &format!("{long}{i}")
            )));
        }
        let due = b.take_due(1, true);
        let t = &due[0];
        assert_eq!(t.error_codes.len(), MAX_KINDS);
        assert_eq!(t.error_codes.last().map(|k| k.0.as_str()), Some("other"));
        assert!(t
            .operations
            .iter()
            .all(|(n, _)| n.chars().count() <= MAX_NAME));
        assert_eq!(t.error_codes.iter().map(|k| k.1).sum::<u64>(), 100);
        let reason = t.draft(limits(1)).decision_reason.unwrap_or_default();
        assert!(reason.len() < 2_000, "{}", reason.len());
    }

    #[test]
    fn no_budget_records_every_refusal() {
        let b = Budget::new(limits(0));
        assert!((0..10_000).all(|i| b.admit(&refusal("192.0.2.1", i, "A", "Op"))));
        assert!(b.take_due(i64::MAX, true).is_empty());
    }

    #[test]
    fn the_summary_names_its_source_counts_and_span() {
        let t = Tally {
            source_ip: Some("203.0.113.7".into()),
            region: "eu-west-1".into(),
            count: 7,
            first_ms: 1_700_000_000_000,
            last_ms: 1_700_000_030_000,
            error_codes: vec![
                ("InvalidSignatureException".into(), 2),
                ("UnrecognizedClientException".into(), 5),
            ],
            operations: vec![("GetSecretValue".into(), 7)],
        };
        let d = t.draft(limits(600));
        assert_eq!(d.event_name, EVENT_NAME);
        assert_eq!(d.event_source, "strongroom.local");
        assert_eq!(d.event_type.as_deref(), Some("AwsServiceEvent"));
        assert_eq!(d.source_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(d.region, "eu-west-1");
        assert_eq!(d.error_code.as_deref(), Some("UnrecognizedClientException"));
        assert!(d.principal.is_none());
        let reason = d.decision_reason.unwrap_or_default();
        assert!(
            reason.starts_with("7 unauthenticated requests from 203.0.113.7"),
            "{reason}"
        );
        assert!(
            reason.contains("UnrecognizedClientException 5, InvalidSignatureException 2"),
            "{reason}"
        );
        assert!(reason.contains("operations: GetSecretValue 7"), "{reason}");
        assert_eq!(
            d.request_parameters["StartTime"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(d.request_parameters["EndTime"], "2023-11-14T22:13:50.000Z");
    }
}
