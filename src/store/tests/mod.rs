//! The store contract: one story, run against SQLite and against PostgreSQL.
//!
//! PostgreSQL runs on 127.0.0.1:5432 (trust auth) on every dev and CI machine; each run
//! creates its own scratch database so parallel runs never meet. Override the server with
//! `JITGATE_TEST_POSTGRES=postgres://user@host:port/db`.

mod claims_refresh;
mod directory;
mod lifecycle;
mod movers;
mod scim_requests;
mod session_feed;

use super::*;
use sqlx::Connection;

fn session(id: &str, sub: &str, sid: Option<&str>, last_seen: i64) -> SessionRecord {
    SessionRecord {
        id_hash: id.into(),
        host: "wiki.example.test".into(),
        iss: "https://idp".into(),
        sub: sub.into(),
        sid: sid.map(str::to_string),
        identity: "{}".into(),
        id_token: "token".into(),
        login_at: 1_000,
        last_seen,
    }
}

async fn story(store: &dyn Store) {
    store.ping().await.unwrap();
    // Sessions: put, get, touch (only forwards), delete.
    let s = session("h1", "alice", Some("sid-a"), 1_000);
    store.put_session(&s).await.unwrap();
    assert_eq!(store.get_session("h1").await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session("nope").await.unwrap(), None);
    store.touch_session("h1", 1_500).await.unwrap();
    store.touch_session("h1", 1_200).await.unwrap();
    assert_eq!(
        store.get_session("h1").await.unwrap().unwrap().last_seen,
        1_500
    );
    assert!(
        store.put_session(&s).await.is_err(),
        "duplicate id must be refused"
    );

    // Back-channel logout selectors: sid+sub, sub only, sid only; never another user.
    store
        .put_session(&session("h2", "alice", Some("sid-b"), 1_000))
        .await
        .unwrap();
    store
        .put_session(&session("h3", "bob", Some("sid-a"), 1_000))
        .await
        .unwrap();
    store
        .put_session(&session("h4", "alice", None, 1_000))
        .await
        .unwrap();
    let by_sid_sub = store
        .delete_sessions_for_logout(LogoutSelector {
            iss: "https://idp",
            sub: Some("alice"),
            sid: Some("sid-a"),
        })
        .await
        .unwrap();
    assert_eq!(by_sid_sub, vec!["h1".to_string()]);
    let mut by_sub = store
        .delete_sessions_for_logout(LogoutSelector {
            iss: "https://idp",
            sub: Some("alice"),
            sid: None,
        })
        .await
        .unwrap();
    by_sub.sort();
    assert_eq!(by_sub, vec!["h2".to_string(), "h4".to_string()]);
    let other_issuer = store
        .delete_sessions_for_logout(LogoutSelector {
            iss: "https://other",
            sub: None,
            sid: Some("sid-a"),
        })
        .await
        .unwrap();
    assert!(other_issuer.is_empty());
    assert!(store.get_session("h3").await.unwrap().is_some());
    assert!(store.delete_session("h3").await.unwrap());
    assert!(!store.delete_session("h3").await.unwrap());

    // Expiry sweep: idle or past the absolute limit.
    store
        .put_session(&session("old-idle", "carol", None, 100))
        .await
        .unwrap();
    store
        .put_session(&session("fresh", "carol", None, 5_000))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(1_000, 500).await.unwrap(), 1);
    assert!(store.get_session("fresh").await.unwrap().is_some());

    // Login transactions and hand-offs are single-use.
    let txn = LoginTransaction {
        state_hash: "st".into(),
        browser_hash: "b".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        target_host: "wiki.example.test".into(),
        return_to: "/x".into(),
        target_binding_hash: "tb".into(),
        expires_at: 9_999,
    };
    store.put_login_transaction(&txn).await.unwrap();
    assert_eq!(store.take_login_transaction("st").await.unwrap(), Some(txn));
    assert_eq!(store.take_login_transaction("st").await.unwrap(), None);
    let handoff = Handoff {
        code_hash: "c".into(),
        target_host: "wiki.example.test".into(),
        return_to: "/".into(),
        browser_hash: "hb".into(),
        session: session("ignored", "alice", Some("s"), 1),
        expires_at: 9_999,
    };
    store.put_handoff(&handoff).await.unwrap();
    assert_eq!(store.take_handoff("c").await.unwrap(), Some(handoff));
    assert_eq!(store.take_handoff("c").await.unwrap(), None);

    // Audit: appended in order, read newest first.
    for (i, kind) in ["login", "access_denied", "logout"].iter().enumerate() {
        store
            .append_audit(&AuditEvent {
                at_ms: i as i64,
                kind: kind.to_string(),
                iss: Some("https://idp".into()),
                sub: Some("alice".into()),
                app: None,
                request_id: Some(format!("r{i}")),
                detail: "{}".into(),
            })
            .await
            .unwrap();
    }
    let recent = store.recent_audit(2).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["logout", "access_denied"]
    );
    assert_eq!(recent[0].app, None);
}

