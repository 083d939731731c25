//! SCIM attribute paths, `[schemaURN:]attr[.subAttr]` (RFC 7644 §3.10), and how they find
//! values in a resource's JSON. Attribute names are case-insensitive (RFC 7643 §2.1), so every
//! lookup here ignores ASCII case. The core User and Group schema prefixes are stripped (their
//! attributes sit at the top of the resource); an enterprise-extension path keeps its schema,
//! because extension attributes live in an object under the schema URN key.

use serde_json::{Map, Value};

/// The core User schema (RFC 7643 §4.1).
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema (RFC 7643 §4.2).
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (RFC 7643 §4.3), e.g. `manager`, `department`.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Schemas whose attributes sit at the top level of a resource.
const CORE_SCHEMAS: [&str; 2] = [USER_SCHEMA, GROUP_SCHEMA];
/// Schemas whose attributes sit in an object under the schema URN.
const EXTENSION_SCHEMAS: [&str; 1] = [ENTERPRISE_USER_SCHEMA];

/// Why a text is not an attribute path we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrPathError {
    #[error("attribute path {0:?} names a schema this server does not hold")]
    UnknownSchema(String),
    #[error("attribute path {0:?} is not [schema:]attribute[.subAttribute]")]
    Malformed(String),
}

/// A parsed attribute path. `name` and `sub_attr` keep the spelling the client sent; every
/// comparison against resource keys ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The extension schema whose object holds the attribute; `None` for core attributes.
    pub extension: Option<&'static str>,
    /// The attribute name. A whole extension object is the path with `name` set to its URN
    /// and no `extension` (it is a top-level key like any other).
    pub name: String,
    /// The sub-attribute of a complex attribute, e.g. `familyName` in `name.familyName`.
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// Parses `[schemaURN:]attr[.subAttr]`. Also accepts a bare extension URN (the whole
    /// extension object), which Entra uses as a key in path-less PATCH values.
    pub fn parse(text: &str) -> Result<AttrPath, AttrPathError> {
        let malformed = || AttrPathError::Malformed(text.to_string());
        if let Some(urn) = EXTENSION_SCHEMAS
            .into_iter()
            .find(|urn| urn.eq_ignore_ascii_case(text))
        {
            return Ok(AttrPath {
                extension: None,
                name: urn.to_string(),
                sub_attr: None,
            });
        }
        let (extension, rest) = match split_schema(text) {
            Some((schema, rest)) => {
                if CORE_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(schema)) {
                    (None, rest)
                } else if let Some(urn) = EXTENSION_SCHEMAS
                    .into_iter()
                    .find(|s| s.eq_ignore_ascii_case(schema))
                {
                    (Some(urn), rest)
                } else {
                    return Err(AttrPathError::UnknownSchema(text.to_string()));
                }
            }
            None => (None, text),
        };
        let (name, sub_attr) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if !is_attr_name(name) || sub_attr.is_some_and(|sub| !is_attr_name(sub)) {
            return Err(malformed());
        }
        Ok(AttrPath {
            extension,
            name: name.to_string(),
            sub_attr: sub_attr.map(str::to_string),
        })
    }

    /// Whether this path names `name` (and no sub-attribute) in the core schema.
    pub fn is_core(&self, name: &str) -> bool {
        self.extension.is_none() && self.sub_attr.is_none() && self.name.eq_ignore_ascii_case(name)
    }

    /// The object that holds the attribute: the resource itself, or its extension object.
    pub fn container<'a>(&self, resource: &'a Value) -> Option<&'a Map<String, Value>> {
        let object = resource.as_object()?;
        match self.extension {
            None => Some(object),
            Some(urn) => get_ci(object, urn)?.as_object(),
        }
    }

    /// The attribute's value as stored (an array for a multi-valued attribute), ignoring any
    /// sub-attribute.
    pub fn attribute<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        get_ci(self.container(resource)?, &self.name)
    }

    /// Every value the path reaches, flattened: each element of a multi-valued attribute,
    /// and with a sub-attribute, that sub-attribute of each element. Nulls are left out,
    /// since SCIM treats null as unassigned (RFC 7643 §2.5).
    pub fn values<'a>(&self, resource: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        if let Some(value) = self.attribute(resource) {
            collect(value, self.sub_attr.as_deref(), &mut out);
        }
        out
    }
}

