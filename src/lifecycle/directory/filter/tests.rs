//! Filter parsing and matching, on the RFC 7644 §3.4.2.2 examples and the queries Okta and
//! Entra send.

use super::*;
use serde_json::json;

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "00u1abcD",
        "userName": "Bjensen@Example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "loginCount": 7,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "meta": {"lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    })
}

fn group() -> Value {
    json!({
        "id": "e9e30dba",
        "displayName": "Tour Guides",
        "members": [{"value": "2819c223", "display": "Babs"}, {"value": "902c246b"}]
    })
}

fn matches(text: &str, resource: &Value) -> bool {
    match parse(text) {
        Ok(filter) => filter.matches(resource),
        Err(error) => panic!("{text}: {error}"),
    }
}

#[test]
fn comparison_operators_on_strings() {
    let u = user();
    assert!(matches(r#"userName eq "bjensen@example.com""#, &u));
    assert!(matches(r#"userName ne "other""#, &u));
    assert!(matches(r#"name.familyName co "ens""#, &u));
    assert!(matches(r#"userName sw "BJ""#, &u));
    assert!(matches(r#"userName ew ".COM""#, &u));
    assert!(!matches(r#"userName sw "x""#, &u));
    assert!(matches(
        r#"meta.lastModified gt "2011-05-13T04:42:33Z""#,
        &u
    ));
    assert!(matches(
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        &u
    ));
    assert!(!matches(
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        &u
    ));
    assert!(matches(
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        &u
    ));
}

#[test]
fn bool_number_and_null_literals() {
    let u = user();
    assert!(matches("active eq true", &u));
    assert!(!matches("active eq false", &u));
    assert!(matches("active ne false", &u));
    assert!(matches("loginCount gt 6", &u));
    assert!(matches("loginCount le 7.0", &u));
    assert!(!matches("loginCount lt 7", &u));
    assert!(!matches("title eq null", &u));
    assert!(matches("title ne null", &u));
    // A type mismatch matches nothing rather than erring.
    assert!(!matches(r#"active eq "true""#, &u));
}

#[test]
fn attribute_names_and_operators_ignore_case() {
    let u = user();
    assert!(matches(r#"USERNAME EQ "bjensen@example.com""#, &u));
    assert!(matches(r#"Name.FamilyName Eq "jensen""#, &u));
    assert!(matches(r#"title pr AND NOT (userType eq "Intern")"#, &u));
}

#[test]
fn identifiers_compare_case_exactly() {
    let u = user();
    assert!(matches(r#"externalId eq "00u1abcD""#, &u));
    assert!(!matches(r#"externalId eq "00u1abcd""#, &u));
    assert!(!matches(
        r#"id eq "2819C223-7F76-453A-919D-413861904646""#,
        &u
    ));
    assert!(!matches(r#"members[value eq "2819C223"]"#, &group()));
    // emails.value is not a reference: case-insensitive.
    assert!(matches(r#"emails[value eq "BJENSEN@example.com"]"#, &u));
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_override() {
    let u = user();
    // true or (false and false) = true; (true or false) and false = false.
    assert!(matches(
        r#"title pr or userType eq "x" and active eq false"#,
        &u
    ));
    assert!(!matches(
        r#"(title pr or userType eq "x") and active eq false"#,
        &u
    ));
    assert!(matches(
        r#"userType eq "x" and active eq false or title pr"#,
        &u
    ));
}

#[test]
fn not_negates_and_is_the_only_way_a_missing_attribute_matches() {
    let u = user();
    assert!(!matches(r#"nickName eq "babs""#, &u));
    assert!(!matches(r#"nickName ne "babs""#, &u));
    assert!(!matches("nickName pr", &u));
    assert!(matches(r#"not (nickName eq "babs")"#, &u));
    assert!(matches("not (nickName pr)", &u));
    assert!(!matches("not (title pr)", &u));
}

#[test]
fn multi_valued_attribute_matches_if_any_element_does() {
    let u = user();
    assert!(matches(r#"emails.type eq "home""#, &u));
    assert!(matches(r#"emails co "jensen.org""#, &u));
    assert!(!matches(r#"emails.value ew "@nowhere.io""#, &u));
}

#[test]
fn value_paths_filter_elements_together() {
    let u = user();
    assert!(matches(
        r#"emails[type eq "work" and value co "@example.com"]"#,
        &u
    ));
    // Each condition holds on some element, but not both on one.
    assert!(!matches(
        r#"emails[type eq "home" and value co "@example.com"]"#,
        &u
    ));
    assert!(matches(
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        &u
    ));
    assert!(matches(r#"emails[not (type eq "work")]"#, &u));
    assert!(matches(r#"members[value eq "902c246b"]"#, &group()));
    assert!(!matches(r#"members[value eq "nobody"]"#, &group()));
    assert!(!matches(r#"members[value eq "2819c223"]"#, &u));
}

#[test]
fn enterprise_extension_attributes_are_found_under_their_schema() {
    let u = user();
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        &u
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        &u
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bjensen""#,
        &u
    ));
    // Core attributes are not looked for in the extension.
    assert!(!matches(r#"employeeNumber eq "701984""#, &u));
}

#[test]
fn idp_lookups_match() {
    // Okta and Entra look a user up before creating it; Entra also by externalId and
    // groups by displayName.
    assert!(matches(r#"userName eq "bjensen@example.com""#, &user()));
    assert!(matches(r#"externalId eq "00u1abcD""#, &user()));
    assert!(matches(r#"displayName eq "Tour Guides""#, &group()));
}

#[test]
fn user_name_eq_is_only_the_bare_equality() {
    let filter = parse(r#"userName eq "ann@x.io""#);
    assert_eq!(
        filter.as_ref().ok().and_then(Filter::user_name_eq),
        Some("ann@x.io")
    );
    let filter = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:USERNAME eq "ann""#);
    assert_eq!(
        filter.as_ref().ok().and_then(Filter::user_name_eq),
        Some("ann")
    );
    for other in [
        r#"userName ne "ann""#,
        r#"userName eq "ann" and active eq true"#,
        r#"name.userName eq "ann""#,
        r#"externalId eq "ann""#,
        "userName pr",
    ] {
        assert_eq!(
            parse(other)
                .ok()
                .and_then(|f| f.user_name_eq().map(str::to_string)),
            None,
            "{other}"
        );
    }
}

#[test]
fn malformed_filters_are_errors() {
    for bad in [
        "",
        "userName",
        r#"userName eq"#,
        r#"userName xx "a""#,
        r#"(userName eq "a""#,
        r#"userName eq 'a'"#,
        r#"a.b.c eq "x""#,
        r#"urn:example:other:1.0:User:badge eq "x""#,
        r#"emails[type eq "work""#,
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    let message = parse(r#"userName xx "a""#).err().map(|e| e.to_string());
    assert!(message.is_some_and(|m| m.starts_with("filter syntax:") && !m.contains('\n')));
}

#[test]
fn patch_paths_parse_to_attribute_or_value_paths() {
    assert!(matches!(parse_patch_path("members"), Ok(PatchPath::Attr(p)) if p.is_core("members")));
    let Ok(PatchPath::Value(vp)) = parse_patch_path(r#"emails[type eq "work"].value"#) else {
        panic!("value path expected");
    };
    assert_eq!(vp.sub_attr.as_deref(), Some("value"));
    assert!(vp.element_matches(&json!({"type": "Work", "value": "a@x.io"})));
    assert_eq!(
        vp.eq_template(),
        Some(
            json!({"type": "work"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        )
    );
    let Ok(PatchPath::Value(vp)) = parse_patch_path(r#"emails[type co "w"]"#) else {
        panic!("value path expected");
    };
    assert_eq!(vp.eq_template(), None);
    assert!(parse_patch_path("emails[").is_err());
    assert!(parse_patch_path(r#"x[a eq "b"].c.d"#).is_err());
}

#[test]
fn a_sub_attribute_after_a_value_filter_compares_within_one_element() {
    let user = serde_json::json!({
        "userName": "ann",
        "emails": [
            { "type": "home", "value": "ann@home.io" },
            { "type": "work", "value": "ann@work.io" }
        ]
    });
    let work = parse(r#"emails[type eq "work"].value eq "ANN@work.io""#).unwrap();
    assert!(work.matches(&user));
    let crossed = parse(r#"emails[type eq "work"].value eq "ann@home.io""#).unwrap();
    assert!(
        !crossed.matches(&user),
        "the home address is not the work one"
    );
    let both = parse(r#"emails[type eq "work"].value pr and userName eq "ann""#).unwrap();
    assert!(both.matches(&user));
    let escaped = parse(r#"emails[type eq "w]\"k"].value eq "x""#);
    assert!(
        escaped.is_ok(),
        "a bracket inside a string does not end the filter"
    );
}
