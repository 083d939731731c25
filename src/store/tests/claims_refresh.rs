//! The claims-refresh part of the store contract: logins due and taken under a lease, how a
//! refresh is recorded, and the two ways rows go (the user's, and those without sessions),
//! run against SQLite and PostgreSQL by the two contract tests in `mod.rs`. Its rows use an
//! issuer of their own, so other stories' sessions never count.

use super::super::*;

const ISS: &str = "https://refresh-idp";

fn login(id: &str, sub: &str, login_at: i64, next_at_ms: i64) -> ClaimsRefreshRecord {
    ClaimsRefreshRecord {
        login_id: id.into(),
        iss: ISS.into(),
        sub: sub.into(),
        login_at,
        sid: None,
        refresh_token: format!("v1.sealed-{id}"),
        groups: Some(r#"["engineering"]"#.into()),
        next_at_ms,
        failures: 0,
        created_at_ms: 1_000,
        lease_until_ms: 0,
    }
}

/// A refresh's record that releases the login it holds under `lease_until_ms`.
fn done(login_id: &str, lease_until_ms: i64, next_at_ms: i64) -> ClaimsRefreshDone<'_> {
    ClaimsRefreshDone {
        login_id,
        lease_until_ms,
        release: true,
        refresh_token: None,
        groups: None,
        next_at_ms,
        failures: 0,
    }
}

fn ids(logins: &[ClaimsRefreshRecord]) -> Vec<&str> {
    logins.iter().map(|l| l.login_id.as_str()).collect()
}

fn session_of(id_hash: &str, sub: &str, login_at: i64) -> SessionRecord {
    SessionRecord {
        id_hash: id_hash.into(),
        host: "wiki.example.test".into(),
        iss: ISS.into(),
        sub: sub.into(),
        sid: None,
        identity: "{}".into(),
        id_token: String::new(),
        login_at,
        last_seen: login_at,
    }
}