/// Splits `urn:...:Schema:attr.sub` into the schema and `attr.sub`. The schema ends at the
/// last colon; a path without a colon has no schema.
fn split_schema(text: &str) -> Option<(&str, &str)> {
    text.rsplit_once(':')
}

/// RFC 7643 §2.1 `ATTRNAME = ALPHA *(nameChar)`, plus `$ref`, which the RFC itself uses.
fn is_attr_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn collect<'a>(value: &'a Value, sub_attr: Option<&str>, out: &mut Vec<&'a Value>) {
    match (value, sub_attr) {
        (Value::Null, _) => {}
        (Value::Array(items), _) => {
            for item in items {
                collect(item, sub_attr, out);
            }
        }
        (Value::Object(object), Some(sub)) => {
            if let Some(inner) = get_ci(object, sub) {
                collect(inner, None, out);
            }
        }
        // A scalar has no sub-attributes.
        (_, Some(_)) => {}
        (other, None) => out.push(other),
    }
}

/// The member of `object` named `name`, ignoring ASCII case. An exact match wins, which is
/// also the common case.
pub fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// The key spelling `object` already uses for `name`, so that an update replaces the member
/// instead of adding a second one that differs only in case.
pub fn key_ci(object: &Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_string());
    }
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_schema_prefix_is_stripped() {
        let path = AttrPath::parse("urn:ietf:params:scim:schemas:core:2.0:User:userName");
        assert_eq!(
            path,
            Ok(AttrPath {
                extension: None,
                name: "userName".into(),
                sub_attr: None
            })
        );
        let path = AttrPath::parse("urn:ietf:params:scim:schemas:core:2.0:Group:displayName");
        assert!(path.is_ok_and(|p| p.is_core("displayname")));
    }

    #[test]
    fn enterprise_attribute_keeps_its_schema() {
        let path = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        );
        assert_eq!(
            path,
            Ok(AttrPath {
                extension: Some(ENTERPRISE_USER_SCHEMA),
                name: "manager".into(),
                sub_attr: Some("value".into())
            })
        );
    }

    #[test]
    fn bare_extension_urn_is_the_extension_object() {
        let path = AttrPath::parse(ENTERPRISE_USER_SCHEMA);
        assert!(path.is_ok_and(|p| p.is_core(ENTERPRISE_USER_SCHEMA)));
    }

    #[test]
    fn unknown_schema_and_bad_names_are_refused() {
        assert!(matches!(
            AttrPath::parse("urn:example:custom:1.0:User:badge"),
            Err(AttrPathError::UnknownSchema(_))
        ));
        for bad in [
            "",
            "1abc",
            "a.b.c",
            "name.",
            "na me",
            "emails[type eq \"work\"]",
        ] {
            assert!(
                matches!(AttrPath::parse(bad), Err(AttrPathError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn lookup_ignores_case_and_flattens_multi_valued() {
        let user = json!({
            "UserName": "ann",
            "name": {"familyName": "Lee"},
            "emails": [{"value": "a@x.io", "type": "work"}, {"value": "b@y.io"}],
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}}
        });
        let values = |p: &str| AttrPath::parse(p).map(|p| p.values(&user)).ok();
        assert_eq!(values("username"), Some(vec![&json!("ann")]));
        assert_eq!(values("NAME.FAMILYNAME"), Some(vec![&json!("Lee")]));
        assert_eq!(
            values("emails.value"),
            Some(vec![&json!("a@x.io"), &json!("b@y.io")])
        );
        assert_eq!(
            values("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            Some(vec![&json!("m1")])
        );
        assert_eq!(values("title"), Some(vec![]));
    }
}
