//! The ended-sessions feed: on PostgreSQL every session delete (except the expiry sweep) is
//! announced with the deleted id hashes; SQLite has no feed.

use super::super::*;
use super::session;
use tokio::sync::mpsc::Receiver;

/// The next announcement, waiting at most a few seconds for it.
async fn next(feed: &mut Receiver<SessionChange>) -> SessionChange {
    let change = tokio::time::timeout(std::time::Duration::from_secs(5), feed.recv())
        .await
        .expect("an announcement within 5 s")
        .expect("the feed is open");
    match change {
        SessionChange::Changed(mut hashes) => {
            hashes.sort();
            SessionChange::Changed(hashes)
        }
        missed => missed,
    }
}

fn ended(hashes: &[&str]) -> SessionChange {
    SessionChange::Changed(hashes.iter().map(|h| h.to_string()).collect())
}

#[tokio::test]
async fn postgres_announces_the_hashes_of_every_deleted_session() {
    let (url, mut admin, name) = super::scratch_postgres("jitgate_feed").await;
    let store = open(&url).await.unwrap();
    let mut feed = store
        .session_changes()
        .expect("PostgreSQL announces ended sessions");
    // Connecting may have missed announcements: the listener is told to drop everything.
    assert_eq!(next(&mut feed).await, SessionChange::Missed);

    // One session (logout of a session without an IdP sid, `accounts deactivate`'s path too).
    store
        .put_session(&session("one", "alice", None, 1_000))
        .await
        .unwrap();
    assert!(store.delete_session("one").await.unwrap());
    assert_eq!(next(&mut feed).await, ended(&["one"]));

    // Deleting nothing, and the expiry sweep, announce nothing: the next announcement is
    // the logout's below.
    assert!(!store.delete_session("one").await.unwrap());
    store
        .put_session(&session("stale", "alice", None, 5))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(10, 0).await.unwrap(), 1);

    // A logout token (one IdP session of one user).
    for (id, sub, sid) in [
        ("a1", "alice", "sid-a"),
        ("a2", "alice", "sid-a"),
        ("b1", "bob", "sid-b"),
    ] {
        store
            .put_session(&session(id, sub, Some(sid), 1_000))
            .await
            .unwrap();
    }
    let logout = LogoutSelector {
        iss: "https://idp",
        sub: Some("alice"),
        sid: Some("sid-a"),
    };
    assert_eq!(
        store
            .delete_sessions_for_logout(logout)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(next(&mut feed).await, ended(&["a1", "a2"]));

    // A deactivated user's sessions on the app's hosts.
    let hosts = ["wiki.example.test".to_string(), "other.test".to_string()];
    let gone = store.delete_sessions_of("https://idp", "bob", &hosts).await;
    assert_eq!(gone.unwrap(), vec!["b1".to_string()]);
    assert_eq!(next(&mut feed).await, ended(&["b1"]));

    // A mover's sessions, whose identity was replaced: cached copies must be read again.
    store
        .put_session(&session("m1", "mia", None, 1_000))
        .await
        .unwrap();
    let moved = SessionIdentityChange {
        id_hash: "m1".into(),
        from: "{}".into(),
        to: r#"{"groups":[]}"#.into(),
    };
    assert_eq!(
        store
            .replace_session_identities(std::slice::from_ref(&moved))
            .await
            .unwrap(),
        ["m1"]
    );
    assert_eq!(next(&mut feed).await, ended(&["m1"]));
    // Replaced again from what it no longer holds: nothing changes, nothing is announced
    // (the next announcement is the logout's below).
    assert!(store
        .replace_session_identities(&[moved])
        .await
        .unwrap()
        .is_empty());

    // Many sessions at once: split over several notifications, each hash announced once.
    let many: Vec<String> = (0..200).map(|i| format!("{i:0>43}")).collect();
    for id in &many {
        store
            .put_session(&session(id, "carol", None, 1_000))
            .await
            .unwrap();
    }
    let logout = LogoutSelector {
        iss: "https://idp",
        sub: Some("carol"),
        sid: None,
    };
    assert_eq!(
        store
            .delete_sessions_for_logout(logout)
            .await
            .unwrap()
            .len(),
        200
    );
    let mut heard = Vec::new();
    let mut notifications = 0;
    while heard.len() < many.len() {
        let SessionChange::Changed(hashes) = next(&mut feed).await else {
            panic!("expected ended sessions");
        };
        notifications += 1;
        heard.extend(hashes);
    }
    heard.sort();
    assert_eq!(heard, many);
    assert!(notifications > 1, "200 hashes fit one notification?");

    drop(feed);
    drop(store);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_has_no_session_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&format!("sqlite://{}/jitgate.db", dir.path().display()))
        .await
        .unwrap();
    assert!(store.session_changes().is_none());
    // Its deletes work as before.
    store
        .put_session(&session("one", "alice", None, 1_000))
        .await
        .unwrap();
    assert!(store.delete_session("one").await.unwrap());
    let hosts = ["wiki.example.test".to_string()];
    assert!(store
        .delete_sessions_of("https://idp", "alice", &hosts)
        .await
        .unwrap()
        .is_empty());
}
