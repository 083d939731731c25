//! The lifecycle part of the store contract: the durable job queue, identity links, and
//! directory writes that carry their jobs atomically, run against SQLite and PostgreSQL by the
//! two contract tests in `mod.rs`. The stories run in this order on one store: each leaves
//! every job it queued done or failed, so the next sees no due job of another's.

use super::super::*;

pub(super) fn job(id: &str, next_at_ms: i64, created_at_ms: i64) -> LifecycleJob {
    LifecycleJob {
        id: id.into(),
        kind: "leaver".into(),
        subject: format!(r#"{{"user":"{id}"}}"#),
        by: "scim token 1".into(),
        reason: "active: false".into(),
        state: "pending".into(),
        attempts: 0,
        next_at_ms,
        created_at_ms,
        updated_at_ms: created_at_ms,
        last_error: None,
    }
}

fn ids(jobs: &[LifecycleJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

pub(super) async fn listed(store: &dyn Store, states: &[&str]) -> Vec<String> {
    let jobs = store.list_lifecycle_jobs(states, 1_000).await.unwrap();
    ids(&jobs).into_iter().map(str::to_string).collect()
}

/// Enqueue, take (only due ones, oldest next_at first, up to the limit), finish as done, as a
/// retry and as failed, stale running jobs taken again, and the list's order and filter.
pub(super) async fn lifecycle_queue_story(store: &dyn Store) {
    let (j1, j2, j3) = (
        job("j-1", 1_000, 100),
        job("j-2", 2_000, 200),
        job("j-3", 5_000, 300),
    );
    store
        .enqueue_lifecycle_jobs(&[j1.clone(), j2.clone(), j3.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.list_lifecycle_jobs(&["pending"], 10).await.unwrap(),
        vec![j3.clone(), j2.clone(), j1.clone()],
        "stored as given, newest created first"
    );

    // A job not yet due is not taken; a taken one is running with one attempt.
    let taken = store.take_lifecycle_jobs(1_500, 0, 10).await.unwrap();
    let running_j1 = LifecycleJob {
        state: "running".into(),
        attempts: 1,
        updated_at_ms: 1_500,
        ..j1.clone()
    };
    assert_eq!(taken, vec![running_j1.clone()]);
    // A running job that is not stale is not taken again.
    let taken = store.take_lifecycle_jobs(2_500, 0, 10).await.unwrap();
    assert_eq!(ids(&taken), ["j-2"]);

    // Done, and a retry: pending again at the given next_at, with the error kept.
    store
        .finish_lifecycle_job("j-1", "done", 1_000, None, 2_600)
        .await
        .unwrap();
    store
        .finish_lifecycle_job("j-2", "pending", 4_000, Some("app said 503"), 2_600)
        .await
        .unwrap();
    let pending = store.list_lifecycle_jobs(&["pending"], 10).await.unwrap();
    let retry = LifecycleJob {
        state: "pending".into(),
        attempts: 1,
        next_at_ms: 4_000,
        updated_at_ms: 2_600,
        last_error: Some("app said 503".into()),
        ..j2.clone()
    };
    assert_eq!(pending, vec![j3.clone(), retry]);
    assert!(store
        .take_lifecycle_jobs(3_999, 0, 10)
        .await
        .unwrap()
        .is_empty());

    // Oldest next_at first, at most `limit`.
    let taken = store.take_lifecycle_jobs(6_000, 0, 1).await.unwrap();
    assert_eq!(ids(&taken), ["j-2"]);
    assert_eq!(taken[0].attempts, 2);
    let taken = store.take_lifecycle_jobs(6_000, 0, 10).await.unwrap();
    assert_eq!(ids(&taken), ["j-3"]);

    // Running jobs last updated before stale_before are taken again (their runner died).
    assert!(store
        .take_lifecycle_jobs(7_000, 6_000, 10)
        .await
        .unwrap()
        .is_empty());
    let taken = store.take_lifecycle_jobs(7_000, 6_500, 10).await.unwrap();
    assert_eq!(ids(&taken), ["j-2", "j-3"]);
    assert_eq!(taken.iter().map(|j| j.attempts).collect::<Vec<_>>(), [3, 2]);
    assert!(taken
        .iter()
        .all(|j| j.state == "running" && j.updated_at_ms == 7_000));

    // Done and failed jobs are never taken, however late it is.
    store
        .finish_lifecycle_job("j-2", "failed", 4_000, Some("gave up"), 7_100)
        .await
        .unwrap();
    store
        .finish_lifecycle_job("j-3", "done", 5_000, None, 7_100)
        .await
        .unwrap();
    assert!(store
        .take_lifecycle_jobs(i64::MAX / 2, i64::MAX / 2, 10)
        .await
        .unwrap()
        .is_empty());

    // The list: newest created first, filtered by state (all states when none are named).
    assert_eq!(listed(store, &[]).await, ["j-3", "j-2", "j-1"]);
    assert_eq!(listed(store, &["done"]).await, ["j-3", "j-1"]);
    assert_eq!(listed(store, &["failed", "pending"]).await, ["j-2"]);
    assert!(listed(store, &["running"]).await.is_empty());
    assert_eq!(
        ids(&store.list_lifecycle_jobs(&[], 2).await.unwrap()),
        ["j-3", "j-2"]
    );
    let failed = store.list_lifecycle_jobs(&["failed"], 10).await.unwrap();
    assert_eq!(failed[0].last_error.as_deref(), Some("gave up"));

    // One batch is one transaction: a duplicate id inserts none of it.
    assert!(store
        .enqueue_lifecycle_jobs(&[job("j-4", 1, 400), job("j-1", 1, 400)])
        .await
        .is_err());
    assert_eq!(listed(store, &[]).await, ["j-3", "j-2", "j-1"]);
}

/// Two callers taking from 20 due jobs at once never get the same job, and between them
/// they get all 20.
pub(super) async fn lifecycle_take_race(store: std::sync::Arc<dyn Store>) {
    let now = 1_000_000;
    let jobs: Vec<LifecycleJob> = (0..20)
        .map(|i| job(&format!("race-{i:02}"), now - 100 + i, 1_000 + i))
        .collect();
    store.enqueue_lifecycle_jobs(&jobs).await.unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let takers: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let taken = store.take_lifecycle_jobs(now, 0, 3).await.unwrap();
                    if taken.is_empty() {
                        return mine;
                    }
                    mine.extend(taken.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for taker in takers {
        all.extend(taker.await.unwrap());
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(count, all.len(), "a job was taken twice");
    assert_eq!(all, ids(&jobs));
    for id in &all {
        store
            .finish_lifecycle_job(id, "done", now, None, now)
            .await
            .unwrap();
    }
}

fn link(iss: &str, sub: &str, link_value: &str, seen_at_ms: i64) -> IdentityLink {
    IdentityLink {
        iss: iss.into(),
        sub: sub.into(),
        link_value: link_value.into(),
        seen_at_ms,
        removed_at_ms: None,
    }
}

/// Links are upserted on iss+sub and keep removed_at; marking and clearing removal covers
/// every identity linked to a value, matched case-sensitively.
pub(super) async fn identity_links_story(store: &dyn Store) {
    let alice = link("https://idp", "alice", "alice@example.test", 100);
    let alice_elsewhere = link("https://other", "a-2", "alice@example.test", 150);
    let bob = link("https://idp", "bob", "bob@example.test", 200);
    for l in [&alice, &alice_elsewhere, &bob] {
        store.put_identity_link(l).await.unwrap();
    }
    assert_eq!(
        store
            .get_identity_link("https://idp", "alice")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .get_identity_link("https://idp", "carol")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .identities_linked_to("alice@example.test")
            .await
            .unwrap(),
        vec![alice.clone(), alice_elsewhere.clone()]
    );
    assert!(store
        .identities_linked_to("ALICE@example.test")
        .await
        .unwrap()
        .is_empty());

    // A leaver: every identity linked to the value is marked, no other.
    let removed = store
        .mark_links_removed("alice@example.test", Some(500))
        .await
        .unwrap();
    let removed_alice = IdentityLink {
        removed_at_ms: Some(500),
        ..alice.clone()
    };
    let removed_elsewhere = IdentityLink {
        removed_at_ms: Some(500),
        ..alice_elsewhere.clone()
    };
    assert_eq!(removed, vec![removed_alice, removed_elsewhere.clone()]);
    assert_eq!(
        store.get_identity_link("https://idp", "bob").await.unwrap(),
        Some(bob.clone())
    );

    // Signing in again records the link but keeps the removal as stored.
    let seen_again = link("https://idp", "alice", "alice@example.test", 600);
    store.put_identity_link(&seen_again).await.unwrap();
    assert_eq!(
        store
            .get_identity_link("https://idp", "alice")
            .await
            .unwrap(),
        Some(IdentityLink {
            removed_at_ms: Some(500),
            ..seen_again.clone()
        })
    );

    // A return clears it.
    let back = store
        .mark_links_removed("alice@example.test", None)
        .await
        .unwrap();
    assert_eq!(back, vec![seen_again.clone(), alice_elsewhere.clone()]);
    assert!(store
        .mark_links_removed("nobody@example.test", Some(700))
        .await
        .unwrap()
        .is_empty());

    // A new value moves the identity to it.
    let renamed = link("https://idp", "alice", "alice.smith@example.test", 800);
    store.put_identity_link(&renamed).await.unwrap();
    assert_eq!(
        store
            .identities_linked_to("alice@example.test")
            .await
            .unwrap(),
        vec![alice_elsewhere]
    );
    assert_eq!(
        store
            .identities_linked_to("alice.smith@example.test")
            .await
            .unwrap(),
        vec![renamed]
    );
}

fn directory_user(id: &str, user_name: &str) -> DirectoryUser {
    DirectoryUser {
        id: id.into(),
        user_name: user_name.into(),
        external_id: None,
        active: true,
        resource: format!(r#"{{"userName":"{user_name}"}}"#),
        version: 1,
        created_at_ms: 10_000,
        updated_at_ms: 10_000,
    }
}

/// A directory write and the jobs it causes are written together: jobs only with a write
/// that happened (not a Duplicate, Stale or Missing one, not a delete of nobody), and no
/// write when its jobs cannot be written.
pub(super) async fn directory_writes_carry_jobs(store: &dyn Store) {
    use DirectoryWrite::*;
    let dora = directory_user("dx-1", "dora.exit");
    let put = |user: DirectoryUser, read_version: Option<i64>, job_id: &'static str| async move {
        store
            .put_directory_user(&user, read_version, &[job(job_id, 1, 20_000)])
            .await
    };
    assert_eq!(put(dora.clone(), None, "dj-create").await.unwrap(), Written);
    let taken_name = directory_user("dx-2", "DORA.exit");
    assert_eq!(
        put(taken_name, None, "dj-duplicate").await.unwrap(),
        Duplicate
    );
    let leaver = DirectoryUser {
        active: false,
        ..dora.clone()
    };
    assert_eq!(
        put(leaver.clone(), Some(1), "dj-leaver").await.unwrap(),
        Written
    );
    assert_eq!(put(leaver, Some(1), "dj-stale").await.unwrap(), Stale);
    let nobody = directory_user("dx-9", "nobody");
    assert_eq!(put(nobody, Some(1), "dj-missing").await.unwrap(), Missing);
    assert_eq!(
        listed(store, &["pending"]).await,
        ["dj-leaver", "dj-create"]
    );

    // Jobs that cannot be written (an id already queued) undo the write they came with.
    let fresh = directory_user("dx-3", "fresh");
    assert!(put(fresh, None, "dj-create").await.is_err());
    assert_eq!(
        store
            .get_directory_user(DirectoryKey::Id("dx-3"))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .delete_directory_user("dx-1", 30_000, &[job("dj-leaver", 1, 30_000)])
        .await
        .is_err());
    assert!(store
        .get_directory_user(DirectoryKey::Id("dx-1"))
        .await
        .unwrap()
        .is_some());

    // Deleting: jobs only when the user existed.
    assert!(store
        .delete_directory_user("dx-1", 30_000, &[job("dj-delete", 1, 30_000)])
        .await
        .unwrap());
    assert!(!store
        .delete_directory_user("dx-1", 31_000, &[job("dj-delete-again", 1, 31_000)])
        .await
        .unwrap());
    assert_eq!(
        listed(store, &["pending"]).await,
        ["dj-delete", "dj-leaver", "dj-create"]
    );
}
