//! Pins the shapes of the discovery documents to RFC 7643 §5–§7 and RFC 7644 §3.4.2.

use super::*;
use serde_json::Value;

const BASE: &str = "https://gate.example.com/.jitgate/scim/v2";

fn every_attribute(attributes: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for attribute in attributes.as_array().unwrap() {
        all.push(attribute);
        if let Some(subs) = attribute.get("subAttributes") {
            all.extend(subs.as_array().unwrap());
        }
    }
    all
}

fn assert_list_response(list: &Value, count: usize) {
    assert_eq!(list["schemas"], json!([LIST_RESPONSE_URN]));
    assert_eq!(list["totalResults"], count);
    assert_eq!(list["itemsPerPage"], count);
    assert_eq!(list["startIndex"], 1);
    assert_eq!(list["Resources"].as_array().unwrap().len(), count);
}

#[test]
fn service_provider_config_announces_what_jitgate_does() {
    let config = service_provider_config(BASE);
    assert_eq!(config["schemas"], json!([SERVICE_PROVIDER_CONFIG_URN]));
    assert_eq!(config["patch"], json!({ "supported": true }));
    assert_eq!(
        config["bulk"],
        json!({ "supported": false, "maxOperations": 0, "maxPayloadSize": 0 })
    );
    assert_eq!(
        config["filter"],
        json!({ "supported": true, "maxResults": 200 })
    );
    for feature in ["changePassword", "sort", "etag"] {
        assert_eq!(config[feature], json!({ "supported": false }), "{feature}");
    }
    let schemes = config["authenticationSchemes"].as_array().unwrap();
    assert_eq!(schemes.len(), 1);
    assert_eq!(schemes[0]["type"], "oauthbearertoken");
    assert_eq!(schemes[0]["name"], "OAuth Bearer Token");
    assert_eq!(schemes[0]["primary"], true);
    assert!(schemes[0]["description"].is_string());
    assert_eq!(
        config["meta"],
        json!({
            "resourceType": "ServiceProviderConfig",
            "location": format!("{BASE}/ServiceProviderConfig"),
        })
    );
}

#[test]
fn a_trailing_slash_on_the_base_is_ignored() {
    let config = service_provider_config(&format!("{BASE}/"));
    assert_eq!(
        config["meta"]["location"],
        format!("{BASE}/ServiceProviderConfig")
    );
    let user = resource_type(&format!("{BASE}/"), "User").unwrap();
    assert_eq!(
        user["meta"]["location"],
        format!("{BASE}/ResourceTypes/User")
    );
}

#[test]
fn resource_types_list_user_with_optional_enterprise_extension_and_group() {
    let list = resource_types(BASE);
    assert_list_response(&list, 2);
    let user = &list["Resources"][0];
    assert_eq!(
        *user,
        json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": "urn:ietf:params:scim:schemas:core:2.0:User",
            "schemaExtensions": [{
                "schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "required": false,
            }],
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{BASE}/ResourceTypes/User"),
            },
        })
    );
    let group = &list["Resources"][1];
    assert_eq!(group["id"], "Group");
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(
        group["schema"],
        "urn:ietf:params:scim:schemas:core:2.0:Group"
    );
    assert!(group.get("schemaExtensions").is_none());
}

#[test]
fn one_resource_type_is_found_by_its_exact_id() {
    assert_eq!(
        resource_type(BASE, "Group").unwrap(),
        resource_types(BASE)["Resources"][1]
    );
    assert!(resource_type(BASE, "Devices").is_none());
    assert!(resource_type(BASE, "user").is_none());
}

#[test]
fn schemas_list_the_three_schemas_with_their_locations() {
    let list = schemas(BASE);
    assert_list_response(&list, 3);
    let ids: Vec<&str> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|schema| schema["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ]
    );
    for schema in list["Resources"].as_array().unwrap() {
        assert_eq!(schema["schemas"], json!([SCHEMA_URN]));
        assert!(schema["name"].is_string());
        assert!(schema["description"].is_string());
        assert_eq!(schema["meta"]["resourceType"], "Schema");
        assert_eq!(
            schema["meta"]["location"],
            format!("{BASE}/Schemas/{}", schema["id"].as_str().unwrap())
        );
    }
}

