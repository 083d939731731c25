//! jitgate: an identity-aware reverse proxy built on pingora.
//!
//! The folders are layers; each imports only from the layers below it (the `layers` test
//! checks this). From the top:
//!
//! ```text
//! cli        operator commands (accounts, grants)
//! demo       `jitgate demo`: dev IdP, demo app, demo policy
//! ops        the running process: pingora server, admin listener, reload, upgrade
//! edge       the request path: the ProxyHttp impl
//! endpoints  /.jitgate/*: login, logout, grants API, access portal
//! gate       the state every request reaches, built once at start-up; draining
//! lifecycle  accounts in apps (provision) and elevated access (grants)
//! policy     policy files -> validated PolicySet (routes, grant types, connectors)
//! auth       identity, OIDC relying party, sessions
//! config     config file -> validated Config
//! telemetry  audit events and metrics
//! store      SQLite or PostgreSQL behind one trait
//! util       time, randomness, durations, diagnostics
//! ```

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod edge;
pub mod endpoints;
pub mod gate;
pub mod lifecycle;
pub mod ops;
pub mod policy;
pub mod store;
pub mod telemetry;
pub mod util;

/// mimalloc for every binary built on this crate: jitgate itself, its tests, and the bare
/// pingora passthrough it is benchmarked against (so that comparison stays like for like).
/// A proxy allocates a few small buffers per request; glibc's malloc cost about a fifth of
/// all instructions per request under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
