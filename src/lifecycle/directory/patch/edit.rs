//! How one PATCH change lands on a resource's JSON (RFC 7644 §3.5.2.1-3): add appends to a
//! multi-valued attribute and merges a complex one; replace swaps a list whole and merges a
//! complex attribute's sub-attributes; remove deletes, and a list emptied by it goes with it.
//! Keys are matched ignoring case, and an existing key keeps its spelling.

use serde_json::{Map, Value};

use super::PatchError;
use crate::lifecycle::directory::attr_path::{get_ci, key_ci, AttrPath, ENTERPRISE_USER_SCHEMA};
use crate::lifecycle::directory::filter::ValuePath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Add,
    Replace,
}

/// Multi-valued attributes of the core User and Group schemas (RFC 7643 §4), all complex.
/// Needed to know a value must be a list when the attribute is not there yet.
const MULTI_VALUED: [&str; 10] = [
    "members",
    "groups",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
];

fn is_multi_valued(path: &AttrPath) -> bool {
    path.extension.is_none()
        && MULTI_VALUED
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&path.name))
}

/// Sets an attribute or a sub-attribute. A null value unassigns it (RFC 7643 §2.5).
pub(super) fn set(
    resource: &mut Value,
    mode: Mode,
    path: &AttrPath,
    value: Value,
) -> Result<(), PatchError> {
    let value = manager_as_complex(path, value);
    let container = container(resource, path, true)?.ok_or_else(not_an_object)?;
    let key = key_ci(container, &path.name).unwrap_or_else(|| path.name.clone());
    if let Some(sub) = &path.sub_attr {
        let parent = container
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(parent) = parent else {
            return Err(PatchError::InvalidPath {
                path: format!("{}.{sub}", path.name),
                reason: format!(
                    "{} has no sub-attributes here; pick elements with a filter, e.g. {}[type eq \"work\"].{sub}",
                    path.name, path.name
                ),
            });
        };
        put(parent, sub, value);
        drop_if_empty(container, &key);
        return Ok(());
    }
    if value.is_null() {
        container.remove(&key);
        return Ok(());
    }
    let is_list = is_multi_valued(path) || matches!(container.get(&key), Some(Value::Array(_)));
    if !is_list {
        match (container.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(new)) => merge(existing, new),
            (_, value) => {
                container.insert(key, value);
            }
        }
        return Ok(());
    }
    let Value::Array(new) = value else {
        return Err(PatchError::InvalidValue(format!(
            "{} takes a list of values",
            path.name
        )));
    };
    let new = checked_elements(&path.name, new)?;
    match (mode, container.get_mut(&key)) {
        (Mode::Add, Some(Value::Array(elements))) => {
            // Add appends what is not there yet, so a repeated add (IdPs retry) is harmless.
            for element in new {
                if !elements.iter().any(|e| same_element(e, &element)) {
                    elements.push(element);
                }
            }
        }
        _ => {
            container.insert(key.clone(), Value::Array(new));
        }
    }
    drop_if_empty(container, &key);
    Ok(())
}

/// Add or replace through a value path. With no matching element and a filter of `eq`
/// comparisons, the element is created (Entra replaces `emails[type eq "work"].value` on a
/// user that has no work email yet).
pub(super) fn set_in_elements(
    resource: &mut Value,
    mode: Mode,
    value_path: &ValuePath,
    value: Value,
) -> Result<(), PatchError> {
    let name = checked_value_path(value_path)?;
    let container = container(resource, &value_path.attr, true)?.ok_or_else(not_an_object)?;
    let key = key_ci(container, name).unwrap_or_else(|| name.to_string());
    let list = container
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(elements) = list else {
        return Err(not_multi_valued(name));
    };
    let mut matched = false;
    for element in elements.iter_mut() {
        if !value_path.element_matches(element) {
            continue;
        }
        matched = true;
        let Value::Object(element) = element else {
            continue;
        };
        match (&value_path.sub_attr, mode, &value) {
            (Some(sub), _, _) => put(element, sub, value.clone()),
            (None, Mode::Add, Value::Object(new)) => merge(element, new.clone()),
            (None, Mode::Replace, Value::Object(new)) => *element = new.clone(),
            (None, _, _) => {
                return Err(PatchError::InvalidValue(format!(
                    "an element of {name} is an object"
                )))
            }
        }
    }
    if matched {
        return Ok(());
    }
    let mut element = value_path
        .eq_template()
        .ok_or_else(|| PatchError::NoTarget(format!("no element of {name} matches the filter")))?;
    match (&value_path.sub_attr, value) {
        (Some(sub), value) => put(&mut element, sub, value),
        (None, Value::Object(new)) => merge(&mut element, new),
        (None, _) => {
            return Err(PatchError::InvalidValue(format!(
                "an element of {name} is an object"
            )))
        }
    }
    elements.push(Value::Object(element));
    Ok(())
}

