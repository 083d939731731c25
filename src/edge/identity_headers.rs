//! The identity headers an app receives. On every forwarded request, [`strip_spoofed`] first
//! removes from the request the app will receive any header it could mistake for one of
//! jitgate's identity headers (see `policy::header_names`), and only then does
//! [`set_identity_headers`] set the configured headers from the session's claims.

use pingora_http::RequestHeader;

use crate::auth::identity::Identity;
use crate::policy::header_names::SpoofableHeaders;
use crate::policy::AppPolicy;

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
}
