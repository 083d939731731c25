//! The company directory pushed over SCIM 2.0 (RFC 7643/7644): the users and groups that
//! Okta or Microsoft Entra ID create, change and remove in jitgate. This folder holds the
//! protocol's pure logic on `serde_json::Value` resources: attribute paths ([`attr_path`]),
//! list filters ([`filter`]) and PATCH requests ([`patch`]).

pub mod attr_path;
pub mod filter;
pub mod patch;
