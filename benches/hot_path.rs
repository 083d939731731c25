//! Micro-benches of the per-request hot path: cookie -> cached session -> route -> headers.
//!
//! Run with `cargo bench --bench hot_path`. Targets: the whole hot path under 2 µs, and
//! under 1 KiB of memory per cached session (printed before the benches run); a provisioned
//! app's request costs one more cache hit than an app without provisioning
//! (`full_request_provisioned_app` against `full_request`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use jitgate::auth::identity::Identity;
use jitgate::auth::session::cookie::{self, CookieNames, CookieValue};
use jitgate::auth::session::Sessions;
use jitgate::config::SessionSettings;
use jitgate::edge::identity_headers;
use jitgate::lifecycle::grants::Grants;
use jitgate::lifecycle::provision::Accounts;
use jitgate::policy::{self, normalize_path, AppPolicy};
use jitgate::store::{GrantRecord, SessionRecord, Store};
use pingora_http::RequestHeader;
use serde_json::json;

const HOST: &str = "wiki.example.test";

fn identity(i: usize) -> Identity {
    let claims = json!({
        "preferred_username": format!("user{i}"),
        "name": format!("User Number {i}"),
        "email": format!("user{i}@example.com"),
        "email_verified": true,
        "groups": ["engineering", "support", "wiki-readers"],
    });
    Identity::from_claims(
        "https://login.example.com/oauth2/default".into(),
        format!("00u{i:0>17}"),
        claims.as_object().cloned().unwrap(),
        "preferred_username",
        "groups",
    )
}

fn record(token: &str, i: usize) -> SessionRecord {
    let id = identity(i);
    SessionRecord {
        id_hash: jitgate::util::random::hash(token),
        host: HOST.into(),
        iss: id.iss.to_string(),
        sub: id.sub.to_string(),
        sid: Some(format!("sid-{i:0>20}")),
        identity: serde_json::to_string(&id).unwrap(),
        id_token: String::new(),
        login_at: jitgate::util::clock::now_secs(),
        last_seen: jitgate::util::clock::now_secs(),
    }
}

