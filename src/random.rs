//! Unguessable tokens and their hashes.
//!
//! Session ids, login state, nonces and hand-off codes are 256-bit values from the operating
//! system's CSPRNG, written base64url (43 characters). The store only keeps SHA-256 hashes of
//! the ones that act as credentials, so a leaked database does not leak live sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
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

/// A short id for correlating one request across logs, pages, audit events and headers.
///
/// Not a secret: a per-process random prefix plus a counter, so no system call per request.
/// Kept as a header value, so the copies sent upstream and back to the browser share one
/// buffer instead of each being a fresh allocation.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    pub fn next() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static PREFIX: OnceLock<[u8; 4]> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 4];
            // Without randomness the ids are still unique within the process.
            let _ = SystemRandom::new().fill(&mut bytes);
            bytes
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut raw = [0u8; 9];
        raw[..4].copy_from_slice(prefix);
        raw[4..].copy_from_slice(&n.to_be_bytes()[3..]);
        let text = Bytes::from(URL_SAFE_NO_PAD.encode(raw));
        // base64url is always a valid header value; the fallback is unreachable in practice.
        Self(HeaderValue::from_maybe_shared(text).unwrap_or(HeaderValue::from_static("-")))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.0.as_bytes()).unwrap_or("-")
    }

    /// The id as a header value (a reference-counted copy).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
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

/// SHA-256 of a token as raw bytes (the in-memory cache key).
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

/// The 32 random bytes behind a token, if `text` is shaped like one (no allocation).
pub fn decode_token(text: &str) -> Option<[u8; 32]> {
    if !looks_like_token(text) {
        return None;
    }
    // 43 base64 characters decode to 32 bytes; the engine wants room for its estimate (33).
    let mut buf = [0u8; 33];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut buf).ok()?;
    buf.get(..n)?.try_into().ok()
}

/// True if `text` has the exact shape of a token from [`token`].
pub fn looks_like_token(text: &str) -> bool {
    text.len() == TOKEN_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Constant-time comparison of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
