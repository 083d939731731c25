//! The SCIM 2.0 service as IdPs use it: bearer tokens and throttling, users and groups with
//! filters and paging, the request shapes Okta and Entra ID really send, RFC 7644 errors
//! that change nothing, the audit trail, and the scim2-tester compliance suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use support::process::ScratchDb;
use support::{Idp, Jitgate, Options, SCIM_TOKEN};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn start(store: Option<String>) -> Jitgate {
    Jitgate::start(Options {
        idp: Idp::Unreachable,
        scim: true,
        store,
        ..Options::default()
    })
}

struct Scim {
    base: String,
    client: Client,
    token: String,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Scim {
    fn new(jg: &Jitgate) -> Self {
        Self {
            base: jg.auth_url("/.jitgate/scim/v2"),
            client: Client::new(),
            token: SCIM_TOKEN.to_string(),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .client
            .request(method.parse().unwrap(), url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None)
    }
    fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(&body))
    }
    fn put(&self, path: &str, body: Value) -> Answer {
        self.send("PUT", path, Some(&body))
    }
    fn patch(&self, path: &str, ops: Value) -> Answer {
        self.send(
            "PATCH",
            path,
            Some(&json!({ "schemas": [PATCH_OP], "Operations": ops })),
        )
    }
    fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None)
    }

    /// Creates a user the way Okta does and returns its id.
    fn create_user(&self, user_name: &str, external_id: &str) -> String {
        let answer = self.post("/Users", okta_user(user_name, external_id, true));
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_string()
    }

    fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
        let answer = self.post(
            "/Groups",
            json!({ "schemas": [GROUP], "displayName": name, "members": members }),
        );
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_string()
    }

    fn members(&self, group: &str) -> Vec<String> {
        let answer = self.get(&format!("/Groups/{group}"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        let mut ids: Vec<String> = answer.body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }
}

/// A user as Okta's SCIM client creates one.
fn okta_user(user_name: &str, external_id: &str, active: bool) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "externalId": external_id,
        "name": { "givenName": "Ann", "familyName": "Lee" },
        "emails": [{ "primary": true, "value": user_name, "type": "work" }],
        "displayName": "Ann Lee",
        "locale": "en-US",
        "groups": [],
        "password": "never-stored-1!",
        "active": active
    })
}

fn assert_scim_error(answer: &Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["schemas"], json!([ERROR]), "{}", answer.body);
    assert_eq!(answer.body["status"], status.to_string());
    assert_eq!(
        answer.body["scimType"].as_str(),
        scim_type,
        "{}",
        answer.body
    );
    let content_type = answer.headers["content-type"].to_str().unwrap();
    assert_eq!(content_type, "application/scim+json");
    let request_id = answer.headers["x-request-id"].to_str().unwrap();
    assert!(
        answer.body["detail"].as_str().unwrap().contains(request_id),
        "{}",
        answer.body
    );
}

