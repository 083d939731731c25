//! The company directory, pushed by the IdP over SCIM 2.0.

pub mod attr_path;
pub mod discovery;
pub mod filter;
pub mod patch;
pub mod schema;
