//! Who the user is, as far as the apps behind jitgate are concerned, and how that reaches them.
//!
//! An [`Identity`] is built from validated ID-token (and userinfo) claims at login and stored
//! with the session. On every forwarded request, `strip_spoofed` first removes from the
//! request the app will receive any header it could mistake for one of jitgate's identity
//! headers (every copy of every name that equals one once letter case and all punctuation
//! are ignored: `x_forwarded_user`, `X.Forwarded.User`, `XForwardedUser`), and only then
//! are the configured headers set from the session's claims.

use std::sync::Arc;

use http::HeaderValue;
use pingora_http::RequestHeader;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::policy::AppPolicy;

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
            .filter_map(|(name, value)| Some((name.clone(), render(value)?)))
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

/// Names and values were copied from `String`s, so they are UTF-8.
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// Renders a claim as header-safe text: strings as-is, lists joined with `,`; control
/// characters and non-ASCII are dropped or escaped so a claim can never split or inject
/// headers. `None` for null.
fn render(value: &Value) -> Option<String> {
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

/// Lower case with `_` read as `-`: the spelling policy checks compare header names in.
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

/// A header name as an app might read it: its ASCII letters and digits, lower case, with
/// every other character dropped. Frameworks fold names in many ways (CGI/WSGI map `X-User`,
/// `X_User` and `X.User` to `HTTP_X_USER`; some drop punctuation), so two names with the
/// same folded form are the same header to some app.
fn folded(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
}

/// [`folded`] as text: the form in which two header names are the same header to some app.
pub fn folded_name(name: &str) -> String {
    folded(name).map(char::from).collect()
}

/// The headers an app could take for identity headers, folded (see [`folded`]), with two
/// quick filters so that most incoming headers are passed over after one or two tests: the
/// set of first bytes of the folded names (`x` and `r` for the well-known ones), and a
/// bitmask of their lengths.
#[derive(Debug, Default, Clone)]
pub struct SpoofableHeaders {
    keys: Vec<Box<[u8]>>,
    /// Bit `b` is set if some key starts with byte `b`.
    first_bytes: [u64; 4],
    /// Bit `n` is set if some key is `n` bytes long (bit 63: 63 or longer).
    lengths: u64,
}

/// Folded names longer than this are compared without the stack buffer.
const FOLD_BUFFER: usize = 64;

impl SpoofableHeaders {
    /// Adds a header name (any spelling), once.
    pub fn add(&mut self, name: &str) {
        let key: Box<[u8]> = folded(name).collect();
        let Some(&first) = key.first() else {
            return;
        };
        if !self.keys.contains(&key) {
            self.first_bytes[usize::from(first >> 6)] |= 1 << (first & 63);
            self.lengths |= 1 << key.len().min(63);
            self.keys.push(key);
        }
    }

    /// True if `name`, folded, is one of them.
    pub fn contains(&self, name: &str) -> bool {
        let Some(first) = folded(name).next() else {
            return false;
        };
        if self.first_bytes[usize::from(first >> 6)] & (1 << (first & 63)) == 0 {
            return false;
        }
        let mut buffer = [0u8; FOLD_BUFFER];
        let mut len = 0;
        for b in folded(name) {
            if let Some(slot) = buffer.get_mut(len) {
                *slot = b;
            }
            len += 1;
        }
        if self.lengths & (1 << len.min(63)) == 0 {
            return false;
        }
        match buffer.get(..len) {
            Some(short) => self.keys.iter().any(|k| **k == *short),
            None => self
                .keys
                .iter()
                .any(|k| k.len() == len && folded(name).eq(k.iter().copied())),
        }
    }
}

/// Removes every incoming header that could be taken for an identity header.
pub fn strip_spoofed(req: &mut RequestHeader, spoofable: &SpoofableHeaders) {
    let doomed = |name: &http::HeaderName| spoofable.contains(name.as_str());
    // Almost no request carries one: look first, allocate only when there is work.
    if !req.headers.keys().any(doomed) {
        return;
    }
    let names: Vec<http::HeaderName> = req.headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in names {
        req.remove_header(&name);
    }
}

/// Sets the app's configured identity headers from the session's identity.
pub fn set_identity_headers(
    req: &mut RequestHeader,
    app: &AppPolicy,
    identity: &Identity,
) -> pingora_error::Result<()> {
    // Every copy of these names was stripped already, so appending cannot duplicate.
    for header in &app.identity_headers {
        if let Some(value) = identity.header_value(&header.claim) {
            req.append_header(header.wire_name, value)?;
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
    fn spoofed_headers_are_removed_in_every_spelling() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Forwarded-User", "mallory").unwrap();
        req.append_header("x-forwarded-user", "mallory2").unwrap();
        req.append_header("X_FORWARDED_USER", "mallory3").unwrap();
        req.append_header("x-forwarded_user", "mallory4").unwrap();
        req.append_header("X.Forwarded.User", "mallory5").unwrap();
        req.append_header("XForwardedUser", "mallory6").unwrap();
        req.append_header("x~forwarded!user", "mallory7").unwrap();
        req.append_header("X-Forwarded-Users", "keep").unwrap();
        req.append_header("X-Custom-Id", "keep").unwrap();
        let mut spoofable = SpoofableHeaders::default();
        spoofable.add("X-Forwarded-User");
        strip_spoofed(&mut req, &spoofable);
        let left: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(req.headers.get("x-custom-id").is_some());
        assert!(req.headers.get("x-forwarded-users").is_some());
    }

    #[test]
    fn folded_names_match_at_any_length_and_punctuation_alone_matches_nothing() {
        let long = format!("X-{}", "Long-".repeat(20));
        let mut spoofable = SpoofableHeaders::default();
        spoofable.add("Remote-User");
        spoofable.add(&long);
        spoofable.add("---");
        assert!(spoofable.contains("remote.user") && spoofable.contains("REMOTEUSER"));
        assert!(spoofable.contains(&long.replace('-', "_")));
        assert!(!spoofable.contains(&format!("{long}x")));
        assert!(!spoofable.contains("x-remote-user") && !spoofable.contains("user"));
        assert!(!spoofable.contains("-") && !spoofable.contains(""));
    }
}
