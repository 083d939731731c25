//! Pins the schema tables to RFC 7643 and the lookups' rules (case, sub-attributes, URN
//! prefixes).

use super::*;

fn every_attribute(schema: &Schema) -> Vec<(String, &'static Attribute)> {
    let attributes: &'static [Attribute] = schema.attributes;
    let mut all = Vec::new();
    for attribute in attributes {
        all.push((attribute.name.to_string(), attribute));
        for sub in attribute.sub_attributes {
            all.push((format!("{}.{}", attribute.name, sub.name), sub));
        }
    }
    all
}

#[test]
fn find_is_case_insensitive_and_reaches_sub_attributes() {
    let user_name = find(&USER_SCHEMA, "USERNAME").unwrap();
    assert_eq!(user_name.name, "userName");
    assert!(user_name.required);
    assert_eq!(user_name.uniqueness, Uniqueness::Server);

    let given = find(&USER_SCHEMA, "name.GivenName").unwrap();
    assert_eq!(given.name, "givenName");
    assert_eq!(given.kind, Kind::String);

    let member_value = find(&GROUP_SCHEMA, "members.value").unwrap();
    assert_eq!(member_value.mutability, Mutability::Immutable);
}

#[test]
fn find_accepts_the_schema_urn_as_prefix() {
    let manager = find(
        &ENTERPRISE_USER_SCHEMA,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    )
    .unwrap();
    assert_eq!(manager.name, "value");
    let user_name = find(
        &USER_SCHEMA,
        "URN:ietf:params:scim:schemas:core:2.0:user:userName",
    )
    .unwrap();
    assert_eq!(user_name.name, "userName");
    // Another schema's URN is not stripped: the path names nothing here.
    assert!(find(
        &USER_SCHEMA,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    )
    .is_none());
}

#[test]
fn find_refuses_unknown_names_and_deeper_paths() {
    assert!(find(&USER_SCHEMA, "shoeSize").is_none());
    assert!(find(&USER_SCHEMA, "name.nickName").is_none());
    assert!(find(&USER_SCHEMA, "name.givenName.first").is_none());
    assert!(find(&USER_SCHEMA, "").is_none());
    assert!(find(&GROUP_SCHEMA, "userName").is_none());
}

#[test]
fn booleans_and_case_exactness_follow_the_rfc() {
    assert!(is_boolean(&USER_SCHEMA, "active"));
    assert!(is_boolean(&USER_SCHEMA, "emails.primary"));
    assert!(!is_boolean(&USER_SCHEMA, "userName"));
    assert!(!is_boolean(&USER_SCHEMA, "unknown"));

    assert!(is_case_exact(&USER_SCHEMA, "id"));
    assert!(is_case_exact(&USER_SCHEMA, "externalId"));
    assert!(is_case_exact(&GROUP_SCHEMA, "externalId"));
    assert!(is_case_exact(&GROUP_SCHEMA, "members.value"));
    assert!(is_case_exact(&USER_SCHEMA, "profileUrl"));
    assert!(is_case_exact(&USER_SCHEMA, "x509Certificates.value"));
    assert!(!is_case_exact(&USER_SCHEMA, "userName"));
    assert!(!is_case_exact(&USER_SCHEMA, "emails.value"));
    assert!(!is_case_exact(&USER_SCHEMA, "unknown"));
}

#[test]
fn id_is_read_only_and_always_returned() {
    for schema in [&USER_SCHEMA, &GROUP_SCHEMA] {
        let id = find(schema, "id").unwrap();
        assert_eq!(id.mutability, Mutability::ReadOnly);
        assert_eq!(id.returned, Returned::Always);
        assert!(id.case_exact);
    }
}

#[test]
fn password_is_write_only_and_never_returned() {
    let password = find(&USER_SCHEMA, "password").unwrap();
    assert_eq!(password.mutability, Mutability::WriteOnly);
    assert_eq!(password.returned, Returned::Never);
}

