//! Which header names a policy may use, and how jitgate spells them on the wire: the
//! identity headers always stripped from requests, the names HTTP itself uses (never set by a
//! policy), the `X-` names refused as a request id header, and the interned wire spellings.

use http::header::HeaderName;
use marked_yaml::Spanned;

use super::header_names::folded_name;

/// Headers that commonly carry identity to apps; always stripped from incoming requests, in
/// addition to whatever a policy configures.
pub const WELL_KNOWN_IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-remote-user",
    "remote-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-jitgate-request-id",
];

/// A header name as jitgate writes it on the wire, kept for the life of the process.
///
/// Static, because pingora copies a `&'static str` name by pointer, while a shared buffer
/// would be reference-counted on every request by every worker thread. Each distinct
/// spelling is kept once, so reloading policies does not grow memory.
pub fn wire_name(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// `X-` headers that browsers or proxies act on: never a request id (it also goes on answers).
pub(super) const REQUEST_ID_HEADER_REFUSED: &[&str] = &[
    "x-frame-options",
    "x-content-type-options",
    "x-xss-protection",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "x-dns-prefetch-control",
    "x-permitted-cross-domain-policies",
];

/// Header names jitgate may set; connection-level and credential headers are refused.
pub(super) fn identity_header_name(header: &Spanned<String>) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(header.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", header.as_str()))?;
    if identity_header_name_reserved(name.as_str()) {
        return Err(format!(
            "`{}` cannot carry identity: it is used by HTTP itself",
            header.as_str()
        ));
    }
    Ok(name)
}

/// Headers HTTP itself uses, which no policy may set.
/// Compared with case and punctuation ignored, as stripping compares them: a policy header
/// named `Content.Length` would otherwise make jitgate strip the real `Content-Length`.
pub(super) fn identity_header_name_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "cookie",
        "authorization",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "expect",
        "keep-alive",
        "proxy-connection",
    ];
    let name = folded_name(name);
    RESERVED.iter().any(|r| folded_name(r) == name)
}