/// Removes an attribute or sub-attribute; with a list `value`, only those elements of a
/// multi-valued attribute (matched on `value`). Removing what is not there is no error, so
/// an IdP's retry succeeds.
pub(super) fn remove(
    resource: &mut Value,
    path: &AttrPath,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let Some(container) = container(resource, path, false)? else {
        return Ok(());
    };
    let Some(key) = key_ci(container, &path.name) else {
        return Ok(());
    };
    match (&path.sub_attr, value) {
        (None, None) => {
            container.remove(&key);
        }
        (None, Some(Value::Array(gone))) => {
            let gone = checked_elements(&path.name, gone.clone())?;
            let Some(Value::Array(elements)) = container.get_mut(&key) else {
                return Err(not_multi_valued(&path.name));
            };
            elements.retain(|e| !gone.iter().any(|g| same_element(e, g)));
            drop_if_empty(container, &key);
        }
        (None, Some(_)) => {
            return Err(PatchError::InvalidValue(format!(
                "the elements of {} to remove are a list",
                path.name
            )))
        }
        (Some(sub), _) => {
            match container.get_mut(&key) {
                Some(Value::Object(parent)) => {
                    unset(parent, sub);
                }
                // Without a filter, a sub-attribute of a multi-valued attribute is that
                // sub-attribute of every element.
                Some(Value::Array(elements)) => {
                    for element in elements.iter_mut().filter_map(Value::as_object_mut) {
                        unset(element, sub);
                    }
                }
                _ => {}
            }
            drop_if_empty(container, &key);
        }
    }
    Ok(())
}

/// Removes the elements a value path selects, or their sub-attribute. Selecting nothing is
/// not an error: IdPs retry a removal whose answer they lost (Okta's
/// `members[value eq "id"]` after a timeout, or after the user was deleted), and the state
/// they ask for holds. A malformed path is still refused.
pub(super) fn remove_elements(
    resource: &mut Value,
    value_path: &ValuePath,
) -> Result<(), PatchError> {
    let name = checked_value_path(value_path)?;
    let Some(container) = container(resource, &value_path.attr, false)? else {
        return Ok(());
    };
    let Some(key) = key_ci(container, name) else {
        return Ok(());
    };
    let Some(Value::Array(elements)) = container.get_mut(&key) else {
        return Ok(());
    };
    match &value_path.sub_attr {
        None => elements.retain(|e| !value_path.element_matches(e)),
        Some(sub) => {
            for element in elements.iter_mut() {
                if value_path.element_matches(element) {
                    if let Value::Object(element) = element {
                        unset(element, sub);
                    }
                }
            }
        }
    }
    drop_if_empty(container, &key);
    Ok(())
}

/// The object holding the attribute: the resource, or its extension object, created (and
/// its schema declared) when `create` is set.
fn container<'a>(
    resource: &'a mut Value,
    path: &AttrPath,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>, PatchError> {
    let resource = resource.as_object_mut().ok_or_else(not_an_object)?;
    let Some(urn) = path.extension else {
        return Ok(Some(resource));
    };
    let key = match key_ci(resource, urn) {
        Some(key) => key,
        None if create => {
            declare_schema(resource, urn);
            resource.insert(urn.to_string(), Value::Object(Map::new()));
            urn.to_string()
        }
        None => return Ok(None),
    };
    match resource.get_mut(&key) {
        Some(Value::Object(extension)) => Ok(Some(extension)),
        _ => Err(PatchError::InvalidValue(format!("{urn} is an object"))),
    }
}

