//! Finding the provider and its signing keys: lazy, retried discovery, and the JWKS refetch
//! when a token names a key not seen before. Both replace the one [`Provider`] (metadata plus
//! keys) the relying party holds; a refetch runs one at a time, [`JWKS_FETCH_FLOOR`] after the
//! previous one, with at most [`MAX_JWKS_WAITERS`] tokens waiting for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::CoreJsonWebKeySet;
use openidconnect::{IssuerUrl, ProviderMetadataWithLogout};

use super::{error_chain, Oidc, OidcError};

const DISCOVERY_RETRY: Duration = Duration::from_secs(1);
/// The shortest time between the starts of two JWKS fetches.
pub const JWKS_FETCH_FLOOR: Duration = Duration::from_secs(1);
/// A JWKS fetch that takes longer than this has failed (and its waiters are told so).
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tokens waiting for a JWKS fetch at once; more are refused at once (503) rather than
/// queued, so a flood of made-up `kid`s cannot pile up tasks behind a slow IdP.
pub(super) const MAX_JWKS_WAITERS: usize = 64;

pub(super) struct Provider {
    pub(super) metadata: ProviderMetadataWithLogout,
    pub(super) jwks: CoreJsonWebKeySet,
    /// When the request that brought `jwks` was sent: keys published before then are in it.
    jwks_asked: Instant,
}

/// The last JWKS fetch: when it was sent and, if it failed, why. Waiters that arrived
/// before it was sent take its outcome, failure included, instead of fetching again.
#[derive(Default)]
pub(super) struct LastJwksFetch {
    asked: Option<Instant>,
    failed: Option<String>,
}

/// A place in the queue for `jwks_lock`, given back on drop.
struct JwksWaiter<'a>(&'a AtomicUsize);

impl<'a> JwksWaiter<'a> {
    fn join(waiters: &'a AtomicUsize) -> Option<Self> {
        let before = waiters.fetch_add(1, Ordering::AcqRel);
        let waiter = Self(waiters);
        (before < MAX_JWKS_WAITERS).then_some(waiter)
    }
}

impl Drop for JwksWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Oidc {
    /// Discovers the provider now (used at start-up; failures are retried on demand).
    pub async fn discover(&self) -> Result<(), OidcError> {
        self.provider().await.map(|_| ())
    }

    pub(super) async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        if let Some(p) = self.provider.load_full() {
            return Ok(p);
        }
        let mut last = self.discovery_lock.lock().await;
        if let Some(p) = self.provider.load_full() {
            return Ok(p);
        }
        if last.is_some_and(|t| t.elapsed() < DISCOVERY_RETRY) {
            return Err(OidcError::Unavailable(
                "discovery failed moments ago; retrying shortly".into(),
            ));
        }
        let asked = Instant::now();
        *last = Some(asked);
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Setup(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(error_chain(&e)))?;
        let provider = Arc::new(Provider {
            jwks: metadata.jwks().clone(),
            metadata,
            jwks_asked: asked,
        });
        self.provider.store(Some(provider.clone()));
        tracing::info!(issuer = %self.settings.issuer, "discovered identity provider");
        Ok(provider)
    }

    /// Keys at least as new as `seen_at` (when an unknown `kid` was met): the current set if
    /// it was fetched after that moment, else a fresh fetch. Fetches are serialised by
    /// `jwks_lock`: callers that queued behind one take its outcome (keys or failure), each
    /// fetch starts at least [`JWKS_FETCH_FLOOR`] after the previous one and is given up after
    /// [`JWKS_FETCH_TIMEOUT`], and at most [`MAX_JWKS_WAITERS`] callers wait at once.
    pub(super) async fn keys_newer_than(
        &self,
        seen_at: Instant,
    ) -> Result<Arc<Provider>, OidcError> {
        let Some(_waiter) = JwksWaiter::join(&self.jwks_waiters) else {
            return Err(OidcError::Unavailable(
                "too many tokens are waiting for the identity provider's keys".into(),
            ));
        };
        let mut last = self.jwks_lock.lock().await;
        let current = self.provider().await?;
        if current.jwks_asked >= seen_at {
            return Ok(current);
        }
        if let (Some(asked), Some(why)) = (last.asked, &last.failed) {
            if asked >= seen_at {
                return Err(OidcError::Unavailable(why.clone()));
            }
        }
        let since = last
            .asked
            .into_iter()
            .chain([current.jwks_asked])
            .max()
            .map(|t| t.elapsed())
            .unwrap_or(JWKS_FETCH_FLOOR);
        if since < JWKS_FETCH_FLOOR {
            tokio::time::sleep(JWKS_FETCH_FLOOR - since).await;
        }
        let asked = Instant::now();
        last.asked = Some(asked);
        last.failed = None;
        let fetch = CoreJsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http);
        let jwks = match tokio::time::timeout(JWKS_FETCH_TIMEOUT, fetch).await {
            Ok(Ok(jwks)) => jwks,
            Ok(Err(e)) => {
                let why = format!("cannot fetch the signing keys: {}", error_chain(&e));
                last.failed = Some(why.clone());
                return Err(OidcError::Unavailable(why));
            }
            Err(_) => {
                let why = "fetching the signing keys timed out".to_string();
                last.failed = Some(why.clone());
                return Err(OidcError::Unavailable(why));
            }
        };
        let provider = Arc::new(Provider {
            metadata: current.metadata.clone().set_jwks(jwks.clone()),
            jwks,
            jwks_asked: asked,
        });
        self.provider.store(Some(provider.clone()));
        tracing::info!(
            "fetched the identity provider's signing keys (a token named a key not seen before)"
        );
        Ok(provider)
    }

    /// The current signing keys; fetched anew if `kid` is not among them.
    pub(super) async fn keys_for(&self, kid: Option<&str>) -> Result<CoreJsonWebKeySet, OidcError> {
        let seen_at = Instant::now();
        let provider = self.provider().await?;
        let known =
            |p: &Provider| match kid {
                None => true,
                Some(kid) => p.jwks.keys().iter().any(|k| {
                    openidconnect::JsonWebKey::key_id(k).is_some_and(|id| id.as_str() == kid)
                }),
            };
        if known(&provider) {
            return Ok(provider.jwks.clone());
        }
        Ok(self.keys_newer_than(seen_at).await?.jwks.clone())
    }
}

/// A relying party whose provider is already discovered, with the given JWKS: tests of token
/// checks that need no IdP. The keys count as fetched after any token the test makes, so an
/// unknown `kid` is refused without a fetch (its `jwks_uri` is a closed port anyway).
#[cfg(test)]
impl Oidc {
    pub(crate) fn discovered_for_tests(
        settings: crate::config::IdpSettings,
        jwks: serde_json::Value,
    ) -> Self {
        let metadata: ProviderMetadataWithLogout = serde_json::from_value(serde_json::json!({
            "issuer": settings.issuer,
            "authorization_endpoint": format!("{}/authorize", settings.issuer),
            "jwks_uri": "http://127.0.0.1:9/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }))
        .unwrap();
        let jwks: CoreJsonWebKeySet = serde_json::from_value(jwks).unwrap();
        let oidc = Self::new(settings, "http://127.0.0.1:8080").unwrap();
        oidc.provider.store(Some(Arc::new(Provider {
            metadata: metadata.set_jwks(jwks.clone()),
            jwks,
            jwks_asked: Instant::now() + Duration::from_secs(86_400),
        })));
        oidc
    }
}
