//! Everything a request can reach, built once at start-up from a validated config.

pub mod draining;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::auth::oidc::logout_token::ReplayGuard;
use crate::auth::oidc::{Oidc, OidcError};
use crate::auth::sealed::{RefreshSeal, SealError};
use crate::auth::session::cookie::CookieNames;
use crate::auth::session::Sessions;
use crate::config::Config;
use crate::gate::draining::Draining;
use crate::lifecycle::directory::service::Directory;
use crate::lifecycle::grants::Grants;
use crate::lifecycle::provision::Accounts;
use crate::policy::PolicySet;
use crate::store::{Store, StoreError};
use crate::telemetry::audit::Audit;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::scim_log::ScimLog;
use crate::util::throttle::FailureThrottle;

/// Failed SCIM authentications one address may make per minute before it is refused.
pub const SCIM_FAILURES_PER_MINUTE: u32 = 20;
/// Where the SCIM service is published, below the public base URL.
const SCIM_BASE_PATH: &str = "/.jitgate/scim/v2";

/// How many sessions one replica keeps in memory at most.
pub const SESSION_CACHE_CAPACITY: u64 = 1_000_000;

pub struct Gate {
    pub config: Config,
    pub policies: ArcSwap<PolicySet>,
    pub sessions: Sessions,
    /// Time-bound elevated access.
    pub grants: Grants,
    /// Accounts in apps, created through their APIs (JIT provisioning).
    pub accounts: Arc<Accounts>,
    pub oidc: Oidc,
    pub store: Arc<dyn Store>,
    pub audit: Audit,
    pub metrics: Metrics,
    pub cookies: CookieNames,
    pub logout_replay: ReplayGuard,
    /// Draining during a graceful upgrade or shutdown, and the background jobs that stop then.
    pub draining: Draining,
    /// The company directory, when the IdP pushes it over SCIM (`scim:` in the config).
    pub directory: Option<Directory>,
    /// Failed SCIM authentications per client address.
    pub scim_failures: FailureThrottle,
    /// Seals the refresh tokens kept for `session.refresh_claims` (`None` when it is off).
    pub refresh_seal: Option<RefreshSeal>,
    /// Recent SCIM requests, written to the store in the background.
    pub scim_log: ScimLog,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl Gate {
    pub fn new(
        config: Config,
        policies: PolicySet,
        store: Arc<dyn Store>,
    ) -> Result<Self, GateError> {
        let oidc = Oidc::new(config.idp.clone(), &config.public.base)?
            .asking_for_refresh_tokens(config.session.refresh_claims.is_some());
        let refresh_seal = match config.session.refresh_claims {
            Some(_) => Some(RefreshSeal::from_client_secret(&config.idp.client_secret)?),
            None => None,
        };
        let metrics = Metrics::new()?;
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            Audit::new(store.clone()),
            metrics.clone(),
            config.session.revalidate_after,
        ));
        Ok(Self {
            sessions: Sessions::new(
                store.clone(),
                config.session,
                SESSION_CACHE_CAPACITY,
                metrics.session_hits.clone(),
                metrics.session_cache.with_label_values(&["miss"]),
            ),
            accounts: accounts.clone(),
            grants: Grants::new(
                store.clone(),
                Audit::new(store.clone()),
                if store.pushes_grant_changes() {
                    crate::lifecycle::grants::RECHECK_AFTER_WITH_NOTIFY
                } else {
                    crate::lifecycle::grants::RECHECK_AFTER
                },
                Some(accounts),
            ),
            audit: Audit::new(store.clone()),
            metrics,
            cookies: CookieNames {
                secure: config.public.https,
            },
            policies: ArcSwap::from_pointee(policies),
            logout_replay: ReplayGuard::default(),
            directory: config.scim.as_ref().map(|scim| {
                Directory::new(
                    store.clone(),
                    Audit::new(store.clone()),
                    format!("{}{SCIM_BASE_PATH}", config.public.base),
                    scim.link.clone(),
                    scim.groups,
                )
            }),
            scim_failures: FailureThrottle::new(SCIM_FAILURES_PER_MINUTE, Duration::from_secs(60)),
            scim_log: ScimLog::default(),
            draining: Draining::default(),
            refresh_seal,
            oidc,
            store,
            config,
        })
    }

    /// True if `host` is where jitgate's login callback and back-channel logout live.
    pub fn is_auth_host(&self, host: &str) -> bool {
        host == self.config.public.host
    }
}
