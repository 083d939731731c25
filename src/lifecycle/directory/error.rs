//! Why a SCIM request was refused, in RFC 7644 §3.12 terms: an HTTP status and, for a bad
//! request, a `scimType` saying what kind of bad. The endpoint turns these into denials, and
//! the edge's one refusal table renders them as SCIM error bodies.

use crate::store::StoreError;
use crate::util::random::RandomError;

#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// No such user, group, resource type or schema.
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong; `scim_type` is one of RFC 7644's (`invalidFilter`,
    /// `invalidSyntax`, `invalidValue`, `invalidPath`, `noTarget`, `mutability`, ...).
    #[error("{detail}")]
    Invalid {
        scim_type: &'static str,
        detail: String,
    },
    /// A unique attribute (userName, externalId, displayName) belongs to another resource.
    #[error("{0}")]
    Uniqueness(String),
    /// The resource kept changing under a concurrent writer; the client may retry.
    #[error("the resource changed while it was being written; retry the request")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl ScimError {
    pub fn invalid(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::Invalid {
            scim_type,
            detail: detail.into(),
        }
    }

    /// A value that breaks the schema (wrong type, missing required attribute).
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::invalid("invalidValue", detail)
    }

    pub fn status(&self) -> u16 {
        match self {
            ScimError::NotFound(_) => 404,
            ScimError::Invalid { .. } => 400,
            ScimError::Uniqueness(_) | ScimError::Conflict => 409,
            ScimError::Store(_) => 503,
            ScimError::Random(_) => 500,
        }
    }

    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            ScimError::Invalid { scim_type, .. } => Some(scim_type),
            ScimError::Uniqueness(_) => Some("uniqueness"),
            _ => None,
        }
    }
}
