//! The OpenID Connect relying party: discovery, login (auth code + PKCE S256), ID token
//! validation, userinfo, RP-initiated logout URLs and back-channel logout tokens.
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

mod jwt;
pub mod logout_token;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use openidconnect::core::{
    CoreClient, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreResponseType,
};
use openidconnect::{
    reqwest, AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::config::IdpSettings;

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

/// Allowed clock difference with the IdP.
const CLOCK_SKEW: i64 = 120;
/// An ID token issued longer ago than this is not a fresh login.
const MAX_ID_TOKEN_AGE: i64 = 600;
const DISCOVERY_RETRY: Duration = Duration::from_secs(1);
/// The shortest time between the starts of two JWKS fetches.
pub const JWKS_FETCH_FLOOR: Duration = Duration::from_secs(1);
/// A JWKS fetch that takes longer than this has failed (and its waiters are told so).
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tokens waiting for a JWKS fetch at once; more are refused at once (503) rather than
/// queued, so a flood of made-up `kid`s cannot pile up tasks behind a slow IdP.
const MAX_JWKS_WAITERS: usize = 64;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider is unreachable: {0}")]
    Unavailable(String),
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
    #[error("cannot set up the OIDC client: {0}")]
    Setup(String),
}

struct Provider {
    metadata: ProviderMetadataWithLogout,
    jwks: CoreJsonWebKeySet,
    /// When the request that brought `jwks` was sent: keys published before then are in it.
    jwks_asked: Instant,
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
    /// How many tokens wait for `jwks_lock` now (at most [`MAX_JWKS_WAITERS`]).
    jwks_waiters: AtomicUsize,
}

