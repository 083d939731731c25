//! Who the user is, as far as the apps behind jitgate are concerned.
//!
//! An [`Identity`] is built from validated ID-token (and userinfo) claims at login and stored
//! with the session. It keeps its claims already rendered as header-safe text, so the edge
//! (`edge::identity_headers`) only copies them onto the request the app receives.

use std::sync::Arc;

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The logged-in user. Keyed by `iss` + `sub`; email and names are only attributes.
///
/// Compact on purpose, since one is cached per live session: claims are kept already rendered
/// as header-safe text, packed into one string (`name\tvalue\n`, sorted by name), and groups
/// into another (`\n`-separated). Stored as readable JSON through [`IdentityRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "IdentityRecord", into = "IdentityRecord")]
pub struct Identity {
    /// Shared between sessions of the same issuer (see `Identity::share_issuer`).
    pub iss: Arc<str>,
    pub sub: Box<str>,
    /// The configured username claim (e.g. `preferred_username`), for policies and logs.
    pub username: Box<str>,
    groups: Box<str>,
    /// Claim names and values back to back (UTF-8).
    claims: Box<str>,
    /// Per claim: where its name starts, where its value starts and ends in `claims`;
    /// sorted by name (a name ends where its value starts).
    claim_index: Box<[[u32; 3]]>,
    /// SHA-256 (first 16 bytes) of everything above: equal digests, equal identities. Lets
    /// caches keyed by "this user with these claims" skip comparing the claims themselves.
    digest: [u8; 16],
}

/// The stored form of an [`Identity`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub iss: String,
    pub sub: String,
    pub username: String,
    pub groups: Vec<String>,
    pub claims: std::collections::BTreeMap<String, String>,
}

impl From<IdentityRecord> for Identity {
    fn from(r: IdentityRecord) -> Self {
        let groups: Vec<String> = r
            .groups
            .into_iter()
            .map(|g| g.chars().filter(|c| !c.is_control()).collect())
            .collect();
        let mut packed = String::new();
        let mut index = Vec::with_capacity(r.claims.len());
        for (name, value) in &r.claims {
            let too_long = packed.len() + name.len() + value.len() > u32::MAX as usize;
            if value.chars().any(char::is_control) || too_long {
                continue;
            }
            let name_start = packed.len() as u32;
            packed.push_str(name);
            let value_start = packed.len() as u32;
            packed.push_str(value);
            index.push([name_start, value_start, packed.len() as u32]);
        }
        let groups = groups.join("\n");
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [&r.iss, &r.sub, &r.username, &groups, &packed] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        for [n, v, e] in &index {
            for x in [n, v, e] {
                ctx.update(&x.to_be_bytes());
            }
        }
        let mut digest = [0u8; 16];
        digest.copy_from_slice(ctx.finish().as_ref().get(..16).unwrap_or(&[0; 16]));
        Self {
            iss: r.iss.into(),
            sub: r.sub.into(),
            username: r.username.into(),
            groups: groups.into(),
            claims: packed.into(),
            claim_index: index.into_boxed_slice(),
            digest,
        }
    }
}

impl From<Identity> for IdentityRecord {
    fn from(id: Identity) -> Self {
        Self {
            groups: id.groups().map(str::to_string).collect(),
            claims: id
                .claim_pairs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            iss: id.iss.to_string(),
            sub: id.sub.into(),
            username: id.username.into(),
        }
    }
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
            .unwrap_or(&sub)
            .to_string();
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
        let claims = claims
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), claim_text(value)?)))
            .collect();
        IdentityRecord {
            iss,
            sub,
            username,
            groups,
            claims,
        }
        .into()
    }

    /// The same user in other groups (a mover): the groups, and the groups claim as headers
    /// and connector templates see it, replaced.
    pub fn with_groups(&self, groups: &[String], groups_claim: &str) -> Self {
        let mut record = IdentityRecord::from(self.clone());
        replace_claims(&mut record.claims, &groups_claim_of(groups, groups_claim));
        record.groups = groups.to_vec();
        record.into()
    }

    /// The same user with some claims replaced (a mover's new email or name, from the
    /// directory); the others, the username and the groups stay.
    pub fn with_claims(&self, replaced: &Map<String, Value>) -> Self {
        let mut record = IdentityRecord::from(self.clone());
        replace_claims(&mut record.claims, replaced);
        record.into()
    }

    /// Identifies this user with exactly these claims (see the field's comment).
    pub fn digest(&self) -> [u8; 16] {
        self.digest
    }

    /// Every claim as `name -> text` (the form connector templates see).
    pub fn claims(&self) -> std::collections::BTreeMap<String, String> {
        self.claim_pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> + Clone {
        self.groups.split('\n').filter(|g| !g.is_empty())
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups().any(|g| g == group)
    }

    fn slice(&self, start: u32, end: u32) -> &[u8] {
        self.claims
            .as_bytes()
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }

    /// Replaces `iss` with an already shared copy of the same text (saves memory per session).
    pub fn share_issuer(&mut self, shared: &Arc<str>) {
        if *self.iss == **shared {
            self.iss = shared.clone();
        }
    }

    fn claim_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.claim_index
            .iter()
            .map(move |&[n, v, e]| (utf8(self.slice(n, v)), utf8(self.slice(v, e))))
    }

    /// A claim as one header value.
    ///
    /// A copy, not a shared slice of the session's claims: one session's requests run on
    /// every worker thread at once, and a shared buffer's reference count would be a memory
    /// location they all write.
    pub fn header_value(&self, claim: &str) -> Option<HeaderValue> {
        match claim {
            "sub" => return HeaderValue::from_str(&self.sub).ok(),
            "iss" => return HeaderValue::from_str(&self.iss).ok(),
            _ => {}
        }
        let i = self
            .claim_index
            .binary_search_by(|&[n, v, _]| self.slice(n, v).cmp(claim.as_bytes()))
            .ok()?;
        let [_, start, end] = *self.claim_index.get(i)?;
        let value = self.claims.as_bytes().get(start as usize..end as usize)?;
        HeaderValue::from_bytes(value).ok()
    }
}

