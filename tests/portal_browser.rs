//! The access portal in a real browser: headless Chromium (Debian's `chromium`, driven by
//! npm `playwright-core` from `tests/browser/package-lock.json`) walks request -> approval
//! by another user -> access -> expiry -> denied. `scripts/install-deps.sh` installs both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{Jitgate, Options, ALICE, APP_HOST, BOB};

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
    requesters: { groups: [support] }
    approval:
      approvers: { groups: [wiki-admins] }
    headers: { X-Forwarded-Roles: admin }
routes:
  - path: /admin/**
    allow: { groups: [engineering, support] }
    elevate: wiki-admin
  - path: /**
    allow: { groups: [engineering, support] }
"#;

#[test]
fn chromium_walks_request_approval_access_and_expiry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs tests/browser installed and Debian's chromium: run scripts/install-deps.sh"
    );
    let jg = Jitgate::start(Options {
        policy: Some(POLICY.to_string()),
        ..Options::default()
    });
    let out = Command::new("node")
        .arg(dir.join("portal.mjs"))
        .env("APP", format!("http://{APP_HOST}:{}", jg.port))
        .env("APP_HOST", APP_HOST)
        .env("BOB", format!("{}:{}", BOB.login, BOB.password))
        .env("ALICE", format!("{}:{}", ALICE.login, ALICE.password))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PORTAL_OK"),
        "browser walk failed:\n{stdout}\n{stderr}"
    );
    for kind in [
        "grant_requested",
        "grant_approved",
        "grant_activated",
        "grant_first_used",
        "grant_expired",
        "elevation_denied",
    ] {
        assert!(jg.has_audit(kind), "{kind}");
    }
}
