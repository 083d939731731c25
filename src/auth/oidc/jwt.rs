//! Splitting and decoding compact JWS tokens (`header.payload.signature`).
//!
//! Decoding here never implies trust: callers verify the signature with the provider's keys
//! before acting on anything inside.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a compact JWS (three base64url parts)")]
    Shape,
    #[error("a part is not valid base64url")]
    Base64,
    #[error("a part is not a JSON object")]
    Json,
}

/// The three decoded parts of a compact JWS and the signed input.
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    pub signature: Vec<u8>,
    pub signing_input: &'a str,
}

pub fn split(token: &str) -> Result<Jws<'_>, JwtError> {
    if token.len() > 16 * 1024 {
        return Err(JwtError::Shape);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Jws {
        header: object(h)?,
        payload: object(p)?,
        signature: URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Base64)?,
        signing_input,
    })
}

/// The payload of a token whose signature was already verified elsewhere.
pub fn payload(token: &str) -> Result<Map<String, Value>, JwtError> {
    split(token).map(|jws| jws.payload)
}

fn object(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Base64)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Json)
}
