//! The company directory's records: users and groups as the IdP pushed them over SCIM.
//!
//! The store keeps each SCIM resource as the JSON text it was given and pulls out only what it
//! must index or enforce: the id, the userName/displayName (unique case-insensitively), the
//! externalId (unique when present), `active`, and a group's members. Every write bumps
//! `version`, and a replace names the version it read, so two writers racing on one resource
//! cannot both win. Reading and checking SCIM JSON is the SCIM service's job, not this one's.

/// A user of the company directory, as the IdP pushed it over SCIM.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUser {
    /// jitgate-assigned SCIM id (a UUID string).
    pub id: String,
    /// Unique, case-insensitively.
    pub user_name: String,
    /// Unique (case-sensitive) when present.
    pub external_id: Option<String>,
    pub active: bool,
    /// The SCIM resource as JSON text, stored as given.
    pub resource: String,
    /// Bumped by every write; set by the store (a write ignores the value it is given).
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A group of the company directory, with its members.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryGroup {
    pub id: String,
    /// Unique, case-insensitively.
    pub display_name: String,
    /// Unique (case-sensitive) when present.
    pub external_id: Option<String>,
    /// The SCIM resource as JSON text, without members.
    pub resource: String,
    /// User ids, sorted ascending, no duplicates.
    pub members: Vec<String>,
    /// Bumped by every write, including a member's deletion; set by the store.
    pub version: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How a directory write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryWrite {
    Written,
    /// The id, the name or the externalId belongs to another resource.
    Duplicate,
    /// A replace named an id that does not exist.
    Missing,
    /// A replace named a version that is no longer the stored one.
    Stale,
}

/// How to find one directory user.
#[derive(Debug, Clone, Copy)]
pub enum DirectoryKey<'a> {
    Id(&'a str),
    /// Matched case-insensitively.
    UserName(&'a str),
    ExternalId(&'a str),
}

/// The key under which a userName or displayName is unique: its lowercase form, computed here
/// rather than by SQL so both backends fold case the same way (Unicode, not only ASCII).
pub(super) fn name_key(name: &str) -> String {
    name.to_lowercase()
}
