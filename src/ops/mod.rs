//! Running jitgate as a process: the pingora server with its background jobs, the admin
//! listener (health, metrics), policy reload, and graceful upgrade.

pub mod admin;
pub mod reload;
pub mod server;
pub mod upgrade;
