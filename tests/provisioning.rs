//! JIT provisioning against a stand-in legacy app that only serves users with an account:
//! first sight, concurrency (one process and two processes on one PostgreSQL), 409, movers,
//! failures, the circuit breaker, leavers and the `accounts` commands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::legacy_app::LegacyApp;
use support::process::{jitgate_command, TwoReplicas};
use support::{sign_in, Browser, Jitgate, Options, ALICE, BOB};

const TOKEN: &str = "legacy-admin-token-5f2c9e";

/// The wiki policy with a connector to the stand-in app. `{LOOKUP}` and `{UPDATE}` are
/// replaced so that tests can use a connector with or without a lookup.
const POLICY: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {ORIGIN}
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Email: email
roles:
  wiki-admins: admin
  engineering: editor
  support: viewer
provisioning:
  api: {API}
  auth: { bearer: { file: {TOKEN_FILE} } }
  timeout: 1s
  retries: 1
{LOOKUP}
  create:
    method: POST
    url: /users
    body:
      username: "{{ user.username }}"
      email: "{{ claims.email | default('') }}"
      role: "{{ role | default('viewer') }}"
    account_id: /id
{UPDATE}
  deactivate:
    method: DELETE
    url: {DEACTIVATE}
routes:
  - path: /private/**
    allow: { users: [nobody] }
  - path: /**
    allow: { groups: [engineering, support] }
"#;

const WITH_LOOKUP: &str = "  lookup:
    method: GET
    url: /users?username={{ user.username }}
    account_id: /0/id";

const UPDATE_BY_ID: &str = "  update:
    method: PUT
    url: /users/{{ account.id }}
    body:
      email: \"{{ claims.email | default('') }}\"
      role: \"{{ role | default('viewer') }}\"
      active: true";

struct Setup {
    app: LegacyApp,
    jg: Jitgate,
    _token_dir: tempfile::TempDir,
}

fn policy(app: &LegacyApp, token_file: &std::path::Path, lookup: &str, update: &str) -> String {
    // Without a lookup the account id of an existing account is unknown: address it by name.
    let deactivate = if lookup.is_empty() {
        "/users/by-username/{{ user.username }}"
    } else {
        "/users/{{ account.id }}"
    };
    POLICY
        .replace("{DEACTIVATE}", deactivate)
        .replace("{ORIGIN}", &app.origin())
        .replace("{API}", &app.api())
        .replace("{TOKEN_FILE}", &token_file.display().to_string())
        .replace("{LOOKUP}", lookup)
        .replace("{UPDATE}", update)
}

fn token_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wiki-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    (dir, path)
}

fn setup_with(lookup: &str, update: &str) -> Setup {
    let app = LegacyApp::start(TOKEN);
    let (dir, file) = token_file();
    let jg = Jitgate::start(Options {
        policy: Some(policy(&app, &file, lookup, update)),
        ..Options::default()
    });
    Setup {
        app,
        jg,
        _token_dir: dir,
    }
}

fn setup() -> Setup {
    setup_with(WITH_LOOKUP, UPDATE_BY_ID)
}

fn account_json(page: &support::Page) -> Value {
    let v: Value = serde_json::from_str(&page.body)
        .unwrap_or_else(|_| panic!("not an app page: {} {}", page.status, page.body));
    v["account"].clone()
}

fn stored_accounts(jg: &Jitgate) -> Vec<jitgate::store::AccountRecord> {
    let store = jg.gate().store.clone();
    jg.block_on(async move { store.list_accounts("wiki").await })
        .unwrap()
}

/// Signs in with a first page that no route allows, so the session exists but the app has
/// not been asked for anything yet.
fn signed_in_without_first_request(browser: &Browser, url: &str, user: &support::TestUser) {
    let chain = browser.login(url, user);
    assert_eq!(chain.last().unwrap().status, 403, "{:?}", chain.last());
}

#[test]
fn first_sight_creates_the_account_through_the_api_then_forwards() {
    let s = setup();
    let browser = s.jg.browser();
    let chain = sign_in(&browser, &s.jg.app_url("/home"), &ALICE);
    let account = account_json(chain.last().unwrap());
    assert_eq!(account["username"], "alice");
    assert_eq!(
        account["role"], "admin",
        "wiki-admins maps to admin, listed first"
    );
    assert_eq!(account["email"], "alice@example.test");
    assert_eq!(s.app.state.calls("lookup"), 1);
    assert_eq!(s.app.state.calls("create"), 1);
    assert_eq!(s.app.state.calls("unauthorized"), 0);
    assert!(s
        .app
        .state
        .authorizations
        .lock()
        .unwrap()
        .iter()
        .all(|a| *a == format!("Bearer {TOKEN}")));

    // Later requests are cache hits: no more API calls.
    for _ in 0..5 {
        assert_eq!(browser.get_json(&s.jg.app_url("/page")).status, 200);
    }
    assert_eq!(s.app.state.calls("lookup") + s.app.state.calls("create"), 2);

    let records = stored_accounts(&s.jg);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].sub, ALICE.sub);
    assert_eq!(records[0].account_id, account["id"].to_string());
    assert!(s.jg.has_audit("account_created"));
    assert!(s.jg.has_audit("provisioning_call"));
}

#[test]
fn fifty_concurrent_first_requests_create_exactly_one_account() {
    let s = setup();
    s.app.state.delay_ms.store(300, Ordering::SeqCst);
    let browser = s.jg.browser();
    signed_in_without_first_request(&browser, &s.jg.app_url("/private/x"), &ALICE);
    assert_eq!(s.app.state.calls("create"), 0);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let browser = &browser;
                let url = s.jg.app_url(&format!("/page/{i}"));
                scope.spawn(move || browser.get_json(&url).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(s.app.state.calls("create"), 1);
    assert_eq!(s.app.state.calls("create_conflict"), 0);
    assert_eq!(s.app.state.accounts().len(), 1);
}

#[test]
fn an_account_that_already_exists_409_is_linked_then_updated() {
    // No lookup: create answers 409, and the update addresses the user by name.
    let update_by_name = "  update:
    method: PUT
    url: /users/by-username/{{ user.username }}
    body:
      role: \"{{ role | default('viewer') }}\"";
    let s = setup_with("", update_by_name);
    s.app.state.seed("alice", "viewer");
    let browser = s.jg.browser();
    let chain = sign_in(&browser, &s.jg.app_url("/home"), &ALICE);
    let account = account_json(chain.last().unwrap());
    assert_eq!(account["role"], "admin", "the existing account was updated");
    assert_eq!(s.app.state.calls("create_conflict"), 1);
    assert_eq!(s.app.state.calls("create"), 0);
    assert_eq!(s.app.state.calls("update"), 1);
    assert_eq!(s.app.state.accounts().len(), 1, "no duplicate account");
    assert!(s.jg.has_audit("account_linked"));
}

#[test]
fn changed_groups_update_the_account_before_the_request_is_forwarded() {
    let s = setup();
    let first = s.jg.browser();
    let chain = sign_in(&first, &s.jg.app_url("/home"), &ALICE);
    assert_eq!(account_json(chain.last().unwrap())["role"], "admin");

    // The directory takes alice out of wiki-admins; her next login carries new claims.
    // (Login times are kept in seconds: keep the two logins apart.)
    std::thread::sleep(Duration::from_millis(1_100));
    s.jg.idp
        .as_ref()
        .unwrap()
        .set_groups(ALICE.login, &["engineering"]);
    let second = s.jg.browser();
    let chain = sign_in(&second, &s.jg.app_url("/home"), &ALICE);
    assert_eq!(account_json(chain.last().unwrap())["role"], "editor");
    assert_eq!(s.app.state.calls("update"), 1);
    assert_eq!(s.app.state.calls("create"), 1, "still one account");
    assert!(s.jg.has_audit("account_updated"));

    // Logging in again with the same claims changes nothing.
    let third = s.jg.browser();
    sign_in(&third, &s.jg.app_url("/home"), &ALICE);
    assert_eq!(s.app.state.calls("update"), 1);

    // The first session still carries the old (admin) claims. Once its cached account
    // expires (revalidate_after: 1 s) it is checked again, but older claims never undo what
    // a newer login sent: no update, and the app keeps the editor role.
    std::thread::sleep(Duration::from_millis(1_200));
    let page = first.get_json(&s.jg.app_url("/home"));
    assert_eq!(account_json(&page)["role"], "editor");
    assert_eq!(s.app.state.calls("update"), 1);

    // Back into wiki-admins: a new login carries the same claims as the first session, but
    // it is newer than what the app has, so it updates the app (the first session's
    // "nothing to do" only vouches for sessions older than the editor login).
    std::thread::sleep(Duration::from_millis(1_100));
    s.jg.idp
        .as_ref()
        .unwrap()
        .set_groups(ALICE.login, &["engineering", "wiki-admins"]);
    let fourth = s.jg.browser();
    let chain = sign_in(&fourth, &s.jg.app_url("/home"), &ALICE);
    assert_eq!(account_json(chain.last().unwrap())["role"], "admin");
    assert_eq!(s.app.state.calls("update"), 2);
}

#[test]
fn app_api_down_gives_a_503_page_then_succeeds_once_it_is_back_with_one_account() {
    let s = setup();
    s.app.state.failing.store(true, Ordering::SeqCst);
    let browser = s.jg.browser();
    let chain = browser.login(&s.jg.app_url("/home"), &ALICE);
    let page = chain.last().unwrap();
    assert_eq!(page.status, 503, "{page:?}");
    assert!(
        page.body.contains("Your account on wiki is being set up"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Request id"), "{}", page.body);
    assert!(!page.body.contains(TOKEN));
    assert!(stored_accounts(&s.jg).is_empty(), "no half-written record");
    assert_eq!(s.app.state.calls("failed"), 2, "one attempt and one retry");

    s.app.state.failing.store(false, Ordering::SeqCst);
    let page = browser.get_json(&s.jg.app_url("/home"));
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(s.app.state.calls("create"), 1);
    assert_eq!(s.app.state.accounts().len(), 1);
    assert!(s.jg.has_audit("provisioning_failed"));
}

#[test]
fn during_a_store_outage_known_accounts_keep_working_and_new_ones_wait_for_the_store() {
    use support::process::ScratchDb;
    let db = ScratchDb::create();
    let app = LegacyApp::start(TOKEN);
    let (_token_dir, file) = token_file();
    let jg = Jitgate::start(Options {
        policy: Some(policy(&app, &file, WITH_LOOKUP, UPDATE_BY_ID)),
        store: Some(db.url.clone()),
        ..Options::default()
    });
    let alice = jg.browser();
    let chain = sign_in(&alice, &jg.app_url("/home"), &ALICE);
    assert_eq!(account_json(chain.last().unwrap())["username"], "alice");
    let bob = jg.browser();
    signed_in_without_first_request(&bob, &jg.app_url("/private/x"), &BOB);

    // PostgreSQL goes away for longer than the tests' `revalidate_after` (1 s), past which
    // a cached account is normally confirmed again in the store.
    db.cut_off();
    let outage = Instant::now();
    let mut served = 0;
    while outage.elapsed() < Duration::from_millis(2500) {
        let page = alice.get_json(&jg.app_url("/page"));
        assert_eq!(page.status, 200, "a known account was refused: {page:?}");
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{served} requests served during the outage");
    // Bob has a session but no account yet: that needs the store, so he waits for it.
    let page = bob.get_json(&jg.app_url("/page"));
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.body.contains("Request id"), "{}", page.body);
    assert_eq!(
        app.state.calls("create"),
        1,
        "nothing created without the store"
    );

    db.restore();
    let back = Instant::now();
    loop {
        let page = bob.get_json(&jg.app_url("/page"));
        if page.status == 200 {
            assert_eq!(account_json(&page)["username"], "bob");
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "bob's account was not set up after the outage: {page:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(app.state.calls("create"), 2);
    assert_eq!(alice.get_json(&jg.app_url("/page")).status, 200);
}

#[test]
fn a_slow_app_api_times_out_into_the_same_503_page() {
    let s = setup();
    s.app.state.delay_ms.store(1_500, Ordering::SeqCst);
    let browser = s.jg.browser();
    let started = Instant::now();
    let chain = browser.login(&s.jg.app_url("/home"), &ALICE);
    let page = chain.last().unwrap();
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.body.contains("being set up"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "timeouts are bounded"
    );
    assert!(stored_accounts(&s.jg).is_empty());
    s.app.state.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(browser.get_json(&s.jg.app_url("/home")).status, 200);
}

#[test]
fn an_unexpected_refusal_gives_a_502_page_an_audit_event_and_a_metric() {
    let s = setup();
    s.app.state.create_status.store(422, Ordering::SeqCst);
    let browser = s.jg.browser();
    let chain = browser.login(&s.jg.app_url("/home"), &ALICE);
    let page = chain.last().unwrap();
    assert_eq!(page.status, 502, "{page:?}");
    assert!(page.body.contains("wiki refused to set up your account"));
    assert_eq!(
        s.app.state.calls("create_refused"),
        1,
        "a 4xx is not retried"
    );
    assert!(s.jg.has_audit("provisioning_failed"));
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", s.jg.admin_port))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("jitgate_provisioning_errors_total{app=\"wiki\",reason=\"refused\"} 1"),
        "{metrics}"
    );
}

#[test]
fn repeated_failures_pause_calls_to_the_app_api_and_the_page_says_so() {
    let s = setup();
    s.app.state.failing.store(true, Ordering::SeqCst);
    let browser = s.jg.browser();
    browser.login(&s.jg.app_url("/home"), &ALICE);
    // Two attempts per request: the breaker opens after five failures in a row.
    let mut last = browser.get_json(&s.jg.app_url("/home"));
    last = if last.body.contains("paused") {
        last
    } else {
        browser.get_json(&s.jg.app_url("/home"))
    };
    assert_eq!(last.status, 503);
    assert!(
        last.body.contains("has paused calls to it for"),
        "{}",
        last.body
    );
    let calls = s.app.state.calls("failed");
    assert_eq!(calls, 5);
    for _ in 0..3 {
        let page = browser.get_json(&s.jg.app_url("/home"));
        assert!(page.body.contains("paused"));
    }
    assert_eq!(s.app.state.calls("failed"), calls, "no calls while paused");
}

#[test]
fn accounts_commands_list_test_and_deactivate() {
    let s = setup();
    let browser = s.jg.browser();
    sign_in(&browser, &s.jg.app_url("/home"), &ALICE);
    let other = s.jg.browser();
    sign_in(&other, &s.jg.app_url("/home"), &BOB);
    let config = s.jg.dir.path().join("jitgate.yaml");
    let config = config.to_str().unwrap();

    let out = jitgate_command(&["accounts", "list", "--config", config, "--app", "wiki"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.contains("alice") && listed.contains("bob") && listed.contains("2 account(s)"),
        "{listed}"
    );
    // Without --app: every app's accounts, with the app named on each line.
    let out = jitgate_command(&["accounts", "list", "--config", config]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("wiki ")).count(),
        2,
        "{listed}"
    );
    assert!(listed.contains("2 account(s) in 1 app(s)"), "{listed}");

    // `test` prints the requests with the token masked, and sends nothing.
    let claims = s.jg.dir.path().join("carol.json");
    std::fs::write(
        &claims,
        r#"{"sub": "u-carol", "preferred_username": "carol", "email": "carol@example.test", "groups": ["support"]}"#,
    )
    .unwrap();
    let claims = claims.to_str().unwrap();
    let before = s.app.state.calls("lookup") + s.app.state.calls("create");
    let out = jitgate_command(&[
        "accounts", "test", "--config", config, "--app", "wiki", "--claims", claims,
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("POST {}/users", s.app.api())),
        "{printed}"
    );
    assert!(printed.contains("authorization: Bearer ****"), "{printed}");
    assert!(printed.contains("\"role\": \"viewer\""), "{printed}");
    assert!(!printed.contains(TOKEN));
    assert_eq!(
        s.app.state.calls("lookup") + s.app.state.calls("create"),
        before
    );
    // With --send it runs lookup and create against the app and shows the answers.
    let out = jitgate_command(&[
        "accounts", "test", "--config", config, "--app", "wiki", "--claims", claims, "--send",
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("-> HTTP 201"), "{printed}");
    assert!(printed.contains("account id:"), "{printed}");
    assert!(!printed.contains(TOKEN));

    // Leaver: the app deactivates the account, alice's sessions end, the record is marked.
    let out = jitgate_command(&[
        "accounts",
        "deactivate",
        "--config",
        config,
        "--app",
        "wiki",
        "--user",
        "alice",
        "--reason",
        "left the company",
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 session(s) ended"), "{said}");
    assert_eq!(s.app.state.calls("deactivate"), 1);
    let alice = s
        .app
        .state
        .accounts()
        .into_iter()
        .find(|a| a.username == "alice")
        .unwrap();
    assert!(!alice.active);
    let record = stored_accounts(&s.jg)
        .into_iter()
        .find(|r| r.sub == ALICE.sub)
        .unwrap();
    assert!(record.deactivated_at.is_some());
    assert!(s.jg.has_audit("account_deactivated"));

    // Within `revalidate_after` (1 s here) the running proxy sees the ended session; after
    // signing in again alice is refused, and jitgate does not quietly re-create her account.
    std::thread::sleep(Duration::from_millis(1_500));
    let page = browser.get_json(&s.jg.app_url("/home"));
    assert_eq!(page.status, 302, "the session ended: {page:?}");
    let again = s.jg.browser();
    let chain = again.login(&s.jg.app_url("/home"), &ALICE);
    let page = chain.last().unwrap();
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.body.contains("was deactivated"), "{}", page.body);
    assert_eq!(
        s.app.state.calls("create"),
        3,
        "alice, bob and carol (--send); no re-create"
    );

    // Reactivate: the next visit finds the account in the app and updates it (active again).
    let out = jitgate_command(&[
        "accounts",
        "reactivate",
        "--config",
        config,
        "--app",
        "wiki",
        "--user",
        "alice",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let updates = s.app.state.calls("update");
    std::thread::sleep(Duration::from_millis(1_200));
    let page = again.get_json(&s.jg.app_url("/home"));
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(s.app.state.calls("update"), updates + 1);
    assert_eq!(
        s.app.state.calls("create"),
        3,
        "found by lookup, not created again"
    );
    assert!(s.jg.has_audit("account_reactivated"));
    // Bob is untouched.
    assert_eq!(other.get_json(&s.jg.app_url("/home")).status, 200);
}

#[test]
fn two_jitgate_processes_on_one_postgres_create_one_account_and_never_log_the_token() {
    let app = LegacyApp::start(TOKEN);
    app.state.delay_ms.store(300, Ordering::SeqCst);
    let (_token_dir, token_file) = token_file();
    let two = TwoReplicas::start(&policy(&app, &token_file, WITH_LOOKUP, UPDATE_BY_ID));
    let (replicas, browsers) = (&two.replicas, &two.browsers);
    let url = |i: usize, path: &str| two.url(i, path);
    for (i, b) in browsers.iter().enumerate() {
        signed_in_without_first_request(b, &url(i, "/private/x"), &ALICE);
    }
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|n| {
                let i = n % 2;
                let browser = &browsers[i];
                let target = url(i, &format!("/page/{n}"));
                scope.spawn(move || browser.get_json(&target).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        app.state.calls("create"),
        1,
        "one account across both replicas"
    );
    assert_eq!(app.state.calls("create_conflict"), 0);
    assert_eq!(app.state.accounts().len(), 1);
    for r in replicas {
        let logs = r.logs();
        assert!(
            logs.contains("provisioning_call") || logs.contains("account"),
            "debug logs were captured"
        );
        assert!(
            !logs.contains(TOKEN),
            "the admin token appeared in the logs"
        );
    }
}
