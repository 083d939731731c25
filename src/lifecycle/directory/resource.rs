//! SCIM resources in and out: what the IdP sends becomes the stored shape, and stored records
//! become what clients read.
//!
//! Incoming bodies are normalised against the schema table ([`super::schema`]) once, on every
//! write: attribute names take their schema spelling (names are case-insensitive in SCIM),
//! booleans sent as strings (`"True"`, Entra) become booleans, a `manager` sent as a plain
//! id (Entra) becomes `{"value": id}`, unknown core attributes are dropped, and read-only
//! (`id`, `meta`, `groups`) and write-only (`password`) attributes are never stored. What is
//! stored is exactly what a later GET returns, plus `id`, `schemas`, `groups` and `meta`.

use serde_json::{json, Map, Value};

use super::error::ScimError;
use super::schema::{self, Attribute, Kind, Mutability, Schema};
use crate::store::{DirectoryGroup, DirectoryUser};
use crate::util::clock::rfc3339_ms;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A user body, normalised and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UserParts {
    /// The attributes to store (no id, meta, groups, schemas or password).
    pub resource: Map<String, Value>,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
}

/// A group body, normalised and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupParts {
    /// The attributes to store (no id, meta, schemas or members).
    pub resource: Map<String, Value>,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Member user ids, sorted, without duplicates.
    pub members: Vec<String>,
}

/// Checks and normalises a User body (POST, PUT, or the result of a PATCH). A body without
/// `active` keeps `active_if_absent`: true on create, the stored value otherwise, so that
/// leaving the attribute out (or removing it) never brings a leaver back. The resource
/// shows `active` only as the IdP last sent it.
pub fn user_parts(body: &Value, active_if_absent: bool) -> Result<UserParts, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::invalid("invalidSyntax", "a User must be a JSON object"))?;
    let mut resource = Map::new();
    for (key, value) in object {
        if key.eq_ignore_ascii_case(ENTERPRISE_URN) {
            let Value::Object(extension) = value else {
                return Err(ScimError::invalid_value(format!(
                    "{ENTERPRISE_URN} must be an object"
                )));
            };
            let normalised = attributes(&schema::ENTERPRISE_USER_SCHEMA, extension, "")?;
            if !normalised.is_empty() {
                resource.insert(ENTERPRISE_URN.to_string(), Value::Object(normalised));
            }
        } else if let Some((name, value)) = attribute(&schema::USER_SCHEMA, key, value, "")? {
            resource.insert(name.to_string(), value);
        }
    }
    let user_name = match resource.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ScimError::invalid_value("userName is required")),
    };
    let external_id = resource
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let active = match resource.get("active") {
        None => active_if_absent,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ScimError::invalid_value("active must be a boolean")),
    };
    Ok(UserParts {
        resource,
        user_name,
        external_id,
        active,
    })
}

/// Checks and normalises a Group body. Members must name users (nested groups are refused).
/// Who is a member is kept by the store; the resource keeps only each member's `display`,
/// as the IdP sent it, to be returned as sent.
pub fn group_parts(body: &Value) -> Result<GroupParts, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::invalid("invalidSyntax", "a Group must be a JSON object"))?;
    let mut resource = Map::new();
    let mut members = std::collections::BTreeMap::new();
    for (key, value) in object {
        let Some((name, value)) = attribute(&schema::GROUP_SCHEMA, key, value, "")? else {
            continue;
        };
        if name == "members" {
            for member in value.as_array().into_iter().flatten() {
                let display = member.get("display").filter(|d| d.is_string()).cloned();
                let known = members.entry(member_id(member)?).or_insert(None);
                if display.is_some() {
                    *known = display;
                }
            }
        } else {
            resource.insert(name.to_string(), value);
        }
    }
    let display_name = match resource.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ScimError::invalid_value("displayName is required")),
    };
    let external_id = resource
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let displays: Vec<Value> = members
        .iter()
        .filter_map(|(id, display)| Some(json!({ "value": id, "display": display.clone()? })))
        .collect();
    if !displays.is_empty() {
        resource.insert("members".into(), Value::Array(displays));
    }
    Ok(GroupParts {
        resource,
        display_name,
        external_id,
        members: members.into_keys().collect(),
    })
}

fn member_id(member: &Value) -> Result<String, ScimError> {
    if member
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("group"))
    {
        return Err(ScimError::invalid_value(
            "nested groups are not supported: members must be users",
        ));
    }
    match member.get("value") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(ScimError::invalid_value(
            "each member needs a value (the user's id)",
        )),
    }
}

/// Every attribute of `fields` that `schema` knows (below `parent`, if set), normalised.
fn attributes(
    schema: &Schema,
    fields: &Map<String, Value>,
    parent: &str,
) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in fields {
        if let Some((name, value)) = attribute(schema, key, value, parent)? {
            out.insert(name.to_string(), value);
        }
    }
    Ok(out)
}

