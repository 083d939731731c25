//! Running jitgate as a process: the pingora server with its background jobs, the admin
//! listener (health, metrics), policy reload, the lifecycle queue runner, the claims-refresh
//! runner, and graceful upgrade.

pub mod admin;
pub mod claims_refresh;
pub mod lifecycle_jobs;
pub mod reload;
pub mod server;
pub mod upgrade;
