//! Forged and wrong ID tokens are refused: nothing but a valid token makes a session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::forge_idp::{ForgeIdp, Scenario};
use support::{Idp, Jitgate, Options};

fn attempt(jg: &Jitgate, forge: &ForgeIdp, scenario: Scenario) -> support::Page {
    forge.set_scenario(scenario);
    let browser = jg.browser();
    let chain = browser.follow(&jg.app_url("/"));
    chain.last().unwrap().clone()
}

#[test]
fn only_a_valid_id_token_creates_a_session() {
    let forge = ForgeIdp::new();
    let jg = Jitgate::start(Options {
        idp: Idp::Forge(forge.clone()),
        ..Options::default()
    });
    // The forge works: a valid token logs in and the identity reaches the app.
    let ok = attempt(&jg, &forge, Scenario::Valid);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        support::echoed_headers(&ok)["x-forwarded-user"],
        serde_json::json!(["forged"])
    );

    for scenario in [
        Scenario::BadSignature,
        Scenario::AlgNone,
        Scenario::Hs256,
        Scenario::WrongIssuer,
        Scenario::WrongAudience,
        Scenario::Expired,
        Scenario::NonceMismatch,
        Scenario::UnknownKey,
        Scenario::StateMismatch,
        Scenario::AzpOfAnotherClient,
        Scenario::SeveralAudiencesWithoutAzp,
    ] {
        let page = attempt(&jg, &forge, scenario);
        assert_eq!(page.status, 400, "{scenario:?} was not refused: {page:?}");
        assert!(
            page.body.contains("Sign-in failed"),
            "{scenario:?}: {}",
            page.body
        );
        assert!(
            !page
                .set_cookies
                .iter()
                .any(|c| c.starts_with("jitgate_session=") && !c.starts_with("jitgate_session=;")),
            "{scenario:?} set a session cookie"
        );
    }
    // Failed sign-ins are audited in the background: give the writes a moment.
    let count = || {
        jg.audit_kinds()
            .iter()
            .filter(|k| *k == "login_failed")
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count() < 11 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(count(), 11, "each refused sign-in is audited once");
}

/// jitgate in front of the forge, after one valid sign-in (so the keys were fetched).
fn signed_in_once() -> (std::sync::Arc<ForgeIdp>, Jitgate) {
    let forge = ForgeIdp::new();
    let jg = Jitgate::start(Options {
        idp: Idp::Forge(forge.clone()),
        ..Options::default()
    });
    let ok = attempt(&jg, &forge, Scenario::Valid);
    assert_eq!(ok.status, 200, "{ok:?}");
    (forge, jg)
}

#[test]
fn a_key_rotation_right_after_a_jwks_fetch_never_refuses_a_login() {
    let (forge, jg) = signed_in_once();
    let fetched = forge.jwks_fetches();
    assert!(fetched >= 1, "discovery fetched the keys");
    // Moments after that fetch, the IdP starts signing with a key jitgate has not seen.
    forge.rotate();
    let after = attempt(&jg, &forge, Scenario::Valid);
    assert_eq!(
        after.status, 200,
        "a rotated key refused a login: {after:?}"
    );
    assert_eq!(
        forge.jwks_fetches(),
        fetched + 1,
        "one fetch for the new key"
    );
    // Now the new key is known: no more fetches.
    assert_eq!(attempt(&jg, &forge, Scenario::Valid).status, 200);
    assert_eq!(forge.jwks_fetches(), fetched + 1);
}

#[test]
fn a_flood_of_unknown_key_ids_fetches_the_jwks_at_most_about_once_a_second() {
    let (forge, jg) = signed_in_once();
    let before = forge.jwks_fetches();
    let now = jitgate::util::clock::now_secs();
    let claims = serde_json::json!({
        "iss": forge.issuer(), "aud": support::CLIENT_ID, "iat": now, "exp": now + 120,
        "sub": "forged-user",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let url = jg.auth_url("/.jitgate/backchannel-logout");
    // Anyone can post logout tokens: 8 clients post 5 each, naming keys never published.
    let flood = |tag: &str| -> (Vec<u16>, std::time::Duration, std::time::Duration) {
        let started = std::time::Instant::now();
        let answers: Vec<(u16, std::time::Duration)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|w| {
                    let (url, claims, forge, jg) = (&url, &claims, &forge, &jg);
                    scope.spawn(move || {
                        let browser = jg.browser();
                        (0..5)
                            .map(|i| {
                                let mut c = claims.clone();
                                c["jti"] = serde_json::json!(format!("{tag}-{w}-{i}"));
                                let token = forge.sign_rogue(&serde_json::json!({}), &c);
                                let sent = std::time::Instant::now();
                                let status = browser
                                    .post_form(url, &[("logout_token".into(), token)])
                                    .status;
                                (status, sent.elapsed())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let slowest = answers.iter().map(|(_, t)| *t).max().unwrap_or_default();
        (
            answers.into_iter().map(|(s, _)| s).collect(),
            started.elapsed(),
            slowest,
        )
    };
    let (statuses, elapsed, slowest) = flood("up");
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    let fetches = forge.jwks_fetches() - before;
    println!("40 unknown kids in {elapsed:?} (slowest {slowest:?}): {fetches} JWKS fetch(es)");
    assert!(
        fetches >= 1,
        "an unknown kid is refused only after a fresh fetch"
    );
    let allowed = elapsed.as_secs_f64().ceil() as usize + 1;
    assert!(
        fetches <= allowed,
        "{fetches} fetches in {elapsed:?}: more than one a second"
    );

    // With the IdP's key endpoint failing, a failed fetch is shared by everyone waiting for
    // it: still about one fetch a second, and nobody waits long.
    forge.break_jwks(true);
    let before = forge.jwks_fetches();
    let (statuses, elapsed, slowest) = flood("down");
    let fetches = forge.jwks_fetches() - before;
    println!(
        "40 unknown kids, JWKS failing, in {elapsed:?} (slowest {slowest:?}): {fetches} fetch(es)"
    );
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert!(
        fetches <= elapsed.as_secs_f64().ceil() as usize + 1,
        "{fetches} fetches in {elapsed:?}"
    );
    assert!(slowest < std::time::Duration::from_secs(4), "{slowest:?}");
    forge.break_jwks(false);

    // A real rotation during the flood's aftermath still signs in.
    forge.rotate();
    let ok = attempt(&jg, &forge, Scenario::Valid);
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[test]
fn an_idp_that_cannot_be_reached_gives_a_503_page_not_a_redirect_loop() {
    let jg = Jitgate::start(Options {
        idp: Idp::Unreachable,
        ..Options::default()
    });
    let chain = jg.browser().follow(&jg.app_url("/"));
    let last = chain.last().unwrap();
    assert_eq!(last.status, 503, "{last:?}");
    assert!(last.body.contains("identity provider cannot be reached"));
    assert!(chain.len() <= 3, "too many hops: {}", chain.len());
}