#[test]
fn one_schema_is_found_by_its_urn() {
    let enterprise = schema(
        BASE,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    )
    .unwrap();
    assert_eq!(enterprise, schemas(BASE)["Resources"][2]);
    assert!(schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:Device").is_none());
    assert!(schema(BASE, "User").is_none());
}

#[test]
fn every_attribute_has_the_rfc_fields_with_rfc_values() {
    let kinds = [
        "string",
        "boolean",
        "decimal",
        "integer",
        "dateTime",
        "binary",
        "reference",
        "complex",
    ];
    for schema in schemas(BASE)["Resources"].as_array().unwrap() {
        for attribute in every_attribute(&schema["attributes"]) {
            let name = attribute["name"].as_str().unwrap();
            assert!(
                kinds.contains(&attribute["type"].as_str().unwrap()),
                "{name}"
            );
            for flag in ["multiValued", "required", "caseExact"] {
                assert!(attribute[flag].is_boolean(), "{name}.{flag}");
            }
            assert!(attribute["description"].is_string(), "{name}");
            let mutability = attribute["mutability"].as_str().unwrap();
            assert!(
                ["readOnly", "readWrite", "immutable", "writeOnly"].contains(&mutability),
                "{name}"
            );
            let returned = attribute["returned"].as_str().unwrap();
            assert!(
                ["always", "never", "default", "request"].contains(&returned),
                "{name}"
            );
            let uniqueness = attribute["uniqueness"].as_str().unwrap();
            assert!(["none", "server", "global"].contains(&uniqueness), "{name}");
            assert_eq!(
                attribute["type"] == "complex",
                attribute.get("subAttributes").is_some(),
                "{name}"
            );
            assert_eq!(
                attribute["type"] == "reference",
                attribute.get("referenceTypes").is_some(),
                "{name}"
            );
            if let Some(values) = attribute.get("canonicalValues") {
                assert!(!values.as_array().unwrap().is_empty(), "{name}");
            }
        }
    }
}

#[test]
fn attribute_names_are_rfc_camel_case() {
    let allowed = |c: char| c.is_ascii_alphanumeric();
    for schema in schemas(BASE)["Resources"].as_array().unwrap() {
        for attribute in every_attribute(&schema["attributes"]) {
            let name = attribute["name"].as_str().unwrap();
            if name == "$ref" {
                continue;
            }
            assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
            assert!(name.chars().all(allowed), "{name}");
        }
    }
    let user = schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:User").unwrap();
    let names: Vec<&str> = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for expected in [
        "userName",
        "phoneNumbers",
        "x509Certificates",
        "preferredLanguage",
    ] {
        assert!(names.contains(&expected), "{expected}");
    }
}

#[test]
fn every_ref_has_type_reference_and_reference_types() {
    let mut refs = 0;
    for schema in schemas(BASE)["Resources"].as_array().unwrap() {
        for attribute in every_attribute(&schema["attributes"]) {
            if attribute["name"] == "$ref" {
                refs += 1;
                assert_eq!(attribute["type"], "reference");
                assert!(!attribute["referenceTypes"].as_array().unwrap().is_empty());
            }
        }
    }
    // groups.$ref, members.$ref, manager.$ref
    assert_eq!(refs, 3);
}

#[test]
fn common_attributes_are_not_listed_in_schema_documents() {
    for schema in schemas(BASE)["Resources"].as_array().unwrap() {
        for attribute in schema["attributes"].as_array().unwrap() {
            assert_ne!(attribute["name"], "id");
            assert_ne!(attribute["name"], "externalId");
        }
    }
}

#[test]
fn password_is_rendered_write_only_never_returned() {
    let user = schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:User").unwrap();
    let password = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(password["mutability"], "writeOnly");
    assert_eq!(password["returned"], "never");
}

#[test]
fn group_members_render_with_immutable_value() {
    let group = schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:Group").unwrap();
    let members = group["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "members")
        .unwrap();
    assert_eq!(members["multiValued"], true);
    let value = members["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "value")
        .unwrap();
    assert_eq!(value["mutability"], "immutable");
    let kind = members["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "type")
        .unwrap();
    assert_eq!(kind["canonicalValues"], json!(["User", "Group"]));
}

/// Writes the documents to `$JITGATE_SCIM_DISCOVERY_DUMP` when set, for checking them with
/// other tools (scim2-models); a no-op otherwise.
#[test]
fn dump_documents_when_asked() {
    let Ok(dir) = std::env::var("JITGATE_SCIM_DISCOVERY_DUMP") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let write = |name: &str, value: Value| {
        std::fs::write(
            dir.join(name),
            serde_json::to_string_pretty(&value).unwrap(),
        )
        .unwrap();
    };
    write("ServiceProviderConfig.json", service_provider_config(BASE));
    write("ResourceTypes.json", resource_types(BASE));
    write("Schemas.json", schemas(BASE));
}
