//! Refreshing a login's claims with its refresh token (OIDC Core 12): the token endpoint's
//! answer is checked like a login's (an ID token, when there is one, must be signed by the
//! provider, for us, recent, and about the same `sub`; no nonce is asked of it), and the
//! claims are gathered the same way: the ID token's, with userinfo's added.
//!
//! Only `invalid_grant` is a definitive no ([`OidcError::Refused`]): the token was revoked,
//! or the user was disabled or deleted at the IdP. Every other failure, including other OAuth
//! errors such as `invalid_client` (our own registration is wrong, not the user), is
//! [`OidcError::Unavailable`] and worth a retry. No error text carries a token: the IdP's
//! own words (`error`, `error_description`, which go to logs and the audit trail) are cut
//! short and stripped of anything that looks like one, since some IdPs echo the token.

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
                    OidcError::Refused(idp_reason(
                        "invalid_grant",
                        r.error_description().map(String::as_str),
                    ))
                }
                RequestTokenError::ServerResponse(r) => OidcError::Unavailable(format!(
                    "the token endpoint answered `{}`",
                    idp_reason(r.error().as_ref(), None)
                )),
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

/// The longest IdP text kept (in characters), and the shortest run of token characters
/// (base64url, `.` of a JWT, `+/=` of base64) taken for a token: longer than words and
/// error codes, shorter than any refresh or access token.
const REASON_CHARS: usize = 200;
const TOKEN_RUN: usize = 20;

/// The IdP's `error` and `error_description` as fit for a log line and an audit event: each
/// run of token characters of [`TOKEN_RUN`] or more replaced by `[redacted]`, control
/// characters by spaces, and the whole cut to [`REASON_CHARS`].
fn idp_reason(error: &str, description: Option<&str>) -> String {
    let text = match description {
        Some(d) => format!("{error}: {d}"),
        None => error.to_string(),
    };
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "-_.+/=~".contains(c);
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= TOKEN_RUN {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
            continue;
        }
        flush(&mut run, &mut out);
        out.push(if c.is_control() { ' ' } else { c });
    }
    flush(&mut run, &mut out);
    match out.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_idps_reason_keeps_its_words_and_drops_tokens() {
        assert_eq!(
            idp_reason("invalid_grant", Some("Token is not active")),
            "invalid_grant: Token is not active"
        );
        assert_eq!(idp_reason("invalid_grant", None), "invalid_grant");
        let echoed = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";
        let reason = idp_reason(
            "invalid_grant",
            Some(&format!(
                "Refresh token {echoed} was revoked\r\nFORGED: line"
            )),
        );
        assert!(!reason.contains("eyJ"), "{reason}");
        assert!(!reason.contains('\n') && !reason.contains('\r'), "{reason}");
        assert_eq!(
            reason,
            "invalid_grant: Refresh token [redacted] was revoked  FORGED: line"
        );
        let opaque = "8xLOxBtZp8".repeat(10);
        assert_eq!(
            idp_reason("invalid_grant", Some(&format!("bad token: {opaque}"))),
            "invalid_grant: bad token: [redacted]"
        );
        let long = idp_reason("invalid_grant", Some(&"no way ".repeat(100)));
        assert_eq!(long.chars().count(), REASON_CHARS + 1, "{long}");
        assert!(long.ends_with('…'));
    }

    proptest! {
        #![proptest_config(crate::util::attacker_input::config(256))]
        #[test]
        fn no_reason_is_long_or_holds_a_token_run(
            error in "[a-z_]{1,30}",
            description in proptest::option::of(crate::util::attacker_input::text()),
            token in "[A-Za-z0-9_-]{20,80}",
        ) {
            let description = description.map(|d| format!("{d} {token} {d}"));
            let reason = idp_reason(&error, description.as_deref());
            prop_assert!(reason.chars().count() <= REASON_CHARS + 1);
            prop_assert!(!reason.chars().any(char::is_control));
            prop_assert!(!reason.contains(&token));
        }
    }
}
