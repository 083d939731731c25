//! JIT provisioning: the user's account in a legacy app, created through the app's own API
//! the first time jitgate sees the user there, and kept current afterwards.
//!
//! ```text
//! request path   cache (app, identity digest) hit -> forward       (no store, no app call)
//!                miss -> one task per key in this process -> first_sight (wait <= 10 s)
//! first_sight    record current (or sent by a newer login)? -> cache | deactivated -> 403
//!                otherwise take the store lease for (app, iss, sub), read the record again:
//!                  new:   lookup? -> create (exists -> lookup) -> update if linked
//!                  mover: update
//!                  then write the record (never over a deactivation), release the lease
//!                another replica holds the lease -> wait until it is free, start over
//! ```
//! A record is written only after the app said yes, so a failure leaves nothing half done
//! and the next request simply tries again. The cache key includes a digest of the user's
//! claims, so a login with changed claims misses, and the mover check runs before forwarding.
//! A cached account is re-checked against the store after `revalidate_after`; when the store
//! cannot be read, an account this replica confirmed earlier keeps working (for the same
//! claims), like a cached session does.
//!
//! The parts, each in its own file:
//!
//! ```text
//! mod.rs            Accounts and its constructor
//! cache.rs          the request path's cache of confirmed accounts (is_current, remember)
//! first_sight.rs    ensure: one attempt per user and claims, and what the store says first
//! create_update.rs  the app calls for a new user (lookup, create) and a mover (update)
//! context.rs        what the connector's templates see, and the digest that spots movers
//! lease.rs          the per-user store lease that puts every call to the app in order
//! deactivate.rs     operator actions: deactivate (leaver) and reactivate
//! regroup.rs        a mover's new groups sent to the app without waiting for a visit
//! listing.rs        the accounts the app really has (the connector's `list`, paged)
//! grant_call.rs     a grant type's start and end calls for the owner's account
//! error.rs          ProvisionError
//! client.rs         the HTTP client (retries, timeouts); breaker.rs: its circuit breakers
//! ```

pub mod breaker;
mod cache;
pub mod client;
mod context;
mod create_update;
mod deactivate;
mod error;
mod first_sight;
mod grant_call;
mod lease;
mod listing;
mod regroup;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{Store, StoreOutage};
use crate::telemetry::audit::Audit;
use crate::telemetry::metrics::Metrics;
use crate::util::cache_key::KeyHasherBuilder;
use cache::{CacheKey, Entry, KEEP_UNUSED};
use client::ApiClient;
use first_sight::{Flight, FlightKey};

pub use context::context;
pub use deactivate::Because;
pub use error::ProvisionError;
pub use first_sight::WAIT_AT_MOST;
pub use grant_call::GrantCall;

pub struct Accounts {
    cache: moka::sync::Cache<CacheKey, Arc<Entry>, KeyHasherBuilder>,
    flights: Mutex<HashMap<FlightKey, Flight>>,
    store: Arc<dyn Store>,
    audit: Audit,
    metrics: Metrics,
    pub client: ApiClient,
    /// Identifies this process's leases; each attempt adds a counter.
    owner: String,
    attempts: AtomicU64,
    /// Seconds after which a cached account is confirmed again.
    revalidate_after: i64,
    /// For `revalidate_after` after a failed store read, cached accounts are served
    /// without asking the store.
    store_outage: StoreOutage,
}

impl Accounts {
    /// `revalidate_after` bounds how long a replica trusts a cached account (a deactivation
    /// by another process is honoured within it), like sessions.
    pub fn new(
        store: Arc<dyn Store>,
        audit: Audit,
        metrics: Metrics,
        revalidate_after: Duration,
    ) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(KEEP_UNUSED.max(revalidate_after))
                .support_invalidation_closures()
                .build_with_hasher(KeyHasherBuilder::default()),
            flights: Mutex::new(HashMap::new()),
            client: ApiClient::new(audit.clone(), metrics.clone()),
            owner: crate::util::random::token()
                .unwrap_or_else(|_| format!("pid-{}", std::process::id())),
            attempts: AtomicU64::new(0),
            revalidate_after: revalidate_after.as_secs() as i64,
            store_outage: StoreOutage::default(),
            store,
            audit,
            metrics,
        }
    }

    /// The store this service keeps accounts in.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}
