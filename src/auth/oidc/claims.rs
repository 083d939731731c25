//! The user's claims from a login: the ID token's, with userinfo claims added when the
//! userinfo answer is about the same `sub`, and without the claims that describe the token
//! rather than the user ([`PROTOCOL_CLAIMS`]), which are kept out of sessions and headers.

use serde_json::{Map, Value};

use super::{error_chain, Oidc};

/// Claims that describe the token, not the user; kept out of sessions and headers.
pub(super) const PROTOCOL_CLAIMS: &[&str] = &[
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
    /// Adds userinfo claims, but only when the response is about the same `sub`; claims
    /// already in the ID token win. A userinfo failure is logged and the login continues
    /// with the ID token's claims.
    pub(super) async fn merge_userinfo(
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
}