fn list_ids(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_missing_or_wrong_token_gets_401_and_a_guesser_is_throttled() {
    let jg = start(None);
    let mut scim = Scim::new(&jg);
    // No token: 401, and the body is never read (not 413 for this 1.1 MB one).
    let answer = Client::new()
        .post(format!("{}/Users", scim.base))
        .header("content-type", "application/scim+json")
        .body(vec![b' '; 1100 * 1024])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    scim.token = "wrong-token-wrong-token-wrong".into();
    let answer = scim.get("/Users");
    assert_scim_error(&answer, 401, None);
    assert!(jg.has_audit("scim_refused"));
    // 20 failures in all (one without a token, nineteen wrong), then the address is refused.
    for _ in 0..18 {
        assert_eq!(scim.get("/Users").status, 401);
    }
    let answer = scim.get("/Users");
    assert_scim_error(&answer, 429, None);
    assert_eq!(answer.headers["retry-after"], "60");
    // The IdP, sending from an address strangers share, still gets through.
    scim.token = SCIM_TOKEN.into();
    assert_eq!(scim.get("/Users").status, 200);
    // The token never reaches the audit trail. Refusals are audited in the background:
    // wait for the twentieth, then make sure no more came.
    let audited = || {
        let store = jg.gate().store.clone();
        jg.block_on(async move { store.recent_audit(100).await })
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while audited()
        .iter()
        .filter(|e| e.kind == "scim_refused")
        .count()
        < 20
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let events = audited();
    assert_eq!(
        events.iter().filter(|e| e.kind == "scim_refused").count(),
        20,
        "refusals past the limit are not audited one by one"
    );
    assert!(events
        .iter()
        .all(|e| !e.detail.contains("wrong-token") && !e.detail.contains(SCIM_TOKEN)));
}

#[test]
fn scim_lives_only_on_the_auth_host() {
    let jg = start(None);
    let scim = Scim::new(&jg);
    assert_eq!(scim.get("/ServiceProviderConfig").status, 200);
    // The root itself is nothing to read, and says so as SCIM does.
    assert_scim_error(&scim.get(""), 404, None);
    assert_scim_error(&scim.get("/"), 404, None);
    let addr = format!("127.0.0.1:{}", jg.port).parse().unwrap();
    let on_app_host = Client::builder()
        .resolve(support::APP_HOST, addr)
        .build()
        .unwrap()
        .get(jg.app_url("/.jitgate/scim/v2/Users"))
        .bearer_auth(SCIM_TOKEN)
        .send()
        .unwrap();
    assert_eq!(on_app_host.status(), 404);
}

#[test]
fn users_are_created_read_filtered_paged_replaced_and_deleted() {
    let jg = start(None);
    let scim = Scim::new(&jg);
    let created = scim.post("/Users", okta_user("ann@example.com", "00u1", true));
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("{}/Users/{id}", scim.base)
    );
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert!(
        created.body.get("password").is_none(),
        "passwords are never kept"
    );
    let duplicate = scim.post("/Users", okta_user("ANN@example.com", "00u9", true));
    assert_scim_error(&duplicate, 409, Some("uniqueness"));

    let bob = scim.create_user("bob@example.com", "00u2");
    let _cy = scim.create_user("cy@example.com", "00u3");
    assert_eq!(
        scim.get(&format!("/Users/{id}")).body["userName"],
        "ann@example.com"
    );
    let by_name = scim.get("/Users?filter=userName%20eq%20%22ANN@example.com%22");
    assert_eq!(list_ids(&by_name), vec![id.clone()]);
    assert_eq!(by_name.body["totalResults"], 1);
    let by_external = scim.get("/Users?filter=externalId%20eq%20%2200u2%22");
    assert_eq!(list_ids(&by_external), vec![bob.clone()]);
    let by_email = scim
        .get("/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22bob@example.com%22");
    assert_eq!(list_ids(&by_email), vec![bob.clone()]);
    let both = scim.get(
        "/Users?filter=displayName%20eq%20%22Ann%20Lee%22%20and%20externalId%20eq%20%2200u1%22",
    );
    assert_eq!(list_ids(&both), vec![id.clone()]);
    let none = scim.get("/Users?filter=userName%20eq%20%22nobody%22");
    assert_eq!(list_ids(&none), Vec::<String>::new());
    assert_eq!(none.body["totalResults"], 0);
    let bad = scim.get("/Users?filter=userName%20eqq%20%22x%22");
    assert_scim_error(&bad, 400, Some("invalidFilter"));

    let page = scim.get("/Users?startIndex=2&count=1");
    assert_eq!(list_ids(&page), vec![bob.clone()]);
    assert_eq!(page.body["totalResults"], 3);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 1);
    let only = scim.get(&format!("/Users/{id}?attributes=userName"));
    assert_eq!(only.body["userName"], "ann@example.com");
    assert!(only.body.get("emails").is_none());

    // Okta: updates are full PUTs, leavers included.
    let mut replaced = okta_user("ann@example.com", "00u1", false);
    replaced["name"]["familyName"] = json!("Lee-Park");
    let put = scim.put(&format!("/Users/{id}"), replaced);
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["active"], false);
    let inactive = scim.get(&format!("/Users/{id}"));
    assert_eq!(inactive.status, 200, "an inactive user is still returned");
    assert_eq!(inactive.body["name"]["familyName"], "Lee-Park");

    assert_eq!(scim.delete(&format!("/Users/{id}")).status, 204);
    assert_scim_error(&scim.get(&format!("/Users/{id}")), 404, None);
    assert_scim_error(&scim.delete(&format!("/Users/{id}")), 404, None);
}

