//! The browser login through a real OpenID Provider, and what reaches the app afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{echoed_headers, Jitgate, Options, ALICE, BOB, MALLORY};

#[test]
fn login_returns_to_the_original_path_with_identity_headers() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let chain = browser.login(&jg.app_url("/docs/page?id=7"), &ALICE);
    let last = chain.last().unwrap();
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(last.url, jg.app_url("/docs/page?id=7"));
    let headers = echoed_headers(last);
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["alice"]));
    assert_eq!(
        headers["x-forwarded-email"],
        serde_json::json!(["alice@example.test"])
    );
    assert_eq!(
        headers["x-forwarded-groups"],
        serde_json::json!(["engineering,wiki-admins"])
    );
    // jitgate's own cookies never reach the app.
    let cookies = headers
        .get("cookie")
        .map(|c| c.to_string())
        .unwrap_or_default();
    assert!(!cookies.contains("jitgate"), "{cookies}");
    // A second request is served from the session without another login.
    let again = browser.get_json(&jg.app_url("/other"));
    assert_eq!(again.status, 200);
    assert!(jg.has_audit("login"));
}

#[test]
fn anonymous_request_is_sent_to_login_and_nothing_is_forwarded() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let page = browser.get_json(&jg.app_url("/secret?q=1"));
    assert_eq!(page.status, 302);
    let location = page.location.unwrap();
    assert!(
        location.starts_with(
            &jg.auth_url("/.jitgate/login?host=wiki.example.test&rd=%2Fsecret%3Fq%3D1")
        ),
        "{location}"
    );
    // Non-navigation requests get a 401 instead of a redirect that would lose the body.
    let post = browser.request("POST", &jg.app_url("/api/save"));
    assert_eq!(post.status, 401);
    assert!(post.body.contains("Request id"), "{}", post.body);
}

#[test]
fn user_outside_the_allowed_groups_gets_a_403_page() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let chain = browser.login(&jg.app_url("/"), &MALLORY);
    let last = chain.last().unwrap();
    assert_eq!(last.status, 403, "{last:?}");
    assert!(last.body.contains("Access denied"));
    let rid = last.headers.get("x-request-id").expect("request id header");
    assert!(last.body.contains(rid.as_str()));
    assert!(jg.has_audit("access_denied"));
}

