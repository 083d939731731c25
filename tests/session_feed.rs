//! Ended sessions reach every replica at once: with PostgreSQL a session deleted by one
//! replica (here by the user's logout) is announced with NOTIFY, and every other replica drops
//! it from its cache within a second, long before its `revalidate_after` would re-read it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::legacy_app::LegacyApp;
use support::process::TwoReplicas;
use support::{session_cookie, sign_in, ALICE, WIKI_POLICY};

#[test]
fn a_logout_on_one_replica_is_enforced_by_another_within_a_second() {
    // The app only serves users with an account: give alice one.
    let app = LegacyApp::start("unused-token");
    app.state.seed("alice", "viewer");
    let policy = WIKI_POLICY.replace("{UPSTREAM}", &app.origin());
    // A minute: only the announcement can explain replica 1 refusing the session sooner.
    let two = TwoReplicas::start_revalidating_after(&policy, "60s");
    let url = |i: usize, path: &str| two.url(i, path);

    // Alice signs in through replica 0; the same cookie then reaches replica 1 (as behind a
    // load balancer), which reads the session from the store and caches it.
    let chain = sign_in(&two.browsers[0], &url(0, "/"), &ALICE);
    let cookie = format!("jitgate_session={}", session_cookie(&chain));
    let through_1 = || two.browsers[1].get_with(&url(1, "/"), &[("cookie", &cookie)]);
    assert_eq!(through_1().status, 200, "replica 1 serves the session");
    assert_eq!(
        through_1().status,
        200,
        "replica 1 serves it from its cache"
    );

    // Alice signs out through replica 0.
    let out = two.browsers[0].get(&url(0, "/.jitgate/logout"));
    assert_eq!(out.status, 302, "{out:?}");
    let started = Instant::now();
    let refused = loop {
        let page = through_1();
        if page.status != 200 {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica 1 still served the ended session after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let location = refused.location.as_deref().unwrap_or_default();
    assert!(
        refused.status == 302 && location.contains("/.jitgate/login"),
        "replica 1 refused the ended session after {took:?}, but not with a sign-in: {refused:?}"
    );
    println!("the logout reached the other replica in {took:?}");
}
