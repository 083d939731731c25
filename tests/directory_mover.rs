//! A mover pushed over SCIM, end to end: the directory's groups replace the token's at
//! sign-in, and when a group loses a member (or goes) the edge stops the routes it opened
//! within 1 s without a new login (on every replica), grants the user may no longer request
//! are revoked, and the app account's mapped role is updated through the connector.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::json;
use support::directory::{push_group_at, push_user_at, remove_member, scim_at, within};
use support::legacy_app::LegacyApp;
use support::process::TwoReplicas;
use support::{echoed_headers, sign_in, Jitgate, Options, ALICE, SCIM_TOKEN};

const TOKEN: &str = "legacy-admin-token-2f9c1b";

const POLICY: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {ORIGIN}
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Groups: groups
    X-Forwarded-Email: email
roles:
  engineering: editor
  support: viewer
provisioning:
  api: {API}
  auth: { bearer: { file: {TOKEN_FILE} } }
  timeout: 1s
  retries: 1
  lookup:
    method: GET
    url: /users?username={{ user.username }}
    account_id: /0/id
  create:
    method: POST
    url: /users
    body:
      username: "{{ user.username }}"
      role: "{{ role | default('viewer') }}"
    account_id: /id
  update:
    method: PUT
    url: /users/{{ account.id }}
    body:
      role: "{{ role | default('viewer') }}"
      email: "{{ claims.email | default('') }}"
      active: true
grants:
  wiki-admin:
    max_duration: 1h
    requesters: { groups: [engineering] }
    approval:
      auto: { groups: [engineering] }
      approvers: { groups: [engineering] }