/// One attribute of `schema` (or of a complex attribute, `parent` set): its schema name and
/// normalised value, or `None` for what is not stored.
fn attribute(
    schema: &Schema,
    key: &str,
    value: &Value,
    parent: &str,
) -> Result<Option<(&'static str, Value)>, ScimError> {
    let path = if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    };
    let Some(attr) = schema::find(schema, &path) else {
        // Unknown attributes are ignored (RFC 7644 §3.3 lets a provider do so).
        return Ok(None);
    };
    if parent.is_empty() && is_never_stored(attr) {
        return Ok(None);
    }
    if value.is_null() {
        // null means "no value".
        return Ok(None);
    }
    let value = if attr.multi_valued {
        let items = match value {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            if let Some(v) = single_value(schema, attr, item, &path)? {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        Value::Array(out)
    } else {
        match single_value(schema, attr, value, &path)? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
    Ok(Some((attr.name, value)))
}

/// Attributes a client never sets: read-only ones jitgate derives (`id`, `meta`, `groups`)
/// and write-only secrets (`password`, which jitgate does not keep).
fn is_never_stored(attr: &Attribute) -> bool {
    matches!(
        attr.mutability,
        Mutability::ReadOnly | Mutability::WriteOnly
    )
}

fn single_value(
    schema: &Schema,
    attr: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    let wrong = |expected: &str| {
        Err(ScimError::invalid_value(format!(
            "{path} must be {expected}"
        )))
    };
    Ok(Some(match (attr.kind, value) {
        (_, Value::Null) => return Ok(None),
        (Kind::Boolean, Value::Bool(b)) => Value::Bool(*b),
        // Entra ID sends booleans as "True"/"False".
        (Kind::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        (Kind::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        (Kind::Boolean, _) => return wrong("a boolean"),
        (Kind::Integer | Kind::Decimal, Value::Number(n)) => Value::Number(n.clone()),
        (Kind::Integer | Kind::Decimal, _) => return wrong("a number"),
        (Kind::Complex, Value::Object(fields)) => {
            let out = attributes(schema, fields, path)?;
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        // Entra ID sends the manager as a plain id.
        (Kind::Complex, Value::String(id)) if attr.name == "manager" => json!({ "value": id }),
        (Kind::Complex, _) => return wrong("an object"),
        (_, Value::String(s)) => Value::String(s.clone()),
        (_, _) => return wrong("a string"),
    }))
}

/// `meta` of a resource.
fn meta(
    resource_type: &str,
    location: String,
    created_ms: i64,
    updated_ms: i64,
    version: i64,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": rfc3339_ms(created_ms),
        "lastModified": rfc3339_ms(updated_ms),
        "location": location,
        "version": format!("W/\"{version}\""),
    })
}

/// A stored user as clients read it; `groups` are the groups it is a member of.
pub fn render_user(user: &DirectoryUser, groups: &[&DirectoryGroup], base: &str) -> Value {
    let mut out: Map<String, Value> = serde_json::from_str(&user.resource).unwrap_or_default();
    let mut schemas = vec![json!(USER_URN)];
    if out.contains_key(ENTERPRISE_URN) {
        schemas.push(json!(ENTERPRISE_URN));
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(user.id));
    // What the store indexes wins over the copy in the resource.
    out.insert("userName".into(), json!(user.user_name));
    if !groups.is_empty() {
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.id,
                    "display": g.display_name,
                    "$ref": format!("{base}/Groups/{}", g.id),
                    "type": "direct",
                })
            })
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    let location = format!("{base}/Users/{}", user.id);
    out.insert(
        "meta".into(),
        meta(
            "User",
            location,
            user.created_at_ms,
            user.updated_at_ms,
            user.version,
        ),
    );
    Value::Object(out)
}

/// A stored group as clients read it.
pub fn render_group(group: &DirectoryGroup, base: &str) -> Value {
    let mut out: Map<String, Value> = serde_json::from_str(&group.resource).unwrap_or_default();
    let displays = match out.remove("members") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let display_of: std::collections::HashMap<&str, &Value> = displays
        .iter()
        .filter_map(|m| Some((m["value"].as_str()?, &m["display"])))
        .collect();
    out.insert("schemas".into(), json!([GROUP_URN]));
    out.insert("id".into(), json!(group.id));
    out.insert("displayName".into(), json!(group.display_name));
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|id| {
            let mut member =
                json!({ "value": id, "$ref": format!("{base}/Users/{id}"), "type": "User" });
            if let Some(display) = display_of.get(id.as_str()) {
                member["display"] = (*display).clone();
            }
            member
        })
        .collect();
    out.insert("members".into(), Value::Array(members));
    let location = format!("{base}/Groups/{}", group.id);
    out.insert(
        "meta".into(),
        meta(
            "Group",
            location,
            group.created_at_ms,
            group.updated_at_ms,
            group.version,
        ),
    );
    Value::Object(out)
}

/// Which attributes a client asked for (`attributes`) or asked to leave out
/// (`excludedAttributes`), by top-level name. `id` and `schemas` are always returned.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    only: Option<Vec<String>>,
    excluded: Vec<String>,
}

