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

pub mod breaker;
pub mod client;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::auth::identity::Identity;
use crate::policy::connector::template::{AccountVars, AppVars, TemplateContext, UserVars};
use crate::policy::connector::{Connector, ConnectorError, OpName, Outcome};
use crate::policy::AppPolicy;
use crate::store::{AccountKey, AccountRecord, GrantRecord, Store, StoreOutage};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::telemetry::metrics::Metrics;
use crate::util::cache_key::KeyHasherBuilder;
use crate::util::clock::now_secs;
use client::{Answer, ApiClient, CallError, Who};

/// How often a user's activity in an app is written to the store at most.
const TOUCH_EVERY_SECS: i64 = 300;
/// How often a waiting replica re-reads the store.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// How long a request waits for its account before the user gets "being set up, try again"
/// (the attempt itself carries on).
pub const WAIT_AT_MOST: Duration = Duration::from_secs(10);
/// How long an unused cache entry is kept: past `revalidate_after` it is only re-checked,
/// not dropped, so that a store outage does not lock out users this replica already knows.
const KEEP_UNUSED: Duration = Duration::from_secs(3600);

/// Why an account could not be made ready. Cloned to every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    #[error("calls to the app's API are paused for {0:?} after repeated failures")]
    Paused(Duration),
    #[error("the app's API is unavailable: {0}")]
    Unavailable(String),
    #[error("the account is still being set up")]
    Busy,
    #[error("the app answered {operation} with HTTP {status}")]
    Refused {
        operation: &'static str,
        status: u16,
    },
    #[error("the app answered {0} without the account id where the connector says it is")]
    NoAccountId(&'static str),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("the account was deactivated")]
    Deactivated,
    #[error("the grant ended before its start call could be made")]
    GrantEnded,
    #[error("store: {0}")]
    Store(String),
}

impl ProvisionError {
    /// The label used in metrics and audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            ProvisionError::Paused(_) => "paused",
            ProvisionError::Unavailable(_) => "unavailable",
            ProvisionError::Busy => "busy",
            ProvisionError::Refused { .. } | ProvisionError::NoAccountId(_) => "refused",
            ProvisionError::Connector(_) => "connector",
            ProvisionError::Deactivated => "deactivated",
            ProvisionError::GrantEnded => "grant_ended",
            ProvisionError::Store(_) => "store",
        }
    }
}

impl From<crate::store::StoreError> for ProvisionError {
    fn from(e: crate::store::StoreError) -> Self {
        ProvisionError::Store(e.to_string())
    }
}

impl From<CallError> for ProvisionError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Paused(d) => ProvisionError::Paused(d),
            CallError::Unavailable(why) => ProvisionError::Unavailable(why),
        }
    }
}

type CacheKey = (u64, [u8; 16]);
/// A flight is per session login time too: a newer login with the same claims must not be
/// answered by an older session's "nothing to do" (see [`Standing::Superseded`]).
type FlightKey = (u64, [u8; 16], i64);
/// The result of one attempt, shared with every request that waits for it.
type Flight = watch::Receiver<Option<Result<(), ProvisionError>>>;