#[test]
fn routes_are_matched_in_order_with_default_deny() {
    let jg = Jitgate::start(Options::default());
    let bob = jg.browser();
    support::sign_in(&bob, &jg.app_url("/"), &BOB);
    assert_eq!(bob.get_json(&jg.app_url("/admin")).status, 403);
    assert_eq!(bob.get_json(&jg.app_url("/admin/users")).status, 403);
    // Encodings and doubled slashes cannot sneak past the admin rule.
    assert_eq!(bob.get_json(&jg.app_url("/%61dmin/users")).status, 403);
    assert_eq!(bob.get_json(&jg.app_url("//admin")).status, 403);
    // Dot segments are refused before anything else (clients normalise them, so send raw).
    for path in ["/x/../admin", "/x/%2e%2e/admin", "/a%2fb", "/a%00b"] {
        let answer = support::raw_request(
            jg.port,
            format!("GET {path} HTTP/1.1\r\nHost: wiki.example.test\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("Request id"), "{path}: {answer}");
    }
    let alice = jg.browser();
    support::sign_in(&alice, &jg.app_url("/admin"), &ALICE);
}

#[test]
fn the_app_receives_the_path_the_route_was_decided_on() {
    let jg = Jitgate::start(Options::default());
    let bob = jg.browser();
    let cookie = support::session_cookie(&bob.login(&jg.app_url("/"), &BOB));
    let get = |target: &[u8]| {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(
            format!(
                " HTTP/1.1\r\nHost: wiki.example.test\r\nCookie: jitgate_session={cookie}\r\n\
                 Accept: application/json\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        support::raw_request(jg.port, request)
    };
    let status = |answer: &str| answer.get(9..12).unwrap_or("").to_string();
    let target = |answer: &str| {
        let (_, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let echo: serde_json::Value = serde_json::from_str(body).expect("an echo");
        echo["target"].as_str().unwrap_or_default().to_string()
    };

    // pingora reads these targets as `/` but would send them on as they came: jitgate's 400.
    for refused in [&b"x:/admin/users"[..], b"*", b"?q=/admin"] {
        let answer = get(refused);
        assert_eq!(status(&answer), "400", "{refused:?}: {answer}");
        assert!(answer.contains("Request id"), "{refused:?}: {answer}");
    }
    // A target that is not UTF-8 (`\xC0\xAE` is an overlong `.`) is refused too (by pingora).
    let answer = get(b"/docs/\xC0\xAE/admin");
    assert_eq!(status(&answer), "400", "{answer}");
    assert!(!answer.contains("\"target\""), "{answer}");
    // Absolute form: judged on its path, and the app gets that path in origin form.
    assert_eq!(status(&get(b"http://wiki.example.test/admin/users")), "403");
    let answer = get(b"HTTP://wiki.example.test/docs?page=2");
    assert_eq!(status(&answer), "200", "{answer}");
    assert_eq!(target(&answer), "/docs?page=2");

    // `;` path parameters (Tomcat reads `/admin;x/users` as `/admin/users`).
    for refused in [
        &b"/admin;x/users"[..],
        b"/docs/..;/admin/users",
        b"/%252e%252e/admin",
    ] {
        let answer = get(refused);
        assert_eq!(status(&answer), "400", "{refused:?}: {answer}");
    }
    // Under the same route either way: forwarded untouched.
    let answer = get(b"/docs/page;jsessionid=ABC");
    assert_eq!(status(&answer), "200", "{answer}");
    assert_eq!(target(&answer), "/docs/page;jsessionid=ABC");
    // An origin-form target reaches the app byte for byte.
    let answer = get(b"/docs//a/%7Euser?x=%2F");
    assert_eq!(status(&answer), "200", "{answer}");
    assert_eq!(target(&answer), "/docs//a/%7Euser?x=%2F");
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    browser.login(&jg.app_url("/"), &BOB);
    let page = browser.get_with(
        &jg.app_url("/"),
        &[
            ("X-Forwarded-User", "admin"),
            ("x-forwarded-user", "admin2"),
            ("X_Forwarded_User", "admin3"),
            ("X-FORWARDED-GROUPS", "wiki-admins"),
            ("x-forwarded_email", "ceo@example.test"),
            ("X-Remote-User", "root"),
            ("X-Unrelated", "kept"),
        ],
    );
    assert_eq!(page.status, 200);
    let headers = echoed_headers(&page);
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert_eq!(
        headers["x-forwarded-groups"],
        serde_json::json!(["support"])
    );
    assert_eq!(
        headers["x-forwarded-email"],
        serde_json::json!(["bob@example.test"])
    );
    for (name, _) in &headers {
        assert!(
            !name.contains('_'),
            "underscore variant reached the app: {name}"
        );
    }
    assert!(!headers.contains_key("x-remote-user"));
    assert_eq!(headers["x-unrelated"], serde_json::json!(["kept"]));
}

/// Names an app could fold into an identity header: other punctuation, none at all.
const PUNCTUATION_TWINS: &[(&str, &str)] = &[
    ("X.Forwarded.User", "admin"),
    ("XForwardedUser", "admin2"),
    ("x~forwarded~groups", "wiki-admins"),
    ("x-forwarded.email", "ceo@example.test"),
    ("Remote.User", "root"),
    ("x-auth-request.user", "root"),
    ("X-Forwarded-Users", "kept"),
];

fn assert_twins_removed(page: &support::Page) {
    assert_eq!(page.status, 200, "{page:?}");
    let headers = echoed_headers(page);
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert_eq!(
        headers["x-forwarded-groups"],
        serde_json::json!(["support"])
    );
    for name in headers.keys() {
        let folded: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        assert!(
            ![
                "xforwardeduser",
                "xforwardedgroups",
                "xforwardedemail",
                "remoteuser",
                "xauthrequestuser"
            ]
            .contains(&folded.as_str())
                || [
                    "x-forwarded-user",
                    "x-forwarded-groups",
                    "x-forwarded-email"
                ]
                .contains(&name.as_str()),
            "{name} reached the app on {}",
            page.version
        );
    }
    assert_eq!(headers["x-forwarded-users"], serde_json::json!(["kept"]));
}

#[test]
fn identity_headers_spelled_with_other_punctuation_never_reach_the_upstream() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    browser.login(&jg.app_url("/"), &BOB);
    let page = browser.get_with(&jg.app_url("/"), PUNCTUATION_TWINS);
    assert_eq!(page.version, "HTTP/1.1");
    assert_twins_removed(&page);
}

#[test]
fn identity_headers_spelled_with_other_punctuation_never_reach_the_upstream_over_http2() {
    let jg = Jitgate::start(Options {
        https: true,
        ..Options::default()
    });
    let browser = jg.browser();
    browser.login(&jg.app_url("/"), &BOB);
    let page = browser.get_with(&jg.app_url("/"), PUNCTUATION_TWINS);
    assert_eq!(page.version, "HTTP/2.0", "the HTTPS listener negotiates h2");
    assert_twins_removed(&page);
}

/// The JSON body of a raw HTTP answer from the echo app.
fn echoed_in_raw(answer: &str) -> serde_json::Map<String, serde_json::Value> {
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    let v: serde_json::Value = serde_json::from_str(body).expect("an echo");
    v["headers"].as_object().cloned().unwrap_or_default()
}

#[test]
fn naming_identity_headers_in_connection_does_not_remove_them() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let cookie = support::session_cookie(&browser.login(&jg.app_url("/"), &BOB));
    // A proxy drops the headers a client names in `Connection` (they are hop-by-hop); a
    // client must not be able to drop the ones jitgate adds that way.
    let answer = support::raw_request(
        jg.port,
        format!(
            "GET / HTTP/1.1\r\nHost: wiki.example.test\r\nCookie: jitgate_session={cookie}\r\n\
             Accept: application/json\r\nConnection: close, X-Forwarded-User, x-forwarded-groups\r\n\
             X-Forwarded-User: admin\r\n\r\n"
        ),
    );
    let headers = echoed_in_raw(&answer);
    assert_eq!(headers["x-forwarded-user"], serde_json::json!(["bob"]));
    assert_eq!(
        headers["x-forwarded-groups"],
        serde_json::json!(["support"])
    );
}

#[test]
fn the_request_id_reaches_the_app_and_comes_back_only_where_the_policy_names_a_header() {
    // Without `request_id_header`: the app gets no id, and an id a client made up is dropped.
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    browser.login(&jg.app_url("/"), &BOB);
    let page = browser.get_with(&jg.app_url("/"), &[("X-Jitgate-Request-Id", "forged")]);
    let headers = echoed_headers(&page);
    assert!(!headers.contains_key("x-jitgate-request-id"), "{headers:?}");
    assert!(!headers.contains_key("x-request-id"), "{headers:?}");
    assert!(!page.headers.contains_key("x-request-id"));
    drop(jg);

    // With it: the app gets jitgate's id (not the client's) and the browser gets it back.
    let policy = support::WIKI_POLICY.replace(
        "identity:\n",
        "identity:\n  request_id_header: X-Request-Id\n",
    );
    let jg = Jitgate::start(Options {
        policy: Some(policy),
        ..Options::default()
    });
    let browser = jg.browser();
    browser.login(&jg.app_url("/"), &BOB);
    let page = browser.get_with(&jg.app_url("/"), &[("X-Request-Id", "forged")]);
    assert_eq!(page.status, 200, "{page:?}");
    let headers = echoed_headers(&page);
    let sent = headers["x-request-id"].as_array().expect("one request id");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let id = sent[0].as_str().unwrap();
    assert_eq!(id.len(), 12, "{id}");
    assert_ne!(id, "forged");
    assert_eq!(page.headers["x-request-id"], id);
    // Each request has its own id.
    let next = echoed_headers(&browser.get_json(&jg.app_url("/")));
    assert_ne!(next["x-request-id"][0], id);
}

#[test]
fn a_host_no_policy_serves_gets_404() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let url = format!("http://unknown.example.test:{}/", jg.port);
    let page = browser.get_with(&url, &[("X-Forwarded-User", "admin")]);
    assert_eq!(page.status, 404);
    assert!(page.body.contains("Request id"));
    assert!(
        !page.body.contains("headers"),
        "looks forwarded: {}",
        page.body
    );
}

#[test]
fn a_sign_in_hand_off_link_works_only_in_the_browser_that_started_the_sign_in() {
    let jg = Jitgate::start(Options::default());
    // Mallory signs in to the wiki but keeps the one-time hand-off link to herself...
    let mallory = jg.browser();
    let chain = mallory.login_until(&jg.app_url("/"), &MALLORY, Some("/.jitgate/handoff"));
    let link = chain
        .last()
        .and_then(|p| p.location.clone())
        .expect("a hand-off link");
    assert!(link.contains("/.jitgate/handoff?code="), "{link}");
    // ...and gets Bob to open it, to sign him in to the wiki as Mallory.
    let bob = jg.browser();
    let page = bob.get_json(&link);
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("another browser"), "{}", page.body);
    assert!(
        !page
            .set_cookies
            .iter()
            .any(|c| c.starts_with("jitgate_session=")),
        "{:?}",
        page.set_cookies
    );
    assert!(jg.has_audit("login_failed"));
    // Bob is still signed out of the wiki.
    let page = bob.get_json(&jg.app_url("/"));
    assert_eq!(page.status, 302);
    assert!(page
        .location
        .unwrap_or_default()
        .contains("/.jitgate/login"));

    // A login link without the app host's binding (a bookmark) starts over at the app.
    let page = bob.get(&jg.auth_url("/.jitgate/login?host=wiki.example.test&rd=%2Fdocs"));
    assert_eq!(page.status, 302);
    assert_eq!(page.location.as_deref(), Some(jg.app_url("/docs").as_str()));
    // And a sign-in started at the app completes there.
    let chain = bob.login(&jg.app_url("/docs"), &BOB);
    let last = chain.last().unwrap();
    assert_eq!(
        (last.status, last.url.as_str()),
        (200, jg.app_url("/docs").as_str())
    );
}

#[test]
fn open_redirects_after_login_are_refused() {
    let jg = Jitgate::start(Options::default());
    for rd in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/%0a/x\\y",
    ] {
        let browser = jg.browser();
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("host", "wiki.example.test")
            .append_pair("rd", rd)
            .finish();
        let chain = browser.login(&jg.auth_url(&format!("/.jitgate/login?{query}")), &ALICE);
        let last = chain.last().unwrap();
        assert_eq!(last.url, jg.app_url("/"), "rd {rd:?} led to {}", last.url);
        assert!(chain.iter().all(|p| !p.url.contains("evil")), "rd {rd:?}");
    }
    // A login for a host jitgate does not serve is refused outright.
    let page = jg
        .browser()
        .get(&jg.auth_url("/.jitgate/login?host=evil.example&rd=/"));
    assert_eq!(page.status, 400);
}

