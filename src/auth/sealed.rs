//! Refresh tokens at rest: sealed with AES-256-GCM before they reach the store.
//!
//! The key is derived (HKDF-SHA256) from the IdP client secret. A refresh token is only
//! usable together with that secret (the token endpoint authenticates the client), so it is
//! the one secret that already guards the token; deriving the key from it adds nothing to
//! manage, and a copy of the store alone (a backup, a replica's disk) yields neither a
//! readable nor a usable token. Each sealed value is bound to its login (iss, sub, login id
//! as associated data), so a row's token cannot be moved onto another user's row. A new
//! client secret makes the stored tokens unreadable: those logins are no longer refreshed
//! (their sessions run to their timeouts), and the next login stores a token under the new
//! key. Format: `v1.` + base64url(nonce ‖ ciphertext ‖ tag), nonce random per seal.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Secret;

const VERSION: &str = "v1.";
const SALT: &[u8] = b"jitgate refresh token seal";
const INFO: &[u8] = b"aes-256-gcm v1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot derive the sealing key")]
    Key,
    #[error("no randomness for a nonce")]
    Random,
    #[error("the sealed token cannot be opened (another key, or not one of ours)")]
    Unreadable,
}

/// Seals and opens refresh tokens with the key derived from the client secret.
pub struct RefreshSeal {
    key: LessSafeKey,
}

impl std::fmt::Debug for RefreshSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshSeal(***)")
    }
}

/// Who a sealed token belongs to: bound into the seal as associated data.
pub struct SealedFor<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub login_id: &'a str,
}

impl SealedFor<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::new();
        for part in [self.iss, self.sub, self.login_id] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

impl RefreshSeal {
    pub fn from_client_secret(secret: &Secret) -> Result<Self, SealError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret.expose().as_bytes());
        // Fails only for lengths beyond 255 hash blocks; a 32-byte key is one block.
        let okm = prk
            .expand(&[INFO], &AES_256_GCM)
            .map_err(|_| SealError::Key)?;
        Ok(Self {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    pub fn seal(&self, token: &str, owner: &SealedFor<'_>) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut data = token.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.aad()),
                &mut data,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, sealed: &str, owner: &SealedFor<'_>) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(SealError::Unreadable)?;
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.aad()), &mut data)
            .map_err(|_| SealError::Unreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: SealedFor<'static> = SealedFor {
        iss: "https://idp",
        sub: "alice",
        login_id: "l1",
    };

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_owner() {
        let seal = RefreshSeal::from_client_secret(&Secret::new("client-secret-1")).unwrap();
        let sealed = seal.seal("rt-123456", &ALICE).unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("rt-123456"));
        assert_eq!(seal.open(&sealed, &ALICE).unwrap(), "rt-123456");
        // A fresh nonce every time.
        assert_ne!(seal.seal("rt-123456", &ALICE).unwrap(), sealed);

        let other_key = RefreshSeal::from_client_secret(&Secret::new("client-secret-2")).unwrap();
        assert!(other_key.open(&sealed, &ALICE).is_err());
        assert!(seal.open("rt-123456", &ALICE).is_err());
        assert!(format!("{seal:?}").contains("***"));
    }

    /// The sealed value's bytes (nonce ‖ ciphertext ‖ tag), and back.
    fn decoded(sealed: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(VERSION).unwrap())
            .unwrap()
    }
    fn encoded(bytes: &[u8]) -> String {
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    #[test]
    fn any_flipped_bit_is_refused_by_the_tag() {
        let seal = RefreshSeal::from_client_secret(&Secret::new("client-secret-1")).unwrap();
        let token = "rt-123456";
        let bytes = decoded(&seal.seal(token, &ALICE).unwrap());
        assert_eq!(bytes.len(), NONCE_LEN + token.len() + AES_256_GCM.tag_len());
        // Re-encoded untouched, it opens: what fails below is the tag check, not base64.
        assert_eq!(seal.open(&encoded(&bytes), &ALICE).unwrap(), token);
        // The nonce, each byte of the ciphertext, the tag.
        for at in (0..bytes.len()).filter(|i| *i == 0 || *i >= NONCE_LEN) {
            let mut tampered = bytes.clone();
            tampered[at] ^= 0x01;
            assert!(
                matches!(
                    seal.open(&encoded(&tampered), &ALICE),
                    Err(SealError::Unreadable)
                ),
                "byte {at} flipped"
            );
        }
        // Cut short (the tag gone) or extended.
        let cut = &bytes[..bytes.len() - 1];
        assert!(seal.open(&encoded(cut), &ALICE).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(seal.open(&encoded(&longer), &ALICE).is_err());
    }

    #[test]
    fn a_token_sealed_for_one_login_does_not_open_for_another() {
        let seal = RefreshSeal::from_client_secret(&Secret::new("client-secret-1")).unwrap();
        let sealed = seal.seal("rt-123456", &ALICE).unwrap();
        let others = [
            SealedFor {
                iss: "https://other-idp",
                ..ALICE
            },
            SealedFor {
                sub: "bob",
                ..ALICE
            },
            SealedFor {
                login_id: "l2",
                ..ALICE
            },
            // The same bytes split differently between the parts.
            SealedFor {
                iss: "https://idpa",
                sub: "lice",
                login_id: "l1",
            },
            SealedFor {
                iss: "https://idp",
                sub: "alicel",
                login_id: "1",
            },
        ];
        for other in &others {
            assert!(
                matches!(seal.open(&sealed, other), Err(SealError::Unreadable)),
                "opened for ({}, {}, {})",
                other.iss,
                other.sub,
                other.login_id
            );
        }
        assert_eq!(seal.open(&sealed, &ALICE).unwrap(), "rt-123456");
    }
}
