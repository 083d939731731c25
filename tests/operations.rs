//! Running jitgate: policy reload without restart, metrics and health on the admin listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use jitgate::ops::reload::{reload_now, ReloadOutcome};
use support::{Jitgate, Options, ALICE, BOB};

fn wait_for_status(browser: &support::Browser, url: &str, status: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if browser.get_json(url).status == status {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn changed_policy_files_apply_without_restart_and_bad_ones_are_refused() {
    let jg = Jitgate::start(Options::default());
    let bob = jg.browser();
    support::sign_in(&bob, &jg.app_url("/"), &BOB);
    let alice = jg.browser();
    support::sign_in(&alice, &jg.app_url("/"), &ALICE);

    // Support loses access: the file watcher picks up the change, no restart.
    let policy = std::fs::read_to_string(jg.policies_dir().join("wiki.yaml")).unwrap();
    let stricter = policy.replace("groups: [engineering, support]", "groups: [engineering]");
    assert_ne!(policy, stricter);
    std::fs::write(jg.policies_dir().join("wiki.yaml"), &stricter).unwrap();
    assert!(
        wait_for_status(&bob, &jg.app_url("/"), 403),
        "reload not applied"
    );
    assert_eq!(alice.get_json(&jg.app_url("/")).status, 200);

    // A broken file changes nothing: the previous set stays in force, problems are reported.
    std::fs::write(
        jg.policies_dir().join("broken.yaml"),
        "app: broken\nhosts: [x.example.test]\nroutes: nope\n",
    )
    .unwrap();
    match reload_now(jg.gate()) {
        ReloadOutcome::Rejected { problems } => {
            assert!(
                problems.iter().any(|p| p.contains("broken.yaml:")),
                "{problems:?}"
            )
        }
        other => panic!("broken policies were applied: {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(alice.get_json(&jg.app_url("/")).status, 200);
    assert_eq!(bob.get_json(&jg.app_url("/")).status, 403);

    let metrics = jg
        .browser()
        .get(&format!("http://127.0.0.1:{}/metrics", jg.admin_port));
    assert!(
        metrics
            .body
            .contains("jitgate_policy_reloads_total{result=\"applied\"}"),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains("jitgate_policy_reloads_total{result=\"rejected\"}"));
}

#[test]
fn admin_listener_serves_health_and_metrics() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    support::sign_in(&browser, &jg.app_url("/"), &ALICE);
    browser.get_json(&jg.app_url("/again"));

    let admin = format!("http://127.0.0.1:{}", jg.admin_port);
    let health = browser.get(&format!("{admin}/healthz"));
    assert_eq!(health.status, 200);
    let health: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(health["store"], "ok");
    assert_eq!(health["idp"], "ok");

    let metrics = browser.get(&format!("{admin}/metrics")).body;
    for expected in [
        "jitgate_requests_total{app=\"wiki\",outcome=\"forwarded\"}",
        "jitgate_decisions_total{app=\"wiki\",result=\"allow\"}",
        "jitgate_logins_total{result=\"success\"} 1",
        "jitgate_session_cache_total{result=\"hit\"}",
        "jitgate_decision_seconds_bucket",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    // The admin listener is not the proxy: app paths are not served there.
    assert_eq!(browser.get(&format!("{admin}/")).status, 404);
}
