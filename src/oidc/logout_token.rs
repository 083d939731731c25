//! OIDC Back-Channel Logout: validating a logout token before ending any session.
//!
//! A token is accepted only if every check passes: compact JWS with an asymmetric `alg`
//! (never `none` or HMAC), signed by a key from the provider's JWKS, `typ` (when present)
//! `logout+jwt`, `iss` = our issuer, `aud` containing our client id, a recent `iat`, a future
//! `exp` when present, the back-channel `events` member, no `nonce`, and `sid` and/or `sub`.
//! A `jti` seen before is refused, so a captured token cannot be replayed.

use std::time::Duration;

use moka::sync::Cache;
use openidconnect::core::CoreJwsSigningAlgorithm;
use openidconnect::JsonWebKey;
use serde_json::Value;

use super::{jwt, Oidc, OidcError, ALLOWED_ALGS};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const MAX_AGE_SECS: i64 = 600;
const SKEW_SECS: i64 = 120;

/// Who a valid logout token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub iss: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("malformed logout token: {0}")]
    Malformed(String),
    #[error("logout token rejected: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Provider(#[from] OidcError),
}

/// Remembers recently used `jti` values.
pub struct ReplayGuard {
    seen: Cache<String, ()>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self {
            seen: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs((MAX_AGE_SECS + SKEW_SECS) as u64))
                .build(),
        }
    }
}

impl Oidc {
    /// Validates a back-channel logout token.
    pub async fn verify_logout_token(
        &self,
        token: &str,
        replay: &ReplayGuard,
    ) -> Result<LogoutClaims, LogoutTokenError> {
        let jws = jwt::split(token).map_err(|e| LogoutTokenError::Malformed(e.to_string()))?;
        let alg_name = jws
            .header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(LogoutTokenError::Invalid("no alg"))?;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(Value::String(alg_name.to_string()))
                .map_err(|_| LogoutTokenError::Invalid("unknown alg"))?;
        if !ALLOWED_ALGS.contains(&alg) {
            return Err(LogoutTokenError::Invalid(
                "alg is not an accepted asymmetric algorithm",
            ));
        }
        if let Some(typ) = jws.header.get("typ") {
            let typ = typ.as_str().unwrap_or("").to_ascii_lowercase();
            if typ != "logout+jwt" && typ != "application/logout+jwt" {
                return Err(LogoutTokenError::Invalid("typ is not logout+jwt"));
            }
        }
        let kid = jws.header.get("kid").and_then(Value::as_str);
        let keys = self.keys_for(kid).await?;
        let candidates: Vec<_> = keys
            .keys()
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
                None => true,
            })
            .collect();
        let verified = candidates.iter().any(|k| {
            k.verify_signature(&alg, jws.signing_input.as_bytes(), &jws.signature)
                .is_ok()
        });
        if !verified {
            return Err(LogoutTokenError::Invalid("signature does not verify"));
        }

        let claims = &jws.payload;
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != Some(self.issuer()) {
            return Err(LogoutTokenError::Invalid("iss is not our issuer"));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == self.client_id(),
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(self.client_id())),
            _ => false,
        };
        if !aud_ok {
            return Err(LogoutTokenError::Invalid(
                "aud does not include our client id",
            ));
        }
        let now = crate::clock::now_secs();
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or(LogoutTokenError::Invalid("no iat"))?;
        if iat > now + SKEW_SECS || iat < now - MAX_AGE_SECS {
            return Err(LogoutTokenError::Invalid("iat is not recent"));
        }
        if let Some(exp) = claims.get("exp") {
            if exp.as_i64().is_none_or(|exp| exp + SKEW_SECS < now) {
                return Err(LogoutTokenError::Invalid("expired"));
            }
        }
        let has_event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|events| events.get(EVENT))
            .is_some_and(Value::is_object);
        if !has_event {
            return Err(LogoutTokenError::Invalid(
                "events lacks the back-channel logout event",
            ));
        }
        if claims.contains_key("nonce") {
            return Err(LogoutTokenError::Invalid(
                "a logout token must not carry a nonce",
            ));
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_string);
        let sid = claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string);
        if sub.is_none() && sid.is_none() {
            return Err(LogoutTokenError::Invalid("neither sid nor sub"));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or(LogoutTokenError::Invalid("no jti"))?;
        let key = format!("{iat}:{jti}");
        if replay.seen.contains_key(&key) {
            return Err(LogoutTokenError::Invalid("jti was already used"));
        }
        replay.seen.insert(key, ());
        Ok(LogoutClaims {
            iss: self.issuer().to_string(),
            sub,
            sid,
        })
    }
}
