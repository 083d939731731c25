//! The company directory, pushed by the IdP over SCIM 2.0.

pub mod discovery;
pub mod schema;
