//! Claims refresh (`session.refresh_claims`) against the real test IdP: a user removed at the
//! IdP loses every session within seconds, with an audit event, while other users keep
//! theirs; groups changed at the IdP apply as a mover (a `regroup` job) without a new login.
//! With two replicas on PostgreSQL, the refused user's sessions end on both, and neither
//! replica's debug log holds the refresh token. A login signed out through the IdP (whose
//! grant the IdP then revokes) is not redeemed again, so the user's other logins live on. A
//! refresh that outlived its lease records nothing and ends no session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use jitgate::auth::sealed::{RefreshSeal, SealedFor};
use jitgate::config::Secret;
use jitgate::lifecycle::claims_refresh::{Outcome, LEASE_MS};
use jitgate::ops::claims_refresh::refresher;
use jitgate::store::ClaimsRefreshRecord;
use jitgate::util::clock::now_ms;
use sqlx::{Connection, Row};
use support::legacy_app::LegacyApp;
use support::process::{write_config, Replica, ScratchDb};
use support::{
    echoed_headers, free_port, session_cookie, sign_in, Browser, IdpProcess, Jitgate, Options,
    Page, ALICE, APP_HOST, BOB, CLIENT_ID, CLIENT_SECRET, WIKI_POLICY,
};

fn start() -> Jitgate {
    Jitgate::start(Options {
        refresh_claims: Some("1s"),
        ..Options::default()
    })
}

/// Whether `page` is what a browser without a session gets: a redirect to sign in (not an
/// error, which would also be "not 200").
fn sent_to_sign_in(page: &Page) -> bool {
    page.status == 302
        && page
            .location
            .as_deref()
            .is_some_and(|l| l.contains("/.jitgate/login"))
}