/// The last JWKS fetch: when it was sent and, if it failed, why. Waiters that arrived
/// before it was sent take its outcome, failure included, instead of fetching again.
#[derive(Default)]
struct LastJwksFetch {
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

/// Where to send the browser, and what to remember until it comes back.
pub struct LoginStart {
    pub authorize_url: String,
    pub pkce_verifier: String,
}

/// A completed, validated login.
#[derive(Debug, Clone)]
pub struct LoginResult {
    pub iss: String,
    pub sub: String,
    pub sid: Option<String>,
    /// ID token claims merged with userinfo claims (protocol claims removed).
    pub claims: Map<String, Value>,
    pub id_token: String,
}

/// Claims that describe the token, not the user; kept out of sessions and headers.
const PROTOCOL_CLAIMS: &[&str] = &[
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "c_hash",
    "azp",
    "auth_time",
    "jti",
    "sid",
    "acr",
    "amr",
    "s_hash",
];

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
        })
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

    /// Discovers the provider now (used at start-up; failures are retried on demand).
    pub async fn discover(&self) -> Result<(), OidcError> {
        self.provider().await.map(|_| ())
    }

    async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
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
    async fn keys_newer_than(&self, seen_at: Instant) -> Result<Arc<Provider>, OidcError> {
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

    fn client(
        &self,
        provider: &Provider,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            provider.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose().to_string(),
            )),
        )
        .set_redirect_uri(self.redirect_url.clone())
    }

    /// Builds the authorization URL for a new login with the given state and nonce.
    pub async fn begin_login(&self, state: &str, nonce: &str) -> Result<LoginStart, OidcError> {
        let provider = self.provider().await?;
        let client = self.client(&provider);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let nonce = nonce.to_string();
        let mut request = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.set_pkce_challenge(challenge).url();
        Ok(LoginStart {
            authorize_url: url.to_string(),
            pkce_verifier: verifier.secret().to_string(),
        })
    }

    /// Redeems the authorization code and validates everything the IdP sent back.
    pub async fn finish_login(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<LoginResult, OidcError> {
        let provider = self.provider().await?;
        let client = self.client(&provider);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Setup(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    OidcError::Refused(r.error().to_string())
                }
                other => OidcError::Unavailable(error_chain(&other)),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the token response has no id_token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let received = Instant::now();
        let mut provider = provider;
        let claims =
            match self.check_id_token(&provider, id_token, &nonce, response.access_token()) {
                Err(IdTokenCheck::UnknownKey) => {
                    provider = self.keys_newer_than(received).await?;
                    self.check_id_token(&provider, id_token, &nonce, response.access_token())
                }
                other => other,
            }
            .map_err(|e| match e {
                IdTokenCheck::UnknownKey => {
                    OidcError::InvalidToken("signed with a key the IdP does not publish".into())
                }
                IdTokenCheck::Invalid(msg) => OidcError::InvalidToken(msg),
            })?;
        let now = crate::util::clock::now_secs();
        let iat = claims.issue_time().timestamp();
        if iat > now + CLOCK_SKEW || iat < now - MAX_ID_TOKEN_AGE {
            return Err(OidcError::InvalidToken(
                "issued at an implausible time (check clocks)".into(),
            ));
        }
        let raw_token = id_token.to_string();
        let mut merged =
            jwt::payload(&raw_token).map_err(|e| OidcError::InvalidToken(e.to_string()))?;
        let sub = claims.subject().as_str().to_string();
        let iss = claims.issuer().as_str().to_string();
        let sid = merged
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(url) = provider.metadata.userinfo_endpoint() {
            self.merge_userinfo(
                url.as_str(),
                response.access_token().secret(),
                &sub,
                &mut merged,
            )
            .await;
        }
        for claim in PROTOCOL_CLAIMS {
            merged.remove(*claim);
        }
        merged.remove("iss");
        merged.remove("sub");
        Ok(LoginResult {
            iss,
            sub,
            sid,
            claims: merged,
            id_token: raw_token,
        })
    }

    /// Verifies signature and claims (iss, aud, azp, exp, nonce, at_hash).
    fn check_id_token(
        &self,
        provider: &Provider,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: &Nonce,
        access_token: &openidconnect::AccessToken,
    ) -> Result<openidconnect::core::CoreIdTokenClaims, IdTokenCheck> {
        let verifier = self.verifier(provider);
        let claims = match id_token.claims(&verifier, nonce) {
            Ok(claims) => claims,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => return Err(IdTokenCheck::UnknownKey),
            Err(e) => return Err(IdTokenCheck::Invalid(e.to_string())),
        };
        authorized_party_is_us(claims, &self.settings.client_id)?;
        if let Some(expected) = claims.access_token_hash() {
            let invalid = |e: &dyn std::fmt::Display| IdTokenCheck::Invalid(e.to_string());
            let alg = id_token.signing_alg().map_err(|e| invalid(&e))?;
            let key = id_token.signing_key(&verifier).map_err(|e| invalid(&e))?;
            let actual = AccessTokenHash::from_token::<openidconnect::core::CoreJsonWebKey>(
                access_token,
                alg,
                key,
            )
            .map_err(|e| invalid(&e))?;
            if &actual != expected {
                return Err(IdTokenCheck::Invalid("at_hash does not match".into()));
            }
        }
        Ok(claims.clone())
    }

    fn verifier<'a>(&self, provider: &'a Provider) -> CoreIdTokenVerifier<'a> {
        CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.settings.client_id.clone()),
            provider.metadata.issuer().clone(),
            provider.jwks.clone(),
        )
        .set_allowed_algs(ALLOWED_ALGS)
    }

    /// Adds userinfo claims, but only when the response is about the same `sub`; claims
    /// already in the ID token win. A userinfo failure is logged and the login continues
    /// with the ID token's claims.
    async fn merge_userinfo(
        &self,
        url: &str,
        access_token: &str,
        sub: &str,
        claims: &mut Map<String, Value>,
    ) {
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await;
        let info: Map<String, Value> = match response {
            Ok(r) if r.status().is_success() => match r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(info) => info,
                None => {
                    tracing::warn!("userinfo response is not a JSON object; ignored");
                    return;
                }
            },
            Ok(r) => {
                tracing::warn!(status = %r.status(), "userinfo request failed; using ID token claims only");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "userinfo unreachable; using ID token claims only");
                return;
            }
        };
        if info.get("sub").and_then(Value::as_str) != Some(sub) {
            tracing::warn!("userinfo `sub` differs from the ID token's; its claims were ignored");
            return;
        }
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
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

    /// The current signing keys; fetched anew if `kid` is not among them.
    async fn keys_for(&self, kid: Option<&str>) -> Result<CoreJsonWebKeySet, OidcError> {
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

/// OIDC Core 3.1.3.7, steps 4 and 5: an `azp` must be our client id, and a token for
/// several audiences must carry one (the library checks that `aud` includes us).
fn authorized_party_is_us(
    claims: &openidconnect::core::CoreIdTokenClaims,
    client_id: &str,
) -> Result<(), IdTokenCheck> {
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => Err(IdTokenCheck::Invalid(
            "the token was issued to another client (azp)".into(),
        )),
        None if claims.audiences().len() > 1 => Err(IdTokenCheck::Invalid(
            "a token for several audiences must name its client in azp".into(),
        )),
        _ => Ok(()),
    }
}

/// A relying party whose provider is already discovered, with the given JWKS: tests of token
/// checks that need no IdP. The keys count as fetched after any token the test makes, so an
/// unknown `kid` is refused without a fetch (its `jwks_uri` is a closed port anyway).
#[cfg(test)]
impl Oidc {
    pub(crate) fn discovered_for_tests(settings: IdpSettings, jwks: Value) -> Self {
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

enum IdTokenCheck {
    UnknownKey,
    Invalid(String),
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
