//! The SCIM request log's part of the store contract, run against SQLite and PostgreSQL by
//! the two contract tests in `mod.rs`: round trip, newest first, and the bounds (age, and the
//! newest rows of each kind, so refused requests never push out the IdP's own).

use super::super::*;

fn request(at_ms: i64, status: i64, token: Option<&str>) -> ScimRequest {
    ScimRequest {
        at_ms,
        method: "PATCH".into(),
        path: format!("/.jitgate/scim/v2/Users/{at_ms}"),
        status,
        scim_type: (status == 400).then(|| "invalidValue".to_string()),
        token_label: token.map(str::to_string),
        request_id: format!("req-{at_ms}"),
    }
}

pub(super) async fn scim_request_log_story(store: &dyn Store) {
    assert!(store.recent_scim_requests(10).await.unwrap().is_empty());
    // Round trip, newest first (insertion order, even with equal times).
    let first = [
        request(1_000, 200, Some("scim token 1")),
        request(1_000, 400, Some("scim token 2")),
        request(1_001, 401, None),
    ];
    store.append_scim_requests(&first, 100, 0).await.unwrap();
    let listed = store.recent_scim_requests(10).await.unwrap();
    let expected: Vec<ScimRequest> = first.iter().rev().cloned().collect();
    assert_eq!(listed, expected);
    assert_eq!(store.recent_scim_requests(1).await.unwrap(), expected[..1]);

    // A flood of refused requests keeps only the newest `keep` of them, and every one of
    // the authenticated requests.
    let flood: Vec<ScimRequest> = (0..50).map(|i| request(2_000 + i, 401, None)).collect();
    store.append_scim_requests(&flood, 5, 0).await.unwrap();
    let listed = store.recent_scim_requests(1_000).await.unwrap();
    let refused: Vec<i64> = listed
        .iter()
        .filter(|r| r.token_label.is_none())
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(refused, vec![2_049, 2_048, 2_047, 2_046, 2_045]);
    assert_eq!(listed.iter().filter(|r| r.token_label.is_some()).count(), 2);

    // Authenticated requests are bounded the same way, by their own count.
    let pushes: Vec<ScimRequest> = (0..8)
        .map(|i| request(3_000 + i, 200, Some("scim token 1")))
        .collect();
    store.append_scim_requests(&pushes, 5, 0).await.unwrap();
    let listed = store.recent_scim_requests(1_000).await.unwrap();
    let authenticated: Vec<i64> = listed
        .iter()
        .filter(|r| r.token_label.is_some())
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(authenticated, vec![3_007, 3_006, 3_005, 3_004, 3_003]);
    assert_eq!(listed.len(), 10);

    // Rows older than the cut-off go, whatever their kind.
    store
        .append_scim_requests(&[request(4_000, 204, Some("scim token 1"))], 5, 3_006)
        .await
        .unwrap();
    let left: Vec<i64> = store
        .recent_scim_requests(1_000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(left, vec![4_000, 3_007, 3_006]);
}