/// Accounts: put/get/upsert, touch only forwards, list, deactivation that provisioning
/// cannot undo, and a user's sessions on given hosts.
async fn accounts_story(store: &dyn Store) {
    let key = AccountKey {
        app: "wiki",
        iss: "https://idp",
        sub: "alice",
    };
    assert_eq!(store.get_account(key).await.unwrap(), None);
    let mut a = AccountRecord {
        app: "wiki".into(),
        iss: "https://idp".into(),
        sub: "alice".into(),
        username: "alice".into(),
        account_id: "17".into(),
        attrs_hash: "h1".into(),
        attributes: "{}".into(),
        claims_at: 90,
        created_at: 100,
        updated_at: 100,
        last_seen: 100,
        deactivated_at: None,
    };
    assert!(store.put_account(&a).await.unwrap());
    assert_eq!(store.get_account(key).await.unwrap(), Some(a.clone()));
    a.attrs_hash = "h2".into();
    a.claims_at = 190;
    a.updated_at = 200;
    assert!(store.put_account(&a).await.unwrap());
    store.touch_account(key, 300).await.unwrap();
    store.touch_account(key, 250).await.unwrap();
    let got = store.get_account(key).await.unwrap().unwrap();
    assert_eq!(
        (
            got.attrs_hash.as_str(),
            got.claims_at,
            got.created_at,
            got.last_seen
        ),
        ("h2", 190, 100, 300)
    );
    let older = AccountRecord {
        claims_at: 150,
        attrs_hash: "stale".into(),
        ..a.clone()
    };
    assert!(
        !store.put_account(&older).await.unwrap(),
        "claims from an older login never replace a newer login's"
    );
    store.deactivate_account(key, 400).await.unwrap();
    a.attrs_hash = "h3".into();
    assert!(
        !store.put_account(&a).await.unwrap(),
        "provisioning must not bring a deactivated account back"
    );
    let got = store.get_account(key).await.unwrap().unwrap();
    assert_eq!(
        (got.attrs_hash.as_str(), got.deactivated_at),
        ("h2", Some(400))
    );
    let other_app = AccountRecord {
        app: "grafana".into(),
        ..a.clone()
    };
    store.put_account(&other_app).await.unwrap();
    let listed = store.list_accounts("wiki").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].deactivated_at, Some(400));
    let other_key = AccountKey {
        app: "grafana",
        ..key
    };
    assert!(store.forget_account(other_key).await.unwrap());
    assert!(!store.forget_account(other_key).await.unwrap());
    assert!(store.get_account(other_key).await.unwrap().is_none());
    assert!(
        store.get_account(key).await.unwrap().is_some(),
        "only that app's record"
    );
    // A return the app was told about: the mark goes, once; provisioning may write again.
    assert!(store.reactivate_account(key, 500).await.unwrap());
    assert!(!store.reactivate_account(key, 600).await.unwrap());
    let back = store.get_account(key).await.unwrap().unwrap();
    assert_eq!((back.deactivated_at, back.updated_at), (None, 500));
    assert!(store.put_account(&a).await.unwrap());
    store.deactivate_account(key, 400).await.unwrap();

    let mut s = session("acc-1", "alice", None, 1_000);
    s.host = "other.example.test".into();
    store.put_session(&s).await.unwrap();
    store
        .put_session(&session("acc-2", "alice", None, 1_000))
        .await
        .unwrap();
    store
        .put_session(&session("acc-3", "bob", None, 1_000))
        .await
        .unwrap();
    let ended = store
        .delete_sessions_of("https://idp", "alice", &["wiki.example.test".to_string()])
        .await
        .unwrap();
    assert_eq!(ended, vec!["acc-2".to_string()]);
    assert!(
        store.get_session("acc-1").await.unwrap().is_some(),
        "another app's host keeps its session"
    );
    assert!(
        store.get_session("acc-3").await.unwrap().is_some(),
        "another user keeps theirs"
    );
}