/// Adds the extension to a `schemas` list that does not name it yet (RFC 7643 §3).
fn declare_schema(resource: &mut Map<String, Value>, urn: &str) {
    let Some(key) = key_ci(resource, "schemas") else {
        return;
    };
    if let Some(Value::Array(schemas)) = resource.get_mut(&key) {
        if !schemas
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        {
            schemas.push(Value::String(urn.to_string()));
        }
    }
}

/// The enterprise `manager` is complex (`{"value": id}`), but Entra sends the bare id.
fn manager_as_complex(path: &AttrPath, value: Value) -> Value {
    let is_manager = path.extension == Some(ENTERPRISE_USER_SCHEMA)
        && path.sub_attr.is_none()
        && path.name.eq_ignore_ascii_case("manager");
    match value {
        Value::String(id) if is_manager => {
            let mut manager = Map::new();
            manager.insert("value".into(), Value::String(id));
            Value::Object(manager)
        }
        other => other,
    }
}

/// Elements of a multi-valued attribute are objects (all in the core schemas are complex);
/// a member needs its `value`, the id. Null sub-attributes are unassigned and left out
/// (Entra sends `"$ref": null` with each member).
fn checked_elements(name: &str, elements: Vec<Value>) -> Result<Vec<Value>, PatchError> {
    let is_members = name.eq_ignore_ascii_case("members");
    elements
        .into_iter()
        .map(|element| match element {
            Value::Object(mut element) => {
                element.retain(|_, v| !v.is_null());
                if is_members && !get_ci(&element, "value").is_some_and(Value::is_string) {
                    return Err(PatchError::InvalidValue(
                        "each member has a string value, the member's id".into(),
                    ));
                }
                Ok(Value::Object(element))
            }
            _ if MULTI_VALUED.iter().any(|m| m.eq_ignore_ascii_case(name)) => Err(
                PatchError::InvalidValue(format!("each element of {name} is an object")),
            ),
            other => Ok(other),
        })
        .collect()
}

/// Two elements are the same when their `value`s are (a member is its id); elements
/// without one are compared whole.
fn same_element(a: &Value, b: &Value) -> bool {
    let value_of = |v: &Value| v.as_object().and_then(|o| get_ci(o, "value")).cloned();
    match (value_of(a), value_of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

fn checked_value_path(value_path: &ValuePath) -> Result<&str, PatchError> {
    match &value_path.attr.sub_attr {
        None => Ok(&value_path.attr.name),
        Some(sub) => Err(PatchError::InvalidPath {
            path: format!("{}.{sub}[...]", value_path.attr.name),
            reason: "a filter selects elements of an attribute, not of a sub-attribute".into(),
        }),
    }
}

fn merge(existing: &mut Map<String, Value>, new: Map<String, Value>) {
    for (name, value) in new {
        put(existing, &name, value);
    }
}

fn put(object: &mut Map<String, Value>, name: &str, value: Value) {
    if value.is_null() {
        unset(object, name);
        return;
    }
    let key = key_ci(object, name).unwrap_or_else(|| name.to_string());
    object.insert(key, value);
}

fn unset(object: &mut Map<String, Value>, name: &str) -> bool {
    key_ci(object, name).is_some_and(|key| object.remove(&key).is_some())
}

/// An emptied list or complex attribute is unassigned, so its key goes (RFC 7644 §3.5.2.2).
fn drop_if_empty(container: &mut Map<String, Value>, key: &str) {
    let empty = match container.get(key) {
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(members)) => members.is_empty(),
        _ => false,
    };
    if empty {
        container.remove(key);
    }
}

fn not_an_object() -> PatchError {
    PatchError::InvalidValue("the resource is not a JSON object".into())
}

fn not_multi_valued(name: &str) -> PatchError {
    PatchError::InvalidValue(format!("{name} is not multi-valued"))
}
