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
        let now = crate::util::clock::now_secs();
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

/// Properties over forged and malformed logout tokens; `scripts/fuzz.sh` runs them with many
/// more cases.
#[cfg(test)]
mod properties {
    use std::sync::OnceLock;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::config::{IdpSettings, Secret};
    use crate::demo::signing_key::SigningKey;
    use crate::util::attacker_input;

    const ISSUER: &str = "https://idp.example.test";
    const CLIENT: &str = "jitgate";

    /// One key, one relying party and one runtime for every case.
    fn fixture() -> &'static (SigningKey, Oidc, tokio::runtime::Runtime) {
        static FIXTURE: OnceLock<(SigningKey, Oidc, tokio::runtime::Runtime)> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let key = SigningKey::generate("key-1").unwrap();
            let settings = IdpSettings {
                issuer: ISSUER.into(),
                client_id: CLIENT.into(),
                client_secret: Secret::new("secret"),
                scopes: vec!["openid".into()],
                username_claim: "preferred_username".into(),
                groups_claim: "groups".into(),
            };
            let oidc = Oidc::discovered_for_tests(settings, json!({ "keys": [key.jwk()] }));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            (key, oidc, runtime)
        })
    }

    fn verify(token: &str) -> Result<LogoutClaims, LogoutTokenError> {
        let (_, oidc, runtime) = fixture();
        runtime.block_on(oidc.verify_logout_token(token, &ReplayGuard::default()))
    }

    /// The claims of a logout token that passes every check.
    fn valid_claims(jti: u64) -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "iat": crate::util::clock::now_secs(),
            "jti": format!("jti-{jti}"), "sid": "session-1",
            "events": { EVENT: {} },
        })
    }

    /// One thing wrong with an otherwise valid token: (header fields, claim edits).
    fn mutation() -> impl Strategy<Value = (Value, Vec<(&'static str, Option<Value>)>)> {
        let now = crate::util::clock::now_secs();
        proptest::sample::select(vec![
            (json!({}), vec![("iss", None)]),
            (
                json!({}),
                vec![("iss", Some(json!("https://evil.example.test")))],
            ),
            (json!({}), vec![("iss", Some(json!(format!("{ISSUER}/"))))]),
            (json!({}), vec![("aud", Some(json!("other-client")))]),
            (json!({}), vec![("aud", Some(json!(["other", "clients"])))]),
            (json!({}), vec![("aud", Some(json!(7)))]),
            (json!({}), vec![("aud", None)]),
            (json!({}), vec![("iat", None)]),
            (json!({}), vec![("iat", Some(json!(now - 3600)))]),
            (json!({}), vec![("iat", Some(json!(now + 3600)))]),
            (json!({}), vec![("iat", Some(json!(format!("{now}"))))]),
            (json!({}), vec![("exp", Some(json!(now - 3600)))]),
            (json!({}), vec![("exp", Some(json!("never")))]),
            (json!({}), vec![("events", None)]),
            (json!({}), vec![("events", Some(json!({ EVENT: true })))]),
            (json!({}), vec![("events", Some(json!([EVENT])))]),
            (json!({}), vec![("nonce", Some(json!("n")))]),
            (json!({}), vec![("sid", None)]),
            (
                json!({}),
                vec![("sid", Some(json!(1))), ("sub", Some(json!(2)))],
            ),
            (json!({}), vec![("jti", None)]),
            (json!({}), vec![("jti", Some(json!(5)))]),
            (json!({ "typ": "JWT" }), vec![]),
            (json!({ "typ": 1 }), vec![]),
            (json!({ "alg": "none" }), vec![]),
            (json!({ "alg": "HS256" }), vec![]),
            (json!({ "alg": "RS256" }), vec![]),
            (json!({ "alg": "ES384" }), vec![]),
            (json!({ "alg": ["ES256"] }), vec![]),
            (json!({ "kid": "key-2" }), vec![]),
        ])
    }

    /// Tokens that are not a signed logout token at all: any text, JWT-shaped or not.
    fn junk_token() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            2 => attacker_input::bytes().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            2 => attacker_input::text().prop_map(|t| URL_SAFE_NO_PAD.encode(t)),
            1 => Just(URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"key-1"}"#)),
            1 => Just(URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)),
            1 => attacker_input::text(),
            1 => Just(String::new()),
        ];
        prop_oneof![
            3 => proptest::collection::vec(part, 1..5).prop_map(|parts| parts.join(".")),
            1 => attacker_input::text(),
            1 => attacker_input::bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ]
    }

    proptest! {
        #![proptest_config(attacker_input::config(256))]

        #[test]
        fn junk_is_refused(token in junk_token()) {
            prop_assert!(verify(&token).is_err(), "{:?}", token);
        }

        #[test]
        fn a_signed_token_with_one_thing_wrong_is_refused(
            (header, edits) in mutation(),
            jti in any::<u64>(),
        ) {
            let (key, _, _) = fixture();
            let mut claims = valid_claims(jti);
            for (name, value) in edits {
                match value {
                    Some(value) => claims[name] = value,
                    None => {
                        claims.as_object_mut().unwrap().remove(name);
                    }
                }
            }
            let token = key.sign(&header, &claims).unwrap();
            prop_assert!(verify(&token).is_err(), "{} {}", header, claims);
        }

        #[test]
        fn a_valid_token_altered_after_signing_is_refused(
            jti in any::<u64>(),
            at in any::<prop::sample::Index>(),
            replacement in proptest::sample::select(&b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."[..]),
        ) {
            let (key, _, _) = fixture();
            let token = key.sign(&json!({ "typ": "logout+jwt" }), &valid_claims(jti)).unwrap();
            // The unaltered token passes: the refusals above are for what was changed.
            prop_assert!(verify(&token).is_ok());
            let mut bytes = token.into_bytes();
            let at = at.index(bytes.len());
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            let altered = String::from_utf8(bytes).unwrap();
            // (base64url without padding: a changed character always changes the bytes, or
            // leaves bits the decoder refuses.)
            prop_assert!(verify(&altered).is_err(), "{}", altered);
        }
    }
}
