//! The request's target and host as the edge judges them, and the target the app receives.
//!
//! The path a request is judged on must be the path the app gets: targets whose bytes would
//! reach the app as something else are refused, and an absolute-form target is rewritten to
//! the origin form it was judged in. The host is read once, lower case, without port.

use pingora_http::RequestHeader;

/// Whether the bytes pingora will send as the app's request target are the path `admit`
/// judges (`req.uri`): true for origin-form (`/path`), and for absolute-form
/// (`http://host/path`), which `upstream_request_filter` rewrites to its path. pingora keeps
/// other forms (`x:/admin` reads as `/` in the URI) and non-UTF-8 targets verbatim for the
/// wire, so the app would get a path nobody judged: those are refused.
pub(super) fn target_is_forwarded_as_judged(req: &RequestHeader) -> bool {
    let raw = req.raw_path();
    let scheme = |s: &[u8]| {
        raw.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    req.raw_path_is_utf8()
        && (raw.first() == Some(&b'/') || scheme(b"http://") || scheme(b"https://"))
}

/// The path `admit` judges, or `None` for a target whose bytes would not reach the app as
/// that path (see [`target_is_forwarded_as_judged`]).
pub(super) fn judged_path(req: &RequestHeader) -> Option<&str> {
    target_is_forwarded_as_judged(req).then(|| req.uri.path())
}

/// Writes the target the app receives: an absolute-form target (`GET http://host/path`) was
/// judged on its path, so the app gets that path (and query) in origin form. Origin-form
/// targets are left as they are. (Every other form was refused in `admit`.)
pub(super) fn in_origin_form(upstream: &mut RequestHeader) -> Result<(), http::uri::InvalidUri> {
    if upstream.raw_path().first() != Some(&b'/') {
        let origin = upstream.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = http::Uri::try_from(origin)?;
        upstream.set_uri(uri);
    }
    Ok(())
}

/// The request's host, lower case, without port: from `Host`, or the URI under HTTP/2.
/// Borrowed when the host is already in that form, as nearly every browser sends it.
pub fn request_host(req: &RequestHeader) -> Option<std::borrow::Cow<'_, str>> {
    let raw = match req.headers.get(http::header::HOST) {
        Some(h) => h.as_bytes(),
        None => req.uri.authority()?.as_str().as_bytes(),
    };
    let host = if raw.first() == Some(&b'[') {
        // IPv6 literal: keep the brackets, drop the port.
        let end = raw.iter().position(|&b| b == b']')?;
        raw.get(..=end)?
    } else {
        match raw.iter().rposition(|&b| b == b':') {
            Some(colon) => raw.get(..colon)?,
            None => raw,
        }
    };
    let mut host = host;
    while let [rest @ .., b'.'] = host {
        host = rest;
    }
    // Brackets and colons only in an IPv6 literal: `a:b:80` is not the host `a:b`.
    let ipv6 = host.first() == Some(&b'[');
    let mut upper = false;
    for &b in host {
        upper |= b.is_ascii_uppercase();
        if !(b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.')
            || (ipv6 && matches!(b, b'[' | b']' | b':')))
        {
            return None;
        }
    }
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    // Only ASCII is left, so this cannot fail.
    let host = std::str::from_utf8(host).ok()?;
    Some(if upper {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    })
}

#[cfg(test)]
mod tests {
    use super::request_host;
    use pingora_http::RequestHeader;

    fn with_host(h: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("Host", h).unwrap();
        r
    }

    #[test]
    fn host_is_lowercased_without_port() {
        assert_eq!(
            request_host(&with_host("Wiki.Example.TEST:8443")).as_deref(),
            Some("wiki.example.test")
        );
        assert_eq!(
            request_host(&with_host("wiki.example.test.")).as_deref(),
            Some("wiki.example.test")
        );
        assert_eq!(
            request_host(&with_host("[::1]:80")).as_deref(),
            Some("[::1]")
        );
        assert_eq!(request_host(&with_host("bad host")), None);
        // Found by the property tests: `wiki.example.test::` was read as `wiki.example.test:`.
        assert_eq!(request_host(&with_host("wiki.example.test::")), None);
        assert_eq!(request_host(&with_host("a:b:80")), None);
        assert_eq!(request_host(&with_host("a]:80")), None);
        assert_eq!(request_host(&with_host("evil/x")), None);
    }
}

/// Properties over attacker-shaped request targets and `Host` values; `scripts/fuzz.sh` runs
/// them with many more cases.
#[cfg(test)]
mod properties {
    use pingora_core::protocols::http::v1::client::http_req_header_to_wire;
    use pingora_http::RequestHeader;
    use proptest::prelude::*;

    use super::{in_origin_form, judged_path, request_host};
    use crate::policy::normalize_path;
    use crate::util::attacker_input;

