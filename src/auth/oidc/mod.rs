//! The OpenID Connect relying party: discovery, login (auth code + PKCE S256), ID token
//! validation, userinfo, RP-initiated logout URLs, back-channel logout tokens, and claims
//! refreshed with a refresh token (`refresh`).
//!
//! Discovery is lazy and retried: jitgate starts even when the IdP is down, and a login
//! attempt while it is unreachable gets [`OidcError::Unavailable`] (a 503 page), never a
//! redirect loop. Signing keys come only from the provider's `jwks_uri`. A token signed with
//! an unknown `kid` is refused only after a JWKS fetch that started after the token was
//! seen, so a key rotation never refuses a login; one fetch runs at a time (others wait for
//! it and share its outcome, failure included), fetches start at least [`JWKS_FETCH_FLOOR`]
//! apart, and only a bounded number of tokens wait, so a flood of bogus `kid`s can neither
//! make jitgate hammer the IdP nor pile up behind a slow one. Only asymmetric algorithms are
//! accepted, so `alg: none` and HMAC tokens fail. `azp`, when present, must be our client id,
//! and a token for several audiences must name us in `azp` (OIDC Core 3.1.3.7).

mod claims;
mod discovery;
mod jwt;
mod login;
pub mod logout_token;
mod refresh;

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use openidconnect::core::CoreJwsSigningAlgorithm;
use openidconnect::{reqwest, ClientId, LogoutRequest, PostLogoutRedirectUrl, RedirectUrl};
use tokio::sync::Mutex;

use crate::config::IdpSettings;
pub use discovery::JWKS_FETCH_FLOOR;
use discovery::{LastJwksFetch, Provider};
pub use login::{LoginResult, LoginStart};
pub use refresh::Refreshed;

/// Asymmetric signing algorithms we accept; everything else (none, HS*) is refused.
pub const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider is unreachable: {0}")]
    Unavailable(String),
    /// A login's code was refused, or a refresh token (`invalid_grant`, see `refresh`).
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
    #[error("cannot set up the OIDC client: {0}")]
    Setup(String),
}

/// The relying party for one IdP client.
pub struct Oidc {
    settings: IdpSettings,
    redirect_url: RedirectUrl,
    post_logout_url: PostLogoutRedirectUrl,
    http: reqwest::Client,
    provider: ArcSwapOption<Provider>,
    /// Held while discovering; the time of the last attempt.
    discovery_lock: Mutex<Option<Instant>>,
    /// Held while fetching the JWKS; how the last fetch went.
    jwks_lock: Mutex<LastJwksFetch>,
    /// Ask for refresh tokens the way Google needs (`access_type=offline`), for
    /// `session.refresh_claims`.
    offline: bool,
    /// How many tokens wait for `jwks_lock` now (at most [`MAX_JWKS_WAITERS`](discovery::MAX_JWKS_WAITERS)).
    jwks_waiters: AtomicUsize,
}

impl Oidc {
    pub fn new(settings: IdpSettings, public_base: &str) -> Result<Self, OidcError> {
        let http = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| OidcError::Setup(e.to_string()))?;
        let redirect_url = RedirectUrl::new(format!("{public_base}/.jitgate/callback"))
            .map_err(|e| OidcError::Setup(e.to_string()))?;
        let post_logout_url =
            PostLogoutRedirectUrl::new(format!("{public_base}/.jitgate/logged-out"))
                .map_err(|e| OidcError::Setup(e.to_string()))?;
        Ok(Self {
            settings,
            redirect_url,
            post_logout_url,
            http,
            provider: ArcSwapOption::empty(),
            discovery_lock: Mutex::new(None),
            jwks_lock: Mutex::new(LastJwksFetch::default()),
            jwks_waiters: AtomicUsize::new(0),
            offline: false,
        })
    }

    /// Adds `access_type=offline` to authorization requests: Google issues a refresh token
    /// only with it; other IdPs ignore parameters they do not know (RFC 6749 §3.1).
    pub fn asking_for_refresh_tokens(mut self, yes: bool) -> Self {
        self.offline = yes;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    pub fn settings(&self) -> &IdpSettings {
        &self.settings
    }

    /// The IdP's end-session URL for RP-initiated logout, if it has one.
    pub async fn end_session_url(&self, id_token_hint: &str) -> Option<String> {
        let provider = self.provider().await.ok()?;
        let endpoint = provider
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut url = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.settings.client_id.clone()))
            .set_post_logout_redirect_uri(self.post_logout_url.clone())
            .http_get_url();
        if !id_token_hint.is_empty() {
            url.query_pairs_mut()
                .append_pair("id_token_hint", id_token_hint);
        }
        Some(url.to_string())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