#[test]
fn logout_ends_the_session_and_signs_out_at_the_idp() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let cookie = support::session_cookie(&browser.login(&jg.app_url("/"), &ALICE));
    let with_old_cookie = || {
        support::raw_request(
            jg.port,
            format!(
                "GET / HTTP/1.1\r\nHost: wiki.example.test\r\nCookie: jitgate_session={cookie}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
    };
    // Every worker thread has served the session just now (and may hold it)...
    for _ in 0..8 {
        assert!(with_old_cookie().starts_with("HTTP/1.1 200"));
    }
    let out = browser.get(&jg.app_url("/.jitgate/logout"));
    assert_eq!(out.status, 302);
    let idp = jg.idp.as_ref().unwrap();
    let location = out.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{}/session/end", idp.issuer)),
        "{location}"
    );
    assert!(location.contains("id_token_hint="));
    assert!(location.contains("post_logout_redirect_uri="));
    assert!(out
        .set_cookies
        .iter()
        .any(|c| c.starts_with("jitgate_session=;")));
    // ...and still the session is gone at once, whatever the browser still holds.
    for _ in 0..8 {
        let after = with_old_cookie();
        assert!(after.starts_with("HTTP/1.1 302"), "{after}");
        assert!(after.contains("/.jitgate/login"), "{after}");
    }
    assert!(jg.has_audit("logout"));
}

