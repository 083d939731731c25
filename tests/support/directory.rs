//! Talking to jitgate's SCIM service as an IdP would, for the lifecycle tests: requests with
//! the test token, users linked to the test IdP's users, and polling for a time budget.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

use super::{TestUser, SCIM_TOKEN};

/// Sends one SCIM request to `base` (…/.jitgate/scim/v2); asserts success, returns the body.
pub fn scim_at(base: &str, method: &str, path: &str, body: Value) -> Value {
    let resp = Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A directory user whose externalId is the test user's `sub` (the default link); its id.
pub fn push_user_at(base: &str, user: &TestUser) -> String {
    let created = scim_at(
        base,
        "POST",
        "/Users",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("{}@example.test", user.login),
            "externalId": user.sub,
            "active": true
        }),
    );
    created["id"].as_str().unwrap().to_string()
}

/// A directory group with these members (directory user ids); its id.
pub fn push_group_at(base: &str, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let created = scim_at(
        base,
        "POST",
        "/Groups",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": members
        }),
    );
    created["id"].as_str().unwrap().to_string()
}

/// A PATCH that removes one member from a group, as Okta sends it.
pub fn remove_member(user_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "remove", "path": format!("members[value eq \"{user_id}\"]") }]
    })
}

/// Polls `done` every 20 ms for up to `limit`; returns how long it took.
pub fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
