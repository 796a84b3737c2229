//! Failed sign-in throttling: a fixed window per source IP and per access key ID, counting
//! failed console sign-ins. When a window holds its limit of failures, further sign-ins from
//! that address (or with that key) are refused without checking the credential until the
//! window ends. Refused attempts do not extend the window.
//!
//! An attempt is counted as failed when it is let through ([`Throttle::attempt`], under the
//! same lock as the check) and uncounted when its credential turns out good
//! ([`Throttle::succeeded`]): sign-ins sent all at once cannot all pass the check before any
//! of their failures is counted.
//!
//! The per-key limit is higher than the per-address one so that one address hammering a
//! key is stopped by its own address limit long before the key is, and the key's owner can
//! still sign in from elsewhere; many addresses together (a distributed guess) are stopped
//! by the key's limit. The throttle covers console sign-in only: the API's signatures are
//! not guessable and are not throttled here.
//!
//! An IPv6 address counts by its /64 (the block one subscriber is given): otherwise one
//! host could try from as many addresses as it likes, each under the address limit.
//!
//! Memory is bounded: each map holds at most [`MAX_ENTRIES`] windows; when full, ended
//! windows are dropped first, then the one with the fewest failures (the oldest of those),
//! so that filling the map with new addresses or keys does not drop a window that refuses.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failed sign-ins allowed per source IP per window.
pub const PER_IP: u32 = 10;
/// Failed sign-ins allowed per access key ID (from all addresses) per window.
pub const PER_KEY: u32 = 50;
/// The window's length.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Windows kept per map.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    failures: u32,
}

#[derive(Debug, Default)]
struct Windows(HashMap<String, Window>);

impl Windows {
    /// When `key`'s window is full, the milliseconds until it ends.
    fn blocked(&self, key: &str, limit: u32, now: i64) -> Option<i64> {
        let w = self.0.get(key)?;
        let ends = w.start_ms.saturating_add(WINDOW_MS);
        (ends > now && w.failures >= limit).then(|| ends - now)
    }

    /// Take back one failure counted at `at` in `key`'s window (if that window is still the
    /// one it was counted in).
    fn unfail(&mut self, key: &str, at: i64) {
        if let Some(w) = self.0.get_mut(key) {
            if w.start_ms <= at && w.start_ms.saturating_add(WINDOW_MS) > at {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    fn fail(&mut self, key: &str, now: i64) {
        if let Some(w) = self.0.get_mut(key) {
            if w.start_ms.saturating_add(WINDOW_MS) > now {
                w.failures = w.failures.saturating_add(1);
                return;
            }
        }
        if self.0.len() >= MAX_ENTRIES && !self.0.contains_key(key) {
            self.0
                .retain(|_, w| w.start_ms.saturating_add(WINDOW_MS) > now);
            if self.0.len() >= MAX_ENTRIES {
                let least = self
                    .0
                    .iter()
                    .min_by_key(|(_, w)| (w.failures, w.start_ms))
                    .map(|(k, _)| k.clone());
                if let Some(k) = least {
                    self.0.remove(&k);
                }
            }
        }
        self.0.insert(
            key.to_owned(),
            Window {
                start_ms: now,
                failures: 1,
            },
        );
    }
}

/// The address counter's key for source address `ip`: an IPv6 address's /64, anything else
/// as it is.
fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => ipnet::Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| ip.to_owned()),
        _ => ip.to_owned(),
    }
}

/// The console's failed sign-in counters.
#[derive(Debug, Default)]
pub struct Throttle {
    inner: Mutex<(Windows, Windows)>,
}

impl Throttle {
    /// A sign-in from `ip` (with access key `akid`, when one is given) at `now`: refused
    /// (`Err`: the milliseconds until it may be tried again), or let through and counted as
    /// a failure until [`Throttle::succeeded`] takes it back.
    pub fn attempt(&self, ip: &str, akid: Option<&str>, now: i64) -> Result<(), i64> {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ip = address_key(ip);
        let by_ip = g.0.blocked(&ip, PER_IP, now);
        let by_key = akid.and_then(|k| g.1.blocked(k, PER_KEY, now));
        if let Some(wait) = by_ip.max(by_key) {
            return Err(wait);
        }
        g.0.fail(&ip, now);
        if let Some(k) = akid.filter(|k| !k.is_empty()) {
            g.1.fail(k, now);
        }
        Ok(())
    }

