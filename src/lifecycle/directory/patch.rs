//! SCIM PATCH (RFC 7644 §3.5.2) on a resource's JSON: [`PatchRequest::from_json`] checks a
//! PatchOp body and parses its paths once; [`apply`] runs the operations in order on a copy of
//! the resource and returns the copy, so a request that fails half-way changes nothing.
//!
//! The rules follow the RFC and the bodies Okta and Microsoft Entra ID really send: Entra
//! capitalises `op`, puts dotted sub-attribute paths as keys of a path-less value, and removes
//! group members with `path: "members"` plus the list of those to remove. How one change lands
//! on the JSON (merge, append, select by filter) is in `edit`.

use serde_json::Value;

use super::attr_path::{get_ci, AttrPath, USER_SCHEMA};
use super::filter::{parse_patch_path, PatchPath};

mod edit;

use edit::Mode;

/// The schema a PATCH body must declare (RFC 7644 §3.5.2).
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Why a PATCH was refused. Each kind is one RFC 7644 §3.12 `scimType`; the HTTP layer
/// answers 400 with [`PatchError::scim_type`] and the message as `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    InvalidSyntax(String),
    #[error("path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{0}")]
    NoTarget(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0} is read-only")]
    Mutability(String),
}

impl PatchError {
    /// The RFC 7644 §3.12 `scimType` for this error.
    pub fn scim_type(&self) -> &'static str {
        match self {
            PatchError::InvalidSyntax(_) => "invalidSyntax",
            PatchError::InvalidPath { .. } => "invalidPath",
            PatchError::NoTarget(_) => "noTarget",
            PatchError::InvalidValue(_) => "invalidValue",
            PatchError::Mutability(_) => "mutability",
        }
    }
}

/// One checked operation. A remove always has a path (RFC 7644 §3.5.2.2); add and replace
/// always have a value; a missing path means "the resource itself".
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOperation {
    Add {
        path: Option<PatchPath>,
        value: Value,
    },
    Replace {
        path: Option<PatchPath>,
        value: Value,
    },
    /// `value`, when given for a multi-valued attribute, lists the elements to remove
    /// (Entra's way of removing some group members).
    Remove {
        path: PatchPath,
        value: Option<Value>,
    },
}

/// A checked PatchOp request: at least one operation, each with a parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// Checks a PatchOp body: `schemas` lists [`PATCH_OP_SCHEMA`], `Operations` is a
    /// non-empty list, each `op` is add, replace or remove in any case, paths parse.
    pub fn from_json(body: &Value) -> Result<PatchRequest, PatchError> {
        let syntax = |message: &str| PatchError::InvalidSyntax(message.to_string());
        let body = body
            .as_object()
            .ok_or_else(|| syntax("a PATCH body is a JSON object"))?;
        let declares_patch_op = get_ci(body, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|schemas| {
                schemas.iter().any(|s| {
                    s.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
                })
            });
        if !declares_patch_op {
            return Err(syntax(&format!("schemas must list {PATCH_OP_SCHEMA}")));
        }
        let operations = get_ci(body, "Operations")
            .and_then(Value::as_array)
            .filter(|operations| !operations.is_empty())
            .ok_or_else(|| syntax("Operations must be a non-empty list"))?;
        if operations.len() > MAX_OPERATIONS {
            return Err(PatchError::InvalidValue(format!(
                "at most {MAX_OPERATIONS} operations per request"
            )));
        }
        let operations = operations
            .iter()
            .enumerate()
            .map(|(index, operation)| parse_operation(index + 1, operation))
            .collect::<Result<_, _>>()?;
        Ok(PatchRequest { operations })
    }

    /// The operations, in the order they apply.
    pub fn operations(&self) -> &[PatchOperation] {
        &self.operations
    }
}

/// The most operations one PATCH may carry (IdPs send a handful; this bounds the work).
pub const MAX_OPERATIONS: usize = 1_000;

fn parse_operation(number: usize, operation: &Value) -> Result<PatchOperation, PatchError> {
    let operation = operation.as_object().ok_or_else(|| {
        PatchError::InvalidSyntax(format!("operation {number} is not a JSON object"))
    })?;
    let op = get_ci(operation, "op")
        .and_then(Value::as_str)
        .unwrap_or("");
    let path = match get_ci(operation, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.len() > super::filter::MAX_FILTER_LEN => {
            return Err(PatchError::InvalidPath {
                path: text.chars().take(64).collect(),
                reason: format!("longer than {} bytes", super::filter::MAX_FILTER_LEN),
            })
        }
        Some(Value::String(text)) => {
            Some(
                parse_patch_path(text).map_err(|error| PatchError::InvalidPath {
                    path: text.clone(),
                    reason: error.to_string(),
                })?,
            )
        }
        Some(_) => {
            return Err(PatchError::InvalidSyntax(format!(
                "operation {number}: path must be a string"
            )))
        }
    };
    let value = get_ci(operation, "value").cloned();
    let needs_value =
        || PatchError::InvalidValue(format!("operation {number}: {op} needs a value"));
    if op.eq_ignore_ascii_case("add") {
        Ok(PatchOperation::Add {
            path,
            value: value.ok_or_else(needs_value)?,
        })
    } else if op.eq_ignore_ascii_case("replace") {
        Ok(PatchOperation::Replace {
            path,
            value: value.ok_or_else(needs_value)?,
        })
    } else if op.eq_ignore_ascii_case("remove") {
        let path = path.ok_or_else(|| {
            PatchError::NoTarget(format!("operation {number}: remove needs a path"))
        })?;
        let value = value.filter(|v| !v.is_null());
        Ok(PatchOperation::Remove { path, value })
    } else {
        Err(PatchError::InvalidSyntax(format!(
            "operation {number}: op must be add, replace or remove, not {op:?}"
        )))
    }
}

