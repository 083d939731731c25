//! jitgate: an identity-aware reverse proxy built on pingora.
//!
//! The request path lives in [`proxy`]; everything it calls is a module named for what it
//! holds: [`config`] and [`policy`] (raw files -> validated types), [`session`] (cookies and
//! the session cache), [`oidc`] (the relying party), [`login`] (jitgate's own endpoints under
//! `/.jitgate/`), [`denial`] (every refusal mapped to an HTTP answer in one place), [`store`]
//! (SQLite or PostgreSQL behind one trait) and [`audit`].

pub mod access_pages;
pub mod accounts_cli;
pub mod admin;
#[cfg(test)]
mod attacker_input;
pub mod audit;
pub mod cache_key;
pub mod clock;
pub mod config;
pub mod demo;
pub mod denial;
pub mod diagnostics;
pub mod duration;
pub mod gate;
pub mod grants;
pub mod grants_api;
pub mod grants_cli;
pub mod identity;
pub mod lifecycle;
pub mod login;
pub mod metrics;
pub mod oidc;
pub mod operator;
pub mod pages;
pub mod policy;
pub mod provision;
pub mod proxy;
pub mod random;
pub mod reload;
pub mod server;
pub mod session;
pub mod store;
pub mod upgrade;

/// mimalloc for every binary built on this crate: jitgate itself, its tests, and the bare
/// pingora passthrough it is benchmarked against (so that comparison stays like for like).
/// A proxy allocates a few small buffers per request; glibc's malloc cost about a fifth of
/// all instructions per request under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