/// A provisioned account as the request path sees it.
#[derive(Debug)]
struct Entry {
    app: Arc<str>,
    iss: Arc<str>,
    sub: Box<str>,
    last_seen_written: AtomicI64,
    /// When the store (or the app) last confirmed the account, in seconds.
    checked_at: i64,
    /// Set when these claims are older than what a newer login already sent to the app:
    /// the entry then vouches only for sessions that logged in before that time.
    valid_before: Option<i64>,
}

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
struct Ask {
    app: Arc<AppPolicy>,
    connector: Arc<Connector>,
    identity: Identity,
    /// When these claims were issued (the session's login): older claims never override
    /// what a newer login already sent to the app.
    login_at: i64,
    request_id: String,
}

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

    /// The hot path: true if the user's account in `app` is known to be current for a
    /// session that logged in at `login_at`.
    pub fn is_current(&self, app: &AppPolicy, identity: &Identity, login_at: i64) -> bool {
        let Some(entry) = self.cache.get(&(app.key, identity.digest())) else {
            return false;
        };
        if entry.valid_before.is_some_and(|t| login_at >= t) {
            return false;
        }
        let now = now_secs();
        if now - entry.checked_at >= self.revalidate_after
            && !self.store_outage.within(now, self.revalidate_after)
        {
            return false;
        }
        let written = entry.last_seen_written.load(Ordering::Relaxed);
        if now - written >= TOUCH_EVERY_SECS
            && entry
                .last_seen_written
                .compare_exchange(written, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let store = self.store.clone();
            tokio::spawn(async move {
                let key = AccountKey {
                    app: &entry.app,
                    iss: &entry.iss,
                    sub: &entry.sub,
                };
                if let Err(e) = store.touch_account(key, now).await {
                    tracing::warn!(error = %e, "could not record account activity");
                }
            });
        }
        true
    }

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

    /// True if this replica has confirmed the account for these claims before (however
    /// long ago) and no newer login has superseded them.
    fn known(&self, app: &AppPolicy, identity: &Identity, login_at: i64) -> bool {
        self.cache
            .get(&(app.key, identity.digest()))
            .is_some_and(|entry| entry.valid_before.is_none_or(|t| login_at < t))
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

    /// A new user: find or create the account, then write the record.
    async fn provision(
        &self,
        ask: &Ask,
        ctx: TemplateContext,
        hash: String,
        who: Who<'_>,
    ) -> Result<(), ProvisionError> {
        let (app, connector, identity) = (&*ask.app, &*ask.connector, &ask.identity);
        let mut account_id = None;
        let mut linked = false;
        if connector.lookup.is_some() {
            if let Some(id) = self.lookup(connector, &ctx, who).await? {
                account_id = Some(id);
                linked = true;
            }
        }
        if !linked {
            let answer = self.call(connector, OpName::Create, &ctx, who).await?;
            match answer.outcome {
                Outcome::Success => {
                    account_id = connector.create.account_id(&answer.body);
                    if account_id.is_none() && connector.create.account_id.is_some() {
                        return Err(ProvisionError::NoAccountId("create"));
                    }
                    if account_id.is_none() && connector.lookup.is_some() {
                        account_id = self.lookup(connector, &ctx, who).await?;
                    }
                }
                Outcome::Exists => {
                    linked = true;
                    if connector.lookup.is_some() {
                        account_id = self.lookup(connector, &ctx, who).await?;
                        if account_id.is_none() {
                            return Err(ProvisionError::NoAccountId("lookup"));
                        }
                    }
                }
                _ => return Err(refused(OpName::Create, &answer)),
            }
        }
        let account_id = account_id.unwrap_or_default();
        if linked && connector.update.is_some() {
            self.update(connector, &ctx, &account_id, who).await?;
        }
        let now = now_secs();
        let record = AccountRecord {
            app: app.name.clone(),
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            username: identity.username.to_string(),
            account_id: account_id.clone(),
            attrs_hash: hash,
            attributes: serde_json::to_string(&ctx).unwrap_or_default(),
            claims_at: ask.login_at,
            created_at: now,
            updated_at: now,
            last_seen: now,
            deactivated_at: None,
        };
        if !self.store.put_account(&record).await? {
            return self.not_written(&record).await;
        }
        let kind = if linked {
            AuditKind::AccountLinked
        } else {
            AuditKind::AccountCreated
        };
        self.audit
            .record(
                kind,
                subject(app, identity, who),
                json!({ "account_id": account_id, "roles": ctx.roles }),
            )
            .await;
        Ok(())
    }

    /// A known user whose attributes changed: update the account, then the record.
    async fn mover(
        &self,
        ask: &Ask,
        ctx: TemplateContext,
        hash: String,
        mut record: AccountRecord,
        who: Who<'_>,
    ) -> Result<(), ProvisionError> {
        let (app, connector, identity) = (&*ask.app, &*ask.connector, &ask.identity);
        if connector.update.is_some() {
            self.update(connector, &ctx, &record.account_id, who)
                .await?;
        }
        record.attrs_hash = hash;
        record.attributes = serde_json::to_string(&ctx).unwrap_or_default();
        record.username = identity.username.to_string();
        record.claims_at = ask.login_at;
        record.updated_at = now_secs();
        record.last_seen = now_secs();
        if !self.store.put_account(&record).await? {
            return self.not_written(&record).await;
        }
        self.audit
            .record(
                AuditKind::AccountUpdated,
                subject(app, identity, who),
                json!({ "account_id": record.account_id, "roles": ctx.roles, "called_app": connector.update.is_some() }),
            )
            .await;
        Ok(())
    }

    /// `put_account` declined: the account was deactivated meanwhile (refuse), or a newer
    /// login's claims are already recorded (theirs stand; this request may go on).
    async fn not_written(&self, record: &AccountRecord) -> Result<(), ProvisionError> {
        let key = AccountKey {
            app: &record.app,
            iss: &record.iss,
            sub: &record.sub,
        };
        match self.store.get_account(key).await? {
            Some(r) if r.deactivated_at.is_none() => Ok(()),
            _ => Err(ProvisionError::Deactivated),
        }
    }

    async fn lookup(
        &self,
        connector: &Connector,
        ctx: &TemplateContext,
        who: Who<'_>,
    ) -> Result<Option<String>, ProvisionError> {
        let answer = self.call(connector, OpName::Lookup, ctx, who).await?;
        match answer.outcome {
            Outcome::Success => Ok(connector
                .lookup
                .as_ref()
                .and_then(|op| op.account_id(&answer.body))),
            Outcome::NotFound => Ok(None),
            _ => Err(refused(OpName::Lookup, &answer)),
        }
    }

    async fn update(
        &self,
        connector: &Connector,
        ctx: &TemplateContext,
        account_id: &str,
        who: Who<'_>,
    ) -> Result<(), ProvisionError> {
        let mut ctx = ctx.clone();
        ctx.account = Some(AccountVars {
            id: account_id.to_string(),
        });
        let answer = self.call(connector, OpName::Update, &ctx, who).await?;
        match answer.outcome {
            Outcome::Success => Ok(()),
            _ => Err(refused(OpName::Update, &answer)),
        }
    }

    /// Builds and sends one operation (which must be configured).
    async fn call(
        &self,
        connector: &Connector,
        op: OpName,
        ctx: &TemplateContext,
        who: Who<'_>,
    ) -> Result<Answer, ProvisionError> {
        let operation = connector.operation(op).ok_or(ProvisionError::Refused {
            operation: op.as_str(),
            status: 0,
        })?;
        let request = connector.request(operation, ctx)?;
        Ok(self
            .client
            .call(connector, operation, &request, who)
            .await?)
    }

    /// Someone else holds the lease: wait until it is free (or has expired).
    async fn wait_for_lease(
        &self,
        key: AccountKey<'_>,
        lease: Duration,
    ) -> Result<(), ProvisionError> {
        let deadline = tokio::time::Instant::now() + lease;
        loop {
            tokio::time::sleep(WAIT_POLL).await;
            if !self.store.provisioning_claimed(key).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProvisionError::Busy);
            }
        }
    }

    /// Marks the user's account in `app` as current (after the app or the store said so;
    /// benches use it to price the cache hit alone).
    pub fn remember(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        last_seen_written: i64,
        valid_before: Option<i64>,
    ) {
        self.cache.insert(
            (app.key, identity.digest()),
            Arc::new(Entry {
                app: app.name.as_str().into(),
                iss: identity.iss.clone(),
                sub: identity.sub.clone(),
                last_seen_written: AtomicI64::new(last_seen_written),
                checked_at: now_secs(),
                valid_before,
            }),
        );
    }

    /// The store this service keeps accounts in.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Leaver: calls the connector's `deactivate` (if any), ends the user's sessions on the
    /// app's hosts and marks the record, holding the user's lease so no provisioning runs
    /// at the same time. Returns how many sessions ended and the app's status.
    pub async fn deactivate(
        &self,
        app: &AppPolicy,
        record: &AccountRecord,
        why: &Because<'_>,
    ) -> Result<(usize, Option<u16>), ProvisionError> {
        let key = AccountKey {
            app: &app.name,
            iss: &record.iss,
            sub: &record.sub,
        };
        let owner = self.operator_lease(app, key).await?;
        let result = self.deactivate_holding_lease(app, key, record, why).await;
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        result
    }

    /// Undoes a deactivation: jitgate forgets its record, so the user's next visit runs
    /// first sight again (lookup or create, then update). Whether the app's own account
    /// becomes active again is up to the connector's `update` (e.g. `active: true`).
    pub async fn reactivate(
        &self,
        app: &AppPolicy,
        record: &AccountRecord,
    ) -> Result<(), ProvisionError> {
        let key = AccountKey {
            app: &app.name,
            iss: &record.iss,
            sub: &record.sub,
        };
        let owner = self.operator_lease(app, key).await?;
        let result = self.store.forget_account(key).await;
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        result?;
        self.audit
            .record(
                AuditKind::AccountReactivated,
                Subject {
                    iss: Some(&record.iss),
                    sub: Some(&record.sub),
                    app: Some(&app.name),
                    request_id: None,
                },
                json!({ "account_id": record.account_id }),
            )
            .await;
        Ok(())
    }

    /// Makes a grant type's call (a named connector operation) for the grant owner's account
    /// in `app`; returns the app's status. The account must exist (jitgate made it at first
    /// sight); its stored attributes and id feed the templates.
    ///
    /// The call holds the user's lease, the one provisioning and deactivation hold, so a
    /// grant's start and end calls and a leaver reach the app one at a time and in order. A
    /// start call then re-reads the store: it is never made for a deactivated account, nor
    /// for a grant that ended meanwhile (its end call may already have been made). An end
    /// call is always made: it takes rights away.
    pub async fn grant_call(
        &self,
        app: &AppPolicy,
        operation: &str,
        grant: &GrantRecord,
        when: GrantCall,
    ) -> Result<u16, ProvisionError> {
        let key = AccountKey {
            app: &app.name,
            iss: &grant.iss,
            sub: &grant.sub,
        };
        let owner = self.operator_lease(app, key).await?;
        let result = self
            .grant_call_holding_lease(app, operation, grant, when, key)
            .await;
        if let Err(e) = self.store.release_provisioning(key, &owner).await {
            tracing::warn!(error = %e, "could not release a provisioning lease (it expires by itself)");
        }
        result
    }

    async fn grant_call_holding_lease(
        &self,
        app: &AppPolicy,
        operation: &str,
        grant: &GrantRecord,
        when: GrantCall,
        key: AccountKey<'_>,
    ) -> Result<u16, ProvisionError> {
        let connector = app.provisioning.as_deref().ok_or(ProvisionError::Refused {
            operation: "grant_call",
            status: 0,
        })?;
        let op = connector.named(operation).ok_or(ProvisionError::Refused {
            operation: "grant_call",
            status: 0,
        })?;
        let record = self
            .store
            .get_account(key)
            .await?
            .ok_or(ProvisionError::NoAccountId("grant_call"))?;
        if when == GrantCall::Start {
            if record.deactivated_at.is_some() {
                return Err(ProvisionError::Deactivated);
            }
            let now = crate::util::clock::now_ms();
            let still_active = self
                .store
                .get_grant(&grant.id)
                .await?
                .is_some_and(|g| g.status == "active" && g.expires_at.is_some_and(|e| e > now));
            if !still_active {
                return Err(ProvisionError::GrantEnded);
            }
        }
        let mut ctx: TemplateContext = serde_json::from_str(&record.attributes)
            .map_err(|e| ProvisionError::Store(format!("stored attributes: {e}")))?;
        ctx.account = Some(AccountVars {
            id: record.account_id.clone(),
        });
        let request = connector.request(op, &ctx)?;
        let who = Who {
            iss: key.iss,
            sub: key.sub,
            request_id: None,
        };
        let answer = self.client.call(connector, op, &request, who).await?;
        match answer.outcome {
            Outcome::Success => Ok(answer.status),
            _ => Err(ProvisionError::Refused {
                operation: "grant_call",
                status: answer.status,
            }),
        }
    }

    /// Takes the user's lease for an operator action, waiting for provisioning in flight.
    async fn operator_lease(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
    ) -> Result<String, ProvisionError> {
        let owner = format!("{}-operator", self.owner);
        let lease = app
            .provisioning
            .as_deref()
            .map(lease_for)
            .unwrap_or(Duration::from_secs(30));
        for _ in 0..3 {
            if self
                .store
                .claim_provisioning(key, &owner, lease.as_secs() as i64)
                .await?
            {
                return Ok(owner);
            }
            self.wait_for_lease(key, lease).await?;
        }
        Err(ProvisionError::Busy)
    }

    async fn deactivate_holding_lease(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
        record: &AccountRecord,
        why: &Because<'_>,
    ) -> Result<(usize, Option<u16>), ProvisionError> {
        // The record as it is now (a mover may have changed it since it was listed).
        let record = self
            .store
            .get_account(key)
            .await?
            .unwrap_or_else(|| record.clone());
        let who = Who {
            iss: &record.iss,
            sub: &record.sub,
            request_id: None,
        };
        let mut app_status = None;
        if let Some(connector) = &app.provisioning {
            // Without the app's id for the account, a template that needs it cannot be
            // rendered: the account is still marked and its sessions still end.
            let id_needed = record.account_id.is_empty();
            if connector.deactivate.is_some() && !id_needed {
                let mut ctx: TemplateContext = serde_json::from_str(&record.attributes)
                    .map_err(|e| ProvisionError::Store(format!("stored attributes: {e}")))?;
                ctx.account = Some(AccountVars {
                    id: record.account_id.clone(),
                });
                let answer = self.call(connector, OpName::Deactivate, &ctx, who).await?;
                match answer.outcome {
                    Outcome::Success | Outcome::NotFound => app_status = Some(answer.status),
                    _ => return Err(refused(OpName::Deactivate, &answer)),
                }
            }
        }
        self.store.deactivate_account(key, now_secs()).await?;
        let ended = self
            .store
            .delete_sessions_of(&record.iss, &record.sub, &app.hosts)
            .await?;
        self.audit
            .record(
                AuditKind::AccountDeactivated,
                Subject {
                    iss: Some(&record.iss),
                    sub: Some(&record.sub),
                    app: Some(&app.name),
                    request_id: None,
                },
                json!({
                    "account_id": record.account_id, "sessions_ended": ended.len(),
                    "app_status": app_status, "by": why.by, "reason": why.reason,
                }),
            )
            .await;
        Ok((ended.len(), app_status))
    }
}