struct Fixture {
    sessions: Sessions,
    accounts: Accounts,
    grants: Grants,
    app: Arc<AppPolicy>,
    request: RequestHeader,
    token: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(runtime.block_on(jitgate::store::open(&url)).unwrap());
    let sessions = Sessions::new(
        store.clone(),
        SessionSettings::default(),
        2_000_000,
        Default::default(),
        prometheus::IntCounter::new("misses", "misses").unwrap(),
    );
    let accounts = Accounts::new(
        store.clone(),
        jitgate::telemetry::audit::Audit::new(store.clone()),
        jitgate::telemetry::metrics::Metrics::new().unwrap(),
        std::time::Duration::from_secs(3600),
    );
    let token = jitgate::util::random::token().unwrap();
    sessions.remember(&token, &record(&token, 0)).unwrap();

    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("wiki.yaml"),
        "app: wiki
hosts: [wiki.example.test]
upstream: http://127.0.0.1:8000
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Email: email
    X-Forwarded-Groups: groups
routes:
  - path: /admin/**
    allow: { groups: [wiki-admins] }
  - path: /api/*/export
    methods: [GET]
    allow: { groups: [auditors] }
  - path: /**
    allow: { groups: [engineering, support] }
",
    )
    .unwrap();
    let app = policy::load_dir(policies.path()).unwrap().apps()[0].clone();

    let request = browser_request(&token);
    let session = sessions.resolve_cached(&token, HOST).unwrap();
    // One active grant of this user, loaded into the grants cache the way a first request
    // on an elevated route loads it.
    let grants = Grants::new(
        store.clone(),
        jitgate::telemetry::audit::Audit::new(store.clone()),
        std::time::Duration::from_secs(3600),
        None,
    );
    let id = &session.identity;
    let now = jitgate::util::clock::now_ms();
    runtime
        .block_on(store.insert_grant(&GrantRecord {
            id: "g-bench".into(),
            app: app.name.clone(),
            grant_type: "wiki-admin".into(),
            iss: id.iss.to_string(),
            sub: id.sub.to_string(),
            username: id.username.to_string(),
            purpose: "bench".into(),
            ticket: None,
            duration_secs: 86_400,
            status: "active".into(),
            approvals: "[]".into(),
            requested_at: now,
            decided_at: Some(now),
            expires_at: Some(now + 86_400_000),
            ended_by: None,
            first_used_at: Some(now),
            version: 1,
            end_call: None,
        }))
        .unwrap();
    assert!(runtime
        .block_on(grants.check(&app, id, "wiki-admin"))
        .unwrap()
        .is_some());
    accounts.remember(
        &app,
        &session.identity,
        jitgate::util::clock::now_secs(),
        None,
    );
    Fixture {
        sessions,
        accounts,
        grants,
        app,
        request,
        token,
        _runtime: runtime,
        _dir: dir,
    }
}

/// A typical browser request, built the way pingora builds a parsed HTTP/1.1 request head
/// (header map sized for the headers it read).
fn browser_request(token: &str) -> RequestHeader {
    let headers = [
        ("Host", "wiki.example.test".to_string()),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/156".to_string(),
        ),
        ("Accept", "text/html,application/xhtml+xml".to_string()),
        ("Accept-Language", "en-US,en;q=0.9".to_string()),
        (
            "Cookie",
            format!("_ga=GA1.2.3; jitgate_session={token}; theme=dark"),
        ),
    ];
    let mut request =
        RequestHeader::build("GET", b"/docs/getting-started?tab=2", Some(headers.len())).unwrap();
    for (name, value) in headers {
        request.append_header(name, value).unwrap();
    }
    request
}

/// The full hot path on one request, as `proxy::JitgateProxy` runs it on a cache hit: the
/// decision (`request_filter`: host, cookie, session, route) and then the request the app
/// receives (`upstream_request_filter`: spoofable headers and our cookie removed, identity
/// headers added).
fn hot_path(f: &Fixture, request: &mut RequestHeader) -> bool {
    if jitgate::edge::request_target::request_host(request).as_deref() != Some(HOST) {
        return false;
    }
    let normalized = normalize_path(request.uri.path()).unwrap();
    let CookieValue::Token(token) = cookie::read(request, "jitgate_session") else {
        return false;
    };
    let Some(session) = f.sessions.resolve_cached(token, HOST) else {
        return false;
    };
    if f.app
        .decide(&request.method, &normalized, &session.identity)
        .is_err()
    {
        return false;
    }
    identity_headers::strip_spoofed(request, &f.app.strip_header_keys);
    cookie::strip_own(request, CookieNames { secure: false });
    identity_headers::set_identity_headers(request, &f.app, &session.identity).unwrap();
    true
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn memory_per_session(f: &Fixture) {
    const N: usize = 200_000;
    let records: Vec<(String, SessionRecord)> = (0..N)
        .map(|i| {
            let token = jitgate::util::random::token().unwrap();
            let r = record(&token, i + 1);
            (token, r)
        })
        .collect();
    let before = rss_bytes();
    for (token, r) in &records {
        f.sessions.remember(token, r).unwrap();
    }
    assert!(f.sessions.cached() >= N as u64);
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) / N;
    println!(
        "memory per cached session: {per} bytes ({N} sessions, RSS +{} KiB); target < 1024 bytes: {}",
        (after - before) / 1024,
        if per < 1024 { "met" } else { "MISSED" }
    );
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    // `JITGATE_BENCH_ITERS=N valgrind --tool=callgrind --collect-atstart=no
    //  --toggle-collect=hot_path::hot_path <bench binary> --bench` counts instructions for N
    // full requests: a measure that does not move with the machine's load.
    if let Some(n) = std::env::var("JITGATE_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let mut requests: Vec<RequestHeader> = (0..n).map(|_| browser_request(&f.token)).collect();
        for r in &mut requests {
            assert!(hot_path(&f, black_box(r)));
        }
        println!("ran the hot path {n} times");
        return;
    }
    assert!(
        hot_path(&f, &mut f.request.clone()),
        "the fixture request must be admitted"
    );
    if std::env::args().any(|a| a == "--bench") {
        memory_per_session(&f);
    }

    let mut group = c.benchmark_group("hot_path");
    group.bench_function("cookie_read", |b| {
        b.iter(|| black_box(cookie::read(black_box(&f.request), "jitgate_session")))
    });
    group.bench_function("session_cache_hit", |b| {
        b.iter(|| black_box(f.sessions.resolve_cached(black_box(&f.token), HOST)))
    });
    let session = f.sessions.resolve_cached(&f.token, HOST).unwrap();
    group.bench_function("route_decision", |b| {
        b.iter(|| {
            let normalized = normalize_path(black_box("/docs/getting-started?tab=2")).unwrap();
            black_box(
                f.app
                    .decide(&Method::GET, &normalized, &session.identity)
                    .is_ok(),
            )
        })
    });
    // JIT provisioning on the hot path: one cache lookup says the account is current.
    group.bench_function("account_cache_hit", |b| {
        b.iter(|| {
            assert!(f.accounts.is_current(
                black_box(&f.app),
                black_box(&session.identity),
                session.login_at
            ))
        })
    });
    // An elevated route: the user's active grant from the cache, expiry compared with the
    // clock (target: under 1 µs).
    group.bench_function("grant_cache_hit", |b| {
        b.iter(|| {
            let found = f.grants.check_cached(
                black_box(&f.app),
                black_box(&session.identity),
                "wiki-admin",
            );
            assert!(matches!(found, Some(Some(_))));
        })
    });
    group.bench_function("identity_headers", |b| {
        b.iter_batched_ref(
            || browser_request(&f.token),
            |r| {
                identity_headers::strip_spoofed(r, &f.app.strip_header_keys);
                cookie::strip_own(r, CookieNames { secure: false });
                identity_headers::set_identity_headers(r, &f.app, &session.identity).unwrap();
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // Building the request (setup) and dropping it are outside the timing: in the proxy both
    // belong to pingora, not to jitgate's checks.
    group.bench_function("full_request", |b| {
        b.iter_batched_ref(
            || browser_request(&f.token),
            |r| assert!(hot_path(&f, r)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("full_request_provisioned_app", |b| {
        b.iter_batched_ref(
            || browser_request(&f.token),
            |r| {
                assert!(
                    hot_path(&f, r)
                        && f.accounts
                            .is_current(&f.app, &session.identity, session.login_at)
                )
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(hot, benches);
criterion_main!(hot);
