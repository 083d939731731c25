//! An ES256 signing key for the development issuer (and for tests that need to forge tokens).
//!
//! Generated fresh at every start with ring; nothing is written to disk.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
#[error("cannot create or use the signing key")]
pub struct KeyError;

pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    pub kid: String,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| KeyError)?;
        Ok(Self {
            pair,
            rng,
            kid: kid.to_string(),
        })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.pair.public_key().as_ref();
        let (x, y) = point.get(1..).map(|p| p.split_at(32)).unwrap_or((&[], &[]));
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// Signs `claims` as a compact JWS with the given header fields added to alg/kid.
    pub fn sign(&self, extra_header: &Value, claims: &Value) -> Result<String, KeyError> {
        let mut header = json!({ "alg": "ES256", "kid": self.kid });
        if let (Some(h), Some(extra)) = (header.as_object_mut(), extra_header.as_object()) {
            for (k, v) in extra {
                h.insert(k.clone(), v.clone());
            }
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| KeyError)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}
