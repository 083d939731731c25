//! The three SCIM discovery documents (RFC 7644 §4, RFC 7643 §5–§7): what jitgate's SCIM
//! service supports (`/ServiceProviderConfig`), which resources it serves (`/ResourceTypes`)
//! and what their attributes are (`/Schemas`, rendered from [`super::schema`]'s tables).
//!
//! Every function takes `base`, the absolute URL of the SCIM root (`https://host/.jitgate/scim/v2`),
//! because `meta.location` must be absolute; a trailing `/` is ignored. The HTTP layer answers
//! GET with these values and 405 to any other method on these paths (scim2-tester checks it),
//! and a SCIM 404 error when an `Option` here is `None`.

use serde_json::{json, Map, Value};

use super::schema::{
    Attribute, Kind, Schema, ALL_SCHEMAS, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA,
};

pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one query answers with (announced as `filter.maxResults`).
pub const MAX_RESULTS: u64 = 200;

/// A kind of resource jitgate serves, and the schemas that describe it.
#[derive(Debug)]
pub struct ResourceType {
    /// Both the resource type's `id` and its `name`, and the `meta.resourceType` of its resources.
    pub name: &'static str,
    /// The path under the SCIM root, with its leading `/`.
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static Schema,
    /// Extension schemas, each with whether a resource must carry it.
    pub extensions: &'static [(&'static Schema, bool)],
}

/// The resource types jitgate serves: Users (with the optional enterprise extension) and Groups.
pub const RESOURCE_TYPES: &[ResourceType] = &[
    ResourceType {
        name: "User",
        endpoint: "/Users",
        description: "User Account",
        schema: &USER_SCHEMA,
        extensions: &[(&ENTERPRISE_USER_SCHEMA, false)],
    },
    ResourceType {
        name: "Group",
        endpoint: "/Groups",
        description: "Group",
        schema: &GROUP_SCHEMA,
        extensions: &[],
    },
];

/// `GET /ServiceProviderConfig`: PATCH and filtering yes; bulk, sort, ETags and password
/// changes no; a bearer token authenticates the IdP.
pub fn service_provider_config(base: &str) -> Value {
    let base = trim(base);
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication scheme using the OAuth Bearer Token Standard",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

/// `GET /ResourceTypes`: every resource type, as a ListResponse.
pub fn resource_types(base: &str) -> Value {
    list_response(
        RESOURCE_TYPES
            .iter()
            .map(|resource_type| render_resource_type(trim(base), resource_type))
            .collect(),
    )
}

/// `GET /ResourceTypes/{name}`; `None` for a name jitgate does not serve. Ids are compared
/// exactly, as they are in the rest of SCIM.
pub fn resource_type(base: &str, name: &str) -> Option<Value> {
    RESOURCE_TYPES
        .iter()
        .find(|resource_type| resource_type.name == name)
        .map(|resource_type| render_resource_type(trim(base), resource_type))
}

/// `GET /Schemas`: every schema with all its attributes, as a ListResponse.
pub fn schemas(base: &str) -> Value {
    list_response(
        ALL_SCHEMAS
            .iter()
            .map(|schema| render_schema(trim(base), schema))
            .collect(),
    )
}

/// `GET /Schemas/{urn}`; `None` for a URN jitgate does not serve. URNs compare
/// case-insensitively.
pub fn schema(base: &str, urn: &str) -> Option<Value> {
    super::schema::by_urn(urn).map(|schema| render_schema(trim(base), schema))
}

fn trim(base: &str) -> &str {
    base.trim_end_matches('/')
}

/// A ListResponse holding every item on one page (RFC 7644 §3.4.2).
fn list_response(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

fn render_resource_type(base: &str, resource_type: &ResourceType) -> Value {
    let mut rendered = json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": resource_type.name,
        "name": resource_type.name,
        "endpoint": resource_type.endpoint,
        "description": resource_type.description,
        "schema": resource_type.schema.id,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", resource_type.name),
        },
    });
    if !resource_type.extensions.is_empty() {
        rendered["schemaExtensions"] = resource_type
            .extensions
            .iter()
            .map(|(schema, required)| json!({ "schema": schema.id, "required": required }))
            .collect();
    }
    rendered
}

fn render_schema(base: &str, schema: &Schema) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema
            .attributes
            .iter()
            .filter(|attribute| !is_common(attribute))
            .map(render_attribute)
            .collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{}", schema.id),
        },
    })
}

/// `id` and `externalId` are common attributes (RFC 7643 §3.1): the tables hold them for the
/// resource layer, but no schema document lists them, as RFC 7643 §8.7.1 does not. Clients
/// model them apart from the schema; scim2-models, for one, would otherwise see them twice.
fn is_common(attribute: &Attribute) -> bool {
    matches!(attribute.name, "id" | "externalId")
}

/// One attribute in RFC 7643 §7's form; `subAttributes`, `canonicalValues` and
/// `referenceTypes` appear only where they mean something.
fn render_attribute(attribute: &Attribute) -> Value {
    let mut rendered = Map::new();
    rendered.insert("name".into(), attribute.name.into());
    rendered.insert("type".into(), attribute.kind.as_str().into());
    rendered.insert("multiValued".into(), attribute.multi_valued.into());
    rendered.insert("description".into(), attribute.description.into());
    rendered.insert("required".into(), attribute.required.into());
    rendered.insert("caseExact".into(), attribute.case_exact.into());
    rendered.insert("mutability".into(), attribute.mutability.as_str().into());
    rendered.insert("returned".into(), attribute.returned.as_str().into());
    rendered.insert("uniqueness".into(), attribute.uniqueness.as_str().into());
    if attribute.kind == Kind::Complex {
        let sub_attributes = attribute.sub_attributes.iter().map(render_attribute);
        rendered.insert("subAttributes".into(), sub_attributes.collect());
    }
    if !attribute.canonical_values.is_empty() {
        rendered.insert(
            "canonicalValues".into(),
            attribute.canonical_values.iter().copied().collect(),
        );
    }
    if attribute.kind == Kind::Reference {
        rendered.insert(
            "referenceTypes".into(),
            attribute.reference_types.iter().copied().collect(),
        );
    }
    Value::Object(rendered)
}

#[cfg(test)]
mod tests;