/// The groups claim for `groups`, as one claim to replace.
pub fn groups_claim_of(groups: &[String], groups_claim: &str) -> Map<String, Value> {
    let list = Value::Array(groups.iter().cloned().map(Value::String).collect());
    Map::from_iter([(groups_claim.to_string(), list)])
}

/// Replaces claims in their rendered (header-safe text) form; a null removes one. Identities
/// and the connector templates' stored claims are changed the same way, so they compare equal.
pub fn replace_claims(
    claims: &mut std::collections::BTreeMap<String, String>,
    replaced: &Map<String, Value>,
) {
    for (name, value) in replaced {
        match claim_text(value) {
            Some(text) => claims.insert(name.clone(), text),
            None => claims.remove(name),
        };
    }
}

/// Names and values were copied from `String`s, so they are UTF-8.
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// Renders a claim as header-safe text: strings as-is, lists joined with `,`; control
/// characters and non-ASCII are dropped or escaped so a claim can never split or inject
/// headers. `None` for null.
pub fn claim_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if c.is_control() => {}
            c if c.is_ascii() => safe.push(c),
            // Non-ASCII (names like "Zoë") is percent-encoded UTF-8, which every header
            // parser accepts; apps that need the raw form decode it.
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    safe.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    Some(safe)
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
            "name": "Alice\r\nX-Evil: 1",
            "nickname": "Zoë",
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
        assert_eq!(&*id.username, "alice");
        assert!(id.in_group("engineering") && id.in_group("wiki-admins"));
        assert!(!id.in_group("wiki"));
        assert_eq!(id.header_value("email").unwrap(), "alice@example.test");
        assert_eq!(
            id.header_value("groups").unwrap(),
            "engineering,wiki-admins"
        );
        assert_eq!(id.header_value("name").unwrap(), "AliceX-Evil: 1");
        assert_eq!(id.header_value("sub").unwrap(), "sub-1");
        assert!(id.header_value("missing").is_none());
        assert_eq!(id.header_value("nickname").unwrap(), "Zo%C3%AB");
    }

    #[test]
    fn a_mover_keeps_every_claim_but_the_groups() {
        let id = alice();
        let moved = id.with_groups(&["support".to_string()], "groups");
        assert!(moved.in_group("support") && !moved.in_group("engineering"));
        assert_eq!(moved.header_value("groups").unwrap(), "support");
        assert_eq!(moved.header_value("email"), id.header_value("email"));
        assert_eq!(moved.username, id.username);
        assert_ne!(moved.digest(), id.digest());
        assert_eq!(
            moved.with_groups(
                &id.groups().map(str::to_string).collect::<Vec<_>>(),
                "groups"
            ),
            id
        );
        let renamed = id.with_claims(json!({ "email": "a@new.test" }).as_object().unwrap());
        assert_eq!(renamed.header_value("email").unwrap(), "a@new.test");
        assert_eq!(renamed.header_value("groups"), id.header_value("groups"));
        assert_ne!(renamed.digest(), id.digest());
        let none = id.with_groups(&[], "groups");
        assert_eq!(none.groups().count(), 0);
        assert_eq!(none.header_value("groups").unwrap(), "");
    }
}
