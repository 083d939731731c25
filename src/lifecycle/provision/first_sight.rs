//! [`Accounts::ensure`]: the first time a request meets a user whose account is not cached,
//! one attempt per user and claims runs in its own task, and every request for them waits
//! on it. The attempt reads the store first (current? superseded by a newer login?
//! deactivated?) and only then takes the user's lease to call the app (see
//! `create_update.rs`). The waiting, sharing and store-outage rules live here together
//! because they decide what a waiting request is told.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::cache::TOUCH_EVERY_SECS;
use super::client::Who;
use super::context::{attrs_hash, context};
use super::lease::lease_for;
use super::{Accounts, ProvisionError};
use crate::auth::identity::Identity;
use crate::policy::connector::Connector;
use crate::policy::AppPolicy;
use crate::store::{AccountKey, AccountRecord};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_secs;

/// How long a request waits for its account before the user gets "being set up, try again"
/// (the attempt itself carries on).
pub const WAIT_AT_MOST: Duration = Duration::from_secs(10);

/// A flight is per session login time too: a newer login with the same claims must not be
/// answered by an older session's "nothing to do" (see [`Standing::Superseded`]).
pub(super) type FlightKey = (u64, [u8; 16], i64);
/// The result of one attempt, shared with every request that waits for it.
pub(super) type Flight = watch::Receiver<Option<Result<(), ProvisionError>>>;

/// Where a user's account stands against the claims of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// The app has exactly what these claims would send.
    Current,
    /// A newer login (at this time) already sent other claims: leave the app alone.
    Superseded(i64),
    /// New user, or a mover: the app must be called.
    NeedsWork,
}

/// Removes a flight from the map however its task ends (even by panic), so the next
/// request for that user starts a new attempt instead of finding a dead one.
struct FlightGuard {
    accounts: Arc<Accounts>,
    key: FlightKey,
    done: watch::Sender<Option<Result<(), ProvisionError>>>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.done.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(Err(ProvisionError::Unavailable(
                    "the set-up attempt stopped".into(),
                )));
                true
            } else {
                false
            }
        });
        let mut flights = self
            .accounts
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(&self.key)
            .is_some_and(|f| f.same_channel(&self.done.subscribe()))
        {
            flights.remove(&self.key);
        }
    }
}

/// Who is asking, with what claims.
#[derive(Clone)]
pub(super) struct Ask {
    pub(super) app: Arc<AppPolicy>,
    pub(super) connector: Arc<Connector>,
    pub(super) identity: Identity,
    /// When these claims were issued (the session's login): older claims never override
    /// what a newer login already sent to the app.
    pub(super) login_at: i64,
    pub(super) request_id: String,
}