#[test]
fn okta_patches_and_group_pushes_apply() {
    let jg = start(None);
    let scim = Scim::new(&jg);
    let ann = scim.create_user("ann@example.com", "00u1");
    let bob = scim.create_user("bob@example.com", "00u2");
    // Deactivation: replace without a path.
    let answer = scim.patch(
        &format!("/Users/{ann}"),
        json!([{ "op": "replace", "value": { "active": false } }]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(scim.get(&format!("/Users/{ann}")).body["active"], false);
    // Removing `active` (or a PUT without it) never brings a leaver back.
    let answer = scim.patch(
        &format!("/Users/{ann}"),
        json!([{ "op": "remove", "path": "active" }]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let store = jg.gate().store.clone();
    let id = ann.clone();
    let stored = jg
        .block_on(async move {
            store
                .get_directory_user(jitgate::store::DirectoryKey::Id(&id))
                .await
        })
        .unwrap()
        .unwrap();
    assert!(!stored.active);

    let group = scim.create_group("Engineering", &[&ann, &bob]);
    assert_eq!(scim.members(&group), sorted(&[&ann, &bob]));
    let user = scim.get(&format!("/Users/{bob}"));
    assert_eq!(user.body["groups"][0]["display"], "Engineering");
    // Rename, with the read-only id in the value.
    let answer = scim.patch(
        &format!("/Groups/{group}"),
        json!([{ "op": "replace", "value": { "id": group, "displayName": "Platform" } }]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        scim.get(&format!("/Groups/{group}")).body["displayName"],
        "Platform"
    );
    let filtered =
        scim.get("/Groups?filter=displayName%20eq%20%22platform%22&excludedAttributes=members");
    assert_eq!(list_ids(&filtered), vec![group.clone()]);
    assert!(filtered.body["Resources"][0].get("members").is_none());
    // Member removal by value filter.
    let answer = scim.patch(
        &format!("/Groups/{group}"),
        json!([{ "op": "remove", "path": format!("members[value eq \"{ann}\"]") }]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(scim.members(&group), vec![bob.clone()]);
    // The audit names who left the group, not two copies of every member.
    let store = jg.gate().store.clone();
    let events = jg
        .block_on(async move { store.recent_audit(1).await })
        .unwrap();
    let detail: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(events[0].kind, "directory_group_updated");
    assert_eq!(detail["members_removed"], json!([ann]));
    assert_eq!(detail["members"], 1);
    assert!(detail["after"].get("members").is_none());
    let answer = scim.patch(
        &format!("/Groups/{group}"),
        json!([{ "op": "add", "path": "members", "value": [{ "value": ann, "display": "Ann" }] }]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(scim.members(&group), sorted(&[&ann, &bob]));
    // Deleting a user takes them out of their groups.
    assert_eq!(scim.delete(&format!("/Users/{bob}")).status, 204);
    assert_eq!(scim.members(&group), vec![ann.clone()]);
    assert_eq!(scim.delete(&format!("/Groups/{group}")).status, 204);
    assert_scim_error(&scim.get(&format!("/Groups/{group}")), 404, None);
}

#[test]
fn entra_patches_apply_and_member_removal_removes_only_the_named_members() {
    let jg = start(None);
    let scim = Scim::new(&jg);
    let ann = scim.create_user("ann@contoso.com", "a1");
    let bob = scim.create_user("bob@contoso.com", "b2");
    let cy = scim.create_user("cy@contoso.com", "c3");
    let answer = scim.patch(
        &format!("/Users/{ann}"),
        json!([
            { "op": "Replace", "value": { "name.givenName": "Annie", "active": "False" } },
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "annie@contoso.com" },
            { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": bob }
        ]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let user = scim.get(&format!("/Users/{ann}")).body;
    assert_eq!(user["active"], false, "the string \"False\" is a boolean");
    assert_eq!(user["name"]["givenName"], "Annie");
    assert_eq!(user["emails"][0]["value"], "annie@contoso.com");
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        bob
    );
    let answer = scim.patch(
        &format!("/Users/{ann}"),
        json!([{ "op": "Replace", "path": "active", "value": "True" }]),
    );
    assert_eq!(answer.body["active"], true, "{}", answer.body);

    let group = scim.create_group("Sales", &[&ann, &bob, &cy]);
    let answer = scim.patch(
        &format!("/Groups/{group}"),
        json!([{ "op": "Remove", "path": "members", "value": [{ "value": bob }] }]),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(scim.members(&group), sorted(&[&ann, &cy]));
}

#[test]
fn a_failed_request_changes_nothing() {
    let jg = start(None);
    let scim = Scim::new(&jg);
    let ann = scim.create_user("ann@example.com", "00u1");
    let before = scim.get(&format!("/Users/{ann}")).body;
    // A good operation followed by a bad one: neither applies.
    let answer = scim.patch(
        &format!("/Users/{ann}"),
        json!([
            { "op": "replace", "path": "displayName", "value": "Changed" },
            { "op": "replace", "path": "id", "value": "another-id" }
        ]),
    );
    assert_scim_error(&answer, 400, Some("mutability"));
    let answer = scim.patch(
        &format!("/Users/{ann}"),
        json!([
            { "op": "replace", "path": "displayName", "value": "Changed" },
            { "op": "replace", "path": "active", "value": "maybe" }
        ]),
    );
    assert_scim_error(&answer, 400, Some("invalidValue"));
    assert_eq!(scim.get(&format!("/Users/{ann}")).body, before);

    let group = scim.create_group("Ops", &[&ann]);
    let answer = scim.patch(
        &format!("/Groups/{group}"),
        json!([{ "op": "add", "path": "members", "value": [{ "value": "no-such-user" }] }]),
    );
    assert_scim_error(&answer, 400, Some("invalidValue"));
    assert_eq!(scim.members(&group), vec![ann.clone()]);

    let not_json = scim
        .client
        .post(format!("{}/Users", scim.base))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let huge =
        json!({ "schemas": [USER], "userName": "big", "displayName": "x".repeat(1100 * 1024) });
    assert_scim_error(&scim.post("/Users", huge), 413, None);
    let missing_name = scim.post("/Users", json!({ "schemas": [USER], "active": true }));
    assert_scim_error(&missing_name, 400, Some("invalidValue"));
    assert_eq!(list_ids(&scim.get("/Users")), vec![ann]);
}

#[test]
fn every_change_is_audited_with_the_token_and_the_state_before_and_after() {
    let jg = start(None);
    let scim = Scim::new(&jg);
    let ann = scim.create_user("ann@example.com", "00u1");
    scim.patch(
        &format!("/Users/{ann}"),
        json!([{ "op": "replace", "value": { "active": false } }]),
    );
    // Re-sending the same state is not a change.
    scim.patch(
        &format!("/Users/{ann}"),
        json!([{ "op": "replace", "value": { "active": false } }]),
    );
    scim.delete(&format!("/Users/{ann}"));
    let store = jg.gate().store.clone();
    let events = jg
        .block_on(async move { store.recent_audit(100).await })
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("directory_"))
            .collect::<Vec<_>>(),
        vec![
            &"directory_user_deleted",
            &"directory_user_updated",
            &"directory_user_created"
        ]
    );
    let updated = events
        .iter()
        .find(|e| e.kind == "directory_user_updated")
        .unwrap();
    let detail: Value = serde_json::from_str(&updated.detail).unwrap();
    assert_eq!(detail["by"], "scim token 1");
    assert_eq!(detail["id"], ann);
    assert_eq!(detail["before"]["active"], true);
    assert_eq!(detail["after"]["active"], false);
    assert!(updated.request_id.is_some());
    assert!(events.iter().all(|e| !e.detail.contains(SCIM_TOKEN)));

    // Operators read the same trail with `jitgate scim status`, and count requests in metrics.
    let config = jg.dir.path().join("jitgate.yaml");
    let output = support::process::jitgate_command(&[
        "scim",
        "status",
        "--config",
        config.to_str().unwrap(),
    ]);
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{status}");
    assert!(status.contains("SCIM service: on (1 token)"), "{status}");
    assert!(status.contains("directory: 0 users"), "{status}");
    let deleted = status.lines().nth(5).unwrap_or_default();
    assert!(
        deleted.contains("directory_user_deleted") && deleted.contains("scim token 1"),
        "{status}"
    );
    assert!(deleted.contains("ann@example.com"), "{status}");
    let metrics = Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", jg.admin_port))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("jitgate_scim_requests_total{method=\"PATCH\",status=\"200\"} 2"),
        "{metrics}"
    );
}

/// Polls the store's SCIM request log until `done` holds (the writer runs in the background).
fn logged_requests(
    jg: &Jitgate,
    done: impl Fn(&[jitgate::store::ScimRequest]) -> bool,
) -> Vec<jitgate::store::ScimRequest> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let store = jg.gate().store.clone();
        let logged = jg
            .block_on(async move { store.recent_scim_requests(10_000).await })
            .unwrap();
        if done(&logged) || std::time::Instant::now() > deadline {
            return logged;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn scim_status_lists_recent_requests_and_failures_without_queries_or_tokens() {
    let jg = start(None);
    let mut scim = Scim::new(&jg);
    let ann = scim.create_user("ann@example.com", "00u1");
    let taken = scim.post("/Users", okta_user("Ann@Example.com", "00u7", true));
    assert_scim_error(&taken, 409, Some("uniqueness"));
    let filtered = scim.get("/Users?filter=userName%20eq%20%22ann%40example.com%22");
    assert_eq!(filtered.status, 200);
    scim.token = "wrong-token-wrong-token-wrong".into();
    assert_eq!(scim.get("/Users").status, 401);

    let logged = logged_requests(&jg, |l| l.len() >= 4);
    let seen: Vec<String> = logged
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                r.method,
                r.path,
                r.status,
                r.scim_type.as_deref().unwrap_or("-"),
                r.token_label.as_deref().unwrap_or("no token")
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            "GET /.jitgate/scim/v2/Users 401 - no token",
            "GET /.jitgate/scim/v2/Users 200 - scim token 1",
            "POST /.jitgate/scim/v2/Users 409 uniqueness scim token 1",
            "POST /.jitgate/scim/v2/Users 201 - scim token 1",
        ]
    );
    assert!(logged.iter().all(|r| !r.request_id.is_empty()));

    let config = jg.dir.path().join("jitgate.yaml");
    let output = support::process::jitgate_command(&[
        "scim",
        "status",
        "--config",
        config.to_str().unwrap(),
    ]);
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{status}");
    assert!(
        status.contains("recent SCIM requests (4 logged, 2 failed)"),
        "{status}"
    );
    let failures = status
        .split("recent SCIM failures:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        failures.contains("409") && failures.contains("uniqueness"),
        "{status}"
    );
    assert!(
        failures.contains("401") && failures.contains("no token"),
        "{status}"
    );
    assert!(!failures.contains(" 201 "), "{status}");
    for secret in [SCIM_TOKEN, "wrong-token", "ann%40example", "filter"] {
        assert!(!status.contains(secret), "{secret} printed: {status}");
    }
    let _ = ann;
}

#[test]
fn a_flood_of_bad_tokens_logs_a_bounded_number_of_requests() {
    let jg = start(None);
    let mut scim = Scim::new(&jg);
    scim.token = "wrong-token-wrong-token-wrong".into();
    for _ in 0..150 {
        let status = scim.get("/Users").status;
        assert!(status == 401 || status == 429, "{status}");
    }
    // The IdP's own requests are still logged.
    scim.token = SCIM_TOKEN.into();
    assert_eq!(scim.get("/Users").status, 200);
    let logged = logged_requests(&jg, |l| l.iter().any(|r| r.token_label.is_some()));
    let refused = logged.iter().filter(|r| r.token_label.is_none()).count();
    assert_eq!(
        refused,
        jitgate::telemetry::scim_log::REFUSED_PER_MINUTE as usize,
        "refused requests are logged at most this many a minute"
    );
    assert!(logged.iter().any(|r| r.status == 429));
    assert_eq!(logged[0].token_label.as_deref(), Some("scim token 1"));
}

#[test]
fn the_directory_works_the_same_on_postgresql() {
    let db = ScratchDb::create();
    let jg = start(Some(db.url.clone()));
    let scim = Scim::new(&jg);
    let ann = scim.create_user("ann@example.com", "00u1");
    assert_scim_error(
        &scim.post("/Users", okta_user("Ann@Example.com", "00u7", true)),
        409,
        Some("uniqueness"),
    );
    let group = scim.create_group("Engineering", &[&ann]);
    assert_eq!(scim.delete(&format!("/Users/{ann}")).status, 204);
    assert_eq!(scim.members(&group), Vec::<String>::new());
}

#[test]
fn scim2_tester_finds_no_errors() {
    let jg = start(None);
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/tests/scim/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "run `bash scripts/install-deps.sh` first: it installs scim2-tester into tests/scim/.venv"
    );
    let output = Command::new(python)
        .arg(format!("{root}/tests/scim/check.py"))
        .arg(jg.auth_url("/.jitgate/scim/v2"))
        .arg(SCIM_TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "scim2-tester found errors:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}
