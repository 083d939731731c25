//! jitgate's cookies: names, attributes, and reading them from request headers.
//!
//! On HTTPS the session cookie is `__Host-jitgate` (Secure, HttpOnly, SameSite=Lax, Path=/,
//! no Domain), so it is bound to exactly one host. Plain-HTTP deployments (the demo, tests on
//! loopback) get `jitgate_session` without `Secure`, which browsers would otherwise drop. Our
//! names never collide with an IdP's cookies on the same host (browsers ignore ports).

use pingora_http::RequestHeader;

use crate::util::random::looks_like_token;

/// Which family of cookie names and attributes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieNames {
    pub secure: bool,
}

impl CookieNames {
    pub fn session(&self) -> &'static str {
        if self.secure {
            "__Host-jitgate"
        } else {
            "jitgate_session"
        }
    }

    /// Binds a login transaction to the browser that started it.
    pub fn login_binding(&self) -> &'static str {
        if self.secure {
            "__Host-jitgate-login"
        } else {
            "jitgate_login"
        }
    }

    fn attributes(&self, max_age: Option<i64>) -> String {
        let mut attrs = String::from("; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            attrs.push_str("; Secure");
        }
        if let Some(age) = max_age {
            attrs.push_str(&format!("; Max-Age={age}"));
        }
        attrs
    }

    /// `Set-Cookie` value for a cookie; `None` max-age makes it a browser-session cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        format!("{name}={value}{}", self.attributes(max_age))
    }

    /// `Set-Cookie` value that deletes a cookie.
    pub fn clear(&self, name: &str) -> String {
        format!("{name}={}", self.attributes(Some(0)))
    }
}

/// What the request carries under one of our cookie names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieValue<'a> {
    Absent,
    /// Present and shaped like one of our tokens.
    Token(&'a str),
    /// Present but not something jitgate ever issued (or sent twice with different values).
    Malformed,
}

/// Space or tab: the whitespace HTTP allows around cookie pairs.
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// One cookie of a `Cookie` header: the whole `name=value` text, and its name and value
/// trimmed of whitespace (a pair without `=` has an empty value).
struct Pair<'a> {
    text: &'a [u8],
    name: &'a [u8],
    value: &'a [u8],
}

/// The cookies of one `Cookie` header value. Reading and stripping both see the cookies
/// through this one function, so whatever is read as ours is also stripped. Works on bytes:
/// a header need not be text, and this runs on every request.
fn pairs(header: &[u8]) -> impl Iterator<Item = Pair<'_>> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let text = trim_ows(pair);
        if text.is_empty() {
            return None;
        }
        let (name, value) = match text.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (name, value) = text.split_at(eq);
                (trim_ows(name), trim_ows(value.get(1..).unwrap_or_default()))
            }
            None => (text, &[][..]),
        };
        Some(Pair { text, name, value })
    })
}

/// Reads cookie `name` from every `Cookie` header of the request (no allocation).
pub fn read<'a>(req: &'a RequestHeader, name: &str) -> CookieValue<'a> {
    let mut found: Option<&'a [u8]> = None;
    for header in req.headers.get_all(http::header::COOKIE) {
        for pair in pairs(header.as_bytes()) {
            if pair.name != name.as_bytes() {
                continue;
            }
            let mut value = pair.value;
            while let [b'"', rest @ ..] | [rest @ .., b'"'] = value {
                value = rest;
            }
            match found {
                Some(prev) if prev != value => return CookieValue::Malformed,
                _ => found = Some(value),
            }
        }
    }
    match found.map(std::str::from_utf8) {
        None => CookieValue::Absent,
        Some(Ok(v)) if looks_like_token(v) => CookieValue::Token(v),
        Some(_) => CookieValue::Malformed,
    }
}

