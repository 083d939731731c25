//! PATCH on the bodies Okta and Microsoft Entra ID send (from their SCIM 2.0 provisioning
//! docs) and on the RFC 7644 §3.5.2 rules.

use super::*;
use serde_json::json;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "ann@example.com",
        "name": {"givenName": "Anne", "familyName": "Lee"},
        "active": true,
        "emails": [
            {"value": "ann@example.com", "type": "work", "primary": true},
            {"value": "ann@home.org", "type": "home"}
        ],
        "groups": [{"value": "e9e30dba", "display": "Guides"}],
        "meta": {"resourceType": "User"}
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Guides",
        "members": [
            {"value": "2819c223", "display": "ann@example.com"},
            {"value": "902c246b", "display": "bob@example.com"},
            {"value": "6fd3b2a1", "display": "cy@example.com"}
        ]
    })
}

/// A PatchOp body around `operations`, as both IdPs send it.
fn body(operations: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations
    })
}

fn patch(resource: &Value, operations: Value) -> Result<Value, PatchError> {
    let request = PatchRequest::from_json(&body(operations))?;
    apply(resource, &request)
}

fn ok(resource: &Value, operations: Value) -> Value {
    match patch(resource, operations) {
        Ok(patched) => patched,
        Err(error) => panic!("{error}"),
    }
}

fn scim_type(resource: &Value, operations: Value) -> &'static str {
    match patch(resource, operations) {
        Ok(patched) => panic!("expected an error, got {patched}"),
        Err(error) => error.scim_type(),
    }
}

fn member_ids(group: &Value) -> Vec<&str> {
    group["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default()
}

// ---- Okta ----

#[test]
fn okta_deactivate_is_a_pathless_replace_of_active() {
    let patched = ok(
        &user(),
        json!([{"op": "replace", "value": {"active": false}}]),
    );
    assert_eq!(patched["active"], json!(false));
    assert_eq!(patched["userName"], json!("ann@example.com"));
}

#[test]
fn okta_group_rename_ignores_the_groups_own_id() {
    let group = group();
    let patched = ok(
        &group,
        json!([{"op": "replace", "value": {
            "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
            "displayName": "Tour Guides"
        }}]),
    );
    assert_eq!(patched["displayName"], json!("Tour Guides"));
    assert_eq!(patched["id"], group["id"]);
    assert_eq!(member_ids(&patched).len(), 3);
}

#[test]
fn okta_group_rename_with_another_id_is_mutability() {
    let operations = json!([{"op": "replace", "value": {"id": "other", "displayName": "X"}}]);
    assert_eq!(scim_type(&group(), operations), "mutability");
}

#[test]
fn okta_member_removal_by_value_filter_removes_that_member() {
    let patched = ok(
        &group(),
        json!([{"op": "remove", "path": "members[value eq \"902c246b\"]"}]),
    );
    assert_eq!(member_ids(&patched), ["2819c223", "6fd3b2a1"]);
}

#[test]
fn okta_member_add_appends_only_members_not_already_there() {
    let patched = ok(
        &group(),
        json!([{"op": "add", "path": "members", "value": [
            {"value": "2819c223", "display": "ann@example.com"},
            {"value": "23a35c27", "display": "test.user@okta.local"}
        ]}]),
    );
    assert_eq!(
        member_ids(&patched),
        ["2819c223", "902c246b", "6fd3b2a1", "23a35c27"]
    );
}

#[test]
fn member_add_to_a_group_without_members_creates_the_list() {
    let mut empty = group();
    empty.as_object_mut().map(|g| g.remove("members"));
    let patched = ok(
        &empty,
        json!([{"op": "add", "path": "members", "value": [{"value": "23a35c27"}]}]),
    );
    assert_eq!(member_ids(&patched), ["23a35c27"]);
}

// ---- Microsoft Entra ID ----

#[test]
fn entra_pathless_replace_with_dotted_keys_sets_sub_attributes() {
    let patched = ok(
        &user(),
        json!([{"op": "Replace", "value": {"name.givenName": "Ann", "active": "False"}}]),
    );
    assert_eq!(
        patched["name"],
        json!({"givenName": "Ann", "familyName": "Lee"})
    );
    // Stored as sent: the schema layer coerces "False".
    assert_eq!(patched["active"], json!("False"));
}

#[test]
fn entra_replace_of_work_email_value_changes_only_that_element() {
    let patched = ok(
        &user(),
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@x.io"},
            {"op": "Replace", "path": "name.familyName", "value": "Li"}
        ]),
    );
    assert_eq!(
        patched["emails"],
        json!([
            {"value": "a@x.io", "type": "work", "primary": true},
            {"value": "ann@home.org", "type": "home"}
        ])
    );
    assert_eq!(patched["name"]["familyName"], json!("Li"));
}

#[test]
fn entra_replace_of_work_email_creates_it_when_missing() {
    let mut no_emails = user();
    no_emails.as_object_mut().map(|u| u.remove("emails"));
    let patched = ok(
        &no_emails,
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@x.io"}]),
    );
    assert_eq!(
        patched["emails"],
        json!([{"type": "work", "value": "a@x.io"}])
    );
}