pub(super) async fn claims_refresh_story(store: &dyn Store) {
    let now = 10_000_000;
    store
        .put_claims_refresh(&login("l1", "alice", 100, now - 5))
        .await
        .unwrap();
    store
        .put_claims_refresh(&login("l2", "alice", 200, now - 10))
        .await
        .unwrap();
    store
        .put_claims_refresh(&login("l3", "bob", 300, now + 60_000))
        .await
        .unwrap();
    // A login id is one login.
    assert!(store
        .put_claims_refresh(&login("l1", "bob", 1, 1))
        .await
        .is_err());

    // Due ones, most overdue first, at most `limit`; l3 is not due yet.
    let taken = store.take_claims_refreshes(now, 60_000, 1).await.unwrap();
    assert_eq!(ids(&taken), ["l2"]);
    let mut l2 = login("l2", "alice", 200, now - 10);
    l2.lease_until_ms = now + 60_000;
    assert_eq!(taken[0], l2);
    let taken = store.take_claims_refreshes(now, 60_000, 10).await.unwrap();
    assert_eq!(ids(&taken), ["l1"]);
    // Both are held: nobody else takes them while the lease runs...
    assert!(store
        .take_claims_refreshes(now + 59_999, 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    // ...and a runner that died lets them go when it ends (l3 falls due then too).
    let again = store
        .take_claims_refreshes(now + 60_000, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(ids(&again), ["l2", "l1", "l3"]);

    let lease = now + 120_000;
    assert!(again.iter().all(|l| l.lease_until_ms == lease));

    // A runner that outlived its first lease (l1, l2 taken under `now + 60_000`) records
    // nothing: not a rotated token over the one the current holder may rotate, not its
    // schedule, and it releases nothing.
    for stale in [now + 60_000, 0] {
        let late = ClaimsRefreshDone {
            refresh_token: Some("v1.stale"),
            groups: Some(r#"["stale"]"#),
            ..done("l1", stale, 0)
        };
        assert!(!store.finish_claims_refresh(&late).await.unwrap());
    }
    assert!(store
        .take_claims_refreshes(now + 119_999, 60_000, 10)
        .await
        .unwrap()
        .is_empty());

    // A refresh that rotated the token and changed the groups (in two writes, the first
    // keeping the lease), one that changed nothing, one that failed: each released, due
    // again when it says.
    let at = now + 61_000;
    let rotated = ClaimsRefreshDone {
        refresh_token: Some("v1.rotated"),
        release: false,
        ..done("l1", lease, at)
    };
    assert!(store.finish_claims_refresh(&rotated).await.unwrap());
    let regrouped = ClaimsRefreshDone {
        groups: Some(r#"["support"]"#),
        ..done("l1", lease, at)
    };
    assert!(store.finish_claims_refresh(&regrouped).await.unwrap());
    // Released: its lease is spent.
    assert!(!store.finish_claims_refresh(&regrouped).await.unwrap());
    for (id, failures) in [("l2", 0), ("l3", 3)] {
        let finished = ClaimsRefreshDone {
            failures,
            ..done(id, lease, at + 1)
        };
        assert!(store.finish_claims_refresh(&finished).await.unwrap());
    }
    let taken = store
        .take_claims_refreshes(at + 1, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(ids(&taken), ["l1", "l2", "l3"]);
    assert_eq!(taken[0].refresh_token, "v1.rotated");
    // Not even the sealed token shows in logs.
    assert!(!format!("{:?}", taken[0]).contains("rotated"));
    assert_eq!(taken[0].groups.as_deref(), Some(r#"["support"]"#));
    assert_eq!(taken[1].refresh_token, "v1.sealed-l2");
    assert_eq!(taken[1].groups.as_deref(), Some(r#"["engineering"]"#));
    assert_eq!(taken[2].failures, 3);
    // Finishing a login deleted meanwhile does not bring it back.
    assert_eq!(
        store
            .delete_claims_refreshes_of(ISS, "alice")
            .await
            .unwrap(),
        2
    );
    let lease = at + 1 + 60_000;
    assert!(!store
        .finish_claims_refresh(&done("l1", lease, 0))
        .await
        .unwrap());
    assert!(store
        .finish_claims_refresh(&done("l3", lease, 0))
        .await
        .unwrap());
    assert_eq!(
        ids(&store.take_claims_refreshes(at + 2, 1, 10).await.unwrap()),
        ["l3"]
    );
    assert_eq!(
        store
            .delete_claims_refreshes_of(ISS, "nobody")
            .await
            .unwrap(),
        0
    );

    // The sweep: a login goes when none of its sessions is left, but not while young.
    store
        .put_session(&session_of("rs-bob", "bob", 300))
        .await
        .unwrap();
    let mut old = login("l4", "carol", 400, i64::MAX);
    old.created_at_ms = 500;
    store.put_claims_refresh(&old).await.unwrap();
    let mut young = login("l5", "carol", 500, i64::MAX);
    young.created_at_ms = 5_000;
    store.put_claims_refresh(&young).await.unwrap();
    // Another login of bob's (another login_at) does not keep l6 alive.
    let mut other = login("l6", "bob", 301, i64::MAX);
    other.created_at_ms = 500;
    store.put_claims_refresh(&other).await.unwrap();
    // A login the IdP named a session for lives by that session only (two logins in one
    // second tell apart by it).
    let erin = SessionRecord {
        sid: Some("s-7".into()),
        ..session_of("rs-erin", "erin", 700)
    };
    store.put_session(&erin).await.unwrap();
    for (id, sid, alive) in [
        ("l7", Some("s-7"), true),
        ("l8", Some("s-8"), false),
        ("l9", None, false),
    ] {
        let mut row = login(id, "erin", 700, i64::MAX);
        row.sid = sid.map(str::to_string);
        row.created_at_ms = 500;
        store.put_claims_refresh(&row).await.unwrap();
        assert_eq!(store.login_has_sessions(&row).await.unwrap(), alive, "{id}");
    }
    // Without a sid on either side, the login time decides.
    let bob = login("l3", "bob", 300, 0);
    assert!(store.login_has_sessions(&bob).await.unwrap());
    assert!(!store
        .login_has_sessions(&login("l3", "bob", 301, 0))
        .await
        .unwrap());
    assert_eq!(
        store.delete_orphan_claims_refreshes(1_000).await.unwrap(),
        4
    );
    assert_eq!(
        store.delete_claims_refreshes_of(ISS, "erin").await.unwrap(),
        1
    );
    assert!(store.delete_session("rs-erin").await.unwrap());
    assert_eq!(
        store
            .delete_claims_refreshes_of(ISS, "carol")
            .await
            .unwrap(),
        1
    );
    // l3 (bob, login 300) stays while its session does.
    assert_eq!(
        store
            .delete_orphan_claims_refreshes(i64::MAX)
            .await
            .unwrap(),
        0
    );
    assert!(store.delete_session("rs-bob").await.unwrap());
    assert_eq!(
        store
            .delete_orphan_claims_refreshes(i64::MAX)
            .await
            .unwrap(),
        1
    );
}

/// Eight replicas asking at once for two due logins: each is taken exactly once.
pub(super) async fn claims_refresh_take_race(store: std::sync::Arc<dyn Store>) {
    for id in ["race-1", "race-2"] {
        store
            .put_claims_refresh(&login(id, "dave", 1, 5))
            .await
            .unwrap();
    }
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_claims_refreshes(10, 60_000, 10).await.unwrap() })
        })
        .collect();
    let mut taken = Vec::new();
    for t in takers {
        taken.extend(t.await.unwrap().into_iter().map(|l| l.login_id));
    }
    taken.sort();
    assert_eq!(taken, ["race-1", "race-2"]);
    assert_eq!(
        store.delete_claims_refreshes_of(ISS, "dave").await.unwrap(),
        2
    );
}