impl Accounts {
    /// Makes sure the user's account in `app` exists and is current, before a request is
    /// forwarded. Concurrent calls for the same user and claims share one attempt, which
    /// runs as its own task: a browser that gives up does not cancel it halfway. A caller
    /// waits at most [`WAIT_AT_MOST`], then gets "still being set up" while it finishes.
    pub async fn ensure(
        self: &Arc<Self>,
        app: &Arc<AppPolicy>,
        connector: &Arc<Connector>,
        identity: &Identity,
        login_at: i64,
        request_id: &str,
    ) -> Result<(), ProvisionError> {
        let key = (app.key, identity.digest(), login_at);
        let mut flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let (done, flight) = watch::channel(None);
                    flights.insert(key, flight.clone());
                    let ask = Ask {
                        app: app.clone(),
                        connector: connector.clone(),
                        identity: identity.clone(),
                        login_at,
                        request_id: request_id.to_string(),
                    };
                    let guard = FlightGuard {
                        accounts: self.clone(),
                        key,
                        done,
                    };
                    tokio::spawn(async move {
                        let this = guard.accounts.clone();
                        let result = this.first_sight(&ask).await;
                        if matches!(result, Err(ProvisionError::Deactivated)) {
                            // Never again vouched for, not even while the store is down.
                            this.cache.invalidate(&(ask.app.key, ask.identity.digest()));
                        }
                        // Waiters are answered and the flight ends before the audit write,
                        // which may itself wait on an unreachable store; a later request
                        // starts a new attempt rather than reading this one's result.
                        if let Err(e) = &result {
                            this.metrics
                                .provisioning_errors
                                .with_label_values(&[&ask.app.name, e.reason()])
                                .inc();
                        }
                        let _ = guard.done.send(Some(result.clone()));
                        drop(guard);
                        if let Err(e) = &result {
                            this.failed(&ask, e).await;
                        }
                    });
                    flight
                }
            }
        };
        let outcome =
            match tokio::time::timeout(WAIT_AT_MOST, flight.wait_for(Option::is_some)).await {
                Ok(Ok(result)) => result.clone().unwrap_or(Err(ProvisionError::Busy)),
                Ok(Err(_)) => Err(ProvisionError::Unavailable(
                    "the set-up attempt stopped".into(),
                )),
                Err(_) => Err(ProvisionError::Busy),
            };
        match outcome {
            // The store cannot confirm an account this replica confirmed before, for the
            // same claims: keep serving it, and stop asking the store for a while.
            Err(ProvisionError::Store(why)) if self.known(app, identity, login_at) => {
                self.store_outage.failed(now_secs());
                tracing::warn!(app = %app.name, error = %why, "store unreachable: serving accounts confirmed earlier without re-checking them");
                Ok(())
            }
            outcome => outcome,
        }
    }

    /// A first-sight attempt failed: log and audit it.
    async fn failed(&self, ask: &Ask, e: &ProvisionError) {
        tracing::warn!(app = %ask.app.name, request_id = %ask.request_id, reason = e.reason(), error = %e, "account set-up failed");
        self.audit
            .record(
                AuditKind::ProvisioningFailed,
                Subject {
                    iss: Some(&ask.identity.iss),
                    sub: Some(&ask.identity.sub),
                    app: Some(&ask.app.name),
                    request_id: Some(&ask.request_id),
                },
                json!({ "reason": e.reason(), "error": e.to_string() }),
            )
            .await;
    }

    /// Where the account stands for this session, given the stored record.
    fn standing(
        &self,
        ask: &Ask,
        hash: &str,
        record: Option<&AccountRecord>,
    ) -> Result<Standing, ProvisionError> {
        match record {
            Some(r) if r.deactivated_at.is_some() => Err(ProvisionError::Deactivated),
            Some(r) if r.attrs_hash == hash => Ok(Standing::Current),
            // Older claims never undo what a newer login sent.
            Some(r) if r.claims_at > ask.login_at => Ok(Standing::Superseded(r.claims_at)),
            _ => Ok(Standing::NeedsWork),
        }
    }

    async fn first_sight(&self, ask: &Ask) -> Result<(), ProvisionError> {
        let (app, connector, identity) = (&*ask.app, &*ask.connector, &ask.identity);
        let key = AccountKey {
            app: &app.name,
            iss: &identity.iss,
            sub: &identity.sub,
        };
        let ctx = context(connector, identity, None);
        let hash = attrs_hash(connector, &ctx)?;
        let lease = lease_for(connector);
        // A few rounds: another replica may hold the lease, then we re-read what it wrote.
        for _ in 0..3 {
            let record = self.store.get_account(key).await?;
            let standing = self.standing(ask, &hash, record.as_ref())?;
            if standing != Standing::NeedsWork {
                self.current(app, identity, record.as_ref(), standing).await;
                return Ok(());
            }
            let owner = format!(
                "{}-{}",
                self.owner,
                self.attempts.fetch_add(1, Ordering::Relaxed)
            );
            if !self
                .store
                .claim_provisioning(key, &owner, lease.as_secs() as i64)
                .await?
            {
                self.wait_for_lease(key, lease).await?;
                continue;
            }
            // Holding the lease: read again, someone may have finished just before.
            let result = match self.store.get_account(key).await {
                Err(e) => Err(e.into()),
                Ok(record) => match self.standing(ask, &hash, record.as_ref()) {
                    Err(e) => Err(e),
                    Ok(standing @ (Standing::Current | Standing::Superseded(_))) => {
                        self.current(app, identity, record.as_ref(), standing).await;
                        Ok(())
                    }
                    Ok(Standing::NeedsWork) => {
                        let who = Who {
                            iss: &identity.iss,
                            sub: &identity.sub,
                            request_id: Some(&ask.request_id),
                        };
                        match record {
                            Some(r) => self.mover(ask, ctx.clone(), hash.clone(), r, who).await,
                            None => self.provision(ask, ctx.clone(), hash.clone(), who).await,
                        }
                    }
                },
            };
            if let Err(e) = self.store.release_provisioning(key, &owner).await {
                tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
            }
            if result.is_ok() && !self.is_current(app, identity, ask.login_at) {
                self.remember(app, identity, now_secs(), None);
            }
            return result;
        }
        // The last wait ended with the lease free: use what its holder wrote, if anything.
        let record = self.store.get_account(key).await?;
        match self.standing(ask, &hash, record.as_ref())? {
            Standing::NeedsWork => Err(ProvisionError::Busy),
            standing => {
                self.current(app, identity, record.as_ref(), standing).await;
                Ok(())
            }
        }
    }

    /// The record says the account is current: cache it, and note the activity if the
    /// stored last-seen time is old.
    async fn current(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        record: Option<&AccountRecord>,
        standing: Standing,
    ) {
        let now = now_secs();
        let mut written = record.map(|r| r.last_seen).unwrap_or(now);
        if now - written >= TOUCH_EVERY_SECS {
            let key = AccountKey {
                app: &app.name,
                iss: &identity.iss,
                sub: &identity.sub,
            };
            match self.store.touch_account(key, now).await {
                Ok(()) => written = now,
                Err(e) => tracing::warn!(error = %e, "could not record account activity"),
            }
        }
        let valid_before = match standing {
            Standing::Superseded(t) => Some(t),
            _ => None,
        };
        self.remember(app, identity, written, valid_before);
    }
}
