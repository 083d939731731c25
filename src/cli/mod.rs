//! The commands behind `jitgate`'s subcommands: `run`, `check`, `accounts …`, `grants …`,
//! `scim status`
//! (`demo` is its own folder). `main.rs` parses the command line and calls these.

pub mod accounts;
pub mod app_accounts;
pub mod check;
pub mod grants;
pub mod operator;
pub mod run;
pub mod scim;
