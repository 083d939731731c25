//! A hasher for in-memory cache keys that are already uniformly random (session ids,
//! SHA-256 digests): it folds the key's bytes instead of running SipHash over them, which
//! matters on the per-request path. Not for keys an attacker chooses.

/// Folds the bytes it is given into a word.
#[derive(Default, Clone)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

pub type KeyHasherBuilder = std::hash::BuildHasherDefault<KeyHasher>;
