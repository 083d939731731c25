//! Joiners ahead of sign-in: with `provisioning.ahead: true`, an active directory user whom
//! the app's routes let in gets their account as soon as the directory says so, before they
//! ever sign in. Their first sign-in then finds it (no second account), and a leaver who
//! never signed in loses it like anyone else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::directory::{push_group_at, scim_at, within};
use support::legacy_app::{Account, LegacyApp};
use support::{sign_in, Jitgate, Options, TestUser, ALICE, BOB};

const TOKEN: &str = "legacy-admin-token-5be0a7";

const POLICY: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {ORIGIN}
identity:
  headers:
    X-Forwarded-User: preferred_username
roles:
  engineering: editor
  support: viewer
provisioning:
  ahead: true
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
      email: "{{ claims.email | default('') }}"
      role: "{{ role | default('viewer') }}"
    account_id: /id
  update:
    method: PUT
    url: /users/{{ account.id }}
    body:
      role: "{{ role | default('viewer') }}"
      active: true
  deactivate:
    method: DELETE
    url: /users/{{ account.id }}
routes:
  - path: /**
    allow: { groups: [engineering, support] }
"#;

/// A directory user as Okta pushes one: userName is the login, externalId the IdP's `sub`.
fn push(base: &str, user: &TestUser) -> String {
    let created = scim_at(
        base,
        "POST",
        "/Users",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user.login,
            "externalId": user.sub,
            "emails": [{ "value": format!("{}@example.test", user.login), "primary": true }],
            "active": true
        }),
    );
    created["id"].as_str().unwrap().to_string()
}

fn joiner_jobs_done(jg: &Jitgate) -> usize {
    let store = jg.gate().store.clone();
    jg.block_on(async move { store.list_lifecycle_jobs(&["done"], 100).await })
        .unwrap()
        .iter()
        .filter(|j| j.kind == "joiner")
        .count()
}

fn accounts_of(app: &LegacyApp, username: &str) -> Vec<Account> {
    app.state
        .accounts()
        .into_iter()
        .filter(|a| a.username == username)
        .collect()
}

#[test]
fn an_active_directory_user_the_routes_allow_gets_an_account_before_signing_in() {
    let (app, policy, _dir) = LegacyApp::start_with_policy(TOKEN, POLICY);
    let jg = Jitgate::start(Options {
        policy: Some(policy),
        scim: true,
        ..Options::default()
    });
    let base = jg.auth_url("/.jitgate/scim/v2");

    // In the directory but in no group the routes name: no account (its joiner job ran and
    // found nothing to do).
    let alice_id = push(&base, &ALICE);
    within(Duration::from_secs(5), "the joiner job ran", || {
        joiner_jobs_done(&jg) >= 1
    });
    assert!(accounts_of(&app, "alice").is_empty());

    // A group that opens the wiki: the account comes, with the mapped role and the
    // directory's email, without a sign-in.
    push_group_at(&base, "engineering", &[&alice_id]);
    let took = within(Duration::from_secs(5), "alice's account ahead", || {
        !accounts_of(&app, "alice").is_empty()
    });
    println!(
        "joiner: account created {} ms after the group push",
        took.as_millis()
    );
    let made = accounts_of(&app, "alice");
    assert_eq!(made[0].role, "editor");
    assert_eq!(made[0].email, "alice@example.test");
    assert!(jg.has_audit("directory_joiner"));

    // Her first sign-in finds that account: no second create, one record in jitgate.
    let creates = app.state.calls("create");
    let chain = sign_in(&jg.browser(), &jg.app_url("/home"), &ALICE);
    assert_eq!(chain.last().unwrap().status, 200);
    assert_eq!(
        app.state.calls("create"),
        creates,
        "the sign-in created nothing"
    );
    let store = jg.gate().store.clone();
    let records = jg
        .block_on(async move { store.list_accounts("wiki").await })
        .unwrap();
    assert_eq!(
        records.iter().filter(|r| r.sub == ALICE.sub).count(),
        1,
        "{records:?}"
    );

    // Bob joins straight into a group and leaves before ever signing in: his account goes.
    let bob_id = push(&base, &BOB);
    push_group_at(&base, "support", &[&bob_id]);
    within(Duration::from_secs(5), "bob's account ahead", || {
        accounts_of(&app, "bob").first().is_some_and(|a| a.active)
    });
    scim_at(
        &base,
        "PATCH",
        &format!("/Users/{bob_id}"),
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "value": { "active": false } }]
        }),
    );
    within(Duration::from_secs(5), "bob's account deactivated", || {
        accounts_of(&app, "bob").first().is_some_and(|a| !a.active)
    });
}