/// Provisioning leases: one holder at a time; only the holder releases; an expired lease
/// (by the database's clock) can be taken over. Then 8 racing claimants: exactly one wins.
async fn leases_story(store: std::sync::Arc<dyn Store>) {
    let key = AccountKey {
        app: "wiki",
        iss: "https://idp",
        sub: "carol",
    };
    assert!(store.claim_provisioning(key, "a", 60).await.unwrap());
    assert!(!store.claim_provisioning(key, "b", 60).await.unwrap());
    assert!(store.provisioning_claimed(key).await.unwrap());
    store.release_provisioning(key, "b").await.unwrap();
    assert!(
        store.provisioning_claimed(key).await.unwrap(),
        "only the holder releases"
    );
    store.release_provisioning(key, "a").await.unwrap();
    assert!(!store.provisioning_claimed(key).await.unwrap());
    // A lease of 0 s is already expired: not held, and anyone can take it over.
    assert!(store.claim_provisioning(key, "b", 0).await.unwrap());
    assert!(!store.provisioning_claimed(key).await.unwrap());
    assert!(store.claim_provisioning(key, "c", 60).await.unwrap());

    let claimants: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = AccountKey {
                    app: "wiki",
                    iss: "https://idp",
                    sub: "dave",
                };
                store
                    .claim_provisioning(key, &format!("owner-{i}"), 60)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for c in claimants {
        if c.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// Grants: insert/get, compare-and-swap updates, lists, active-at-a-time, first use once,
/// and the expiry sweep.
async fn grants_story(store: &dyn Store) {
    let g = GrantRecord {
        id: "g-1".into(),
        app: "wiki".into(),
        grant_type: "wiki-admin".into(),
        iss: "https://idp".into(),
        sub: "bob".into(),
        username: "bob".into(),
        purpose: "fix it".into(),
        ticket: Some("INC-1".into()),
        duration_secs: 60,
        status: "pending".into(),
        approvals: "[]".into(),
        requested_at: 1_000,
        decided_at: None,
        expires_at: None,
        ended_by: None,
        first_used_at: None,
        version: 1,
        end_call: None,
    };
    store.insert_grant(&g).await.unwrap();
    assert_eq!(store.get_grant("g-1").await.unwrap(), Some(g.clone()));
    let active = GrantRecord {
        status: "active".into(),
        decided_at: Some(2_000),
        expires_at: Some(62_000),
        version: 2,
        ..g.clone()
    };
    assert!(store.update_grant(&active, 1).await.unwrap());
    assert!(
        !store.update_grant(&active, 1).await.unwrap(),
        "a stale version never wins"
    );
    let other = GrantRecord {
        id: "g-2".into(),
        app: "grafana".into(),
        ..g.clone()
    };
    store.insert_grant(&other).await.unwrap();
    assert_eq!(store.list_grants(None, None).await.unwrap().len(), 2);
    assert_eq!(
        store.list_grants(Some("wiki"), None).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.list_grants(None, Some("pending")).await.unwrap()[0].id,
        "g-2"
    );
    let key = AccountKey {
        app: "wiki",
        iss: "https://idp",
        sub: "bob",
    };
    assert_eq!(store.grants_of(key).await.unwrap().len(), 1);
    assert_eq!(store.active_grants(key, 61_999).await.unwrap().len(), 1);
    assert!(
        store.active_grants(key, 62_000).await.unwrap().is_empty(),
        "expires_at is exclusive"
    );
    assert!(store.mark_grant_used("g-1", 3_000).await.unwrap());
    assert!(!store.mark_grant_used("g-1", 4_000).await.unwrap());
    assert!(store.expire_grants(61_000).await.unwrap().is_empty());
    let expired = store.expire_grants(62_000).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].status.as_str(), expired[0].version),
        ("expired", 3)
    );
    assert_eq!(
        store.get_grant("g-1").await.unwrap().unwrap().first_used_at,
        Some(3_000)
    );

    // The end call: armed while active, pending once expired, taken by one runner at a
    // time, retried when it fails, taken over when its runner died, and then done.
    let armed = GrantRecord {
        id: "g-3".into(),
        status: "active".into(),
        expires_at: Some(70_000),
        end_call: Some("armed".into()),
        ..g.clone()
    };
    store.insert_grant(&armed).await.unwrap();
    assert!(
        store.take_end_calls(69_000).await.unwrap().is_empty(),
        "armed is not due"
    );
    store.expire_grants(70_000).await.unwrap();
    let taken = store.take_end_calls(71_000).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        store.take_end_calls(71_500).await.unwrap().is_empty(),
        "one runner at a time"
    );
    store.finish_end_call("g-3", "pending").await.unwrap();
    assert_eq!(
        store.take_end_calls(72_000).await.unwrap().len(),
        1,
        "a failed call is retried"
    );
    assert_eq!(
        store.take_end_calls(72_000 + 61_000).await.unwrap().len(),
        1,
        "a call whose runner died is taken over"
    );
    store.finish_end_call("g-3", "done").await.unwrap();
    assert!(store.take_end_calls(200_000).await.unwrap().is_empty());
}