#[test]
fn user_has_the_rfc_attributes() {
    let names: Vec<&str> = USER_SCHEMA.attributes.iter().map(|a| a.name).collect();
    for expected in [
        "id",
        "externalId",
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ] {
        assert!(names.contains(&expected), "User lacks {expected}");
    }
    for multi in ["emails", "phoneNumbers", "ims", "photos", "addresses"] {
        let attribute = find(&USER_SCHEMA, multi).unwrap();
        assert!(attribute.multi_valued, "{multi}");
        assert!(find(&USER_SCHEMA, &format!("{multi}.type")).is_some());
        assert!(find(&USER_SCHEMA, &format!("{multi}.primary")).is_some());
    }
    for sub in [
        "formatted",
        "streetAddress",
        "locality",
        "region",
        "postalCode",
        "country",
    ] {
        assert!(find(&USER_SCHEMA, &format!("addresses.{sub}")).is_some());
    }
}

#[test]
fn groups_of_a_user_are_read_only() {
    let groups = find(&USER_SCHEMA, "groups").unwrap();
    assert!(groups.multi_valued);
    assert_eq!(groups.mutability, Mutability::ReadOnly);
    for sub in groups.sub_attributes {
        assert_eq!(sub.mutability, Mutability::ReadOnly, "groups.{}", sub.name);
    }
    let kind = find(&USER_SCHEMA, "groups.type").unwrap();
    assert_eq!(kind.canonical_values, ["direct", "indirect"]);
}

#[test]
fn enterprise_manager_has_value_ref_and_display_name() {
    let manager = find(&ENTERPRISE_USER_SCHEMA, "manager").unwrap();
    assert_eq!(manager.kind, Kind::Complex);
    let names: Vec<&str> = manager.sub_attributes.iter().map(|a| a.name).collect();
    assert_eq!(names, ["value", "$ref", "displayName"]);
    let reference = find(&ENTERPRISE_USER_SCHEMA, "manager.$ref").unwrap();
    assert_eq!(reference.reference_types, ["User"]);
    for name in [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
    ] {
        assert!(find(&ENTERPRISE_USER_SCHEMA, name).is_some(), "{name}");
    }
}

#[test]
fn group_display_name_is_required_and_members_are_multi_valued() {
    assert!(find(&GROUP_SCHEMA, "displayName").unwrap().required);
    let members = find(&GROUP_SCHEMA, "members").unwrap();
    assert!(members.multi_valued);
    let names: Vec<&str> = members.sub_attributes.iter().map(|a| a.name).collect();
    for expected in ["value", "$ref", "display", "type"] {
        assert!(names.contains(&expected), "members lacks {expected}");
    }
}

#[test]
fn every_ref_is_a_reference_with_reference_types() {
    for schema in ALL_SCHEMAS {
        for (path, attribute) in every_attribute(schema) {
            if attribute.name == "$ref" {
                assert_eq!(attribute.kind, Kind::Reference, "{path}");
            }
            if attribute.kind == Kind::Reference {
                assert!(!attribute.reference_types.is_empty(), "{path}");
            } else {
                assert!(attribute.reference_types.is_empty(), "{path}");
            }
        }
    }
}

#[test]
fn only_complex_attributes_have_sub_attributes_and_only_one_level() {
    for schema in ALL_SCHEMAS {
        for attribute in schema.attributes {
            assert_eq!(
                attribute.kind == Kind::Complex,
                !attribute.sub_attributes.is_empty(),
                "{}",
                attribute.name
            );
            for sub in attribute.sub_attributes {
                assert!(
                    sub.sub_attributes.is_empty(),
                    "{}.{}",
                    attribute.name,
                    sub.name
                );
                assert_ne!(sub.kind, Kind::Complex);
            }
        }
    }
}

#[test]
fn names_are_unique_within_their_level_and_described() {
    for schema in ALL_SCHEMAS {
        let mut seen = std::collections::HashSet::new();
        for (path, attribute) in every_attribute(schema) {
            assert!(
                seen.insert(path.to_lowercase()),
                "{} repeats {path}",
                schema.id
            );
            assert!(!attribute.description.is_empty(), "{path}");
        }
    }
}

#[test]
fn schemas_are_found_by_urn_case_insensitively() {
    assert_eq!(
        by_urn("urn:ietf:params:scim:schemas:core:2.0:user").map(|s| s.name),
        Some("User")
    );
    assert_eq!(
        by_urn("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").map(|s| s.name),
        Some("EnterpriseUser")
    );
    assert!(by_urn("urn:ietf:params:scim:schemas:core:2.0:Unknown").is_none());
}