impl Projection {
    pub fn new(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let names = |list: &str| -> Vec<String> {
            list.split(',')
                .map(top_level_name)
                .filter(|n| !n.is_empty())
                .collect()
        };
        Self {
            only: attributes.map(names).filter(|n| !n.is_empty()),
            excluded: excluded.map(names).unwrap_or_default(),
        }
    }

    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(map) = resource else {
            return resource;
        };
        let keep = |key: &str| {
            let key = key.to_ascii_lowercase();
            if key == "id" || key == "schemas" {
                return true;
            }
            match &self.only {
                Some(only) => only.contains(&key),
                None => !self.excluded.contains(&key),
            }
        };
        Value::Object(map.into_iter().filter(|(k, _)| keep(k)).collect())
    }
}

/// `urn:…:User:name.givenName` -> `name`, lower-cased; extension URNs stay whole.
fn top_level_name(path: &str) -> String {
    let path = path.trim();
    let lower = path.to_ascii_lowercase();
    let without_core = [USER_URN, GROUP_URN]
        .iter()
        .find_map(|urn| {
            lower
                .strip_prefix(&urn.to_ascii_lowercase())
                .and_then(|rest| rest.strip_prefix(':'))
        })
        .unwrap_or(&lower);
    if without_core.starts_with("urn:") {
        let enterprise = ENTERPRISE_URN.to_ascii_lowercase();
        if without_core.starts_with(&enterprise) {
            return enterprise;
        }
        return without_core.to_string();
    }
    without_core
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_normalised_to_what_is_stored() {
        let parts = user_parts(
            &json!({
                "schemas": [USER_URN, ENTERPRISE_URN],
                "id": "client-chosen",
                "USERNAME": "ann@contoso.com",
                "Active": "False",
                "password": "secret-1!",
                "favouriteColour": "green",
                "groups": [{ "value": "g1" }],
                "meta": { "resourceType": "User" },
                "emails": { "value": "ann@contoso.com", "Primary": "True", "type": "work" },
                "name": { "GivenName": "Ann", "familyname": null },
                ENTERPRISE_URN: { "manager": "boss-id", "Department": "Sales" }
            }),
            true,
        )
        .unwrap();
        assert_eq!(parts.user_name, "ann@contoso.com");
        assert!(!parts.active);
        assert_eq!(
            Value::Object(parts.resource),
            json!({
                "userName": "ann@contoso.com",
                "active": false,
                "emails": [{ "value": "ann@contoso.com", "primary": true, "type": "work" }],
                "name": { "givenName": "Ann" },
                ENTERPRISE_URN: { "manager": { "value": "boss-id" }, "department": "Sales" }
            })
        );
    }

    #[test]
    fn a_body_without_active_keeps_what_was_stored() {
        let body = json!({ "userName": "a" });
        assert!(user_parts(&body, true).unwrap().active);
        assert!(!user_parts(&body, false).unwrap().active);
        let explicit = json!({ "userName": "a", "active": true });
        assert!(user_parts(&explicit, false).unwrap().active);
    }

    #[test]
    fn wrong_types_and_missing_names_are_invalid_values() {
        for body in [
            json!({ "active": true }),
            json!({ "userName": "" }),
            json!({ "userName": "a", "active": "maybe" }),
            json!({ "userName": "a", "name": "Ann" }),
            json!({ "userName": ["a"] }),
        ] {
            let e = user_parts(&body, true).unwrap_err();
            assert_eq!(e.scim_type(), Some("invalidValue"), "{body}");
        }
        assert_eq!(
            user_parts(&json!(["a"]), true).unwrap_err().scim_type(),
            Some("invalidSyntax")
        );
        let nested = json!({ "displayName": "g", "members": [{ "value": "x", "type": "Group" }] });
        assert_eq!(
            group_parts(&nested).unwrap_err().scim_type(),
            Some("invalidValue")
        );
    }

    #[test]
    fn group_members_are_sorted_ids_without_repeats() {
        let parts = group_parts(&json!({
            "displayName": "Sales",
            "members": [{ "value": "b", "display": "Bob" }, { "value": "a" }, { "value": "b" }]
        }))
        .unwrap();
        assert_eq!(parts.members, vec!["a", "b"]);
        assert_eq!(
            Value::Object(parts.resource),
            json!({ "displayName": "Sales", "members": [{ "value": "b", "display": "Bob" }] })
        );
    }

    #[test]
    fn projections_keep_id_and_schemas() {
        let resource =
            json!({ "id": "1", "schemas": [], "userName": "a", "emails": [], "meta": {} });
        let only = Projection::new(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            None,
        );
        assert_eq!(
            only.apply(resource.clone()),
            json!({ "id": "1", "schemas": [], "userName": "a" })
        );
        let without = Projection::new(None, Some("emails,meta,id"));
        assert_eq!(
            without.apply(resource),
            json!({ "id": "1", "schemas": [], "userName": "a" })
        );
    }
}
