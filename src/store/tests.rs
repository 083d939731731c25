//! The store contract: one story, run against SQLite and against PostgreSQL.
//!
//! PostgreSQL runs on 127.0.0.1:5432 (trust auth) on every dev and CI machine; each run
//! creates its own scratch database so parallel runs never meet. Override the server with
//! `JITGATE_TEST_POSTGRES=postgres://user@host:port/db`.

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
        expires_at: 9_999,
    };
    store.put_login_transaction(&txn).await.unwrap();
    assert_eq!(store.take_login_transaction("st").await.unwrap(), Some(txn));
    assert_eq!(store.take_login_transaction("st").await.unwrap(), None);
    let handoff = Handoff {
        code_hash: "c".into(),
        target_host: "wiki.example.test".into(),
        return_to: "/".into(),
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

/// Concurrent takers of one login state: exactly one wins.
async fn single_use_under_race(store: std::sync::Arc<dyn Store>) {
    let txn = LoginTransaction {
        state_hash: "race".into(),
        browser_hash: "b".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        target_host: "h".into(),
        return_to: "/".into(),
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
    // Reopening an existing database runs no migration twice.
    drop(store);
    let again = open(&url).await.unwrap();
    assert!(again.get_session("fresh").await.unwrap().is_some());
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    let admin_url = std::env::var("JITGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let suffix = crate::random::token()
        .unwrap()
        .to_ascii_lowercase()
        .replace(['-', '_'], "");
    let name = format!("jitgate_test_{}", &suffix[..16]);
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
    let store = std::sync::Arc::new(open(&format!("{base}/{name}")).await.unwrap());
    story(store.as_ref()).await;
    single_use_under_race(store.clone()).await;
    drop(store);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