#[test]
fn entra_add_manager_by_enterprise_path_stores_it_under_the_extension() {
    let patched = ok(
        &user(),
        json!([{"op": "Add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": "26118915-6090-4610-87e4-49d8ca9f808d"}]),
    );
    assert_eq!(
        patched[ENTERPRISE]["manager"],
        json!({"value": "26118915-6090-4610-87e4-49d8ca9f808d"})
    );
    assert_eq!(
        patched["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE])
    );
}

#[test]
fn entra_pathless_extension_object_merges_into_the_extension() {
    let mut with_extension = user();
    with_extension[ENTERPRISE] = json!({"department": "Sales", "employeeNumber": "7"});
    let patched = ok(
        &with_extension,
        json!([{"op": "Replace", "value": {ENTERPRISE: {"department": "Tours"}}}]),
    );
    assert_eq!(
        patched[ENTERPRISE],
        json!({"department": "Tours", "employeeNumber": "7"})
    );
}

#[test]
fn entra_member_removal_by_value_list_keeps_the_other_members() {
    let patched = ok(
        &group(),
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "902c246b"}]}]),
    );
    assert_eq!(member_ids(&patched), ["2819c223", "6fd3b2a1"]);
}

#[test]
fn entra_member_add_leaves_out_the_null_ref() {
    let patched = ok(
        &group(),
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5"}]}]),
    );
    assert_eq!(patched["members"][3], json!({"value": "f648f8d5"}));
}

// ---- RFC 7644 §3.5.2 ----

#[test]
fn replace_of_a_complex_attribute_merges_sub_attributes() {
    let patched = ok(
        &user(),
        json!([{"op": "replace", "path": "name", "value": {"givenName": "Ann"}}]),
    );
    assert_eq!(
        patched["name"],
        json!({"givenName": "Ann", "familyName": "Lee"})
    );
}

#[test]
fn replace_of_a_multi_valued_attribute_replaces_the_list() {
    let patched = ok(
        &user(),
        json!([{"op": "replace", "path": "emails", "value": [{"value": "n@x.io", "type": "work"}]}]),
    );
    assert_eq!(
        patched["emails"],
        json!([{"value": "n@x.io", "type": "work"}])
    );
}

#[test]
fn remove_needs_a_path() {
    assert_eq!(scim_type(&group(), json!([{"op": "remove"}])), "noTarget");
    let with_value = json!([{"op": "Remove", "value": [{"value": "902c246b"}]}]);
    assert_eq!(scim_type(&group(), with_value), "noTarget");
}

#[test]
fn remove_of_a_value_path_removes_matching_elements_and_an_empty_list_goes() {
    let patched = ok(
        &user(),
        json!([{"op": "remove", "path": "emails[type eq \"home\" or type eq \"work\"]"}]),
    );
    assert_eq!(patched.get("emails"), None);
    let patched = ok(
        &user(),
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
    );
    assert_eq!(patched["emails"].as_array().map(Vec::len), Some(1));
}

#[test]
fn remove_of_a_value_path_matching_nothing_succeeds_so_retries_pass() {
    let operations = json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}]);
    let before = group();
    assert_eq!(ok(&before, operations), before);
    let operations = json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]);
    let before = user();
    assert_eq!(ok(&before, operations), before);
}

#[test]
fn remove_of_the_last_members_deletes_the_key() {
    let patched = ok(
        &group(),
        json!([{"op": "remove", "path": "members", "value": [
            {"value": "2819c223"}, {"value": "902c246b"}, {"value": "6fd3b2a1"}
        ]}]),
    );
    assert_eq!(patched.get("members"), None);
}

#[test]
fn remove_of_an_absent_attribute_changes_nothing() {
    let user = user();
    assert_eq!(ok(&user, json!([{"op": "remove", "path": "title"}])), user);
}

#[test]
fn remove_of_a_sub_attribute_and_of_an_attribute() {
    let patched = ok(
        &user(),
        json!([
            {"op": "remove", "path": "name.givenName"},
            {"op": "remove", "path": "active"}
        ]),
    );
    assert_eq!(patched["name"], json!({"familyName": "Lee"}));
    assert_eq!(patched.get("active"), None);
}

