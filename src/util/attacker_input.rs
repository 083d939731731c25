//! Property-test generators for the bytes an attacker controls (tests only).
//!
//! Random ASCII rarely hits the cases that matter in a proxy, so these strategies build
//! inputs from pieces that do: percent-encodings (of `.`, `/`, `\`, `%`, `;`, `?`, `#`,
//! controls, overlong UTF-8), `;` parameters, `..`, `//`, `\`, control bytes, unicode and
//! absolute-form targets, mixed with a little plain noise. Each module's `properties` tests
//! use them; `scripts/fuzz.sh` runs those tests with many more cases.

use proptest::prelude::*;

/// Pieces that change what a path means to one server or another.
const PATH_PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "//",
    "///",
    ".",
    "..",
    "/.",
    "/..",
    "/./",
    "/../",
    "...",
    ".hidden",
    "%2e",
    "%2E",
    "%2e%2e",
    ".%2e",
    "%2F",
    "%2f",
    "%5C",
    "%5c",
    "\\",
    "%25",
    "%252e",
    "%252f",
    "%",
    "%4",
    "%zz",
    "%%",
    "%00",
    "%0a",
    "%0d",
    "%09",
    "%20",
    "%7f",
    "%c0%ae",
    "%c0%af",
    "%e2%80%ae",
    "%ff",
    "%3b",
    "%3B",
    "%3f",
    "%3F",
    "%23",
    "%61",
    "%41dmin",
    ";",
    ";x=1",
    ";jsessionid=1",
    "..;",
    ";/",
    "?",
    "?q=1",
    "?a=/../admin",
    "#",
    "#frag",
    "&",
    "=",
    "+",
    "~",
    "@",
    ":",
    "*",
    "**",
    "admin",
    "Admin",
    "ADMIN",
    "api",
    "users",
    "a",
    "b",
    ".jitgate",
    "/.jitgate/",
    "\t",
    " ",
    "\r",
    "\n",
    "\u{0}",
    "\u{7f}",
    "é",
    "\u{202e}",
    "\u{ff0e}",
    "\u{2215}",
    "ａdmin",
    "𝕒",
];

/// One piece of a path: mostly tricky pieces, sometimes plain noise or any character.
fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(PATH_PIECES).prop_map(str::to_string),
        2 => "[a-zA-Z0-9._~-]{1,6}",
        1 => any::<char>().prop_map(String::from),
    ]
}

/// A request path: usually starting with `/`, made of [`path_piece`]s.
pub fn path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec(path_piece(), 0..12),
    )
        .prop_map(|(rooted, pieces)| {
            let mut path = if rooted || pieces.is_empty() {
                String::from("/")
            } else {
                String::new()
            };
            for piece in pieces {
                path.push_str(&piece);
            }
            path
        })
}

/// How a request target may start before its path (absolute-form and look-alikes).
const TARGET_PREFIXES: &[&str] = &[
    "http://wiki.example.test",
    "https://wiki.example.test:8443",
    "HTTP://wiki.example.test",
    "hTTps://wiki.example.test",
    "http://user@wiki.example.test",
    "http://[::1]:80",
    "http://",
    "http:",
    "http:/",
    "http:\\\\wiki.example.test",
    "https:///",
    "ftp://wiki.example.test",
    "x:",
    "ws://wiki.example.test",
    "*",
    "?",
    "#",
    " ",
];

/// A request target exactly as it could arrive on the request line: origin-form paths,
/// absolute-form and other forms, any bytes, and non-UTF-8 bytes in otherwise good paths.
pub fn target_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => path().prop_map(String::into_bytes),
        3 => (proptest::sample::select(TARGET_PREFIXES), path())
            .prop_map(|(prefix, path)| format!("{prefix}{path}").into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => (path(), any::<prop::sample::Index>(), 0x80u8..=0xff).prop_map(|(path, at, byte)| {
            let mut bytes = path.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.insert(at, byte);
            bytes
        }),
    ]
}

/// A string shaped by [`path_piece`]s but not rooted: header values, names, claim values.
pub fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(path_piece(), 0..8).prop_map(|pieces| pieces.concat())
}

/// Any bytes, biased towards the ASCII punctuation parsers split on.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => proptest::sample::select(&b";=,.:/\\\"' \t[]{}%@-_"[..]),
            2 => b'a'..=b'z',
        ],
        0..64,
    )
}

/// Case count for one property: `PROPTEST_CASES` if set (the long run), else `default`.
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    // A failing case is saved under `proptest-regressions/` (proptest's default) and runs
    // first from then on: commit it with the fix.
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Pieces of YAML syntax and values that validation has to get right.
const YAML_PIECES: &[&str] = &[
    "",
    ":",
    ": ",
    "- ",
    "-",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "!custom ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "\t",
    "? ",
    "%YAML 1.2",
    "---",
    "...",
    "|",
    ">-",
    "#",
    "~",
    "null",
    "true",
    "0x1F",
    "1e999",
    "-1",
    "99999999999999999999",
    ".nan",
    "\u{feff}",
    "\u{0}",
    "é",
    "${JITGATE_FUZZ_UNSET}",
    "/**",
    "/a/*/b",
    "/a/**/b",
    "**",
    "GET",
    "1h",
    "0s",
    "-5m",
    "99999d",
    "{{ user.sub }}",
    "{{ nope }}",
    "{% for %}",
    "http://",
    "https://[::1",
    "a: [b, {c: d}]",
    "\n  extra: 1",
    "\n- x",
    "k: &a [*a]",
];

/// `seed` (a valid YAML file) with a few edits: lines deleted, duplicated, swapped or
/// re-indented, and YAML syntax or odd values put in.
pub fn mutated_yaml(seed: &'static str) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(YAML_PIECES).prop_map(str::to_string),
        1 => text(),
    ];
    let edit = (
        0u8..6,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        piece,
    );
    proptest::collection::vec(edit, 1..5).prop_map(move |edits| {
        let mut lines: Vec<String> = seed.lines().map(str::to_string).collect();
        for (kind, line, at, piece) in edits {
            if lines.is_empty() {
                lines.push(piece);
                continue;
            }
            let i = line.index(lines.len());
            let other = at.index(lines.len());
            match kind {
                0 => {
                    lines.remove(i);
                }
                1 => lines.insert(i, lines[i].clone()),
                2 => lines.swap(i, other),
                3 => {
                    let text = &mut lines[i];
                    if text.starts_with("  ") && at.index(2) == 0 {
                        text.replace_range(..2, "");
                    } else {
                        text.insert_str(0, "  ");
                    }
                }
                4 => {
                    // Replace the value of `key: value`, or the whole line.
                    let text = &mut lines[i];
                    let start = text.find(": ").map_or(0, |c| c + 2);
                    text.replace_range(start.., &piece);
                }
                _ => {
                    let text = &mut lines[i];
                    let boundaries: Vec<usize> = (0..=text.len())
                        .filter(|&b| text.is_char_boundary(b))
                        .collect();
                    let b = boundaries[at.index(boundaries.len())];
                    text.insert_str(b, &piece);
                }
            }
        }
        lines.join("\n")
    })
}