/// Removes our own cookies from a request before it goes upstream: apps never see them.
pub fn strip_own(req: &mut RequestHeader, names: CookieNames) {
    let own = [names.session().as_bytes(), names.login_binding().as_bytes()];
    let (mut ours, mut others) = (false, false);
    for header in req.headers.get_all(http::header::COOKIE) {
        for pair in pairs(header.as_bytes()) {
            if own.contains(&pair.name) {
                ours = true;
            } else {
                others = true;
            }
        }
    }
    if !ours {
        return;
    }
    // The usual case: a browser that sends only our cookie to this host.
    if !others {
        req.remove_header(&http::header::COOKIE);
        return;
    }
    let cookies = req.headers.get_all(http::header::COOKIE);
    let mut kept = Vec::with_capacity(cookies.iter().map(|h| h.len() + 2).sum());
    for header in cookies {
        for pair in pairs(header.as_bytes()) {
            if !own.contains(&pair.name) {
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair.text);
            }
        }
    }
    // One replace (every copy, folded into one header as HTTP/1.1 expects) or one removal.
    // (If the rest cannot be a header value, drop the header: never forward our cookie.)
    let replaced = !kept.is_empty()
        && http::HeaderValue::from_bytes(&kept)
            .is_ok_and(|value| req.insert_header(http::header::COOKIE, value).is_ok());
    if !replaced {
        req.remove_header(&http::header::COOKIE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

    fn req(cookies: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for c in cookies {
            r.append_header("Cookie", *c).unwrap();
        }
        r
    }

    #[test]
    fn reads_a_token_among_other_cookies() {
        let r = req(&[&format!("a=1; jitgate_session={TOKEN}; b=2")]);
        assert_eq!(read(&r, "jitgate_session"), CookieValue::Token(TOKEN));
        assert_eq!(read(&r, "other"), CookieValue::Absent);
    }

    #[test]
    fn garbage_or_conflicting_copies_are_malformed() {
        assert_eq!(
            read(&req(&["jitgate_session=short"]), "jitgate_session"),
            CookieValue::Malformed
        );
        let two = req(&[&format!("jitgate_session={TOKEN}"), "jitgate_session=x"]);
        assert_eq!(read(&two, "jitgate_session"), CookieValue::Malformed);
    }

    #[test]
    fn own_cookies_never_reach_the_app() {
        let mut r = req(&[
            &format!("a=1; jitgate_session={TOKEN}"),
            "jitgate_login=z; b=2",
        ]);
        strip_own(&mut r, CookieNames { secure: false });
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
    }

    #[test]
    fn a_cookie_header_holding_only_ours_is_removed() {
        let mut r = req(&[&format!("jitgate_session={TOKEN}")]);
        strip_own(&mut r, CookieNames { secure: false });
        assert!(r.headers.get("cookie").is_none());
        let mut h2 = req(&[&format!("jitgate_session={TOKEN}"), "a=1"]);
        strip_own(&mut h2, CookieNames { secure: false });
        assert_eq!(h2.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(h2.headers.get("cookie").unwrap(), "a=1");
    }

    #[test]
    fn whatever_is_read_as_ours_is_also_stripped() {
        for header in [
            format!("a=1;\tjitgate_session={TOKEN}"),
            format!("jitgate_session = {TOKEN} ; b=2"),
        ] {
            let mut r = req(&[&header]);
            assert_eq!(
                read(&r, "jitgate_session"),
                CookieValue::Token(TOKEN),
                "{header}"
            );
            strip_own(&mut r, CookieNames { secure: false });
            let left = r.headers.get("cookie").unwrap().to_str().unwrap();
            assert!(!left.contains("jitgate"), "{header:?} left {left:?}");
            assert!(left.starts_with("a=1") || left == "b=2", "{left:?}");
        }
    }

    #[test]
    fn https_cookies_use_the_host_prefix_and_secure() {
        let names = CookieNames { secure: true };
        let set = names.set(names.session(), TOKEN, None);
        assert!(set.starts_with("__Host-jitgate="));
        assert!(
            set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Lax")
        );
        assert!(!set.contains("Domain"));
    }
}

/// Properties over attacker-shaped `Cookie` headers; `scripts/fuzz.sh` runs them with many
/// more cases.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::util::attacker_input;

    const TOKEN: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    const NAMES: &[&str] = &[
        "jitgate_session",
        "jitgate_login",
        "__Host-jitgate",
        "__Host-jitgate-login",
        "JITGATE_SESSION",
        "jitgate_session2",
        "jitgate",
        "a",
        "",
    ];

    /// One `name=value` (or a bare name), with the whitespace and quotes clients add.
    fn pair() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            4 => proptest::sample::select(NAMES).prop_map(str::to_string),
            1 => attacker_input::text(),
        ];
        let value = prop_oneof![
            3 => Just(TOKEN.to_string()),
            1 => Just(format!("\"{TOKEN}\"")),
            1 => Just(String::new()),
            2 => attacker_input::text(),
        ];
        let ows = proptest::sample::select(&["", " ", "\t", "  "][..]);
        (ows.clone(), name, ows.clone(), any::<bool>(), ows, value).prop_map(
            |(before, name, around, with_value, after, value)| {
                if with_value {
                    format!("{before}{name}{around}={after}{value}")
                } else {
                    format!("{before}{name}")
                }
            },
        )
    }

    /// One `Cookie` header value.
    fn header() -> impl Strategy<Value = Vec<u8>> {
        let separator = proptest::sample::select(&[";", "; ", ";;", " ; ", ";\t", ","][..]);
        prop_oneof![
            4 => proptest::collection::vec((pair(), separator), 0..6).prop_map(|pairs| {
                pairs.into_iter().map(|(p, s)| format!("{p}{s}")).collect::<String>().into_bytes()
            }),
            1 => attacker_input::bytes(),
        ]
    }

    /// A request with these `Cookie` headers (those that can be header values at all).
    fn request(headers: &[Vec<u8>]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for value in headers {
            if let Ok(value) = http::HeaderValue::from_bytes(value) {
                req.append_header("Cookie", value).unwrap();
            }
        }
        req
    }

    /// Every cookie of the request, as `pairs` reads them: (name, whole text).
    fn cookies(req: &RequestHeader) -> Vec<(Vec<u8>, Vec<u8>)> {
        req.headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|h| pairs(h.as_bytes()).map(|p| (p.name.to_vec(), p.text.to_vec())))
            .collect()
    }

    proptest! {
        #![proptest_config(attacker_input::config(1024))]

        #[test]
        fn whatever_is_read_as_ours_is_stripped_and_nothing_else(
            headers in proptest::collection::vec(header(), 0..4),
            secure in any::<bool>(),
        ) {
            let names = CookieNames { secure };
            let mut req = request(&headers);
            let before = cookies(&req);
            let _ = read(&req, names.session());
            let _ = read(&req, names.login_binding());
            strip_own(&mut req, names);
            prop_assert_eq!(read(&req, names.session()), CookieValue::Absent);
            prop_assert_eq!(read(&req, names.login_binding()), CookieValue::Absent);
            let own = [names.session().as_bytes(), names.login_binding().as_bytes()];
            let had_ours = before.iter().any(|(n, _)| own.contains(&n.as_slice()));
            let others: Vec<_> = before.into_iter().filter(|(n, _)| !own.contains(&n.as_slice())).collect();
            prop_assert_eq!(cookies(&req), others);
            if had_ours {
                // Rewritten as one header (HTTP/1.1 allows one), or removed.
                prop_assert!(req.headers.get_all(http::header::COOKIE).iter().count() <= 1);
            }
        }

        #[test]
        fn our_token_is_found_among_other_cookies(
            before in proptest::collection::vec(pair(), 0..4),
            after in proptest::collection::vec(pair(), 0..4),
        ) {
            let foreign = |p: &String| {
                !pairs(p.as_bytes()).any(|c| c.name == b"jitgate_session")
            };
            let mut all: Vec<String> = before.into_iter().filter(foreign).collect();
            all.push(format!("jitgate_session={TOKEN}"));
            all.extend(after.into_iter().filter(foreign));
            let req = request(&[all.join("; ").into_bytes()]);
            if req.headers.get(http::header::COOKIE).is_some() {
                prop_assert_eq!(read(&req, "jitgate_session"), CookieValue::Token(TOKEN));
            }
        }
    }
}
