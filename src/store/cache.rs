//! What short reads found, kept in memory while nothing was written since.
//!
//! A request's resolution (the secret, its tags, its resource policy and, for a read, the
//! selected version sealed with the key that opens it) is a few indexed lookups, but through
//! SQLite and diesel they cost about a fifth of a GetSecretValue's instructions, and on
//! PostgreSQL a network round trip each. Every transaction of this process that can change
//! what is cached goes through [`super::Store::write_blocking`] or the group-commit writer,
//! which both advance the store's data generation once their transaction has ended and
//! before its caller is answered. An entry is served only while the generation it was read
//! under is still the current one, so a read never returns what an acknowledged write
//! replaced:
//!
//! - the generation is taken *before* the read transaction starts, and the entry is kept
//!   only if the generation is still the same after the read (a write that committed during
//!   the read, or before the read but whose advance came later, makes the entry stale at
//!   once);
//! - a write that has committed but not yet advanced the generation has not been answered
//!   either: a read served from the cache in that moment is concurrent with the write, and
//!   may see either side of it, as it may without a cache.
//!
//! Writes made outside this process's store handles are noticed before every cached read
//! (`changes`): on SQLite (a CLI command, another process on the same file) through
//! `PRAGMA main.data_version`, asked on a connection of its own, which changes whenever
//! another connection committed to the main database (the store's own writes change it too,
//! so each one empties the cache at most twice; only the audit files, attached as other
//! schemas, are written without it); on PostgreSQL (other servers on the same database)
//! through a sequence every server's writes advance after they commit. Either way the cache
//! is then emptied.
//!
//! Invalidation is coarse: any write empties the whole cache (the next read of each secret
//! goes to the store again). What is cached is a function of the database alone (no clock,
//! no caller): the caller's authorization runs on every request, on what was read.
//!
//! Writes of the audit files (the chain, the lookup index) do not advance the generation:
//! they change nothing that is cached (see [`super::Store::audit_writer`]).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most entries kept; past this the cache is emptied (a bound on memory, not an LRU: each
/// entry is a few KB, so this is tens of MB at most).
const MAX_ENTRIES: usize = 16_384;

type Entry = Arc<dyn Any + Send + Sync>;

/// The data generation and the entries read under it.
#[derive(Default)]
pub(super) struct ReadCache {
    generation: AtomicU64,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// The generation every entry of `map` was read under.
    generation: u64,
    map: HashMap<String, Entry>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ReadCache {
    /// The current data generation (taken before a read whose result may be kept).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A write transaction ended (committed or not): everything cached may be stale.
    pub(super) fn advance(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The entry for `key`, if it was read under the current generation and is a `T`.
    pub(super) fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let now = self.generation();
        let mut e = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if e.generation != now {
            e.map.clear();
            e.generation = now;
            return None;
        }
        e.map.get(key).cloned()?.downcast::<T>().ok()
    }

    /// Keep `value`, read under `read_under`, unless a write has ended since.
    pub(super) fn put<T: Any + Send + Sync>(&self, key: String, value: Arc<T>, read_under: u64) {
        let mut e = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked under the lock: `get` empties the map when the generation moved on.
        if self.generation() != read_under {
            return;
        }
        if e.generation != read_under {
            e.map.clear();
            e.generation = read_under;
        }
        if e.map.len() >= MAX_ENTRIES {
            e.map.clear();
        }
        e.map.insert(key, value);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .len()
    }
}

/// A read-cache key: `kind`, then each field with its length (`None` as `~`), so that no two
/// lists of fields give the same key whatever characters they hold. Built on every cached
/// request, without `format!`.
pub fn key(kind: &str, fields: &[Option<&str>]) -> String {
    let mut out = String::with_capacity(
        kind.len()
            + fields
                .iter()
                .map(|f| f.map_or(1, |f| f.len() + 6))
                .sum::<usize>(),
    );
    out.push_str(kind);
    for field in fields {
        match field {
            None => out.push('~'),
            Some(f) => {
                push_decimal(&mut out, f.len());
                out.push(':');
                out.push_str(f);
            }
        }
    }
    out
}

fn push_decimal(out: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_every_list_of_fields_apart() {
        assert_eq!(
            key("secret", &[Some("111122223333"), None, Some("")]),
            "secret12:111122223333~0:"
        );
        let lists: [&[Option<&str>]; 6] = [
            &[Some("a:b"), Some("c")],
            &[Some("a"), Some("b:c")],
            &[Some("a"), Some(":b"), Some("c")],
            &[None, Some("")],
            &[Some(""), None],
            &[Some("~")],
        ];
        let keys: std::collections::HashSet<String> = lists.iter().map(|l| key("k", l)).collect();
        assert_eq!(keys.len(), lists.len());
        assert_eq!(
            key("k", &[Some(&"x".repeat(1234))]).len(),
            "k1234:".len() + 1234
        );
    }

    #[test]
    fn an_entry_read_before_a_write_is_never_served_after_it() {
        let c = ReadCache::default();
        let g = c.generation();
        c.put("k".into(), Arc::new(1_u32), g);
        assert_eq!(c.get::<u32>("k").as_deref(), Some(&1));
        c.advance();
        assert_eq!(c.get::<u32>("k"), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_read_that_a_write_overlapped_is_not_kept() {
        let c = ReadCache::default();
        let g = c.generation();
        // The write ends while the read is under way.
        c.advance();
        c.put("k".into(), Arc::new(1_u32), g);
        assert_eq!(c.get::<u32>("k"), None);
        // A read that started after it is kept.
        let g = c.generation();
        c.put("k".into(), Arc::new(2_u32), g);
        assert_eq!(c.get::<u32>("k").as_deref(), Some(&2));
    }

    #[test]
    fn an_entry_of_another_type_is_a_miss() {
        let c = ReadCache::default();
        c.put("k".into(), Arc::new(1_u32), c.generation());
        assert_eq!(c.get::<String>("k"), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = ReadCache::default();
        let g = c.generation();
        for i in 0..(MAX_ENTRIES + 10) {
            c.put(i.to_string(), Arc::new(i), g);
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