    /// The request target in the request line pingora writes to the app (`None`: pingora
    /// refuses to write it, so nothing is sent).
    fn target_on_the_wire(upstream: &RequestHeader) -> Option<Vec<u8>> {
        let wire = http_req_header_to_wire(upstream)?;
        let line = wire.strip_prefix(b"GET ")?;
        let end = line.iter().position(|&b| b == b' ')?;
        line.get(..end).map(<[u8]>::to_vec)
    }

    /// What `admit` judged against what the app receives: the path byte for byte, and the
    /// query with it.
    fn judged_is_forwarded(req: &RequestHeader) -> Result<(), TestCaseError> {
        // `admit` refuses (400) a target it cannot judge, or whose path does not normalise.
        let Some(judged) = judged_path(req).filter(|p| normalize_path(p).is_ok()) else {
            return Ok(());
        };
        // pingora's copy of the request, which `upstream_request_filter` writes on.
        let mut upstream = req.clone();
        prop_assert!(in_origin_form(&mut upstream).is_ok());
        let Some(sent) = target_on_the_wire(&upstream) else {
            return Ok(());
        };
        let (path, query) = match sent.iter().position(|&b| b == b'?') {
            Some(q) => (&sent[..q], Some(&sent[q + 1..])),
            None => (&sent[..], None),
        };
        prop_assert_eq!(
            path,
            judged.as_bytes(),
            "sent {:?}",
            String::from_utf8_lossy(&sent)
        );
        prop_assert_eq!(query, req.uri.query().map(str::as_bytes));
        Ok(())
    }

    /// `Host` values: names in any case, ports, brackets, trailing dots and junk.
    fn host_header() -> impl Strategy<Value = Vec<u8>> {
        const NAMES: &[&str] = &[
            "wiki.example.test",
            "WIKI.Example.TEST",
            "wiki.example.test.",
            "wiki.example.test..",
            "[::1]",
            "[::1",
            "::1]",
            "[::ffff:127.0.0.1]",
            "[]",
            "a:b",
            "",
            ".",
            "-",
            "xn--bcher-kva.example",
            "wiki example",
            "wiki/x",
            "wiki@evil",
            "é.example",
        ];
        const PORTS: &[&str] = &["", ":80", ":", ":8443", "::", ":80:80", ":x", "]:80", "."];
        prop_oneof![
            4 => (proptest::sample::select(NAMES), proptest::sample::select(PORTS))
                .prop_map(|(name, port)| format!("{name}{port}").into_bytes()),
            1 => attacker_input::text().prop_map(String::into_bytes),
            1 => attacker_input::bytes(),
        ]
    }

    proptest! {
        #![proptest_config(attacker_input::config(1024))]

        #[test]
        fn the_judged_path_is_the_path_the_app_receives(target in attacker_input::target_bytes()) {
            // pingora answers 400 itself to what it cannot build a request from.
            if let Ok(req) = RequestHeader::build("GET", &target, None) {
                judged_is_forwarded(&req)?;
            }
        }

        #[test]
        fn the_judged_path_is_the_path_the_app_receives_from_http2(path in attacker_input::path()) {
            // Under HTTP/2 the request carries an absolute URI (scheme, authority, path).
            let uri = format!("https://wiki.example.test{path}");
            if let Ok(uri) = http::Uri::try_from(uri) {
                let (mut parts, ()) = http::Request::new(()).into_parts();
                parts.uri = uri;
                judged_is_forwarded(&RequestHeader::from(parts))?;
            }
        }

        #[test]
        fn a_host_is_read_once_and_for_all(host in host_header()) {
            let Ok(value) = http::HeaderValue::from_bytes(&host) else {
                return Ok(()); // not a header value: pingora refuses the request
            };
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header("Host", value).unwrap();
            if let Some(read) = request_host(&req) {
                prop_assert!(!read.is_empty() && read.len() <= 253);
                prop_assert!(!read.bytes().any(|b| b.is_ascii_uppercase()), "{:?}", read);
                // Canonical: no port, no trailing dot left to strip; reading it again is a no-op.
                let mut again = RequestHeader::build("GET", b"/", None).unwrap();
                again.insert_header("Host", read.as_ref()).unwrap();
                let reread = request_host(&again).map(|h| h.into_owned());
                prop_assert_eq!(reread.as_deref(), Some(read.as_ref()), "from {:?}", String::from_utf8_lossy(&host));
            }
        }

        #[test]
        fn a_host_name_is_found_in_any_case_with_any_port(
            labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..5),
            upper in proptest::collection::vec(any::<bool>(), 0..40),
            port in proptest::option::of(0u16..),
            trailing_dot in any::<bool>(),
        ) {
            let name = labels.join(".");
            let mut written: String = name
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            if trailing_dot {
                written.push('.');
            }
            if let Some(port) = port {
                written.push_str(&format!(":{port}"));
            }
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header("Host", written.as_str()).unwrap();
            let read = request_host(&req).map(|h| h.into_owned());
            prop_assert_eq!(read.as_deref(), Some(name.as_str()), "{}", written);
        }
    }
}
