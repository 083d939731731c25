//! The company directory, pushed by the IdP over SCIM 2.0 (RFC 7643/7644): users and groups
//! kept in the store, with the filter and PATCH semantics real IdPs rely on, and what their
//! changes do to sessions, grants and app accounts ([`effects`]).

pub mod attr_path;
pub mod discovery;
pub mod effects;
pub mod error;
pub mod filter;
mod groups;
mod joiner;
mod mover;
mod new_job;
pub mod patch;
mod person_claims;
pub mod resource;
pub mod schema;
pub mod service;
pub mod sign_in;
mod users;
