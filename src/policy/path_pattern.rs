//! Route path patterns and the request-path normalisation they are matched against.
//!
//! A pattern is a list of segments: a literal, `*` (exactly one segment) or a final `**`
//! (zero or more segments, so `/admin/**` covers `/admin` and everything below it).
//! Request paths are normalised before matching so that `/%61dmin` or `//admin` cannot slip
//! past an `/admin/**` rule; paths whose meaning differs between servers (dot segments,
//! encoded slashes, backslashes, control characters) are refused instead of guessed at.

use std::borrow::Cow;

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
    any_tail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
}

impl PathPattern {
    /// Parses a pattern such as `/admin/**` or `/api/*/items`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path `{text}` must start with /"));
        };
        let mut segments = Vec::new();
        let mut any_tail = false;
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            match *part {
                "**" if i + 1 == parts.len() => any_tail = true,
                "**" => return Err(format!("in `{text}`, `**` may only be the last segment")),
                "*" => segments.push(Segment::One),
                "" if i + 1 == parts.len() => {}
                "" => return Err(format!("path `{text}` has an empty segment (`//`)")),
                "." | ".." => return Err(format!("path `{text}` may not contain . or ..")),
                p if p.contains('*') => {
                    return Err(format!(
                        "in `{text}`, `*` must be a whole segment (`/a/*/b` or a final `/**`)"
                    ))
                }
                p if p.contains('%') || p.contains('?') || p.contains('#') => {
                    return Err(format!(
                        "path `{text}` must be written decoded, without %, ? or #"
                    ))
                }
                p => segments.push(Segment::Literal(p.to_string())),
            }
        }
        Ok(Self { segments, any_tail })
    }

    /// Matches a path already produced by [`normalize_path`].
    pub fn matches(&self, normalized: &str) -> bool {
        let mut parts = normalized.split('/').filter(|s| !s.is_empty());
        for segment in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            if let Segment::Literal(lit) = segment {
                if lit != part {
                    return false;
                }
            }
        }
        self.any_tail || parts.next().is_none()
    }
}

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path contains an invalid percent-encoding")]
    BadEncoding,
    #[error(
        "the path contains dot segments, encoded slashes or %, backslashes or control characters"
    )]
    Ambiguous,
}

/// Decodes the path part of a request target for matching (the query is dropped).
///
/// Percent-encoded octets are decoded; `//` runs collapse. Refused: `.`/`..` segments (also
/// when encoded), `%2F`, `%5C`, `%25`, `\`, `%00` and other control characters. `%3F` and
/// `%23` stay encoded (as `%3F`, `%23`): a decoded `?` or `#` would end the path when the
/// result is read again, so normalising twice would give another path.
pub fn normalize_path(target: &str) -> Result<Cow<'_, str>, PathError> {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let path = target.get(..end).unwrap_or("");
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path, the common case: nothing to decode, collapse or refuse (one pass).
    if is_plain(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let value = hex_pair(hex).ok_or(PathError::BadEncoding)?;
            // `%25` would leave a `%` that an app decoding twice reads as another escape
            // (`%252e%252e` -> `..`).
            if matches!(value, b'/' | b'\\' | b'%') {
                return Err(PathError::Ambiguous);
            }
            match value {
                b'?' => decoded.extend_from_slice(b"%3F"),
                b'#' => decoded.extend_from_slice(b"%23"),
                _ => decoded.push(value),
            }
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\') {
        return Err(PathError::Ambiguous);
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::BadEncoding)?;
    let mut out = String::with_capacity(text.len());
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(PathError::Ambiguous);
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || text.ends_with('/') {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// The normalised path as servers that take `;` for the start of path parameters read it
/// (Tomcat, Jetty: `/a;x=1/b;y` is `/a/b`); `None` if it has no `;`. Refused: a segment
/// that is empty, `.` or `..` once its parameters are gone (`/x/..;/admin`).
pub fn without_path_parameters(normalized: &str) -> Result<Option<String>, PathError> {
    if !normalized.contains(';') {
        return Ok(None);
    }
    let mut out = String::with_capacity(normalized.len());
    for segment in normalized.split('/').filter(|s| !s.is_empty()) {
        let name = segment.split(';').next().unwrap_or_default();
        if matches!(name, "" | "." | "..") {
            return Err(PathError::Ambiguous);
        }
        out.push('/');
        out.push_str(name);
    }
    if out.is_empty() || normalized.ends_with('/') {
        out.push('/');
    }
    Ok(Some(out))
}

/// True if `path` (which starts with `/`) has nothing to decode, collapse or refuse: no `%`,
/// `\\`, control characters, empty segments (`//`), or `.`/`..` segments.
fn is_plain(path: &[u8]) -> bool {
    let dot_segment = |segment: &[u8]| segment == b"." || segment == b"..";
    let mut segment_start = 1;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b <= 0x20 || b == 0x7f || b == b'%' || b == b'\\' {
            return false;
        }
        if b == b'/' {
            let segment = path.get(segment_start..i).unwrap_or_default();
            if segment.is_empty() || dot_segment(segment) {
                return false;
            }
            segment_start = i + 1;
        }
    }
    !dot_segment(path.get(segment_start..).unwrap_or_default())
}

