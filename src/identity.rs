//! Who the user is, as far as the apps behind jitgate are concerned, and how that reaches them.
//!
//! An [`Identity`] is built from validated ID-token (and userinfo) claims at login and stored
//! with the session. On every request, `strip_spoofed` first removes any incoming header that
//! an app could mistake for one of jitgate's identity headers (any letter case, `_` for `-`,
//! every copy), and only then are the configured headers set from the session's claims.

use http::HeaderValue;
use pingora_http::RequestHeader;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::policy::AppPolicy;

/// The logged-in user. Keyed by `iss` + `sub`; email and names are only attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub iss: String,
    pub sub: String,
    /// The configured username claim (e.g. `preferred_username`), for policies and logs.
    pub username: String,
    pub groups: Vec<String>,
    /// Every claim from the ID token and (matching) userinfo, for identity headers.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// Builds an identity from merged claims, reading the configured username/groups claims.
    pub fn from_claims(
        iss: String,
        sub: String,
        claims: Map<String, Value>,
        username_claim: &str,
        groups_claim: &str,
    ) -> Self {
        let username = claims
            .get(username_claim)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| sub.clone());
        let groups = match claims.get(groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => s
                .split([',', ' '])
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Self {
            iss,
            sub,
            username,
            groups,
            claims,
        }
    }

    /// A claim rendered as one header value: strings as-is, lists joined with `,`, control
    /// characters dropped so a claim can never split or inject headers.
    pub fn header_value(&self, claim: &str) -> Option<HeaderValue> {
        let text = match claim {
            "sub" => self.sub.clone(),
            "iss" => self.iss.clone(),
            _ => match self.claims.get(claim)? {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Null => return None,
                other => other.to_string(),
            },
        };
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        HeaderValue::from_bytes(clean.as_bytes()).ok()
    }
}

/// Lower case with `_` read as `-`: the form two header names share if an app could confuse
/// them (many frameworks, e.g. CGI/WSGI, map both `X-User` and `X_User` to `HTTP_X_USER`).
pub fn header_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn same_key(name: &str, key: &str) -> bool {
    name.len() == key.len()
        && name.bytes().zip(key.bytes()).all(|(a, b)| {
            (if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            }) == b
        })
}

/// Removes every incoming header that could be taken for an identity header.
pub fn strip_spoofed(req: &mut RequestHeader, strip_keys: &[String]) {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| strip_keys.iter().any(|k| same_key(name.as_str(), k)))
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
}

/// Strips the well-known identity headers when no app is known (e.g. unknown host).
pub fn strip_well_known(req: &mut RequestHeader) {
    let keys: Vec<String> = crate::policy::WELL_KNOWN_IDENTITY_HEADERS
        .iter()
        .map(|s| s.to_string())
        .collect();
    strip_spoofed(req, &keys);
}

/// Sets the app's configured identity headers from the session's identity.
pub fn set_identity_headers(
    req: &mut RequestHeader,
    app: &AppPolicy,
    identity: &Identity,
) -> pingora_error::Result<()> {
    for header in &app.identity_headers {
        if let Some(value) = identity.header_value(&header.claim) {
            req.insert_header(header.name.clone(), value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Identity {
        let claims = json!({
            "preferred_username": "alice",
            "email": "alice@example.test",
            "groups": ["engineering", "wiki-admins"],
            "name": "Alice\r\nX-Evil: 1"
        });
        Identity::from_claims(
            "https://idp".into(),
            "sub-1".into(),
            claims.as_object().cloned().unwrap_or_default(),
            "preferred_username",
            "groups",
        )
    }

    #[test]
    fn claims_become_header_values_without_control_characters() {
        let id = alice();
        assert_eq!(id.username, "alice");
        assert_eq!(id.groups, vec!["engineering", "wiki-admins"]);
        assert_eq!(
            id.header_value("groups").unwrap(),
            "engineering,wiki-admins"
        );
        assert_eq!(id.header_value("name").unwrap(), "AliceX-Evil: 1");
        assert_eq!(id.header_value("sub").unwrap(), "sub-1");
        assert!(id.header_value("missing").is_none());
    }

    #[test]
    fn spoofed_headers_are_removed_in_every_spelling() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Forwarded-User", "mallory").unwrap();
        req.append_header("x-forwarded-user", "mallory2").unwrap();
        req.append_header("X_FORWARDED_USER", "mallory3").unwrap();
        req.append_header("x-forwarded_user", "mallory4").unwrap();
        req.append_header("X-Custom-Id", "keep").unwrap();
        strip_spoofed(&mut req, &["x-forwarded-user".to_string()]);
        assert_eq!(req.headers.len(), 1);
        assert!(req.headers.get("x-custom-id").is_some());
    }
}