/// Polls `done` every 20 ms for up to `limit`; returns how long it took.
fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `claims_refreshes_total{outcome}` as the admin listener exports it (0 when absent).
fn refreshes(jg: &Jitgate, outcome: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", jg.admin_port))
        .unwrap()
        .text()
        .unwrap();
    let series = format!("jitgate_claims_refreshes_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn a_user_removed_at_the_idp_loses_every_session_within_seconds() {
    let jg = start();
    let alice = jg.browser();
    let bob = jg.browser();
    // Refresh tokens are asked for the way Google needs (other IdPs ignore it).
    let carol = jg.browser();
    let login = carol.get(&jg.app_url("/")).location.unwrap_or_default();
    let authorize = carol.get(&login).location.unwrap_or_default();
    assert!(authorize.contains("access_type=offline"), "{authorize}");
    sign_in(&alice, &jg.app_url("/home"), &ALICE);
    sign_in(&bob, &jg.app_url("/home"), &BOB);
    // The tokens are redeemed at the IdP while nothing changes there.
    within(Duration::from_secs(5), "two refreshes", || {
        refreshes(&jg, "unchanged") >= 2
    });
    assert_eq!(alice.get(&jg.app_url("/home")).status, 200);

    jg.idp.as_ref().unwrap().remove_user(ALICE.login);
    let took = within(Duration::from_secs(5), "alice is sent to sign in", || {
        sent_to_sign_in(&alice.get(&jg.app_url("/home")))
    });
    println!(
        "removed at the IdP -> refused at the edge in {} ms (refresh_claims 1s)",
        took.as_millis()
    );
    assert!(jg.has_audit("claims_refresh_refused"));
    assert_eq!(refreshes(&jg, "refused"), 1);
    let store = jg.gate().store.clone();
    let left = jg
        .block_on(async move { store.recent_audit(50).await })
        .unwrap();
    let event = left
        .iter()
        .find(|e| e.kind == "claims_refresh_refused")
        .unwrap();
    assert_eq!(event.sub.as_deref(), Some(ALICE.sub));
    assert!(event.detail.contains("invalid_grant"), "{}", event.detail);
    assert!(
        event.detail.contains("\"sessions_ended\":2"),
        "{}",
        event.detail
    );
    // Bob keeps his session, and his refreshes go on.
    let before = refreshes(&jg, "unchanged");
    within(Duration::from_secs(5), "bob refreshed again", || {
        refreshes(&jg, "unchanged") > before
    });
    assert_eq!(bob.get(&jg.app_url("/home")).status, 200);
}

#[test]
fn groups_changed_at_the_idp_apply_as_a_mover() {
    let jg = start();
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/home"), &ALICE);
    assert_eq!(alice.get(&jg.app_url("/admin/x")).status, 200);

    // Out of wiki-admins, into support, at the IdP: no new login needed.
    jg.idp
        .as_ref()
        .unwrap()
        .set_groups(ALICE.login, &["support"]);
    let took = within(
        Duration::from_secs(5),
        "alice loses the admin pages",
        || alice.get(&jg.app_url("/admin/x")).status == 403,
    );
    println!(
        "groups changed at the IdP -> applied at the edge in {} ms (refresh_claims 1s)",
        took.as_millis()
    );
    let page = alice.get_json(&jg.app_url("/home"));
    assert_eq!(page.status, 200);
    assert_eq!(
        echoed_headers(&page)["x-forwarded-groups"],
        serde_json::json!(["support"])
    );
    assert!(jg.has_audit("mover"));

    let store = jg.gate().store.clone();
    let jobs = jg
        .block_on(async move { store.list_lifecycle_jobs(&[], 10).await })
        .unwrap();
    let regroups: Vec<_> = jobs.iter().filter(|j| j.kind == "regroup").collect();
    assert_eq!(regroups.len(), 1, "{jobs:?}");
    let subject: serde_json::Value = serde_json::from_str(&regroups[0].subject).unwrap();
    assert_eq!(subject["sub"], ALICE.sub);
    assert_eq!(subject["groups"], serde_json::json!(["support"]));
    assert_eq!(regroups[0].by, "claims refresh");
    assert_eq!(regroups[0].state, "done", "{:?}", regroups[0]);
    // Later refreshes see the same groups: no second job.
    let done = refreshes(&jg, "unchanged");
    within(Duration::from_secs(5), "another refresh", || {
        refreshes(&jg, "unchanged") > done
    });
    let store = jg.gate().store.clone();
    let jobs = jg
        .block_on(async move { store.list_lifecycle_jobs(&[], 10).await })
        .unwrap();
    assert_eq!(jobs.iter().filter(|j| j.kind == "regroup").count(), 1);
    assert_eq!(refreshes(&jg, "regrouped"), 1);
}

/// The refresh token jitgate holds for `sub` (there is one login), opened with the key the
/// replicas derive from the client secret.
fn stored_refresh_token(db_url: &str, sub: &str) -> (String, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (login_id, iss, sealed) = runtime.block_on(async {
        let mut db = sqlx::PgConnection::connect(db_url).await.unwrap();
        let row =
            sqlx::query("SELECT login_id, iss, refresh_token FROM claims_refresh WHERE sub = $1")
                .bind(sub)
                .fetch_one(&mut db)
                .await
                .unwrap();
        let column = |name: &str| row.try_get::<String, _>(name).unwrap();
        (column("login_id"), column("iss"), column("refresh_token"))
    });
    let seal = RefreshSeal::from_client_secret(&Secret::new(CLIENT_SECRET)).unwrap();
    let owner = SealedFor {
        iss: &iss,
        sub,
        login_id: &login_id,
    };
    let token = seal.open(&sealed, &owner).unwrap();
    (token, sealed)
}

#[test]
fn on_postgres_a_refused_refresh_ends_the_sessions_on_every_replica_and_no_log_holds_the_token() {
    // The replicas run as processes: the legacy app stands in for the echo upstream.
    let app = LegacyApp::start("unused-token");
    app.state.seed("alice", "viewer");
    let db = ScratchDb::create();
    let work = tempfile::tempdir().unwrap();
    let policies = work.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("wiki.yaml"),
        WIKI_POLICY.replace("{UPSTREAM}", &app.origin()),
    )
    .unwrap();
    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let idp = IdpProcess::start_for(&bases);
    let replicas: Vec<Replica> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            // A minute: only the store's announcement can end a cached session sooner.
            let dir = work.path().join(format!("r{i}"));
            let config = write_config(&dir, *port, &idp.issuer, &db.url, &policies, "60s", false);
            let text = std::fs::read_to_string(&config).unwrap();
            std::fs::write(
                &config,
                text.replace("session:\n", "session:\n  refresh_claims: 1s\n"),
            )
            .unwrap();
            Replica::start(&config, *port)
        })
        .collect();
    let url = |i: usize| format!("http://{APP_HOST}:{}/", ports[i]);
    let browsers = [Browser::new(ports[0], false), Browser::new(ports[1], false)];
    let chain = sign_in(&browsers[0], &url(0), &ALICE);
    let cookie = format!("jitgate_session={}", session_cookie(&chain));
    let through = |i: usize| browsers[i].get_with(&url(i), &[("cookie", &cookie)]);
    assert_eq!(through(1).status, 200, "replica 1 serves (and caches) it");

    // A few refreshes, wherever they run.
    std::thread::sleep(Duration::from_secs(3));
    let (token, sealed) = stored_refresh_token(&db.url, ALICE.sub);
    assert!(token.len() >= 20, "a real refresh token");
    idp.remove_user(ALICE.login);
    let took = within(
        Duration::from_secs(5),
        "both replicas send alice to sign in",
        || sent_to_sign_in(&through(0)) && sent_to_sign_in(&through(1)),
    );
    println!(
        "on PostgreSQL: removed at the IdP -> refused by both replicas in {} ms",
        took.as_millis()
    );
    let logs: Vec<String> = replicas.iter().map(Replica::logs).collect();
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("refused a claims refresh"))
            .count(),
        1,
        "one replica ran the refused refresh"
    );
    for log in &logs {
        assert!(log.contains("DEBUG"), "the replicas log at debug level");
        assert!(!log.contains(&token), "a replica logged the refresh token");
        assert!(!log.contains(&sealed), "a replica logged the sealed token");
    }
}