/// Concurrent takers of one login state: exactly one wins.
async fn single_use_under_race(store: std::sync::Arc<dyn Store>) {
    let txn = LoginTransaction {
        state_hash: "race".into(),
        browser_hash: "b".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        target_host: "h".into(),
        return_to: "/".into(),
        target_binding_hash: String::new(),
        expires_at: 1,
    };
    store.put_login_transaction(&txn).await.unwrap();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_login_transaction("race").await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in takers {
        if t.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/jitgate.db", dir.path().display());
    let store = std::sync::Arc::new(open(&url).await.unwrap());
    story(store.as_ref()).await;
    single_use_under_race(store.clone()).await;
    accounts_story(store.as_ref()).await;
    leases_story(store.clone()).await;
    grants_story(store.as_ref()).await;
    scim_requests::scim_request_log_story(store.as_ref()).await;
    directory::directory_users_story(store.as_ref()).await;
    directory::directory_groups_story(store.as_ref()).await;
    directory::directory_create_race(store.clone()).await;
    lifecycle::lifecycle_queue_story(store.as_ref()).await;
    lifecycle::lifecycle_take_race(store.clone()).await;
    lifecycle::identity_links_story(store.as_ref()).await;
    lifecycle::directory_writes_carry_jobs(store.as_ref()).await;
    movers::group_writes_carry_jobs(store.as_ref()).await;
    movers::session_identities_story(store.as_ref()).await;
    claims_refresh::claims_refresh_story(store.as_ref()).await;
    claims_refresh::claims_refresh_take_race(store.clone()).await;
    // Reopening an existing database runs no migration twice.
    drop(store);
    let again = open(&url).await.unwrap();
    assert!(again.get_session("fresh").await.unwrap().is_some());
}

/// A new, empty PostgreSQL database named `{prefix}_…`: its URL, the admin connection and
/// its name (for dropping it).
pub(super) async fn scratch_postgres(prefix: &str) -> (String, sqlx::PgConnection, String) {
    let admin_url = std::env::var("JITGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let suffix = crate::util::random::token()
        .unwrap()
        .to_ascii_lowercase()
        .replace(['-', '_'], "");
    let name = format!("{prefix}_{}", &suffix[..16]);
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (see README, Testing)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    (format!("{base}/{name}"), admin, name)
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    let (url, mut admin, name) = scratch_postgres("jitgate_test").await;
    let store = std::sync::Arc::new(open(&url).await.unwrap());
    story(store.as_ref()).await;
    single_use_under_race(store.clone()).await;
    accounts_story(store.as_ref()).await;
    leases_story(store.clone()).await;
    grants_story(store.as_ref()).await;
    scim_requests::scim_request_log_story(store.as_ref()).await;
    directory::directory_users_story(store.as_ref()).await;
    directory::directory_groups_story(store.as_ref()).await;
    directory::directory_create_race(store.clone()).await;
    lifecycle::lifecycle_queue_story(store.as_ref()).await;
    lifecycle::lifecycle_take_race(store.clone()).await;
    lifecycle::identity_links_story(store.as_ref()).await;
    lifecycle::directory_writes_carry_jobs(store.as_ref()).await;
    movers::group_writes_carry_jobs(store.as_ref()).await;
    movers::session_identities_story(store.as_ref()).await;
    claims_refresh::claims_refresh_story(store.as_ref()).await;
    claims_refresh::claims_refresh_take_race(store.clone()).await;
    drop(store);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