/// Applies `request` to a copy of `resource` and returns the copy. Values are stored as sent
/// (`"active": "False"` stays a string); checking them against the schema is the caller's.
pub fn apply(resource: &Value, request: &PatchRequest) -> Result<Value, PatchError> {
    let is_user = is_user(resource);
    let mut patched = resource.clone();
    for operation in &request.operations {
        match operation {
            PatchOperation::Add { path, value } => {
                apply_set(&mut patched, Mode::Add, path.as_ref(), value, is_user)?
            }
            PatchOperation::Replace { path, value } => {
                apply_set(&mut patched, Mode::Replace, path.as_ref(), value, is_user)?
            }
            PatchOperation::Remove { path, value } => {
                apply_remove(&mut patched, path, value.as_ref(), is_user)?
            }
        }
    }
    Ok(patched)
}

fn apply_set(
    resource: &mut Value,
    mode: Mode,
    path: Option<&PatchPath>,
    value: &Value,
    is_user: bool,
) -> Result<(), PatchError> {
    match path {
        // No path: the value's members are attributes of the resource, each set as if it
        // were the path; Entra writes sub-attributes as dotted keys ("name.givenName").
        None => {
            let members = value.as_object().ok_or_else(|| {
                PatchError::InvalidValue("without a path, the value must be an object".into())
            })?;
            for (key, member) in members {
                let path = AttrPath::parse(key).map_err(|error| PatchError::InvalidPath {
                    path: key.clone(),
                    reason: error.to_string(),
                })?;
                if writable(resource, &path, Some(member), is_user)? {
                    edit::set(resource, mode, &path, member.clone())?;
                }
            }
            Ok(())
        }
        Some(PatchPath::Attr(path)) => {
            if writable(resource, path, Some(value), is_user)? {
                edit::set(resource, mode, path, value.clone())?;
            }
            Ok(())
        }
        Some(PatchPath::Value(value_path)) => {
            writable(resource, &value_path.attr, None, is_user)?;
            edit::set_in_elements(resource, mode, value_path, value.clone())
        }
    }
}

fn apply_remove(
    resource: &mut Value,
    path: &PatchPath,
    value: Option<&Value>,
    is_user: bool,
) -> Result<(), PatchError> {
    match path {
        PatchPath::Attr(path) => {
            writable(resource, path, None, is_user)?;
            edit::remove(resource, path, value)
        }
        PatchPath::Value(value_path) => {
            writable(resource, &value_path.attr, None, is_user)?;
            edit::remove_elements(resource, value_path)
        }
    }
}

/// Refuses changes to read-only attributes (RFC 7643 §3.1, §4.1.2): `id`, `meta`, and a
/// user's `groups`, which follows from group membership. Okta sends the group's own `id` in a
/// rename; an `id` equal to the current one is no change, so `Ok(false)` says to skip it.
fn writable(
    resource: &Value,
    path: &AttrPath,
    new_value: Option<&Value>,
    is_user: bool,
) -> Result<bool, PatchError> {
    if path.extension.is_some() {
        return Ok(true);
    }
    let name = path.name.as_str();
    if name.eq_ignore_ascii_case("id") {
        let current = resource.as_object().and_then(|r| get_ci(r, "id"));
        if path.sub_attr.is_none() && new_value.is_some() && new_value == current {
            return Ok(false);
        }
        return Err(PatchError::Mutability("id".into()));
    }
    if name.eq_ignore_ascii_case("meta") {
        return Err(PatchError::Mutability("meta".into()));
    }
    if is_user && name.eq_ignore_ascii_case("groups") {
        return Err(PatchError::Mutability(
            "a user's groups (change the group's members instead)".into(),
        ));
    }
    Ok(true)
}

/// A User, by its declared schema or, for a resource stored without `schemas`, its
/// `userName`, which only users have.
fn is_user(resource: &Value) -> bool {
    let Some(resource) = resource.as_object() else {
        return false;
    };
    let declares_user = get_ci(resource, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| {
            schemas.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
            })
        });
    declares_user || get_ci(resource, "userName").is_some()
}

#[cfg(test)]
mod tests;