/// The refresh token of `sub`'s login that is no longer refreshed (ended), opened.
fn ended_login_token(db_url: &str, sub: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (login_id, iss, sealed) = runtime.block_on(async {
        let mut db = sqlx::PgConnection::connect(db_url).await.unwrap();
        let row = sqlx::query(
            "SELECT login_id, iss, refresh_token FROM claims_refresh \
             WHERE sub = $1 AND next_at_ms = $2",
        )
        .bind(sub)
        .bind(i64::MAX)
        .fetch_one(&mut db)
        .await
        .unwrap();
        let column = |name: &str| row.try_get::<String, _>(name).unwrap();
        (column("login_id"), column("iss"), column("refresh_token"))
    });
    let seal = RefreshSeal::from_client_secret(&Secret::new(CLIENT_SECRET)).unwrap();
    let owner = SealedFor {
        iss: &iss,
        sub,
        login_id: &login_id,
    };
    seal.open(&sealed, &owner).unwrap()
}

/// Redeems `refresh_token` at the IdP's token endpoint as jitgate would; returns the OAuth
/// `error` of the answer, or `None` when it was accepted.
fn redeem(issuer: &str, refresh_token: &str) -> Option<String> {
    let client = reqwest::blocking::Client::new();
    let discovery: serde_json::Value = client
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let answer: serde_json::Value = client
        .post(discovery["token_endpoint"].as_str().unwrap())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["error"].as_str().map(str::to_string)
}

