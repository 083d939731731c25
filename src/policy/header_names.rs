//! Header names as apps read them: the spellings policy checks compare (`header_key`), the
//! folded form under which two names are the same header to some app (`folded_name`), and
//! the set of names the edge strips from every request because an app could take them for
//! one of jitgate's identity headers ([`SpoofableHeaders`]: every copy of every name that
//! equals one once letter case and all punctuation are ignored, so `x_forwarded_user`,
//! `X.Forwarded.User` and `XForwardedUser` all count).

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

/// `folded` as text: the form in which two header names are the same header to some app.
pub fn folded_name(name: &str) -> String {
    folded(name).map(char::from).collect()
}

/// The headers an app could take for identity headers, folded (see `folded`), with two
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

#[cfg(test)]
mod tests {
    use super::*;

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
