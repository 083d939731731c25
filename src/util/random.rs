//! Unguessable tokens and their hashes.
//!
//! Session ids, login state, nonces and hand-off codes are 256-bit values from the operating
//! system's CSPRNG, written base64url (43 characters). The store only keeps SHA-256 hashes of
//! the ones that act as credentials, so a leaked database does not leak live sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderValue;
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a token as text.
pub const TOKEN_LEN: usize = 43;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// A fresh 256-bit token, base64url without padding.
pub fn token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A random (version 4) UUID, e.g. for the ids jitgate gives directory users and groups.
pub fn uuid() -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| RandomError)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A short id for correlating one request across logs, pages, audit events and headers.
///
/// Not a secret: a per-process random prefix and a counter, written base64url (12
/// characters) into the id itself. Each thread takes counter values in blocks from a shared
/// counter, so taking an id is neither a system call, an allocation, nor a write to memory
/// that other threads write too.
#[derive(Debug, Clone, Copy)]
pub struct RequestId([u8; REQUEST_ID_LEN]);

const REQUEST_ID_LEN: usize = 12;
/// Ids one thread takes from the shared counter at a time.
const REQUEST_ID_BLOCK: u64 = 1 << 16;

impl RequestId {
    pub fn next() -> Self {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static PREFIX: OnceLock<[u8; 4]> = OnceLock::new();
        static BLOCKS: AtomicU64 = AtomicU64::new(0);
        thread_local! {
            /// The next id this thread hands out, and the end of its block.
            static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let prefix = PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 4];
            // Without randomness the ids are still unique within the process.
            let _ = SystemRandom::new().fill(&mut bytes);
            bytes
        });
        let n = NEXT.with(|next| {
            let (mut n, mut end) = next.get();
            if n == end {
                n = BLOCKS.fetch_add(1, Ordering::Relaxed) * REQUEST_ID_BLOCK;
                end = n + REQUEST_ID_BLOCK;
            }
            next.set((n + 1, end));
            n
        });
        let mut raw = [0u8; 9];
        raw[..4].copy_from_slice(prefix);
        raw[4..].copy_from_slice(&n.to_be_bytes()[3..]);
        let mut text = [b'-'; REQUEST_ID_LEN];
        // 9 bytes are exactly 12 base64 characters, so this cannot fail.
        let _ = URL_SAFE_NO_PAD.encode_slice(raw, &mut text);
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("-")
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.0).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 of a token, base64url: the form in which credentials are stored.
pub fn hash(token: &str) -> String {
    encode_hash(&hash_bytes(token))
}

/// SHA-256 of a token as raw bytes.
pub fn hash_bytes(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub fn encode_hash(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The raw bytes of a stored (base64url) hash, if it is one.
pub fn decode_hash(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// A token's text as a fixed-size key for in-memory caches, if `text` is shaped like a token
/// (no allocation, and no decoding on the per-request path).
pub fn token_key(text: &str) -> Option<[u8; TOKEN_LEN]> {
    if !looks_like_token(text) {
        return None;
    }
    text.as_bytes().try_into().ok()
}

/// The bytes a token from [`token`] is written with (base64url).
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// True if `text` has the exact shape of a token from [`token`].
pub fn looks_like_token(text: &str) -> bool {
    text.len() == TOKEN_LEN && text.bytes().all(|b| TOKEN_BYTES[b as usize])
}

/// Constant-time comparison of two digests.
pub fn same_secret_bytes(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Constant-time comparison of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_across_threads_and_header_safe() {
        let ids: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..1000)
                            .map(|_| RequestId::next().to_string())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 12);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
        let id = RequestId::next();
        assert_eq!(id.header_value(), id.as_str());
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let (a, b) = (uuid().unwrap(), uuid().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