fn hex_pair(hex: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn double_star_covers_the_prefix_and_everything_below() {
        let p = pat("/admin/**");
        assert!(p.matches("/admin"));
        assert!(p.matches("/admin/"));
        assert!(p.matches("/admin/users/1"));
        assert!(!p.matches("/administrator"));
        assert!(!p.matches("/"));
        assert!(pat("/**").matches("/"));
        assert!(pat("/**").matches("/x/y"));
    }

    #[test]
    fn single_star_is_exactly_one_segment() {
        let p = pat("/api/*/items");
        assert!(p.matches("/api/7/items"));
        assert!(!p.matches("/api/items"));
        assert!(!p.matches("/api/7/8/items"));
        assert!(pat("/").matches("/"));
        assert!(!pat("/").matches("/x"));
    }

    #[test]
    fn bad_patterns_are_rejected_with_a_reason() {
        for bad in ["admin", "/a/**/b", "/a*", "/a//b", "/../x", "/a%2Fb"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoded_and_doubled_paths_normalize_before_matching() {
        assert_eq!(normalize_path("/%61dmin/x?q=1").unwrap(), "/admin/x");
        assert_eq!(normalize_path("//admin//x/").unwrap(), "/admin/x/");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert!(pat("/admin/**").matches(&normalize_path("//%61dmin").unwrap()));
        // Plain paths are used as they are, without a copy.
        for plain in ["/", "/docs/a-b/c/", "/a/.hidden", "/a/..b", "/x?y=//..&z=%"] {
            let normalized = normalize_path(plain).unwrap();
            assert!(matches!(normalized, Cow::Borrowed(_)), "{plain}");
            assert_eq!(normalized, plain.split('?').next().unwrap());
        }
    }

    #[test]
    fn encoded_query_and_fragment_marks_stay_encoded() {
        // Found by the property tests: `/%3f` normalised to `/?`, which normalises to `/`.
        for (target, normalized) in [
            ("/%3f", "/%3F"),
            ("/wiki/Why%3F?action=edit", "/wiki/Why%3F"),
            ("/a%23b/", "/a%23b/"),
            ("//a%3F%23", "/a%3F%23"),
        ] {
            assert_eq!(normalize_path(target).unwrap(), normalized, "{target}");
            assert_eq!(normalize_path(normalized).unwrap(), normalized, "{target}");
        }
        // Routing is as before: no literal segment holds `?`, `#` or `%`.
        assert!(!pat("/admin/**").matches(&normalize_path("/admin%3F/x").unwrap()));
        assert!(pat("/admin/*").matches(&normalize_path("/admin/x%3F").unwrap()));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "/a/../admin",
            "/a/%2e%2e/admin",
            "/a/./b",
            "/a/.",
            "/.",
            "/..",
            "/a/..",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a%00",
            "/a%zz",
            "/a%4",
            "/%252e%252e/admin",
            "/a%25",
            "a/b",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_parameters_are_read_the_way_tomcat_reads_them() {
        let strip = |p: &str| without_path_parameters(&normalize_path(p).unwrap());
        assert_eq!(strip("/docs/a").unwrap(), None);
        assert_eq!(
            strip("/admin;x/users").unwrap().as_deref(),
            Some("/admin/users")
        );
        assert_eq!(
            strip("/app/page;jsessionid=ABC").unwrap().as_deref(),
            Some("/app/page")
        );
        assert_eq!(strip("/a;b=1;c/").unwrap().as_deref(), Some("/a/"));
        // An encoded `;` is decoded first: both readings are then checked by the caller.
        assert_eq!(
            strip("/admin%3Bx/users").unwrap().as_deref(),
            Some("/admin/users")
        );
        for bad in [
            "/x/..;/admin",
            "/x/.;a/b",
            "/a/;x/b",
            "/;x",
            "/x/%2e%2e;/admin",
        ] {
            assert_eq!(strip(bad), Err(PathError::Ambiguous), "{bad}");
        }
    }
}

/// Properties over attacker-shaped paths; `scripts/fuzz.sh` runs them with many more cases.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::util::attacker_input;

    /// Path segments with nothing to decode, and route patterns over the same names.
    const NAMES: &[&str] = &["admin", "Admin", "api", "a", "x", ".a", "..b", "a;b", "é"];
    const PATTERN_SEGMENTS: &[&str] = &["admin", "Admin", "api", "a", "x", "*"];

    /// `plain` written the ways a client can disguise it: octets percent-encoded (either hex
    /// case) and `/` doubled. None of this may change the path that routes see.
    fn disguised(plain: &str, choices: &[u8]) -> String {
        let mut out = String::new();
        for (i, c) in plain.chars().enumerate() {
            let choice = choices.get(i % choices.len()).copied().unwrap_or(0) % 3;
            let mut utf8 = [0; 4];
            match (c, choice) {
                ('/', 0) => out.push_str("//"),
                ('/', _) => out.push('/'),
                (_, 1) => c
                    .encode_utf8(&mut utf8)
                    .bytes()
                    .for_each(|b| out.push_str(&format!("%{b:02X}"))),
                (_, 2) => c
                    .encode_utf8(&mut utf8)
                    .bytes()
                    .for_each(|b| out.push_str(&format!("%{b:02x}"))),
                _ => out.push(c),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(attacker_input::config(1024))]

        #[test]
        fn normalisation_never_panics_and_is_idempotent(target in attacker_input::path()) {
            if let Ok(normalized) = normalize_path(&target) {
                let again = normalize_path(&normalized).map(Cow::into_owned);
                prop_assert_eq!(again, Ok(normalized.to_string()), "from {:?}", target);
                prop_assert!(normalized.starts_with('/'));
                prop_assert!(!normalized.contains("//"), "{:?}", normalized);
                prop_assert!(!normalized.contains('\\'), "{:?}", normalized);
                let escapes = normalized.replace("%3F", "").replace("%23", "");
                prop_assert!(!escapes.contains(['%', '?', '#']), "{:?}", normalized);
                // ASCII controls; C1 controls (U+0080..U+009F) pass, like any other non-ASCII.
                let control = |b: u8| b < 0x20 || b == 0x7f;
                prop_assert!(!normalized.bytes().any(control), "{:?}", normalized);
                prop_assert!(normalized.split('/').all(|s| s != "." && s != ".."));
            }
        }

        #[test]
        fn the_parameterless_reading_is_already_normal(target in attacker_input::path()) {
            if let Ok(normalized) = normalize_path(&target) {
                if let Ok(Some(stripped)) = without_path_parameters(&normalized) {
                    prop_assert!(!stripped.contains(';'));
                    let again = normalize_path(&stripped).map(Cow::into_owned);
                    prop_assert_eq!(again, Ok(stripped.clone()), "from {:?}", target);
                }
            }
        }

        #[test]
        fn pattern_parsing_never_panics(text in attacker_input::path()) {
            if let Ok(pattern) = PathPattern::parse(&text) {
                // A pattern that parses matches some normalised path without panicking.
                let _ = pattern.matches("/");
                let _ = pattern.matches(&text);
            }
        }

        #[test]
        fn a_disguised_path_normalises_and_routes_like_the_plain_one(
            names in proptest::collection::vec(proptest::sample::select(NAMES), 1..5),
            trailing_slash in any::<bool>(),
            choices in proptest::collection::vec(any::<u8>(), 1..32),
            pattern in proptest::collection::vec(proptest::sample::select(PATTERN_SEGMENTS), 0..4),
            any_tail in any::<bool>(),
        ) {
            let mut plain = format!("/{}", names.join("/"));
            if trailing_slash {
                plain.push('/');
            }
            let target = disguised(&plain, &choices);
            let normalized = normalize_path(&target).map(Cow::into_owned);
            prop_assert_eq!(normalized, Ok(plain.clone()), "{:?}", target);
            // Route matching, against the obvious reading of a pattern: segment by segment,
            // `*` any one segment, a final `**` any rest.
            let mut text = format!("/{}", pattern.join("/"));
            if any_tail {
                text.push_str(if text == "/" { "**" } else { "/**" });
            }
            let compiled = PathPattern::parse(&text).unwrap();
            let segments: Vec<&str> = plain.split('/').filter(|s| !s.is_empty()).collect();
            let expected = segments.len() >= pattern.len()
                && (any_tail || segments.len() == pattern.len())
                && pattern.iter().zip(&segments).all(|(p, s)| *p == "*" || p == s);
            prop_assert_eq!(compiled.matches(&plain), expected, "{} on {}", text, plain);
        }
    }
}
