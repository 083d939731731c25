//! The connector's `list`: the accounts that really exist in the app, read page by page (by
//! page number until an empty page, or by the cursor each answer names), through
//! `jitgate accounts test --op list`, with the policy's bounds enforced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::legacy_app::LegacyApp;
use support::process::jitgate_command;
use support::{Jitgate, Options};

const TOKEN: &str = "legacy-admin-token-91c3d0";

const POLICY: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {ORIGIN}
provisioning:
  api: {API}
  auth: { bearer: { file: {TOKEN_FILE} } }
  timeout: 1s
  create:
    method: POST
    url: /users
    body: { username: "{{ user.username }}" }
    account_id: /id
  list:
    {LIST}
    account_id: /id
    fields: { username: /login, role: /role, elevated: /admin, active: /active }
    max_pages: {MAX_PAGES}
routes:
  - path: /**
    allow: { groups: [engineering] }
"#;

const BY_PAGE: &str =
    "url: /users/pages?page={{ page }}\n    items: /users\n    next: { page: true }";
const BY_CURSOR: &str = "url: \"/users/cursor{% if cursor %}?after={{ cursor }}{% endif %}\"\n    items: /data\n    next: { cursor: /next }";

/// Runs `accounts test --op list` against an app with five accounts (one an admin); returns
/// whether it succeeded, what it printed, and how many listing calls the app received.
fn list_with(paging: &str, max_pages: u32) -> (bool, String, usize) {
    let template = POLICY
        .replace("{LIST}", paging)
        .replace("{MAX_PAGES}", &max_pages.to_string());
    let (app, policy, _dir) = LegacyApp::start_with_policy(TOKEN, &template);
    for (name, role) in [
        ("ann", "admin"),
        ("ben", "editor"),
        ("cid", "viewer"),
        ("dee", "viewer"),
        ("eve", "viewer"),
    ] {
        app.state.seed(name, role);
    }
    let jg = Jitgate::start(Options {
        policy: Some(policy),
        ..Options::default()
    });
    let config = jg.dir.path().join("jitgate.yaml");
    let out = jitgate_command(&[
        "accounts",
        "test",
        "--config",
        config.to_str().unwrap(),
        "--app",
        "wiki",
        "--op",
        "list",
    ]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed, app.state.calls("list"))
}

#[test]
fn every_account_is_read_by_page_and_by_cursor() {
    for (paging, calls) in [(BY_PAGE, 4), (BY_CURSOR, 3)] {
        let (ok, printed, made) = list_with(paging, 100);
        assert!(ok, "{printed}");
        assert!(printed.contains("5 account(s) in wiki"), "{printed}");
        for name in ["ann", "ben", "cid", "dee", "eve"] {
            assert!(printed.contains(name), "{name} missing: {printed}");
        }
        let ann = printed.lines().find(|l| l.contains("ann")).unwrap();
        assert!(ann.contains("admin") && ann.contains("yes"), "{ann}");
        // Pages of two: three full or partial pages, plus the empty one that ends page paging.
        assert_eq!(made, calls, "{printed}");
    }
}

#[test]
fn a_listing_past_max_pages_fails_instead_of_returning_part_of_the_app() {
    let (ok, printed, made) = list_with(BY_PAGE, 2);
    assert!(!ok, "{printed}");
    assert!(printed.contains("more than max_pages (2)"), "{printed}");
    assert_eq!(made, 2);
}
