//! `jitgate demo` as a new user meets it: it refuses to start next to a program holding one
//! of its ports, and its policy tells the zero-standing-privilege story end to end (bob asks,
//! alice approves, bob is admin in the app until the grant ends, then editor again).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{wait_for_port, Browser, Page};

/// A base port with base..base+3 and base+1010 free right now.
fn free_base() -> u16 {
    for _ in 0..200 {
        let base = support::free_port();
        if base > 64_000 {
            continue;
        }
        let ports = [base, base + 1, base + 2, base + 3, base + 1010];
        if ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free range of ports");
}

struct Demo {
    child: Child,
    base: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let child = Command::new(env!("CARGO_BIN_EXE_jitgate"))
        .args(["demo", "--port-base", &base.to_string(), "--dir"])
        .arg(dir.path().join("demo"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for port in [base, base + 1, base + 2, base + 3] {
        wait_for_port(port);
    }
    Demo {
        child,
        base,
        _dir: dir,
    }
}

/// Signs in at the demo's development issuer by pressing the user's button.
fn sign_in(browser: &Browser, url: &str, user_index: usize) -> Page {
    let chain = browser.follow(url);
    let form = chain.last().unwrap();
    assert!(form.body.contains("Pick a demo user"), "{form:?}");
    let posted = browser.submit_first_form(form, &[("user", &user_index.to_string())]);
    browser.follow_from(posted).last().unwrap().clone()
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_stops_at_once_when_one_of_its_ports_is_taken() {
    let base = free_base();
    // Another program holds the port the demo's identity provider would use.
    let squatter = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jitgate"))
        .args(["demo", "--port-base", &base.to_string(), "--dir"])
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A demo that ignored the taken port would keep running: give it 10 s, then fail.
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the demo kept running next to a program holding port {}",
                base + 1
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&format!("port {}", base + 1)), "{said}");
    assert!(said.contains("--port-base"), "{said}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("running"));
    // Nothing of the demo started: its own port is still free.
    assert!(TcpListener::bind(("127.0.0.1", base)).is_ok());
    drop(squatter);
}

#[test]
fn the_demo_tells_the_zero_standing_privilege_story() {
    let demo = start_demo();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", demo.base);
    let api = url("/.jitgate/api/grants");

    // bob (engineering): an account with his standing role, and no admin.
    let bob = Browser::new(demo.base, false);
    let home = sign_in(&bob, &url("/"), 1);
    assert_eq!(home.status, 200, "{home:?}");
    let page = bob.get(&url("/"));
    assert!(page.body.contains("role <b>editor</b>"), "{}", page.body);
    assert_eq!(bob.get(&url("/admin")).status, 403);

    // He asks; he cannot approve his own request.
    let asked = bob.post_json(
        &api,
        &json!({"app": "demo", "type": "demo-admin", "purpose": "rotate the wiki keys",
                "ticket": "INC-1234", "duration": "3s"}),
    );
    assert_eq!(asked.status, 201, "{asked:?}");
    let grant: serde_json::Value = serde_json::from_str(&asked.body).unwrap();
    assert_eq!(grant["status"], "pending");
    let id = grant["id"].as_str().unwrap().to_string();
    let own = bob.post_json(&format!("{api}/{id}/approve"), &json!({}));
    assert_eq!(own.status, 403, "{own:?}");

    // alice (another engineer, on call) approves on the same host in her own browser.
    let alice = Browser::new(demo.base, false);
    assert_eq!(sign_in(&alice, &url("/"), 0).status, 200);
    let approved = alice.post_json(&format!("{api}/{id}/approve"), &json!({}));
    assert_eq!(approved.status, 200, "{approved:?}");

    // bob is admin at the edge and in the app, and the page can show the time left.
    let admin = bob.get(&url("/admin"));
    assert_eq!(admin.status, 200, "{admin:?}");
    wait_for(
        "bob never became admin in the app",
        Duration::from_secs(3),
        || bob.get(&url("/admin")).body.contains("role <b>admin</b>"),
    );
    let mine: serde_json::Value = serde_json::from_str(&bob.get(&api).body).unwrap();
    assert!(mine["mine"][0]["seconds_left"].as_i64().is_some(), "{mine}");
    assert!(admin.body.contains("/.jitgate/api/grants"), "the countdown");

    // The grant ends: refused at the edge, and editor again in the app.
    wait_for("the grant never ended", Duration::from_secs(6), || {
        bob.get(&url("/admin")).status == 403
    });
    wait_for("the app kept bob admin", Duration::from_secs(6), || {
        bob.get(&url("/")).body.contains("role <b>editor</b>")
    });

    // alice is on call: her own request is approved at once.
    let hers = alice.post_json(
        &api,
        &json!({"app": "demo", "type": "demo-admin", "purpose": "incident",
                "ticket": "INC-9", "duration": "1m"}),
    );
    assert_eq!(hers.status, 201, "{hers:?}");
    assert!(hers.body.contains("\"status\":\"active\""), "{}", hers.body);
}

#[test]
fn the_demo_directory_page_disables_bob_and_his_session_and_account_go() {
    let demo = start_demo();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", demo.base);
    let bob = Browser::new(demo.base, false);
    assert_eq!(sign_in(&bob, &url("/"), 1).status, 200);
    assert!(bob.get(&url("/")).body.contains("role <b>editor</b>"));

    // The issuer's directory page lists the demo users, each with a button.
    let hr = Browser::new(demo.base, false);
    let directory = format!("http://127.0.0.1:{}/directory", demo.base + 1);
    let page = hr.get(&directory);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains("<td>bob</td><td>engineering</td><td>active</td>"),
        "{}",
        page.body
    );
    // Another site cannot press the buttons: the form's token is checked.
    let forged = hr.post_form(&directory, &[("disable".into(), "1".into())]);
    assert_eq!(forged.status, 400, "{forged:?}");

    let pressed = hr.submit_first_form(&page, &[("disable", "1")]);
    assert_eq!(pressed.status, 303, "{pressed:?}");
    let page = hr.get(&directory);
    assert!(
        page.body
            .contains("<td>bob</td><td>engineering</td><td>disabled</td>"),
        "{}",
        page.body
    );
    // His session ends at once, his next sign-in is refused with the page, and his account
    // in the demo app is deactivated.
    let pressed_at = Instant::now();
    wait_for("bob kept his session", Duration::from_secs(1), || {
        bob.get(&url("/")).status != 200
    });
    println!(
        "demo: bob's session refused {} ms after Disable",
        pressed_at.elapsed().as_millis()
    );
    let refused = sign_in(&Browser::new(demo.base, false), &url("/"), 1);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("removed by your organisation"));
    let token =
        std::fs::read_to_string(demo._dir.path().join("demo").join("demo-app-token")).unwrap();
    let api = format!("http://127.0.0.1:{}/api/users?username=bob", demo.base + 3);
    wait_for(
        "bob's app account stayed active",
        Duration::from_secs(5),
        || {
            let answer = reqwest::blocking::Client::new()
                .get(&api)
                .bearer_auth(&token)
                .send()
                .unwrap()
                .text()
                .unwrap();
            answer.contains("\"active\":false")
        },
    );
    // alice is untouched.
    let alice = Browser::new(demo.base, false);
    assert_eq!(sign_in(&alice, &url("/"), 0).status, 200);

    // Enable lets him back. His account in the app comes back at his next visit through
    // the connector's `update` (`active: true`): the replica that ran the return forgot its
    // cached confirmation, so that visit asks the store at once (within a few seconds).
    let page = hr.get(&directory);
    assert_eq!(hr.submit_first_form(&page, &[("enable", "1")]).status, 303);
    let enabled = Instant::now();
    let mut last = None;
    let back = Instant::now() + Duration::from_secs(5);
    while Instant::now() < back {
        let page = sign_in(&Browser::new(demo.base, false), &url("/"), 1);
        if page.status == 200 {
            break;
        }
        last = Some(page);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        Instant::now() < back,
        "bob could not sign in again: {last:?}"
    );
    println!(
        "demo: bob back in the app {} ms after Enable",
        enabled.elapsed().as_millis()
    );
}