/// Who asked for a lifecycle change and why, for its audit event.
#[derive(Debug, Clone, Copy)]
pub struct Because<'a> {
    /// `operator:<name>` for the command line.
    pub by: &'a str,
    pub reason: &'a str,
}

/// Which of a grant's app calls is made: rights given (start) or taken back (end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantCall {
    Start,
    End,
}

fn subject<'a>(app: &'a AppPolicy, identity: &'a Identity, who: Who<'a>) -> Subject<'a> {
    Subject {
        iss: Some(&identity.iss),
        sub: Some(&identity.sub),
        app: Some(&app.name),
        request_id: who.request_id,
    }
}

fn refused(op: OpName, answer: &Answer) -> ProvisionError {
    ProvisionError::Refused {
        operation: op.as_str(),
        status: answer.status,
    }
}

/// How long one replica may hold the right to provision a user: the longest first sight
/// (lookup, create, lookup again after a 409, update) with every attempt timing out and
/// every backoff slept, plus slack.
fn lease_for(connector: &Connector) -> Duration {
    let per_op = connector.timeout * (connector.retries + 1)
        + client::total_backoff(connector.retries)
        + Duration::from_secs(1);
    per_op * 4 + Duration::from_secs(2)
}

/// What templates see for `identity` in this connector's app.
pub fn context(
    connector: &Connector,
    identity: &Identity,
    account_id: Option<&str>,
) -> TemplateContext {
    let roles = connector.roles_for(identity.groups());
    TemplateContext {
        user: UserVars {
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            username: identity.username.to_string(),
            groups: identity.groups().map(str::to_string).collect(),
        },
        claims: identity.claims(),
        role: roles.first().cloned(),
        roles,
        app: AppVars {
            name: connector.app.clone(),
        },
        account: account_id.map(|id| AccountVars { id: id.to_string() }),
    }
}

/// SHA-256 of what jitgate would send to keep the account current (the update request, or
/// the create request if there is no update), without the credential: when it changes, the
/// user is a mover.
fn attrs_hash(connector: &Connector, ctx: &TemplateContext) -> Result<String, ProvisionError> {
    let mut ctx = ctx.clone();
    // The id is not part of "what we send about the user": any fixed value will do.
    ctx.account = Some(AccountVars {
        id: "account-id".into(),
    });
    let op = connector.update.as_ref().unwrap_or(&connector.create);
    let req = connector.request(op, &ctx)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(req.method.as_str().as_bytes());
    digest.update(req.url.as_str().as_bytes());
    for (name, value) in req.headers.iter().filter(|(_, v)| !v.is_sensitive()) {
        digest.update(name.as_str().as_bytes());
        digest.update(value.as_bytes());
    }
    if let Some(body) = &req.body {
        digest.update(body.to_string().as_bytes());
    }
    let out = digest.finish();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(out.as_ref().get(..32).unwrap_or(&[0; 32]));
    Ok(crate::util::random::encode_hash(&bytes))
}
