//! Session lifetime: back-channel logout, idle and absolute timeouts, cookies, HTTPS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::forge_idp::{ForgeIdp, Scenario};
use support::{Idp, Jitgate, Options, ALICE, BOB};

fn is_login_redirect(page: &support::Page) -> bool {
    page.status == 302
        && page
            .location
            .as_deref()
            .is_some_and(|l| l.contains("/.jitgate/login"))
}

#[test]
fn backchannel_logout_from_the_idp_ends_the_session() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    support::sign_in(&browser, &jg.app_url("/"), &ALICE);
    // Another user's session must survive alice's logout.
    let other = jg.browser();
    support::sign_in(&other, &jg.app_url("/"), &BOB);

    // The user signs out at the IdP itself; the IdP tells jitgate over the back channel.
    let issuer = jg.idp.as_ref().unwrap().issuer.clone();
    let confirm = browser.get(&format!("{issuer}/session/end"));
    assert_eq!(confirm.status, 200, "{confirm:?}");
    let done = browser.submit_first_form(&confirm, &[("logout", "yes")]);
    assert!(done.status < 400, "{done:?}");

    let after = browser.get_json(&jg.app_url("/"));
    assert!(
        is_login_redirect(&after),
        "session survived back-channel logout: {after:?}"
    );
    assert_eq!(other.get_json(&jg.app_url("/")).status, 200);
    assert!(jg.has_audit("backchannel_logout"));
}

#[test]
fn a_session_ended_elsewhere_is_not_served_again_during_a_later_store_outage() {
    let db = support::process::ScratchDb::create();
    let jg = Jitgate::start(Options {
        store: Some(db.url.clone()),
        ..Options::default()
    });
    let browser = jg.browser();
    support::sign_in(&browser, &jg.app_url("/"), &ALICE);
    assert_eq!(browser.get_json(&jg.app_url("/")).status, 200);

    // Another replica ends the session: its row leaves the shared store.
    db.execute("DELETE FROM sessions");
    // Once this replica's copy is due for revalidation (1 s in tests), it learns that too...
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let after = browser.get_json(&jg.app_url("/"));
    assert!(is_login_redirect(&after), "{after:?}");
    // ...and does not fall back to its old copy when the store then goes away.
    db.cut_off();
    for _ in 0..3 {
        let during = browser.get_json(&jg.app_url("/"));
        assert_ne!(during.status, 200, "ended session served again: {during:?}");
    }
    db.restore();
}

#[test]
fn invalid_logout_tokens_get_400_and_end_nothing() {
    let forge = ForgeIdp::new();
    let jg = Jitgate::start(Options {
        idp: Idp::Forge(forge.clone()),
        ..Options::default()
    });
    forge.set_scenario(Scenario::Valid);
    let browser = jg.browser();
    assert_eq!(browser.follow(&jg.app_url("/")).last().unwrap().status, 200);

    let now = jitgate::util::clock::now_secs();
    let good = json!({
        "iss": forge.issuer(), "aud": support::CLIENT_ID, "iat": now, "exp": now + 120,
        "jti": "jti-1", "sub": "forged-user",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let typ = json!({ "typ": "logout+jwt" });
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        forge.sign_trusted(&typ, &claims)
    };
    let alg_none = format!(
        "{}.{}.",
        base64url(&json!({ "alg": "none", "typ": "logout+jwt" }).to_string()),
        base64url(&good.to_string())
    );
    let bad_tokens = vec![
        ("garbage", "not-a-jwt".to_string()),
        ("alg none", alg_none),
        ("unknown key", forge.sign_rogue(&typ, &good)),
        (
            "wrong typ",
            forge.sign_trusted(&json!({ "typ": "JWT" }), &good),
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("http://127.0.0.1:1")),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("other-client")),
        ),
        (
            "no events",
            with(&|c| {
                c.as_object_mut().unwrap().remove("events");
            }),
        ),
        ("nonce", with(&|c| c["nonce"] = json!("n"))),
        (
            "no sid or sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now - 3600);
                c["exp"] = json!(now - 3000);
            }),
        ),
    ];
    let url = jg.auth_url("/.jitgate/backchannel-logout");
    for (why, token) in bad_tokens {
        let page = browser.post_form(&url, &[("logout_token".into(), token)]);
        assert_eq!(page.status, 400, "{why}: {page:?}");
        assert_eq!(
            browser.get_json(&jg.app_url("/")).status,
            200,
            "{why} ended the session"
        );
    }
    assert_eq!(browser.post_form(&url, &[]).status, 400);

    // The valid token ends the session; replaying it is refused.
    let valid = forge.sign_trusted(&typ, &good);
    assert_eq!(
        browser
            .post_form(&url, &[("logout_token".into(), valid.clone())])
            .status,
        200
    );
    assert!(is_login_redirect(&browser.get_json(&jg.app_url("/"))));
    assert_eq!(
        browser
            .post_form(&url, &[("logout_token".into(), valid)])
            .status,
        400
    );
}