routes:
  - path: /admin/**
    allow: { groups: [engineering] }
    elevate: wiki-admin
  - path: /eng/**
    allow: { groups: [engineering] }
  - path: /**
    allow: { groups: [engineering, support] }
"#;

fn app_and_policy() -> (LegacyApp, String, tempfile::TempDir) {
    LegacyApp::start_with_policy(TOKEN, POLICY)
}

fn app_role(app: &LegacyApp, username: &str) -> Option<String> {
    app.state
        .accounts()
        .iter()
        .find(|a| a.username == username)
        .map(|a| a.role.clone())
}

#[test]
fn a_removed_group_stops_its_routes_grants_and_app_role_without_a_new_login() {
    let (app, policy, _dir) = app_and_policy();
    let jg = Jitgate::start(Options {
        policy: Some(policy),
        scim: true,
        ..Options::default()
    });
    let base = jg.auth_url("/.jitgate/scim/v2");
    let alice_id = push_user_at(&base, &ALICE);
    // The IdP says engineering and wiki-admins; the directory says engineering and support.
    let engineering = push_group_at(&base, "engineering", &[&alice_id]);
    let support_group = push_group_at(&base, "support", &[&alice_id]);
    // Without `provisioning.ahead`, accounts stay JIT: none before the first sign-in, once
    // the jobs the pushes queued have all run.
    within(Duration::from_secs(5), "the queued jobs ran", || {
        let store = jg.gate().store.clone();
        let jobs = jg
            .block_on(async move { store.list_lifecycle_jobs(&[], 100).await })
            .unwrap();
        jobs.iter().filter(|j| j.kind == "mover").count() == 2
            && jobs.iter().all(|j| j.state == "done")
    });
    assert_eq!(app_role(&app, "alice"), None);
    let alice = jg.browser();
    let home = sign_in(&alice, &jg.app_url("/home"), &ALICE);
    let page = home.last().unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        echoed_headers(page)["x-forwarded-groups"],
        "engineering,support",
        "the directory's groups replace the token's at sign-in"
    );
    assert_eq!(app_role(&app, "alice").as_deref(), Some("editor"));
    let grant = alice.post_json(
        &jg.app_url("/.jitgate/api/grants"),
        &json!({ "type": "wiki-admin", "purpose": "INC-7", "duration": "30m" }),
    );
    assert_eq!(grant.status, 201, "{}", grant.body);
    assert_eq!(alice.get(&jg.app_url("/admin/x")).status, 200);
    assert_eq!(alice.get(&jg.app_url("/eng/x")).status, 200);

    scim_at(
        &base,
        "PATCH",
        &format!("/Groups/{engineering}"),
        remove_member(&alice_id),
    );
    let edge = within(Duration::from_secs(1), "the edge closes /eng", || {
        alice.get(&jg.app_url("/eng/x")).status == 403
    });
    let role = within(Duration::from_secs(5), "the app role follows", || {
        app_role(&app, "alice").as_deref() == Some("viewer")
    });
    println!(
        "mover: edge {} ms, app role {} ms after the PATCH returned",
        edge.as_millis(),
        role.as_millis()
    );
    // Still signed in, with her remaining group, and without the grant she may no longer ask.
    let home = alice.get(&jg.app_url("/home"));
    assert_eq!(home.status, 200);
    assert_eq!(echoed_headers(&home)["x-forwarded-groups"], "support");
    assert_eq!(alice.get(&jg.app_url("/admin/x")).status, 403);
    let store = jg.gate().store.clone();
    let grants = jg
        .block_on(async move { store.list_grants(Some("wiki"), None).await })
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].status, "revoked");
    let again = alice.post_json(
        &jg.app_url("/.jitgate/api/grants"),
        &json!({ "type": "wiki-admin", "purpose": "INC-8", "duration": "30m" }),
    );
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(jg.has_audit("mover"));

    // The last group goes: nothing on the wiki is open to her any more.
    let resp = Client::new()
        .delete(format!("{base}/Groups/{support_group}"))
        .bearer_auth(SCIM_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    within(Duration::from_secs(1), "the edge closes the wiki", || {
        alice.get(&jg.app_url("/home")).status == 403
    });
}

#[test]
fn a_removed_group_stops_its_route_on_every_replica_within_1s() {
    let (_app, policy, _dir) = app_and_policy();
    // Replicas trust a cached session for a minute: only the store's feed can explain 1 s.
    let pair = TwoReplicas::start_with(&policy, "60s", true);
    let base = format!(
        "http://127.0.0.1:{}/.jitgate/scim/v2",
        pair.replicas[0].port
    );
    let alice_id = push_user_at(&base, &ALICE);
    let engineering = push_group_at(&base, "engineering", &[&alice_id]);
    push_group_at(&base, "support", &[&alice_id]);
    for (i, browser) in pair.browsers.iter().enumerate() {
        let chain = sign_in(browser, &pair.url(i, "/eng/x"), &ALICE);
        assert_eq!(chain.last().unwrap().status, 200);
    }
    scim_at(
        &base,
        "PATCH",
        &format!("/Groups/{engineering}"),
        remove_member(&alice_id),
    );
    let patched = Instant::now();
    for (i, browser) in pair.browsers.iter().enumerate() {
        within(Duration::from_secs(1), "a replica closes /eng", || {
            browser.get(&pair.url(i, "/eng/x")).status == 403
        });
        let took = patched.elapsed();
        assert!(took < Duration::from_secs(1), "replica {i}: {took:?}");
        assert_eq!(browser.get(&pair.url(i, "/home")).status, 200);
        println!(
            "replica {i} applied the mover {} ms after the PATCH returned",
            took.as_millis()
        );
    }
}

#[test]
fn a_changed_email_reaches_the_edge_and_the_app_without_a_new_login() {
    let (app, policy, _dir) = app_and_policy();
    let jg = Jitgate::start(Options {
        policy: Some(policy),
        scim: true,
        ..Options::default()
    });
    let base = jg.auth_url("/.jitgate/scim/v2");
    let alice_id = push_user_at(&base, &ALICE);
    push_group_at(&base, "engineering", &[&alice_id]);
    let alice = jg.browser();
    let home = sign_in(&alice, &jg.app_url("/home"), &ALICE);
    assert_eq!(home.last().unwrap().status, 200);
    let email = |app: &LegacyApp| {
        app.state
            .accounts()
            .iter()
            .find(|a| a.username == "alice")
            .map(|a| a.email.clone())
    };
    assert_ne!(email(&app).as_deref(), Some("alice.new@example.test"));

    scim_at(
        &base,
        "PATCH",
        &format!("/Users/{alice_id}"),
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "emails",
                             "value": [{ "value": "alice.new@example.test", "primary": true }] }]
        }),
    );
    let edge = within(
        Duration::from_secs(1),
        "the edge sends the new email",
        || {
            let page = alice.get(&jg.app_url("/home"));
            echoed_headers(&page)["x-forwarded-email"] == "alice.new@example.test"
        },
    );
    let account = within(Duration::from_secs(5), "the app has the new email", || {
        email(&app).as_deref() == Some("alice.new@example.test")
    });
    println!(
        "email change: edge {} ms, app {} ms after the PATCH returned",
        edge.as_millis(),
        account.as_millis()
    );
    // Her groups are untouched by it.
    assert_eq!(alice.get(&jg.app_url("/eng/x")).status, 200);
}

#[test]
fn a_group_removed_between_sign_in_and_hand_off_is_not_carried_to_the_app_host() {
    let (_app, policy, _dir) = app_and_policy();
    let jg = Jitgate::start(Options {
        policy: Some(policy),
        scim: true,
        ..Options::default()
    });
    let base = jg.auth_url("/.jitgate/scim/v2");
    let alice_id = push_user_at(&base, &ALICE);
    let engineering = push_group_at(&base, "engineering", &[&alice_id]);
    push_group_at(&base, "support", &[&alice_id]);
    let alice = jg.browser();
    // Signed in at the auth host; the hand-off to the wiki's host is not followed yet.
    let chain = alice.login_until(&jg.app_url("/eng/x"), &ALICE, Some("/.jitgate/handoff"));
    let handoff = chain.last().unwrap().clone();
    assert!(handoff
        .location
        .as_deref()
        .unwrap_or("")
        .contains("/.jitgate/handoff"));

    scim_at(
        &base,
        "PATCH",
        &format!("/Groups/{engineering}"),
        remove_member(&alice_id),
    );
    within(Duration::from_secs(5), "the mover ran", || {
        let store = jg.gate().store.clone();
        jg.block_on(async move { store.list_lifecycle_jobs(&[], 100).await })
            .unwrap()
            .iter()
            .any(|j| j.kind == "mover" && j.state == "done" && j.reason.contains("groups"))
            && jg.has_audit("mover")
    });
    // The wiki's session is made from the auth session as it is now: engineering is gone.
    let landed = alice.follow_from(handoff);
    assert_eq!(landed.last().unwrap().status, 403, "{:?}", landed.last());
    let home = alice.get(&jg.app_url("/home"));
    assert_eq!(home.status, 200);
    assert_eq!(echoed_headers(&home)["x-forwarded-groups"], "support");
}
