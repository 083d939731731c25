//! Purpose-based, time-bound elevated access: requests, approvals, expiry to the
//! millisecond, revocation, the API's refusals, and the operator commands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::jitgate_command;
use support::{echoed_headers, sign_in, Browser, Jitgate, Options, ALICE, BOB, MALLORY};

/// alice: engineering + wiki-admins (auto-approved, and an approver);
/// bob: support (must be approved); mallory: outsiders (needs two approvers for exports).
const POLICY: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {UPSTREAM}
identity:
  headers:
    X-Forwarded-User: preferred_username
grants:
  wiki-admin:
    max_duration: 1h
    ticket_pattern: 'INC-[0-9]+'
    requesters: { groups: [engineering, support] }
    approval:
      auto: { groups: [wiki-admins] }
      approvers: { groups: [engineering] }
    headers: { X-Forwarded-Roles: admin }
  wiki-export:
    max_duration: 10m
    purpose_required: true
    requesters: { groups: [outsiders] }
    approval:
      approvers: { groups: [engineering, support] }
      required: 2
routes:
  - path: /admin/**
    allow: { groups: [engineering, support] }
    elevate: wiki-admin
  - path: /export/**
    allow: { groups: [outsiders] }
    elevate: wiki-export
  - path: /**
    allow: { groups: [engineering, support] }
"#;

fn start() -> Jitgate {
    Jitgate::start(Options {
        policy: Some(POLICY.to_string()),
        ..Options::default()
    })
}

fn api(jg: &Jitgate, path: &str) -> String {
    jg.app_url(&format!("/.jitgate/api/grants{path}"))
}

fn json_of(page: &support::Page) -> Value {
    serde_json::from_str(&page.body).unwrap_or_else(|_| panic!("not JSON: {page:?}"))
}

fn ask(browser: &Browser, jg: &Jitgate, body: Value) -> (u16, Value) {
    let page = browser.post_json(&api(jg, ""), &body);
    (page.status, json_of(&page))
}

fn decide(browser: &Browser, jg: &Jitgate, id: &str, what: &str) -> (u16, Value) {
    let page = browser.post_json(&api(jg, &format!("/{id}/{what}")), &json!({}));
    (page.status, json_of(&page))
}

#[test]
fn approval_by_another_user_opens_the_elevated_route_and_revoke_closes_it() {
    let jg = start();
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    let page = bob.get(&jg.app_url("/admin/settings"));
    assert_eq!(page.status, 403);
    assert!(page.body.contains("wiki-admin"), "{}", page.body);
    assert!(jg.has_audit("elevation_denied"));

    let (status, grant) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-admin", "purpose": "fix the sidebar", "ticket": "INC-1234", "duration": "30m"}),
    );
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["status"], "pending");
    let id = grant["id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.get(&jg.app_url("/admin/settings")).status,
        403,
        "pending is not active"
    );

    // Bob cannot approve his own request.
    let (status, answer) = decide(&bob, &jg, &id, "approve");
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("your own"),
        "{answer}"
    );

    // Alice (engineering) sees it in her queue and approves it.
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/"), &ALICE);
    let queue = json_of(&alice.get_json(&api(&jg, "")));
    assert!(
        queue["to_decide"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == id.as_str()),
        "{queue}"
    );
    let (status, grant) = decide(&alice, &jg, &id, "approve");
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["status"], "active");

    let page = bob.get_json(&jg.app_url("/admin/settings"));
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(echoed_headers(&page)["x-forwarded-roles"], json!(["admin"]));
    // A spoofed copy of the grant header never reaches the app without a grant.
    let spoofed = alice.get_with(&jg.app_url("/docs"), &[("X-Forwarded-Roles", "admin")]);
    assert!(echoed_headers(&spoofed).get("x-forwarded-roles").is_none());

    let mine = json_of(&bob.get_json(&api(&jg, "")));
    let left = mine["mine"][0]["seconds_left"].as_i64().unwrap();
    assert!(left > 1700 && left <= 1800, "{mine}");

    // Bob ends it early himself: the very next request is refused.
    let (status, grant) = decide(&bob, &jg, &id, "revoke");
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["status"], "revoked");
    assert_eq!(bob.get(&jg.app_url("/admin/settings")).status, 403);
    for kind in [
        "grant_requested",
        "grant_approved",
        "grant_activated",
        "grant_first_used",
        "grant_revoked",
    ] {
        assert!(jg.has_audit(kind), "{kind}");
    }
}

#[test]
fn a_grant_serves_requests_until_expires_at_and_not_one_after() {
    let jg = start();
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/"), &ALICE);
    // Alice is in wiki-admins: approved by the policy itself.
    let (status, grant) = ask(
        &alice,
        &jg,
        json!({"type": "wiki-admin", "purpose": "rotate keys", "ticket": "INC-7", "duration": "2s"}),
    );
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["status"], "active");
    let expires_at = grant["expires_at_ms"].as_i64().unwrap();
    let until = |ms: i64| {
        let now = jitgate::util::clock::now_ms();
        if ms > now {
            std::thread::sleep(Duration::from_millis((ms - now) as u64));
        }
    };
    // Just before expires_at: served (the cache holds the grant the whole time).
    until(expires_at - 300);
    let before = Instant::now();
    let page = alice.get_json(&jg.app_url("/admin/x"));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        before.elapsed() < Duration::from_millis(250),
        "the check itself was slow"
    );
    // Just after: refused, although the cache entry (re-read every second) may still hold it.
    until(expires_at + 20);
    assert_eq!(alice.get(&jg.app_url("/admin/x")).status, 403);
    assert!(jg.has_audit("grant_expired"));
}

#[test]
fn two_approvers_are_needed_and_each_counts_once() {
    let jg = start();
    let mallory = jg.browser();
    // She may use /export only with an active grant.
    let chain = mallory.login(&jg.app_url("/export/"), &MALLORY);
    assert_eq!(chain.last().unwrap().status, 403);
    let (status, grant) = ask(
        &mallory,
        &jg,
        json!({"type": "wiki-export", "purpose": "quarterly audit export", "duration": "5m"}),
    );
    assert_eq!(status, 201, "{grant}");
    let id = grant["id"].as_str().unwrap().to_string();

    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/"), &ALICE);
    let (_, g) = decide(&alice, &jg, &id, "approve");
    assert_eq!(g["status"], "pending", "one of two");
    let (status, g) = decide(&alice, &jg, &id, "approve");
    assert_eq!(status, 400, "{g}");
    assert!(g["error"].as_str().unwrap().contains("already"), "{g}");
    assert_eq!(mallory.get(&jg.app_url("/export/q3")).status, 403);

    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    let (_, g) = decide(&bob, &jg, &id, "approve");
    assert_eq!(g["status"], "active", "{g}");
    assert_eq!(mallory.get_json(&jg.app_url("/export/q3")).status, 200);
}

#[test]
fn bad_requests_are_refused_with_a_clear_message() {
    let jg = start();
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    let cases = [
        (
            json!({"type": "wiki-admin", "purpose": "x", "ticket": "INC-1", "duration": "2h"}),
            400,
            "longer than the 1h",
        ),
        (
            json!({"type": "wiki-admin", "purpose": "x", "ticket": "JIRA-1", "duration": "30m"}),
            400,
            "does not match INC-[0-9]+",
        ),
        (
            json!({"type": "wiki-admin", "purpose": "x", "duration": "30m"}),
            400,
            "ticket matching",
        ),
        (
            json!({"type": "wiki-admin", "purpose": " ", "ticket": "INC-1", "duration": "30m"}),
            400,
            "purpose",
        ),
        (
            json!({"type": "wiki-admin", "purpose": "x", "ticket": "INC-1", "duration": "soon"}),
            400,
            "duration",
        ),
        (
            json!({"type": "wiki-export", "purpose": "x", "duration": "5m"}),
            403,
            "may not ask",
        ),
        (
            json!({"type": "root", "purpose": "x", "duration": "5m"}),
            404,
            "no grant type",
        ),
    ];
    for (body, status, message) in cases {
        let (got, answer) = ask(&bob, &jg, body.clone());
        assert_eq!(got, status, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(error.contains(message), "{body} -> {answer}");
        assert!(answer["request_id"].is_string());
    }
    // Not JSON: refused before anything else (a cross-site form cannot send JSON).
    let page = bob.post_form(&api(&jg, ""), &[("type".into(), "wiki-admin".into())]);
    assert_eq!(page.status, 415);
    // Not signed in.
    let stranger = jg.browser();
    assert_eq!(stranger.post_json(&api(&jg, ""), &json!({})).status, 401);
}

#[test]
fn operators_list_and_revoke_grants_from_the_command_line() {
    let jg = start();
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    let (_, grant) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-admin", "purpose": "incident", "ticket": "INC-9", "duration": "10m"}),
    );
    let id = grant["id"].as_str().unwrap().to_string();
    let config = jg.dir.path().join("jitgate.yaml");
    let config = config.to_str().unwrap();

    let out = jitgate_command(&["grants", "list", "--config", config, "--status", "pending"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&id) && listed.contains("INC-9") && listed.contains("1 grant(s)"),
        "{listed}"
    );

    let out = jitgate_command(&["grants", "approve", "--config", config, &id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("now active"),
        "{out:?}"
    );
    assert_eq!(bob.get_json(&jg.app_url("/admin/")).status, 200);

    let out = jitgate_command(&["grants", "revoke", "--config", config, &id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("now revoked"),
        "{out:?}"
    );
    // Another process changed it: this replica re-reads within a second.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(bob.get(&jg.app_url("/admin/")).status, 403);
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..].split('"').next().unwrap().to_string()
}

#[test]
fn the_access_pages_work_without_javascript_and_refuse_forged_forms() {
    let jg = start();
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    // The refusal links to the request form, with the type chosen.
    let denied = bob.get(&jg.app_url("/admin/"));
    assert!(
        denied.body.contains("/.jitgate/access?type=wiki-admin"),
        "{}",
        denied.body
    );
    let portal = bob.get(&jg.app_url("/.jitgate/access?type=wiki-admin"));
    assert_eq!(portal.status, 200);
    assert!(
        portal
            .body
            .contains("<option value=\"wiki-admin\" selected>"),
        "{}",
        portal.body
    );
    let csrf = csrf_of(&portal.body);
    let form = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    // Without the token, or with another's: refused, nothing created.
    let forged = bob.post_form(
        &jg.app_url("/.jitgate/access/request"),
        &form(&[
            ("type", "wiki-admin"),
            ("purpose", "x"),
            ("ticket", "INC-1"),
            ("duration", "30m"),
        ]),
    );
    assert_eq!(forged.status, 403);
    // Even with the right token, a POST from another site's page is refused.
    let cross_site = bob.post_form_with(
        &jg.app_url("/.jitgate/access/request"),
        &form(&[
            ("csrf", &csrf),
            ("type", "wiki-admin"),
            ("purpose", "x"),
            ("ticket", "INC-1"),
            ("duration", "30m"),
        ]),
        &[("origin", "https://evil.example")],
    );
    assert_eq!(cross_site.status, 403);

    // A refused request comes back with the reason.
    let chain = bob.follow_from(bob.post_form(
        &jg.app_url("/.jitgate/access/request"),
        &form(&[
            ("csrf", &csrf),
            ("type", "wiki-admin"),
            ("purpose", "fix"),
            ("ticket", "nope"),
            ("duration", "30m"),
        ]),
    ));
    assert!(
        chain
            .last()
            .unwrap()
            .body
            .contains("does not match INC-[0-9]+"),
        "{:?}",
        chain.last()
    );

    let chain = bob.follow_from(bob.post_form(
        &jg.app_url("/.jitgate/access/request"),
        &form(&[
            ("csrf", &csrf),
            ("type", "wiki-admin"),
            ("purpose", "fix the sidebar"),
            ("ticket", "INC-42"),
            ("duration", "20m"),
        ]),
    ));
    let page = chain.last().unwrap();
    assert!(page.body.contains("waiting for approval"), "{}", page.body);
    assert!(page.body.contains("fix the sidebar"));

    // Alice's queue shows it; she approves with her own token.
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/"), &ALICE);
    let queue = alice.get(&jg.app_url("/.jitgate/access"));
    assert!(
        queue.body.contains("asks for <b>wiki-admin</b>"),
        "{}",
        queue.body
    );
    let id = queue
        .body
        .split("data-grant=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // Bob's token does not work for Alice.
    let wrong = alice.post_form(
        &jg.app_url(&format!("/.jitgate/access/{id}/approve")),
        &form(&[("csrf", &csrf)]),
    );
    assert_eq!(wrong.status, 403);
    let chain = alice.follow_from(alice.post_form(
        &jg.app_url(&format!("/.jitgate/access/{id}/approve")),
        &form(&[("csrf", &csrf_of(&queue.body))]),
    ));
    assert!(
        chain
            .last()
            .unwrap()
            .body
            .contains("approved: it is active now"),
        "{:?}",
        chain.last()
    );
    assert_eq!(bob.get(&jg.app_url("/admin/")).status, 200);

    // Bob sees the time left and ends it early.
    let mine = bob.get(&jg.app_url("/.jitgate/access"));
    assert!(mine.body.contains("min left"), "{}", mine.body);
    bob.follow_from(bob.post_form(
        &jg.app_url(&format!("/.jitgate/access/{id}/revoke")),
        &form(&[("csrf", &csrf_of(&mine.body))]),
    ));
    assert_eq!(bob.get(&jg.app_url("/admin/")).status, 403);
}

#[test]
fn a_session_on_one_app_cannot_see_or_decide_another_apps_grants() {
    let jg = start();
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    let (_, grant) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-admin", "purpose": "p", "ticket": "INC-5", "duration": "10m"}),
    );
    let id = grant["id"].as_str().unwrap().to_string();
    // Asking for another app from this host is refused.
    let (status, answer) = ask(
        &bob,
        &jg,
        json!({"app": "grafana", "type": "x", "purpose": "p", "duration": "5m"}),
    );
    assert_eq!(status, 400, "{answer}");
    // A body that is not an object is a clear 400, not a crash.
    let page = bob.post_json(&api(&jg, ""), &json!([1, 2]));
    assert_eq!(page.status, 400);
    // A grafana grant (made straight in the store) cannot be decided from wiki's host.
    let store = jg.gate().store.clone();
    let original = id.clone();
    jg.block_on(async move {
        let mut g = store.get_grant(&original).await.unwrap().unwrap();
        g.id = format!("{original}-other");
        g.app = "grafana".into();
        store.insert_grant(&g).await.unwrap();
    });
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/"), &ALICE);
    let (status, answer) = decide(&alice, &jg, &format!("{id}-other"), "approve");
    assert_eq!(status, 404, "{answer}");
    let queue = json_of(&alice.get_json(&api(&jg, "")));
    assert!(
        queue["to_decide"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["app"] == "wiki"),
        "{queue}"
    );
}

#[test]
fn a_revoke_on_one_replica_is_enforced_by_another_within_a_second() {
    use support::legacy_app::LegacyApp;
    use support::process::TwoReplicas;

    // The app only serves users with an account: give bob one.
    let app = LegacyApp::start("unused-token");
    app.state.seed("bob", "viewer");
    // Bob's group is approved by the policy itself, so one API call makes an active grant.
    let policy = POLICY.replace("{UPSTREAM}", &app.origin()).replace(
        "auto: { groups: [wiki-admins] }",
        "auto: { groups: [wiki-admins, support] }",
    );
    let two = TwoReplicas::start(&policy);
    let browsers = &two.browsers;
    let url = |i: usize, path: &str| two.url(i, path);
    for (i, b) in browsers.iter().enumerate() {
        sign_in(b, &url(i, "/"), &BOB);
    }
    let grant = json_of(&browsers[0].post_json(
        &url(0, "/.jitgate/api/grants"),
        &json!({"type": "wiki-admin", "purpose": "incident", "ticket": "INC-77", "duration": "30m"}),
    ));
    assert_eq!(grant["status"], "active", "{grant}");
    let id = grant["id"].as_str().unwrap();
    for (i, b) in browsers.iter().enumerate() {
        assert_eq!(
            b.get_json(&url(i, "/admin/")).status,
            200,
            "replica {i} serves the grant"
        );
    }
    // Replica 1 has the grant cached now (a cache entry lives 5 s on PostgreSQL). Revoke it
    // on replica 0: replica 1 must refuse within a second, which only the notification gives.
    let revoked = browsers[0].post_json(
        &url(0, &format!("/.jitgate/api/grants/{id}/revoke")),
        &json!({}),
    );
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let started = Instant::now();
    loop {
        let status = browsers[1].get(&url(1, "/admin/")).status;
        if status == 403 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica 1 still served the revoked grant after 1 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "revoke reached the other replica in {:?}",
        started.elapsed()
    );
}

#[test]
fn when_the_store_is_unreachable_elevated_routes_fail_closed_and_ordinary_routes_keep_working() {
    use support::process::ScratchDb;
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::stderr)
        .try_init();

    let db = ScratchDb::create();
    let jg = Jitgate::start(Options {
        policy: Some(POLICY.to_string()),
        store: Some(db.url.clone()),
        ..Options::default()
    });
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/"), &ALICE);
    let (status, grant) = ask(
        &alice,
        &jg,
        json!({"type": "wiki-admin", "purpose": "outage drill", "ticket": "INC-9", "duration": "30m"}),
    );
    assert_eq!(
        (status, grant["status"].as_str()),
        (201, Some("active")),
        "{grant}"
    );
    assert_eq!(alice.get(&jg.app_url("/admin/")).status, 200);

    // PostgreSQL goes away. The grant is cached, but a cache that cannot be refreshed must
    // not keep elevated access open: within a few seconds /admin/ answers 503, while the
    // ordinary route, which needs only the cached session, answers 200 on every request.
    db.cut_off();
    let started = Instant::now();
    let refused = loop {
        let ordinary = alice.get(&jg.app_url("/"));
        assert_eq!(
            ordinary.status, 200,
            "an ordinary route failed while the store was down: {ordinary:?}"
        );
        let page = alice.get(&jg.app_url("/admin/"));
        if page.status == 503 {
            break page;
        }
        assert_eq!(page.status, 200, "{page:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "elevated access still served 15 s into the outage"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "elevated route refused {:?} into the outage",
        started.elapsed()
    );
    let request_id = refused.headers.get("x-request-id").expect("a request id");
    assert!(
        refused.body.contains(request_id.as_str()),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("cannot reach its store"),
        "{}",
        refused.body
    );
    // And so it stays for longer than the test config's `revalidate_after` (1 s), past
    // which a cached session would normally be re-read from the store.
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(2500) {
        let ordinary = alice.get(&jg.app_url("/"));
        assert_eq!(ordinary.status, 200, "{ordinary:?}");
        assert_eq!(alice.get(&jg.app_url("/admin/")).status, 503);
        std::thread::sleep(Duration::from_millis(100));
    }

    // The store is back: the same grant serves again, with no restart.
    db.restore();
    let started = Instant::now();
    while alice.get(&jg.app_url("/admin/")).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "elevated access did not come back after the outage"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A wiki whose accounts jitgate provisions, with a grant that makes the user admin in the
/// app itself while it lasts (`app_calls`), and back when it ends.
const TWO_LAYER: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {ORIGIN}
identity:
  headers:
    X-Forwarded-User: preferred_username
roles:
  support: viewer
provisioning:
  api: {ORIGIN}/api
  auth: { bearer: { file: {TOKEN_FILE} } }
  lookup:
    method: GET
    url: /users?username={{ user.username }}
    account_id: /0/id
  create:
    method: POST
    url: /users
    body: { username: "{{ user.username }}", role: "{{ role | default('viewer') }}" }
    account_id: /id
  operations:
    make-admin:
      method: PUT
      url: /users/{{ account.id }}
      body: { role: admin }
    drop-admin:
      method: PUT
      url: /users/{{ account.id }}
      body: { role: "{{ role | default('viewer') }}" }
grants:
  wiki-admin:
    max_duration: 1h
    purpose_required: true
    requesters: { groups: [support] }
    approval:
      auto: { groups: [support] }
    app_calls: { start: make-admin, end: drop-admin }
routes:
  - path: /**
    allow: { groups: [support] }
"#;

fn role_of(app: &support::legacy_app::LegacyApp, user: &str) -> String {
    app.state
        .accounts()
        .into_iter()
        .find(|a| a.username == user)
        .map(|a| a.role)
        .unwrap_or_default()
}

fn wait_for_role(app: &support::legacy_app::LegacyApp, user: &str, role: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while role_of(app, user) != role {
        assert!(
            Instant::now() < deadline,
            "{user} never became {role} (is {})",
            role_of(app, user)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_app_side_role_follows_the_grant_and_the_end_call_survives_a_restart() {
    use support::legacy_app::LegacyApp;
    const TOKEN: &str = "two-layer-admin-token";
    let app = LegacyApp::start(TOKEN);
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let store = format!("sqlite://{}/shared.db", work.path().display());
    let policy = TWO_LAYER
        .replace("{ORIGIN}", &app.origin())
        .replace("{TOKEN_FILE}", &token_file.display().to_string());
    let options = || Options {
        policy: Some(policy.clone()),
        store: Some(store.clone()),
        ..Options::default()
    };

    // At expiry, with jitgate running: admin in the app while the grant lasts, then back.
    let jg = Jitgate::start(options());
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    assert_eq!(
        role_of(&app, "bob"),
        "viewer",
        "first sight created bob's account"
    );
    let (status, grant) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-admin", "purpose": "fix it", "duration": "2s"}),
    );
    assert_eq!(status, 201, "{grant}");
    wait_for_role(&app, "bob", "admin", Duration::from_secs(2));
    wait_for_role(&app, "bob", "viewer", Duration::from_secs(5));
    assert!(jg.has_audit("grant_app_call"));

    // Across a restart: the grant ends while no jitgate runs; the next one makes the call.
    let (_, grant) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-admin", "purpose": "again", "duration": "2s"}),
    );
    let expires_at = grant["expires_at_ms"].as_i64().unwrap();
    wait_for_role(&app, "bob", "admin", Duration::from_secs(2));
    drop(bob);
    drop(jg);
    let now = jitgate::util::clock::now_ms();
    if expires_at + 500 > now {
        std::thread::sleep(Duration::from_millis((expires_at + 500 - now) as u64));
    }
    assert_eq!(
        role_of(&app, "bob"),
        "admin",
        "nobody has made the end call yet"
    );
    let _again = Jitgate::start(options());
    wait_for_role(&app, "bob", "viewer", Duration::from_secs(5));
}

#[test]
fn a_websocket_through_an_elevated_route_is_closed_when_the_grant_ends() {
    use std::io::{Read, Write};
    use support::upgrade_app::UpgradeApp;

    let app = UpgradeApp::start();
    let jg = Jitgate::start(Options {
        policy: Some(POLICY.replace("{UPSTREAM}", &app.origin())),
        ..Options::default()
    });
    let alice = jg.browser();
    let chain = alice.login(&jg.app_url("/"), &ALICE);
    let cookie = support::session_cookie(&chain);
    let (status, grant) = ask(
        &alice,
        &jg,
        json!({"type": "wiki-admin", "purpose": "live console", "ticket": "INC-3", "duration": "2s"}),
    );
    assert_eq!(status, 201, "{grant}");
    let expires_at = grant["expires_at_ms"].as_i64().unwrap();

    let mut ws = open_upgrade(jg.port, &cookie);
    let mut buf = [0u8; 1024];
    // While the grant lasts, bytes flow both ways.
    ws.write_all(b"ping").unwrap();
    let n = ws.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    // Then stay idle: jitgate closes the connection when the grant ends, not 60 s later.
    let closed = loop {
        match ws.read(&mut buf) {
            Ok(0) | Err(_) => break jitgate::util::clock::now_ms(),
            Ok(_) => {}
        }
    };
    assert!(
        closed >= expires_at,
        "closed {} ms before the grant ended",
        expires_at - closed
    );
    assert!(
        closed - expires_at < 1_500,
        "closed {} ms after the grant ended",
        closed - expires_at
    );
    // A revoke: the next bytes on a connection opened under the grant end it.
    let (_, grant) = ask(
        &alice,
        &jg,
        json!({"type": "wiki-admin", "purpose": "live console", "ticket": "INC-4", "duration": "30m"}),
    );
    let id = grant["id"].as_str().unwrap().to_string();
    let mut ws = open_upgrade(jg.port, &cookie);
    ws.write_all(b"ping").unwrap();
    let n = ws.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    let (status, _) = decide(&alice, &jg, &id, "revoke");
    assert_eq!(status, 200);
    let _ = ws.write_all(b"after revoke");
    // Nothing comes back (not the app's echo): the connection is closed.
    let mut rest = Vec::new();
    let _ = ws.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "bytes after the revoke: {}",
        String::from_utf8_lossy(&rest)
    );
}

/// Opens a WebSocket upgrade to jitgate with a session cookie; panics unless it gets 101.
fn open_upgrade(port: u16, cookie: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut ws = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        ws,
        "GET /admin/console HTTP/1.1\r\nHost: wiki.example.test\r\nCookie: jitgate_session={cookie}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match ws.read(&mut buf) {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        // Close our end first so that stopping jitgate does not wait on this connection.
        let _ = ws.shutdown(std::net::Shutdown::Both);
        panic!("no upgrade: {head}");
    }
    ws
}

/// TWO_LAYER with a leaver call and a second grant type that needs an approver.
fn leaver_policy(origin: &str, token_file: &std::path::Path) -> String {
    TWO_LAYER
        .replace(
            "  operations:\n",
            "  deactivate:\n    method: DELETE\n    url: /users/{{ account.id }}\n  operations:\n",
        )
        .replace(
            "routes:\n",
            "  wiki-owner:\n    max_duration: 1h\n    purpose_required: true\n    \
             requesters: { groups: [support] }\n    approval:\n      approvers: { groups: [engineering] }\n\
             routes:\n",
        )
        .replace("{ORIGIN}", origin)
        .replace("{TOKEN_FILE}", &token_file.display().to_string())
}

/// The stand-in app, jitgate with [`leaver_policy`], and bob signed in (his account made).
fn leaver_setup() -> (
    support::legacy_app::LegacyApp,
    tempfile::TempDir,
    Jitgate,
    Browser,
) {
    const TOKEN: &str = "leaver-admin-token";
    let app = support::legacy_app::LegacyApp::start(TOKEN);
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let jg = Jitgate::start(Options {
        policy: Some(leaver_policy(&app.origin(), &token_file)),
        ..Options::default()
    });
    let bob = jg.browser();
    sign_in(&bob, &jg.app_url("/"), &BOB);
    (app, work, jg, bob)
}

#[test]
fn a_deactivated_user_loses_every_grant_and_cannot_get_new_ones() {
    let (app, _work, jg, bob) = leaver_setup();
    let (status, active) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-admin", "purpose": "INC-7 clean-up", "duration": "30m"}),
    );
    assert_eq!((status, active["status"].as_str()), (201, Some("active")));
    wait_for_role(&app, "bob", "admin", Duration::from_secs(2));
    let (status, pending) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-owner", "purpose": "ownership", "duration": "30m"}),
    );
    assert_eq!((status, pending["status"].as_str()), (201, Some("pending")));

    // The leaver, by an operator, with a reason.
    let config = jg.dir.path().join("jitgate.yaml");
    let out = jitgate_command(&[
        "accounts",
        "deactivate",
        "--config",
        config.to_str().unwrap(),
        "--app",
        "wiki",
        "--user",
        "bob",
        "--reason",
        "left the company (HR-4411)",
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("1 grant(s) revoked") && said.contains("1 request(s) denied"),
        "{said}"
    );
    // The end call ran at once: bob is no longer admin in the app, and inactive there.
    assert_eq!(role_of(&app, "bob"), "viewer");
    let account = app
        .state
        .accounts()
        .into_iter()
        .find(|a| a.username == "bob")
        .unwrap();
    assert!(!account.active);
    let store = jg.gate().store.clone();
    let (a, p) = (
        active["id"].as_str().unwrap(),
        pending["id"].as_str().unwrap(),
    );
    let status_of = |id: &str| {
        let (store, id) = (store.clone(), id.to_string());
        jg.block_on(async move { store.get_grant(&id).await })
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(status_of(a), "revoked");
    assert_eq!(status_of(p), "denied");
    // Who and why are in the audit trail.
    let operator = format!(
        "operator:{}",
        std::env::var("USER").unwrap_or("unknown".into())
    );
    let events = {
        let store = store.clone();
        jg.block_on(async move { store.recent_audit(100).await })
            .unwrap()
    };
    let detail = |kind: &str| -> Value {
        let e = events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        serde_json::from_str(&e.detail).unwrap()
    };
    assert_eq!(detail("account_deactivated")["by"], json!(operator));
    assert_eq!(
        detail("account_deactivated")["reason"],
        json!("left the company (HR-4411)")
    );
    assert_eq!(
        detail("grant_revoked")["reason"],
        json!("left the company (HR-4411)")
    );
    assert_eq!(detail("grant_revoked")["by"], json!(operator));
    assert_eq!(
        detail("grant_denied")["reason"],
        json!("left the company (HR-4411)")
    );
    assert_eq!(detail("grant_denied")["by"], json!(operator));
    // Nothing is left to end: running the command again says so and changes nothing.
    let again = jitgate_command(&[
        "accounts",
        "deactivate",
        "--config",
        config.to_str().unwrap(),
        "--app",
        "wiki",
        "--user",
        "bob",
        "--reason",
        "again",
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already deactivated"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The IdP still signs bob in; the app stays closed and no grant can be had.
    let again = jg.browser();
    let chain = again.login(&jg.app_url("/"), &BOB);
    assert_eq!(chain.last().unwrap().status, 403, "{:?}", chain.last());
    let app_updates = app.state.calls("update");
    let (status, refused) = ask(
        &again,
        &jg,
        json!({"type": "wiki-admin", "purpose": "once more", "duration": "30m"}),
    );
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("deactivated"),
        "{refused}"
    );
    assert!(refused["request_id"].is_string(), "{refused}");
    // The portal refuses the same way.
    let portal = again.get(&jg.app_url("/.jitgate/access?type=wiki-admin"));
    let form: Vec<(String, String)> = [
        ("csrf", csrf_of(&portal.body)),
        ("type", "wiki-admin".to_string()),
        ("purpose", "portal".to_string()),
        ("ticket", String::new()),
        ("duration", "30m".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let page = again.post_form(&jg.app_url("/.jitgate/access/request"), &form);
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.body.contains("deactivated"), "{}", page.body);
    assert!(jg.has_audit("grant_refused"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        app.state.calls("update"),
        app_updates,
        "no start call reached the app"
    );
    assert_eq!(role_of(&app, "bob"), "viewer");
}

#[test]
fn a_pending_request_cannot_be_approved_once_the_account_is_deactivated() {
    let (app, _work, jg, bob) = leaver_setup();
    let (status, pending) = ask(
        &bob,
        &jg,
        json!({"type": "wiki-owner", "purpose": "ownership", "duration": "30m"}),
    );
    assert_eq!(status, 201, "{pending}");
    let id = pending["id"].as_str().unwrap().to_string();
    // The account is marked deactivated, as a leaver does first (the grant steps come after
    // it, so for a moment a request is still pending).
    let store = jg.gate().store.clone();
    let sub = BOB.sub.to_string();
    let iss = {
        let store = store.clone();
        jg.block_on(async move { store.list_accounts("wiki").await })
            .unwrap()
            .into_iter()
            .find(|a| a.sub == sub)
            .unwrap()
            .iss
    };
    {
        let (store, iss, sub) = (store.clone(), iss.clone(), BOB.sub.to_string());
        jg.block_on(async move {
            let key = jitgate::store::AccountKey {
                app: "wiki",
                iss: &iss,
                sub: &sub,
            };
            store
                .deactivate_account(key, jitgate::util::clock::now_secs())
                .await
        })
        .unwrap();
    }
    // alice (engineering, an approver) is signed in; the app's pages are for support only.
    let alice = jg.browser();
    alice.login(&jg.app_url("/"), &ALICE);
    let (status, refused) = decide(&alice, &jg, &id, "approve");
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("deactivated"),
        "{refused}"
    );
    let grant = {
        let store = store.clone();
        jg.block_on(async move { store.get_grant(&id).await })
            .unwrap()
            .unwrap()
    };
    assert_eq!(grant.status, "pending", "not activated");
    assert!(jg.has_audit("grant_refused"));
    assert_eq!(role_of(&app, "bob"), "viewer");
}
