//! Logging in: the authorization URL (auth code + PKCE S256), redeeming the code, and the
//! ID token checks (signature with the provider's keys, iss, aud, azp, nonce, at_hash, and a
//! plausible `iat`). A token signed with an unknown `kid` is checked again after a JWKS
//! refetch (see `discovery`); the user's claims are gathered as `claims` describes.

use std::time::Instant;

use openidconnect::core::{CoreClient, CoreIdTokenVerifier, CoreResponseType};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, Nonce, NonceVerifier, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, Scope, SignatureVerificationError, TokenResponse,
};
use serde_json::{Map, Value};

use super::claims::PROTOCOL_CLAIMS;
use super::discovery::Provider;
use super::{error_chain, jwt, Oidc, OidcError, ALLOWED_ALGS};
use crate::config::Secret;

/// Allowed clock difference with the IdP.
const CLOCK_SKEW: i64 = 120;
/// An ID token issued longer ago than this is not a fresh login.
const MAX_ID_TOKEN_AGE: i64 = 600;

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
    /// The refresh token, when the IdP issued one (kept only for `session.refresh_claims`).
    pub refresh_token: Option<Secret>,
}

impl Oidc {
    pub(super) fn client(
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
        if self.offline {
            request = request.add_extra_param("access_type", "offline");
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
        issued_recently(&claims)?;
        let raw_token = id_token.to_string();
        let mut merged =
            jwt::payload(&raw_token).map_err(|e| OidcError::InvalidToken(e.to_string()))?;
        let sub = claims.subject().as_str().to_string();
        let iss = claims.issuer().as_str().to_string();
        let sid = merged
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.add_userinfo(&provider, response.access_token(), &sub, &mut merged)
            .await;
        Ok(LoginResult {
            iss,
            sub,
            sid,
            claims: merged,
            id_token: raw_token,
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
        })
    }

    /// Adds the userinfo claims (when the provider has the endpoint) and removes the claims
    /// about the token itself, and `iss`/`sub`.
    pub(super) async fn add_userinfo(
        &self,
        provider: &Provider,
        access_token: &openidconnect::AccessToken,
        sub: &str,
        claims: &mut Map<String, Value>,
    ) {
        if let Some(url) = provider.metadata.userinfo_endpoint() {
            self.merge_userinfo(url.as_str(), access_token.secret(), sub, claims)
                .await;
        }
        for claim in PROTOCOL_CLAIMS {
            claims.remove(*claim);
        }
        claims.remove("iss");
        claims.remove("sub");
    }

    /// Verifies signature and claims (iss, aud, azp, exp, nonce, at_hash).
    pub(super) fn check_id_token(
        &self,
        provider: &Provider,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: impl NonceVerifier,
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
}

/// An ID token issued within the last [`MAX_ID_TOKEN_AGE`] (by our clock, give or take
/// [`CLOCK_SKEW`]).
pub(super) fn issued_recently(
    claims: &openidconnect::core::CoreIdTokenClaims,
) -> Result<(), OidcError> {
    let now = crate::util::clock::now_secs();
    let iat = claims.issue_time().timestamp();
    if iat > now + CLOCK_SKEW || iat < now - MAX_ID_TOKEN_AGE {
        return Err(OidcError::InvalidToken(
            "issued at an implausible time (check clocks)".into(),
        ));
    }
    Ok(())
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

pub(super) enum IdTokenCheck {
    UnknownKey,
    Invalid(String),
}
