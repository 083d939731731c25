//! The directory part of the store contract: SCIM users and groups, run against SQLite and
//! PostgreSQL by the two contract tests in `mod.rs`.

use super::super::*;

fn user(id: &str, user_name: &str, external_id: Option<&str>, created_at_ms: i64) -> DirectoryUser {
    DirectoryUser {
        id: id.into(),
        user_name: user_name.into(),
        external_id: external_id.map(str::to_string),
        active: true,
        resource: format!(r#"{{"userName":"{user_name}"}}"#),
        version: 1,
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}

fn group(id: &str, display_name: &str, members: &[&str], created_at_ms: i64) -> DirectoryGroup {
    DirectoryGroup {
        id: id.into(),
        display_name: display_name.into(),
        external_id: None,
        resource: format!(r#"{{"displayName":"{display_name}"}}"#),
        members: members.iter().map(|m| m.to_string()).collect(),
        version: 1,
        created_at_ms,
        updated_at_ms: created_at_ms,
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(id).collect()
}

/// Users: create, find by each key, duplicates by id/userName (any case)/externalId,
/// compare-and-swap replaces that keep created_at, and the list order.
pub(super) async fn directory_users_story(store: &dyn Store) {
    use DirectoryWrite::*;
    let alice = user("u-1", "Alice", Some("ext-1"), 1_000);
    assert_eq!(
        store.put_directory_user(&alice, None, &[]).await.unwrap(),
        Written
    );
    for key in [
        DirectoryKey::Id("u-1"),
        DirectoryKey::UserName("Alice"),
        DirectoryKey::UserName("aLICE"),
        DirectoryKey::ExternalId("ext-1"),
    ] {
        assert_eq!(
            store.get_directory_user(key).await.unwrap(),
            Some(alice.clone()),
            "{key:?}"
        );
    }
    assert_eq!(
        store
            .get_directory_user(DirectoryKey::ExternalId("EXT-1"))
            .await
            .unwrap(),
        None,
        "externalId is case-sensitive"
    );
    assert_eq!(
        store
            .get_directory_user(DirectoryKey::Id("u-9"))
            .await
            .unwrap(),
        None
    );

    let taken_name = user("u-2", "ALICE", None, 1_000);
    assert_eq!(
        store
            .put_directory_user(&taken_name, None, &[])
            .await
            .unwrap(),
        Duplicate
    );
    let taken_external_id = user("u-2", "bob", Some("ext-1"), 1_000);
    assert_eq!(
        store
            .put_directory_user(&taken_external_id, None, &[])
            .await
            .unwrap(),
        Duplicate
    );
    let taken_id = user("u-1", "someone", None, 1_000);
    assert_eq!(
        store
            .put_directory_user(&taken_id, None, &[])
            .await
            .unwrap(),
        Duplicate
    );

    // Users without an externalId do not collide with each other.
    let bob = user("u-2", "bob", None, 500);
    let carol = user("u-3", "carol", None, 1_000);
    assert_eq!(
        store.put_directory_user(&bob, None, &[]).await.unwrap(),
        Written
    );
    assert_eq!(
        store.put_directory_user(&carol, None, &[]).await.unwrap(),
        Written
    );

    // Replace: only from the stored version; created_at stays, version goes up by one.
    let renamed = DirectoryUser {
        user_name: "alice.smith".into(),
        external_id: Some("ext-1b".into()),
        active: false,
        resource: r#"{"userName":"alice.smith","active":false}"#.into(),
        version: 77,
        created_at_ms: 9_999,
        updated_at_ms: 2_000,
        ..alice.clone()
    };
    assert_eq!(
        store
            .put_directory_user(&renamed, Some(1), &[])
            .await
            .unwrap(),
        Written
    );
    let stored = store
        .get_directory_user(DirectoryKey::UserName("ALICE.SMITH"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        DirectoryUser {
            version: 2,
            created_at_ms: 1_000,
            ..renamed.clone()
        }
    );
    assert_eq!(
        store
            .get_directory_user(DirectoryKey::UserName("alice"))
            .await
            .unwrap(),
        None,
        "the old userName is free again"
    );
    assert_eq!(
        store
            .put_directory_user(&renamed, Some(1), &[])
            .await
            .unwrap(),
        Stale
    );
    let nobody = user("u-9", "nobody", None, 1_000);
    assert_eq!(
        store
            .put_directory_user(&nobody, Some(1), &[])
            .await
            .unwrap(),
        Missing
    );
    let to_bobs_name = DirectoryUser {
        user_name: "BOB".into(),
        ..renamed.clone()
    };
    assert_eq!(
        store
            .put_directory_user(&to_bobs_name, Some(2), &[])
            .await
            .unwrap(),
        Duplicate
    );
    let to_new_case = DirectoryUser {
        user_name: "Alice.Smith".into(),
        ..renamed.clone()
    };
    assert_eq!(
        store
            .put_directory_user(&to_new_case, Some(2), &[])
            .await
            .unwrap(),
        Written,
        "a user's own name in another case is no duplicate"
    );
    assert_eq!(
        store
            .get_directory_user(DirectoryKey::Id("u-1"))
            .await
            .unwrap()
            .unwrap()
            .version,
        3
    );

    let listed = store.list_directory_users().await.unwrap();
    assert_eq!(
        ids(&listed, |u| &u.id),
        ["u-2", "u-1", "u-3"],
        "created_at, then id"
    );
}

/// Groups: members (unknown ids dropped, sorted, no duplicates), displayName duplicates,
/// replaces, a user's groups, and deleting a member or a group.
pub(super) async fn directory_groups_story(store: &dyn Store) {
    use DirectoryWrite::*;
    for (id, name) in [("m-1", "mara"), ("m-2", "nils"), ("m-3", "olga")] {
        let member = user(id, name, None, 1_000);
        assert_eq!(
            store.put_directory_user(&member, None, &[]).await.unwrap(),
            Written
        );
    }
    let admins = DirectoryGroup {
        external_id: Some("gext-1".into()),
        ..group("g-1", "Admins", &["m-2", "m-1", "m-1", "nobody"], 100)
    };
    assert_eq!(
        store.put_directory_group(&admins, None, &[]).await.unwrap(),
        Written
    );
    let stored = store.get_directory_group("g-1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        DirectoryGroup {
            members: vec!["m-1".into(), "m-2".into()],
            ..admins.clone()
        }
    );
    assert_eq!(store.get_directory_group("g-9").await.unwrap(), None);

    let same_name = group("g-2", "ADMINS", &[], 200);
    assert_eq!(
        store
            .put_directory_group(&same_name, None, &[])
            .await
            .unwrap(),
        Duplicate
    );
    let same_external_id = DirectoryGroup {
        external_id: Some("gext-1".into()),
        ..group("g-2", "Ops", &[], 200)
    };
    assert_eq!(
        store
            .put_directory_group(&same_external_id, None, &[])
            .await
            .unwrap(),
        Duplicate
    );
    let ops = group("g-2", "Ops", &["m-1"], 200);
    assert_eq!(
        store.put_directory_group(&ops, None, &[]).await.unwrap(),
        Written
    );

    // Replace: members replaced wholesale, created_at kept, only from the stored version.
    let admins_v2 = DirectoryGroup {
        display_name: "Administrators".into(),
        members: vec!["m-3".into()],
        created_at_ms: 9_999,
        updated_at_ms: 300,
        ..admins.clone()
    };
    assert_eq!(
        store
            .put_directory_group(&admins_v2, Some(1), &[])
            .await
            .unwrap(),
        Written
    );
    let stored = store.get_directory_group("g-1").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.created_at_ms, stored.updated_at_ms),
        (2, 100, 300)
    );
    assert_eq!(stored.members, ["m-3"]);
    assert_eq!(stored.display_name, "Administrators");
    assert_eq!(
        store
            .put_directory_group(&admins_v2, Some(1), &[])
            .await
            .unwrap(),
        Stale
    );
    let missing = group("g-9", "Nobody's", &[], 1);
    assert_eq!(
        store
            .put_directory_group(&missing, Some(1), &[])
            .await
            .unwrap(),
        Missing
    );
    let to_ops = DirectoryGroup {
        display_name: "ops".into(),
        ..admins_v2.clone()
    };
    assert_eq!(
        store
            .put_directory_group(&to_ops, Some(2), &[])
            .await
            .unwrap(),
        Duplicate
    );
    assert_eq!(
        store
            .get_directory_group("g-1")
            .await
            .unwrap()
            .unwrap()
            .members,
        ["m-3"],
        "a refused write leaves the members alone"
    );

    let groups_of = |id: &'static str| async move {
        let groups = store.groups_of_directory_user(id).await.unwrap();
        groups.iter().map(|g| g.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(groups_of("m-1").await, ["g-2"]);
    assert_eq!(groups_of("m-3").await, ["g-1"]);
    let admins_v3 = DirectoryGroup {
        members: vec!["m-3".into(), "m-1".into()],
        ..admins_v2.clone()
    };
    assert_eq!(
        store
            .put_directory_group(&admins_v3, Some(2), &[])
            .await
            .unwrap(),
        Written
    );
    assert_eq!(groups_of("m-1").await, ["g-1", "g-2"], "oldest first");
    let of_m1 = store.groups_of_directory_user("m-1").await.unwrap();
    assert_eq!(of_m1[0].members, ["m-1", "m-3"], "with all their members");
    assert!(groups_of("nobody").await.is_empty());
    let listed = store.list_directory_groups().await.unwrap();
    assert_eq!(ids(&listed, |g| &g.id), ["g-1", "g-2"]);
    assert_eq!(listed[1].members, ["m-1"]);

    // Deleting a user removes their memberships and bumps each of their groups.
    assert!(store
        .delete_directory_user("m-1", 5_000, &[])
        .await
        .unwrap());
    assert_eq!(
        store
            .get_directory_user(DirectoryKey::Id("m-1"))
            .await
            .unwrap(),
        None
    );
    let admins_now = store.get_directory_group("g-1").await.unwrap().unwrap();
    assert_eq!(
        (
            admins_now.version,
            admins_now.updated_at_ms,
            admins_now.members
        ),
        (4, 5_000, vec!["m-3".to_string()])
    );
    let ops_now = store.get_directory_group("g-2").await.unwrap().unwrap();
    assert_eq!((ops_now.version, ops_now.members.len()), (2, 0));
    assert!(groups_of("m-1").await.is_empty());
    assert!(!store
        .delete_directory_user("m-1", 6_000, &[])
        .await
        .unwrap());
    assert_eq!(
        store
            .get_directory_group("g-1")
            .await
            .unwrap()
            .unwrap()
            .version,
        4,
        "deleting a missing user changes no group"
    );
    let not_a_member = store
        .get_directory_user(DirectoryKey::Id("m-2"))
        .await
        .unwrap();
    assert!(not_a_member.is_some(), "other users stay");

    // Deleting a group.
    let version = |id: &'static str| async move {
        store
            .get_directory_group(id)
            .await
            .unwrap()
            .unwrap()
            .version
    };
    let (v2, v1) = (version("g-2").await, version("g-1").await);
    assert_eq!(
        store.delete_directory_group("g-2", v2, &[]).await.unwrap(),
        Written
    );
    assert_eq!(store.get_directory_group("g-2").await.unwrap(), None);
    assert_eq!(
        store.delete_directory_group("g-2", v2, &[]).await.unwrap(),
        Missing
    );
    assert_eq!(
        store
            .delete_directory_group("g-1", v1 - 1, &[])
            .await
            .unwrap(),
        Stale,
        "a group changed since it was read is not deleted"
    );
    assert!(store.get_directory_group("g-1").await.unwrap().is_some());
    assert_eq!(
        store.delete_directory_group("g-1", v1, &[]).await.unwrap(),
        Written
    );
    assert!(
        groups_of("m-3").await.is_empty(),
        "no memberships outlive their group"
    );
    assert!(store.list_directory_groups().await.unwrap().is_empty());
}

/// Two concurrent creates of one userName (in different case): exactly one is written, the
/// other is a duplicate. Repeated, since one round may not overlap.
pub(super) async fn directory_create_race(store: std::sync::Arc<dyn Store>) {
    for round in 0..5 {
        let creates: Vec<_> = [format!("racer-{round}"), format!("RACER-{round}")]
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let store = store.clone();
                tokio::spawn(async move {
                    let racer = user(&format!("race-{round}-{i}"), &name, None, 1);
                    store.put_directory_user(&racer, None, &[]).await.unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for create in creates {
            outcomes.push(create.await.unwrap());
        }
        outcomes.sort_by_key(|o| *o != DirectoryWrite::Written);
        assert_eq!(
            outcomes,
            [DirectoryWrite::Written, DirectoryWrite::Duplicate]
        );
    }
}