#[test]
fn a_logout_link_on_another_site_asks_before_signing_out() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    browser.login(&jg.app_url("/"), &ALICE);
    let logout = jg.app_url("/.jitgate/logout");
    for site in ["cross-site", "same-site"] {
        let page = browser.get_with(&logout, &[("Sec-Fetch-Site", site)]);
        assert_eq!(page.status, 200, "{site}");
        assert!(page.body.contains("method=\"post\""), "{}", page.body);
        assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
        let post = browser.post_form_with(&logout, &[], &[("Sec-Fetch-Site", site)]);
        assert_eq!(post.status, 200, "{site}");
        assert_eq!(browser.get_json(&jg.app_url("/")).status, 200, "{site}");
    }
    assert!(!jg.has_audit("logout"));
    // The button on that page posts from jitgate's own origin: that signs out.
    let out = browser.post_form_with(&logout, &[], &[("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(out.status, 302);
    assert!(jg.has_audit("logout"));
    assert_eq!(browser.get_json(&jg.app_url("/")).status, 302);
}

#[test]
fn one_login_serves_the_auth_host_and_app_hosts_with_separate_cookies() {
    let jg = Jitgate::start(Options::default());
    let browser = jg.browser();
    let chain = browser.login(&jg.app_url("/"), &ALICE);
    let handoff = chain
        .iter()
        .find(|p| p.url.contains("/.jitgate/handoff"))
        .expect("hand-off hop");
    // The hand-off code is single-use.
    let replay = jg.browser().get(&handoff.url);
    assert_eq!(replay.status, 400);
}
