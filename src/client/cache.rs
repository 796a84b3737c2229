//! The agent's cache: GetSecretValue answers (their JSON, in zeroizing buffers) by request,
//! each kept for a TTL, at most `capacity` of them (the oldest fetched leaves first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::SecretRequest;

/// A cached answer: the GetSecretValue JSON and when it was fetched.
#[derive(Debug)]
struct Entry {
    body: Arc<Zeroizing<Vec<u8>>>,
    fetched: Instant,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A fresh entry.
    Fresh(Arc<Zeroizing<Vec<u8>>>),
    /// An entry past its TTL (served only when a refresh fails transiently).
    Stale(Arc<Zeroizing<Vec<u8>>>),
    Missing,
}

/// A TTL cache with a size bound.
#[derive(Debug)]
pub struct Cache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<SecretRequest, Entry>>,
}

impl Cache {
    /// A cache keeping entries for `ttl` (zero: nothing is served from it), at most `capacity`
    /// of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretRequest, Entry>> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry for `req`, fresh or stale.
    pub fn get(&self, req: &SecretRequest) -> Lookup {
        self.get_at(req, Instant::now())
    }

    fn get_at(&self, req: &SecretRequest, now: Instant) -> Lookup {
        match self.lock().get(req) {
            Some(e) if now.saturating_duration_since(e.fetched) < self.ttl => {
                Lookup::Fresh(Arc::clone(&e.body))
            }
            Some(e) => Lookup::Stale(Arc::clone(&e.body)),
            None => Lookup::Missing,
        }
    }

    /// Keep `body` as the answer to `req`; when the cache is full, the entry fetched longest
    /// ago leaves.
    pub fn put(&self, req: SecretRequest, body: Arc<Zeroizing<Vec<u8>>>) {
        self.put_at(req, body, Instant::now());
    }

    fn put_at(&self, req: SecretRequest, body: Arc<Zeroizing<Vec<u8>>>, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        if !map.contains_key(&req) && map.len() >= self.capacity {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.fetched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(req, Entry { body, fetched: now });
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str) -> SecretRequest {
        SecretRequest {
            secret_id: id.into(),
            version_id: None,
            version_stage: None,
        }
    }

    fn body(s: &str) -> Arc<Zeroizing<Vec<u8>>> {
        Arc::new(Zeroizing::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn fresh_then_stale_after_the_ttl() {
        let c = Cache::new(Duration::from_secs(10), 4);
        let t0 = Instant::now();
        c.put_at(req("a"), body("1"), t0);
        assert!(matches!(
            c.get_at(&req("a"), t0 + Duration::from_secs(9)),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            c.get_at(&req("a"), t0 + Duration::from_secs(10)),
            Lookup::Stale(_)
        ));
        assert!(matches!(c.get_at(&req("b"), t0), Lookup::Missing));
    }

    #[test]
    fn the_size_bound_evicts_the_oldest() {
        let c = Cache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        c.put_at(req("a"), body("1"), t0);
        c.put_at(req("b"), body("2"), t0 + Duration::from_millis(1));
        c.put_at(req("c"), body("3"), t0 + Duration::from_millis(2));
        assert_eq!(c.len(), 2);
        assert!(matches!(c.get_at(&req("a"), t0), Lookup::Missing));
        assert!(matches!(c.get_at(&req("c"), t0), Lookup::Fresh(_)));
        // Replacing an entry evicts nothing.
        c.put_at(req("c"), body("4"), t0 + Duration::from_millis(3));
        assert_eq!(c.len(), 2);
        assert!(matches!(c.get_at(&req("b"), t0), Lookup::Fresh(_)));
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let c = Cache::new(Duration::ZERO, 2);
        c.put(req("a"), body("1"));
        assert!(c.is_empty());
    }

    #[test]
    fn version_and_stage_are_part_of_the_key() {
        let c = Cache::new(Duration::from_secs(10), 4);
        c.put(req("a"), body("1"));
        let staged = SecretRequest {
            version_stage: Some("AWSPREVIOUS".into()),
            ..req("a")
        };
        assert!(matches!(c.get(&staged), Lookup::Missing));
    }
}