    /// The attempt let through at `at` from `ip` (with `akid`) signed in: it is not a
    /// failure.
    pub fn succeeded(&self, ip: &str, akid: Option<&str>, at: i64) {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.0.unfail(&address_key(ip), at);
        if let Some(k) = akid.filter(|k| !k.is_empty()) {
            g.1.unfail(k, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_limit_until_the_window_ends() {
        let t = Throttle::default();
        for _ in 0..PER_IP {
            assert!(t.attempt("1.1.1.1", Some("AKIA1"), 0).is_ok());
        }
        assert_eq!(t.attempt("1.1.1.1", Some("AKIA2"), 1), Err(WINDOW_MS - 1));
        assert!(t.attempt("2.2.2.2", Some("AKIA1"), 1).is_ok());
        assert!(t.attempt("1.1.1.1", None, WINDOW_MS).is_ok());
    }

    #[test]
    fn a_key_is_refused_after_failures_from_many_addresses() {
        let t = Throttle::default();
        for i in 0..PER_KEY {
            assert!(t.attempt(&format!("10.0.0.{i}"), Some("AKIA1"), 0).is_ok());
        }
        assert!(t.attempt("9.9.9.9", Some("AKIA1"), 1).is_err());
        assert!(t.attempt("9.9.9.9", Some("AKIA2"), 1).is_ok());
    }

    #[test]
    fn a_successful_attempt_is_not_counted() {
        let t = Throttle::default();
        for i in 0..(2 * PER_IP) {
            let at = i64::from(i);
            assert!(t.attempt("1.1.1.1", Some("AKIA1"), at).is_ok());
            t.succeeded("1.1.1.1", Some("AKIA1"), at);
        }
        for _ in 0..PER_IP {
            assert!(t.attempt("1.1.1.1", Some("AKIA1"), 100).is_ok());
        }
        assert!(t.attempt("1.1.1.1", Some("AKIA1"), 100).is_err());
        // A success taken back in a later window leaves that window alone.
        t.succeeded("1.1.1.1", Some("AKIA1"), -1);
        assert!(t.attempt("1.1.1.1", Some("AKIA1"), 100).is_err());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let t = Throttle::default();
        for i in 0..PER_IP {
            assert!(t.attempt(&format!("2001:db8::{i:x}"), None, 0).is_ok());
        }
        assert!(t.attempt("2001:db8::ffff:1", None, 1).is_err());
        assert!(t.attempt("2001:db8:0:0:abcd::1", None, 1).is_err());
        // Another /64, and IPv4 addresses, are their own.
        assert!(t.attempt("2001:db8:0:1::1", None, 1).is_ok());
        assert!(t.attempt("192.0.2.1", None, 1).is_ok());
        assert_eq!(address_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("2001:db8::7"), "2001:db8::/64");
    }

    #[test]
    fn filling_the_map_keeps_a_window_that_refuses() {
        let t = Throttle::default();
        for i in 0..PER_KEY {
            assert!(t.attempt(&format!("10.0.0.{i}"), Some("AKIA1"), 0).is_ok());
        }
        assert!(t.attempt("9.9.9.9", Some("AKIA1"), 1).is_err());
        for i in 0..(MAX_ENTRIES + 10) {
            let at = 2 + i64::try_from(i).unwrap_or(0);
            assert!(t
                .attempt(&format!("ip{i}"), Some(&format!("K{i}")), at)
                .is_ok());
        }
        assert!(t.attempt("9.9.9.9", Some("AKIA1"), 20_000).is_err());
    }

    #[test]
    fn the_maps_stay_bounded() {
        let t = Throttle::default();
        for i in 0..(MAX_ENTRIES + 10) {
            assert!(t
                .attempt(&format!("ip{i}"), None, i64::try_from(i).unwrap_or(0))
                .is_ok());
        }
        let g = t.inner.lock().unwrap();
        assert!(g.0 .0.len() <= MAX_ENTRIES);
    }
}