#[test]
fn a_logged_out_login_is_not_refreshed_and_ends_no_other_login() {
    // On PostgreSQL, to read the laptop's token afterwards.
    let db = ScratchDb::create();
    let jg = Jitgate::start(Options {
        refresh_claims: Some("1s"),
        store: Some(db.url.clone()),
        ..Options::default()
    });
    let issuer = jg.idp.as_ref().unwrap().issuer.clone();
    let laptop = jg.browser();
    let phone = jg.browser();
    sign_in(&laptop, &jg.app_url("/home"), &ALICE);
    sign_in(&phone, &jg.app_url("/home"), &ALICE);

    // Signed out on the laptop all the way: at jitgate, then at the IdP's end-session page
    // (confirmed), which revokes that login's grant and ends its IdP session.
    let out = laptop.get(&jg.app_url("/.jitgate/logout"));
    assert_eq!(out.status, 302, "{out:?}");
    let chain = laptop.follow_from(out);
    let confirm = chain.last().unwrap();
    assert!(
        confirm.url.starts_with(&format!("{issuer}/session/end")),
        "{chain:?}"
    );
    assert_eq!(confirm.status, 200, "{confirm:?}");
    let signed_out = laptop.follow_from(laptop.submit_first_form(confirm, &[("logout", "yes")]));
    let back = signed_out.last().unwrap();
    assert_eq!(back.status, 200, "{signed_out:?}");
    assert!(back.url.starts_with(&jg.auth_url("/")), "{signed_out:?}");

    within(Duration::from_secs(5), "the laptop's login ended", || {
        refreshes(&jg, "ended") == 1
    });
    // A refresh of the laptop's login would now be refused: the IdP revoked its grant.
    let laptop_token = ended_login_token(&db.url, ALICE.sub);
    assert_eq!(
        redeem(&issuer, &laptop_token).as_deref(),
        Some("invalid_grant")
    );
    let refreshed = refreshes(&jg, "unchanged");
    within(
        Duration::from_secs(5),
        "the phone's login refreshed",
        || refreshes(&jg, "unchanged") > refreshed,
    );
    assert_eq!(phone.get(&jg.app_url("/home")).status, 200);
    assert!(sent_to_sign_in(&laptop.get(&jg.app_url("/home"))));
    assert_eq!(refreshes(&jg, "ended"), 1, "asked once, then left alone");
    assert_eq!(refreshes(&jg, "refused"), 0);
    assert!(!jg
        .audit_kinds()
        .iter()
        .any(|k| k == "claims_refresh_refused"));
}

#[test]
fn a_login_whose_refresh_row_cannot_be_saved_leaves_no_session() {
    let db = ScratchDb::create();
    let jg = Jitgate::start(Options {
        refresh_claims: Some("1s"),
        store: Some(db.url.clone()),
        ..Options::default()
    });
    let sql = |statement: &str| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut db = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let row = sqlx::query(statement)
                .fetch_optional(&mut db)
                .await
                .unwrap();
            row.map(|r| r.try_get::<i64, _>(0).unwrap())
        })
    };
    // The refresh row cannot be written (its table gone), the session could.
    sql("ALTER TABLE claims_refresh RENAME TO claims_refresh_gone");
    let alice = jg.browser();
    let chain = alice.login(&jg.app_url("/home"), &ALICE);
    let last = chain.last().unwrap();
    assert_eq!(last.status, 503, "{chain:?}");
    assert_eq!(sql("SELECT count(*) FROM sessions"), Some(0));
    assert!(sent_to_sign_in(&alice.get(&jg.app_url("/home"))));

    // With the table back, the same browser signs in (still signed in at the IdP, so without
    // its form), with a session and one row.
    sql("ALTER TABLE claims_refresh_gone RENAME TO claims_refresh");
    let again = alice.follow(&jg.app_url("/home"));
    assert_eq!(again.last().unwrap().status, 200, "{again:?}");
    assert!(sql("SELECT count(*) FROM sessions").unwrap() >= 1);
    assert_eq!(sql("SELECT count(*) FROM claims_refresh"), Some(1));
}

/// A replica whose lease ran out while the IdP answered (here: driven by hand, the runner's
/// interval being an hour) records nothing, and a refusal it got ends no session: the login
/// is another replica's now. The replica holding it acts on the same refusal.
#[test]
fn a_refusal_after_the_lease_ran_out_is_left_to_the_replica_holding_the_login() {
    let jg = Jitgate::start(Options {
        refresh_claims: Some("1h"),
        ..Options::default()
    });
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/home"), &ALICE);
    jg.idp.as_ref().unwrap().remove_user(ALICE.login);
    let gate = jg.gate().clone();
    // Due in two hours: taken then, and taken again by another replica when that lease ran out.
    let (late, holder) = jg.block_on(async move {
        let due = now_ms() + 2 * 3_600_000;
        let store = &gate.store;
        let first = store.take_claims_refreshes(due, LEASE_MS, 10).await;
        let again = store.take_claims_refreshes(due + LEASE_MS, LEASE_MS, 10);
        (first.unwrap(), again.await.unwrap())
    });
    assert_eq!((late.len(), holder.len()), (1, 1));
    assert_eq!(late[0].login_id, holder[0].login_id);
    let refresh = |login: ClaimsRefreshRecord| {
        let gate = jg.gate().clone();
        jg.block_on(async move {
            let policies = gate.policies.load();
            let refresher = refresher(&gate, Duration::from_secs(3600), &policies).unwrap();
            refresher.refresh(&login).await.unwrap()
        })
    };
    assert_eq!(refresh(late[0].clone()), Outcome::LeaseLost);
    assert_eq!(alice.get(&jg.app_url("/home")).status, 200);
    assert_eq!(refreshes(&jg, "lease_lost"), 1);
    assert!(!jg.has_audit("claims_refresh_refused"));

    assert_eq!(refresh(holder[0].clone()), Outcome::Refused);
    assert!(sent_to_sign_in(&alice.get(&jg.app_url("/home"))));
    assert!(jg.has_audit("claims_refresh_refused"));
}

