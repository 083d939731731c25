//! A few sessions per worker thread, in front of the shared session cache.
//!
//! A hit in the shared (moka) cache writes to memory every worker thread shares: the entry's
//! reference count and access time, and the cache's read log. When one user's requests run on
//! every thread at once, those writes make the threads take turns on the same cache lines. A
//! hit here reads memory its own thread owns, plus the session itself.
//!
//! Nothing is ever served from here that the shared cache would refuse: every invalidation
//! in the shared cache (logout, back-channel logout, expiry) bumps an epoch, and a thread
//! drops everything it holds when it sees a new epoch before its next lookup. Entries are also
//! looked up in the shared cache again after a second, which keeps that cache's idle-time
//! bookkeeping right, and the caller still checks every session's age and timeouts.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{ActiveSession, SessionKey};

/// Sessions one thread holds: a small direct-mapped table.
const SLOTS: usize = 64;
/// How long (seconds) a thread serves an entry before it asks the shared cache again.
const REFRESH_AFTER_SECS: i64 = 1;

/// One shared session cache's view of the per-thread tables.
#[derive(Debug)]
pub struct NearCache {
    /// Which cache a thread's table belongs to (tests and benches run several in a process).
    owner: u64,
    epoch: Epoch,
}

/// Bumped on every invalidation; alone on its cache line, which lookups only read.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Epoch(AtomicU64);

struct Slot {
    key: SessionKey,
    session: Arc<ActiveSession>,
    fetched_at: i64,
}

#[derive(Default)]
struct Table {
    owner: u64,
    epoch: u64,
    slots: Vec<Option<Slot>>,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

fn slot_index(key: &SessionKey) -> usize {
    // Session ids are random base64url: the low bits of three characters spread them well.
    (usize::from(key[0]) ^ usize::from(key[1]) << 2 ^ usize::from(key[2]) << 4) % SLOTS
}

impl Default for NearCache {
    fn default() -> Self {
        static OWNERS: AtomicU64 = AtomicU64::new(1);
        Self {
            owner: OWNERS.fetch_add(1, Ordering::Relaxed),
            epoch: Epoch::default(),
        }
    }
}

/// What a miss saw: the epoch before the shared cache was asked, which is the epoch what it
/// answered may be kept under. (Were it the epoch after, an invalidation between the two
/// reads would be missed and a just-ended session served for another second.)
#[derive(Debug, Clone, Copy)]
pub struct Miss {
    epoch: u64,
}

impl NearCache {
    /// This thread's entry for `key`, if it was fetched less than a second ago, loaded from
    /// the store at `loaded_since` or later, and nothing was invalidated since; otherwise what
    /// [`Self::put`] needs after asking the shared cache.
    pub fn get(
        &self,
        key: &SessionKey,
        now: i64,
        loaded_since: i64,
    ) -> Result<Arc<ActiveSession>, Miss> {
        let epoch = self.epoch.0.load(Ordering::Acquire);
        let miss = Miss { epoch };
        TABLE.with(|table| {
            let mut table = table.try_borrow_mut().map_err(|_| miss)?;
            if table.owner != self.owner || table.epoch != epoch {
                table.slots.clear();
                return Err(miss);
            }
            match table.slots.get(slot_index(key)) {
                Some(Some(slot))
                    if slot.key == *key
                        && now - slot.fetched_at < REFRESH_AFTER_SECS
                        && slot.session.loaded_at >= loaded_since =>
                {
                    Ok(slot.session.clone())
                }
                _ => Err(miss),
            }
        })
    }

    /// Remembers, on this thread, a session the shared cache answered after `miss`.
    pub fn put(&self, miss: Miss, key: &SessionKey, session: &Arc<ActiveSession>, now: i64) {
        TABLE.with(|table| {
            let Ok(mut table) = table.try_borrow_mut() else {
                return;
            };
            if table.owner != self.owner || table.epoch != miss.epoch {
                table.owner = self.owner;
                table.epoch = miss.epoch;
                table.slots.clear();
            }
            if table.slots.is_empty() {
                table.slots.resize_with(SLOTS, || None);
            }
            if let Some(slot) = table.slots.get_mut(slot_index(key)) {
                *slot = Some(Slot {
                    key: *key,
                    session: session.clone(),
                    fetched_at: now,
                });
            }
        });
    }

    /// Something was invalidated in the shared cache: every thread forgets what it holds
    /// before its next lookup.
    pub fn invalidate(&self) {
        self.epoch.0.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::identity::Identity;
    use std::sync::atomic::AtomicI64;

    const NOW: i64 = 1_800_000_000;

    fn session(loaded_at: i64) -> Arc<ActiveSession> {
        Arc::new(ActiveSession {
            id_hash: [7; 32],
            host: "wiki.example.test".into(),
            identity: Identity::from_claims(
                "https://idp".into(),
                "sub-1".into(),
                serde_json::Map::new(),
                "preferred_username",
                "groups",
            ),
            login_at: loaded_at,
            last_seen: AtomicI64::new(loaded_at),
            persisted_last_seen: AtomicI64::new(loaded_at),
            loaded_at,
        })
    }

    fn key(c: u8) -> SessionKey {
        [c; crate::util::random::TOKEN_LEN]
    }

    #[test]
    fn a_session_is_served_from_the_thread_until_something_is_invalidated() {
        let near = NearCache::default();
        let miss = near.get(&key(b'a'), NOW, NOW).unwrap_err();
        near.put(miss, &key(b'a'), &session(NOW), NOW);
        assert!(near.get(&key(b'a'), NOW, NOW).is_ok());
        assert!(near.get(&key(b'b'), NOW, NOW).is_err());
        near.invalidate();
        assert!(near.get(&key(b'a'), NOW, NOW).is_err());
    }

    #[test]
    fn an_invalidation_between_the_miss_and_the_put_is_not_lost() {
        let near = NearCache::default();
        let miss = near.get(&key(b'a'), NOW, NOW).unwrap_err();
        // Another thread logs the user out after this one read the shared cache.
        near.invalidate();
        near.put(miss, &key(b'a'), &session(NOW), NOW);
        assert!(near.get(&key(b'a'), NOW, NOW).is_err());
    }

    #[test]
    fn entries_go_back_to_the_shared_cache_after_a_second_or_when_due_for_revalidation() {
        let near = NearCache::default();
        let miss = near.get(&key(b'a'), NOW, NOW).unwrap_err();
        near.put(miss, &key(b'a'), &session(NOW - 5), NOW);
        assert!(near.get(&key(b'a'), NOW, NOW - 5).is_ok());
        assert!(near.get(&key(b'a'), NOW + 1, NOW - 5).is_err());
        assert!(near.get(&key(b'a'), NOW, NOW - 4).is_err());
    }

    #[test]
    fn two_session_caches_never_see_each_others_entries() {
        let (one, two) = (NearCache::default(), NearCache::default());
        let miss = one.get(&key(b'a'), NOW, NOW).unwrap_err();
        one.put(miss, &key(b'a'), &session(NOW), NOW);
        assert!(two.get(&key(b'a'), NOW, NOW).is_err());
    }
}
