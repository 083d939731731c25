//! The store's part in a mover: group writes carry their jobs in the same transaction, and
//! sessions' identities are replaced only where they still hold what was read.

use super::super::*;
use super::lifecycle::{job, listed};
use super::session;

fn group(id: &str, name: &str, members: &[&str]) -> DirectoryGroup {
    DirectoryGroup {
        id: id.into(),
        display_name: name.into(),
        external_id: None,
        resource: "{}".into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        version: 1,
        created_at_ms: 50_000,
        updated_at_ms: 50_000,
    }
}

/// Jobs commit with a group write that happened, never with a Duplicate or Stale one, nor
/// with the delete of a group that is not there.
pub(super) async fn group_writes_carry_jobs(store: &dyn Store) {
    use DirectoryWrite::*;
    let movers = group("gm-1", "Movers", &[]);
    let put = |g: DirectoryGroup, read: Option<i64>, job_id: &'static str| async move {
        store
            .put_directory_group(&g, read, &[job(job_id, 1, 60_000)])
            .await
            .unwrap()
    };
    assert_eq!(put(movers.clone(), None, "gj-create").await, Written);
    assert_eq!(
        put(group("gm-2", "MOVERS", &[]), None, "gj-dup").await,
        Duplicate
    );
    let renamed = DirectoryGroup {
        display_name: "Shakers".into(),
        version: 2,
        ..movers.clone()
    };
    assert_eq!(put(renamed.clone(), Some(1), "gj-rename").await, Written);
    assert_eq!(put(renamed, Some(1), "gj-stale").await, Stale);
    let stale = store
        .delete_directory_group("gm-1", 1, &[job("gj-delete-stale", 1, 61_000)])
        .await;
    assert_eq!(stale.unwrap(), Stale);
    let deleted = store
        .delete_directory_group("gm-1", 2, &[job("gj-delete", 1, 61_000)])
        .await;
    assert_eq!(deleted.unwrap(), Written);
    let again = store
        .delete_directory_group("gm-1", 2, &[job("gj-delete-again", 1, 62_000)])
        .await;
    assert_eq!(again.unwrap(), Missing);
    let queued = listed(store, &["pending"]).await;
    for id in ["gj-create", "gj-rename", "gj-delete"] {
        assert!(queued.iter().any(|q| q == id), "{id} not in {queued:?}");
    }
    for id in ["gj-dup", "gj-stale", "gj-delete-stale", "gj-delete-again"] {
        assert!(!queued.iter().any(|q| q == id), "{id} in {queued:?}");
    }

    // The queue's summary, counted by the database, agrees with the jobs listed.
    let all = store.list_lifecycle_jobs(&[], 100_000).await.unwrap();
    let waiting: Vec<_> = all
        .iter()
        .filter(|j| j.state == "pending" || j.state == "running")
        .collect();
    let summary = store.lifecycle_queue_summary().await.unwrap();
    assert!(summary.waiting >= 3, "{summary:?}");
    assert_eq!(summary.waiting, waiting.len() as i64);
    assert_eq!(
        summary.oldest_waiting_ms,
        waiting.iter().map(|j| j.created_at_ms).min()
    );
    assert_eq!(
        summary.failed,
        all.iter().filter(|j| j.state == "failed").count() as i64
    );
}

/// A mover rewrites one user's sessions on every host; a session changed since it was read
/// keeps its newer identity.
pub(super) async fn session_identities_story(store: &dyn Store) {
    for (id, sub, host) in [
        ("mv-1", "mia", "wiki.example.test"),
        ("mv-2", "mia", "auth.example.test"),
        ("mv-3", "max", "wiki.example.test"),
    ] {
        let s = SessionRecord {
            host: host.into(),
            ..session(id, sub, None, 1_000)
        };
        store.put_session(&s).await.unwrap();
    }
    let mut mine: Vec<String> = store
        .sessions_of("https://idp", "mia")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id_hash)
        .collect();
    mine.sort();
    assert_eq!(mine, ["mv-1", "mv-2"]);
    assert!(store
        .sessions_of("https://other", "mia")
        .await
        .unwrap()
        .is_empty());

    let change = |id: &str, from: &str, to: &str| SessionIdentityChange {
        id_hash: id.into(),
        from: from.into(),
        to: to.into(),
    };
    let changed = store
        .replace_session_identities(&[
            change("mv-1", "{}", r#"{"moved":1}"#),
            // Read before another writer changed it: left alone.
            change("mv-2", r#"{"old":1}"#, r#"{"moved":1}"#),
            change("gone", "{}", r#"{"moved":1}"#),
        ])
        .await
        .unwrap();
    assert_eq!(changed, ["mv-1"]);
    let identity =
        |id: &'static str| async move { store.get_session(id).await.unwrap().unwrap().identity };
    assert_eq!(identity("mv-1").await, r#"{"moved":1}"#);
    assert_eq!(identity("mv-2").await, "{}");
    assert_eq!(identity("mv-3").await, "{}");
    assert!(store
        .replace_session_identities(&[])
        .await
        .unwrap()
        .is_empty());
    for id in ["mv-1", "mv-2", "mv-3"] {
        store.delete_session(id).await.unwrap();
    }
}