/// A refresh waits on the IdP only so long (half the lease, in the runner), then counts as
/// no answer and is retried: driven by hand here with a 1 s limit and a token endpoint that
/// takes 3 s.
#[test]
fn a_refresh_the_idp_is_too_slow_for_gives_up_in_time_and_is_retried() {
    let jg = Jitgate::start(Options {
        refresh_claims: Some("1h"),
        ..Options::default()
    });
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/home"), &ALICE);
    jg.idp
        .as_ref()
        .unwrap()
        .delay_token_endpoint(Duration::from_secs(3));
    let gate = jg.gate().clone();
    let started = Instant::now();
    let (outcome, again) = jg.block_on(async move {
        let due = now_ms() + 2 * 3_600_000;
        let taken = gate.store.take_claims_refreshes(due, LEASE_MS, 10).await;
        let login = taken.unwrap().pop().unwrap();
        let policies = gate.policies.load();
        let mut refresher = refresher(&gate, Duration::from_secs(3600), &policies).unwrap();
        refresher.refresh_timeout = Duration::from_secs(1);
        let outcome = refresher.refresh(&login).await.unwrap();
        // Released and due again soon (a retry, not the hour's interval), one failure on it.
        let again = gate
            .store
            .take_claims_refreshes(now_ms() + 2_000, LEASE_MS, 10);
        (outcome, again.await.unwrap())
    });
    let took = started.elapsed();
    assert_eq!(outcome, Outcome::Failed);
    assert!(
        took < Duration::from_millis(2_500),
        "gave up after {took:?}"
    );
    println!(
        "a refresh the IdP is too slow for gave up after {} ms (limit 1 s)",
        took.as_millis()
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].failures, 1);
    assert_eq!(alice.get(&jg.app_url("/home")).status, 200);
}

#[test]
fn an_unreachable_idp_keeps_sessions_and_is_retried() {
    let mut jg = start();
    let alice = jg.browser();
    sign_in(&alice, &jg.app_url("/home"), &ALICE);
    within(Duration::from_secs(5), "a refresh", || {
        refreshes(&jg, "unchanged") >= 1
    });
    // The IdP goes away: no answer is not a "no".
    drop(jg.idp.take());
    within(Duration::from_secs(10), "refreshes failing", || {
        refreshes(&jg, "failed") >= 3
    });
    assert_eq!(alice.get(&jg.app_url("/home")).status, 200);
    assert_eq!(refreshes(&jg, "refused"), 0);
    assert!(!jg
        .audit_kinds()
        .iter()
        .any(|k| k == "claims_refresh_refused"));
}

/// Not a check, a measurement (`cargo test --test claims_refresh -- --ignored --nocapture`):
/// how many refreshes a second one jitgate runs against the test IdP, both on this machine.
#[test]
#[ignore]
fn refresh_throughput() {
    let jg = start();
    let logins = 300;
    let browsers: Vec<_> = (0..logins).map(|_| jg.browser()).collect();
    for b in &browsers {
        sign_in(b, &jg.app_url("/home"), &ALICE);
    }
    let count = || refreshes(&jg, "unchanged") + refreshes(&jg, "failed");
    std::thread::sleep(Duration::from_secs(2));
    let (start_count, started) = (count(), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let done = count() - start_count;
    println!(
        "{logins} logins, refresh_claims 1s: {:.0} refreshes/s ({} failed in all)",
        done as f64 / started.elapsed().as_secs_f64(),
        refreshes(&jg, "failed")
    );
}
