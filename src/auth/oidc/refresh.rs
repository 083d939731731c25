//! Refreshing a login's claims with its refresh token (OIDC Core 12): the token endpoint's
//! answer is checked like a login's (an ID token, when there is one, must be signed by the
//! provider, for us, recent, and about the same `sub`; no nonce is asked of it), and the
//! claims are gathered the same way: the ID token's, with userinfo's added.
//!
//! Only `invalid_grant` is a definitive no ([`OidcError::Refused`]): the token was revoked,
//! or the user was disabled or deleted at the IdP. Every other failure, including other OAuth
//! errors such as `invalid_client` (our own registration is wrong, not the user), is
//! [`OidcError::Unavailable`] and worth a retry. No error text carries a token.

use std::time::Instant;

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{Nonce, OAuth2TokenResponse, RefreshToken, RequestTokenError, TokenResponse};
use serde_json::{Map, Value};

use super::login::IdTokenCheck;
use super::{error_chain, jwt, login, Oidc, OidcError};
use crate::config::Secret;

/// What a refresh brought back.
pub struct Refreshed {
    /// The user's claims now (protocol claims removed); empty when the answer had no ID token
    /// and userinfo gave nothing.
    pub claims: Map<String, Value>,
    /// The new refresh token, when the IdP rotated it (else the old one stays valid).
    pub refresh_token: Option<Secret>,
}

impl Oidc {
    /// Redeems `refresh_token` for fresh tokens and reads the claims of `sub` from them.
    pub async fn refresh(&self, refresh_token: &str, sub: &str) -> Result<Refreshed, OidcError> {
        let provider = self.provider().await?;
        let client = self.client(&provider);
        let token = RefreshToken::new(refresh_token.to_string());
        let response = client
            .exchange_refresh_token(&token)
            .map_err(|e| OidcError::Setup(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r)
                    if *r.error() == CoreErrorResponseType::InvalidGrant =>
                {
                    OidcError::Refused(format!(
                        "invalid_grant{}",
                        r.error_description()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    ))
                }
                RequestTokenError::ServerResponse(r) => {
                    OidcError::Unavailable(format!("the token endpoint answered `{}`", r.error()))
                }
                // Its text would quote the answer's body, which may hold tokens.
                RequestTokenError::Parse(..) => OidcError::Unavailable(
                    "the token endpoint's answer is not a token response".into(),
                ),
                other => OidcError::Unavailable(error_chain(&other)),
            })?;
        let mut claims = Map::new();
        if let Some(id_token) = response.id_token() {
            let received = Instant::now();
            // OIDC Core 12.2: a refreshed ID token need not carry the login's nonce.
            let any_nonce = |_: Option<&Nonce>| Ok(());
            let mut checked =
                self.check_id_token(&provider, id_token, any_nonce, response.access_token());
            if matches!(checked, Err(IdTokenCheck::UnknownKey)) {
                let newer = self.keys_newer_than(received).await?;
                checked = self.check_id_token(&newer, id_token, any_nonce, response.access_token());
            }
            let verified = checked.map_err(|e| match e {
                IdTokenCheck::UnknownKey => {
                    OidcError::InvalidToken("signed with a key the IdP does not publish".into())
                }
                IdTokenCheck::Invalid(msg) => OidcError::InvalidToken(msg),
            })?;
            login::issued_recently(&verified)?;
            if verified.subject().as_str() != sub {
                return Err(OidcError::InvalidToken(
                    "the refreshed ID token is about another user".into(),
                ));
            }
            claims = jwt::payload(&id_token.to_string())
                .map_err(|e| OidcError::InvalidToken(e.to_string()))?;
        }
        self.add_userinfo(&provider, response.access_token(), sub, &mut claims)
            .await;
        Ok(Refreshed {
            claims,
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
        })
    }
}
