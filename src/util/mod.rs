//! The bottom layer: small helpers with no knowledge of jitgate's domain (time, random
//! tokens and hashes, durations, cache keys, `file:line:column` diagnostics). Nothing here
//! imports from the rest of the crate.

pub mod cache_key;
pub mod clock;
pub mod diagnostics;
pub mod duration;
pub mod random;
pub mod throttle;

#[cfg(test)]
pub(crate) mod attacker_input;