#[test]
fn add_with_a_path_creates_a_missing_attribute() {
    let patched = ok(
        &user(),
        json!([
            {"op": "add", "path": "title", "value": "Tour Guide"},
            {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555", "type": "work"}]}
        ]),
    );
    assert_eq!(patched["title"], json!("Tour Guide"));
    assert_eq!(
        patched["phoneNumbers"],
        json!([{"value": "+1 555", "type": "work"}])
    );
}

#[test]
fn add_without_a_path_merges_the_object() {
    let patched = ok(
        &user(),
        json!([{"op": "add", "value": {
            "nickName": "Annie",
            "name": {"middleName": "J"},
            "emails": [{"value": "ann@work2.io", "type": "other"}]
        }}]),
    );
    assert_eq!(patched["nickName"], json!("Annie"));
    assert_eq!(
        patched["name"],
        json!({"givenName": "Anne", "familyName": "Lee", "middleName": "J"})
    );
    assert_eq!(patched["emails"].as_array().map(Vec::len), Some(3));
}

#[test]
fn attribute_names_in_paths_ignore_case_and_keep_the_stored_spelling() {
    let patched = ok(
        &user(),
        json!([{"op": "Replace", "path": "USERNAME", "value": "a@x.io"}]),
    );
    assert_eq!(patched["userName"], json!("a@x.io"));
    assert_eq!(patched.get("USERNAME"), None);
}

#[test]
fn replace_with_null_unassigns() {
    let patched = ok(
        &user(),
        json!([{"op": "replace", "path": "name.givenName", "value": null}]),
    );
    assert_eq!(patched["name"], json!({"familyName": "Lee"}));
}

#[test]
fn read_only_attributes_are_mutability_errors() {
    for operation in [
        json!({"op": "replace", "path": "id", "value": "new"}),
        json!({"op": "remove", "path": "id"}),
        json!({"op": "replace", "path": "meta", "value": {"version": "W/\"1\""}}),
        json!({"op": "replace", "path": "meta.resourceType", "value": "Group"}),
        json!({"op": "add", "path": "groups", "value": [{"value": "x"}]}),
        json!({"op": "remove", "path": "groups[value eq \"e9e30dba\"]"}),
        json!({"op": "replace", "value": {"groups": []}}),
    ] {
        assert_eq!(
            scim_type(&user(), json!([operation.clone()])),
            "mutability",
            "{operation}"
        );
    }
    // Same id as now: no change, no error.
    let same_id =
        json!([{"op": "replace", "path": "id", "value": "2819c223-7f76-453a-919d-413861904646"}]);
    assert_eq!(ok(&user(), same_id), user());
}

#[test]
fn unparsable_paths_are_invalid_path() {
    for path in [
        "emails[type eq",
        "name.given.name",
        "",
        "urn:example:custom:1.0:User:badge",
    ] {
        let operations = json!([{"op": "replace", "path": path, "value": "x"}]);
        assert_eq!(scim_type(&user(), operations), "invalidPath", "{path}");
    }
    let dotted_key = json!([{"op": "replace", "value": {"name..givenName": "x"}}]);
    assert_eq!(scim_type(&user(), dotted_key), "invalidPath");
}

#[test]
fn wrong_value_types_are_invalid_value() {
    let object_for_members = json!([{"op": "add", "path": "members", "value": {"value": "x"}}]);
    assert_eq!(scim_type(&group(), object_for_members), "invalidValue");
    let member_without_id = json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]);
    assert_eq!(scim_type(&group(), member_without_id), "invalidValue");
    let string_for_emails = json!([{"op": "replace", "path": "emails", "value": "a@x.io"}]);
    assert_eq!(scim_type(&user(), string_for_emails), "invalidValue");
    let pathless_list = json!([{"op": "replace", "value": [1, 2]}]);
    assert_eq!(scim_type(&user(), pathless_list), "invalidValue");
    let add_without_value = json!([{"op": "add", "path": "title"}]);
    assert_eq!(scim_type(&user(), add_without_value), "invalidValue");
}

#[test]
fn malformed_requests_are_invalid_syntax() {
    let request = |body: Value| PatchRequest::from_json(&body).map_err(|e| e.scim_type());
    let op = json!([{"op": "replace", "value": {"active": false}}]);
    assert_eq!(
        request(json!({"Operations": op})).err(),
        Some("invalidSyntax")
    );
    assert_eq!(
        request(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": op})
        )
        .err(),
        Some("invalidSyntax")
    );
    assert_eq!(request(body(json!([]))).err(), Some("invalidSyntax"));
    assert_eq!(
        request(body(json!([{"op": "move", "path": "a"}]))).err(),
        Some("invalidSyntax")
    );
    assert_eq!(
        request(body(json!(["replace"]))).err(),
        Some("invalidSyntax")
    );
    assert_eq!(request(json!([])).err(), Some("invalidSyntax"));
    assert!(request(body(op)).is_ok());
}

#[test]
fn ops_are_case_insensitive_and_kept_in_order() {
    let request = PatchRequest::from_json(&body(json!([
        {"op": "ADD", "path": "title", "value": "a"},
        {"op": "Replace", "path": "title", "value": "b"},
        {"op": "remove", "path": "title"}
    ])));
    let kinds: Vec<&str> = request
        .iter()
        .flat_map(|r| r.operations())
        .map(|op| match op {
            PatchOperation::Add { .. } => "add",
            PatchOperation::Replace { .. } => "replace",
            PatchOperation::Remove { .. } => "remove",
        })
        .collect();
    assert_eq!(kinds, ["add", "replace", "remove"]);
}

#[test]
fn a_later_failing_operation_fails_the_whole_request() {
    // `apply` returns a copy, so the stored resource is untouched whatever happens; what
    // matters is that no partly patched copy comes back (tests/scim.rs checks the store).
    let operations = json!([
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "id", "value": "another-id"}
    ]);
    assert_eq!(scim_type(&group(), operations), "mutability");
}
