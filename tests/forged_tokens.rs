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
    while count() < 9 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(count(), 9, "each refused sign-in is audited once");
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
