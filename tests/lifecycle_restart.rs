//! A jitgate killed right after it answered the SCIM request: the next one to start on the
//! same store finishes the app calls. The queue row is what survives the crash: a job left
//! `running` by a dead runner is taken again after `lifecycle.retake_after`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jitgate::store::{LifecycleJob, Store};
use serde_json::json;
use support::directory::{push_group_at, push_user_at, scim_at};
use support::legacy_app::LegacyApp;
use support::process::{write_config, Replica, ScratchDb};
use support::{free_port, sign_in, Browser, IdpProcess, ALICE};

const TOKEN: &str = "legacy-admin-token-7d1e4a";
/// Short, so the test waits seconds, not the default two minutes.
const RETAKE_AFTER: Duration = Duration::from_secs(3);

/// No retries, a 2 s timeout: the provisioning lease a dead runner leaves behind lasts
/// (2 s + 1 s) * 4 + 2 s = 14 s (`lease_for`), and the retaken call waits for it.
const POLICY: &str = r#"
app: wiki
hosts: [wiki.example.test]
upstream: {ORIGIN}
identity:
  headers:
    X-Forwarded-User: preferred_username
provisioning:
  api: {API}
  auth: { bearer: { file: {TOKEN_FILE} } }
  timeout: 2s
  retries: 0
  lookup:
    method: GET
    url: /users?username={{ user.username }}
    account_id: /0/id
  create:
    method: POST
    url: /users
    body: { username: "{{ user.username }}", role: editor }
    account_id: /id
  deactivate:
    method: DELETE
    url: /users/{{ account.id }}
routes:
  - path: /**
    allow: { groups: [engineering] }
"#;
const LEASE: Duration = Duration::from_secs(14);

fn active(app: &LegacyApp, username: &str) -> Option<bool> {
    app.state
        .accounts()
        .iter()
        .find(|a| a.username == username)
        .map(|a| a.active)
}

/// The `deactivate_account` jobs in the store.
fn deactivations(rt: &tokio::runtime::Runtime, store: &dyn Store) -> Vec<LifecycleJob> {
    rt.block_on(store.list_lifecycle_jobs(&[], 100))
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "deactivate_account")
        .collect()
}

#[test]
fn a_jitgate_killed_during_the_deactivate_call_is_finished_by_the_next_start() {
    let db = ScratchDb::create();
    let app = LegacyApp::start(TOKEN);
    let work = tempfile::tempdir().unwrap();
    let policies = work.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let policy = app.policy(POLICY, TOKEN, work.path());
    std::fs::write(policies.join("wiki.yaml"), policy).unwrap();
    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let idp = IdpProcess::start_for(&bases);
    let configs: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let dir = work.path().join(format!("r{i}"));
            let path = write_config(&dir, *port, &idp.issuer, &db.url, &policies, "10s", true);
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str(&format!(
                "lifecycle:\n  retake_after: {}s\n",
                RETAKE_AFTER.as_secs()
            ));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();

    // Alice is in the directory, signed in, with an account in the app.
    let first = Replica::start(&configs[0], ports[0]);
    let scim_base = format!("{}/.jitgate/scim/v2", first.base);
    let alice_id = push_user_at(&scim_base, &ALICE);
    push_group_at(&scim_base, "engineering", &[&alice_id]);
    let browser = Browser::new(ports[0], false);
    sign_in(
        &browser,
        &format!("http://{}:{}/home", support::APP_HOST, ports[0]),
        &ALICE,
    );
    assert_eq!(active(&app, "alice"), Some(true));

    // The app stops answering; the directory sets alice inactive and gets its answer.
    app.state.hang.store(true, Ordering::SeqCst);
    scim_at(
        &scim_base,
        "PATCH",
        &format!("/Users/{alice_id}"),
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "value": { "active": false } }]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.calls("hung") == 0 {
        assert!(
            Instant::now() < deadline,
            "no deactivate call reached the app:\n{}",
            first.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The deactivate call is in flight: kill jitgate now.
    let call_started = Instant::now();
    first.kill();
    let killed = Instant::now();
    app.state.hang.store(false, Ordering::SeqCst);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(jitgate::store::open(&db.url)).unwrap();
    let jobs = deactivations(&rt, &store);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (jobs[0].state.as_str(), jobs[0].attempts),
        ("running", 1),
        "the job must be left running by the dead runner: {jobs:?}"
    );
    assert_eq!(active(&app, "alice"), Some(true), "the app changed nothing");

    // A new jitgate on the same store retakes the job and makes the call.
    let second = Replica::start(&configs[1], ports[1]);
    let started = killed.elapsed();
    let budget = RETAKE_AFTER + LEASE + Duration::from_secs(6);
    while active(&app, "alice") != Some(false) {
        assert!(
            call_started.elapsed() < budget,
            "alice's account not deactivated within {budget:?} of the call:\n{}",
            second.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deactivated = call_started.elapsed();
    assert!(
        deactivated >= RETAKE_AFTER,
        "retaken before retake_after: {deactivated:?}"
    );
    let done = loop {
        let jobs = deactivations(&rt, &store);
        if jobs[0].state == "done" {
            break jobs;
        }
        assert!(
            call_started.elapsed() < budget,
            "job not done: {jobs:?}\n{}",
            second.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done[0].attempts, 2, "taken once by each process: {done:?}");
    assert_eq!(app.state.calls("deactivate"), 1);
    let audit = rt.block_on(store.recent_audit(200)).unwrap_or_default();
    assert!(
        audit.iter().any(|e| e.kind == "account_deactivated"),
        "no account_deactivated event"
    );
    println!(
        "kill test: second jitgate up {} ms after the kill; account deactivated {} ms after \
         the first call started (retake_after {} s, provisioning lease {} s)",
        started.as_millis(),
        deactivated.as_millis(),
        RETAKE_AFTER.as_secs(),
        LEASE.as_secs()
    );
}