fn base64url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn idle_sessions_end_server_side() {
    let jg = Jitgate::start(Options {
        idle_timeout: "2s",
        absolute_timeout: "1h",
        ..Options::default()
    });
    let browser = jg.browser();
    support::sign_in(&browser, &jg.app_url("/"), &ALICE);
    assert_eq!(browser.get_json(&jg.app_url("/")).status, 200);
    std::thread::sleep(Duration::from_millis(3200));
    let after = browser.get_json(&jg.app_url("/"));
    assert!(
        is_login_redirect(&after),
        "idle session still served: {after:?}"
    );
    assert!(jg.has_audit("session_expired"));
}

#[test]
fn sessions_end_at_the_absolute_timeout_even_when_active() {
    let jg = Jitgate::start(Options {
        idle_timeout: "3s",
        absolute_timeout: "3s",
        ..Options::default()
    });
    let browser = jg.browser();
    support::sign_in(&browser, &jg.app_url("/"), &ALICE);
    let logged_in = Instant::now();
    let mut ended_after = None;
    while logged_in.elapsed() < Duration::from_secs(8) {
        let page = browser.get_json(&jg.app_url("/"));
        if is_login_redirect(&page) {
            ended_after = Some(logged_in.elapsed());
            break;
        }
        assert_eq!(page.status, 200);
        std::thread::sleep(Duration::from_millis(400));
    }
    let ended_after = ended_after.expect("the session outlived its absolute timeout");
    assert!(
        ended_after >= Duration::from_secs(1),
        "ended too early: {ended_after:?}"
    );
}

#[test]
fn malformed_session_cookies_get_400_and_are_cleared() {
    let jg = Jitgate::start(Options::default());
    let answer = support::raw_request(
        jg.port,
        "GET / HTTP/1.1\r\nHost: wiki.example.test\r\nCookie: jitgate_session=<script>\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Request id"));
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("set-cookie: jitgate_session=;"),
        "{answer}"
    );
    assert!(
        !answer.contains("<script>"),
        "cookie value echoed: {answer}"
    );
    // A well-formed but unknown id is simply not a session.
    let unknown = support::raw_request(
        jg.port,
        "GET / HTTP/1.1\r\nHost: wiki.example.test\r\nCookie: jitgate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nConnection: close\r\n\r\n",
    );
    assert!(unknown.starts_with("HTTP/1.1 302"), "{unknown}");
}

#[test]
fn https_login_uses_host_prefixed_secure_cookies() {
    let jg = Jitgate::start(Options {
        https: true,
        ..Options::default()
    });
    let browser = jg.browser();
    let chain = browser.login(&jg.app_url("/tls"), &ALICE);
    let last = chain.last().unwrap();
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(
        support::echoed_headers(last)["x-forwarded-user"],
        json!(["alice"])
    );
    let session_cookies: Vec<&String> = chain
        .iter()
        .flat_map(|p| p.set_cookies.iter())
        .filter(|c| c.starts_with("__Host-jitgate="))
        .collect();
    assert!(!session_cookies.is_empty(), "no __Host- session cookie");
    for c in session_cookies {
        assert!(
            c.contains("; Secure")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Lax")
                && c.contains("Path=/"),
            "{c}"
        );
        assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
    }
}
