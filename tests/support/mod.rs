//! Test harness: a real OpenID Provider, a real jitgate and a browser-like HTTP client.
//!
//! `Jitgate::start` writes a config file and policies into a temporary directory, loads them
//! through the same code as `jitgate run`, starts the real oidc-provider (tests/idp, npm) with
//! a client registered for this jitgate, and runs the pingora server on its own thread (pingora
//! must not run inside a tokio runtime) with an echo app as the upstream. Dropping it stops
//! everything. Each test gets its own ports, IdP process, database and policies.

#![allow(dead_code)]

pub mod browser;
pub mod directory;
pub mod forge_idp;
pub mod legacy_app;
pub mod process;
pub mod upgrade_app;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jitgate::gate::Gate;
use jitgate::ops::server::{build_server, start_control, Control};
use pingora_core::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::listening::Service;
use serde_json::{json, Value};
use tokio::sync::Notify;

pub use browser::{Browser, Page};

pub const CLIENT_ID: &str = "jitgate-test";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
pub const APP_HOST: &str = "wiki.example.test";
/// A second app's host, for tests with two apps (the browser resolves it like `APP_HOST`).
pub const SECOND_APP_HOST: &str = "docs.example.test";

pub struct TestUser {
    pub login: &'static str,
    pub password: &'static str,
    pub sub: &'static str,
    pub groups: &'static [&'static str],
}

pub const ALICE: TestUser = TestUser {
    login: "alice",
    password: "alice-pw",
    sub: "u-alice",
    groups: &["engineering", "wiki-admins"],
};
pub const BOB: TestUser = TestUser {
    login: "bob",
    password: "bob-pw",
    sub: "u-bob",
    groups: &["support"],
};
pub const MALLORY: TestUser = TestUser {
    login: "mallory",
    password: "mallory-pw",
    sub: "u-mallory",
    groups: &["outsiders"],
};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// `N` distinct free ports. All `N` listeners are held until every port is picked: the kernel
/// hands a just-released port out again (std's `SO_REUSEADDR` bind draws from ~7000 ports), and
/// two services of one pingora server on the same address share one listening fd (pingora's
/// `ListenerEndpointBuilder::listen` reuses the fd it recorded for that address), which both
/// close at shutdown: "IO Safety violation: owned file descriptor already closed".
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("no free port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("no free port").port())
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The oidc-provider test IdP as a child process.
pub struct IdpProcess {
    child: Child,
    pub issuer: String,
}

impl IdpProcess {
    pub fn start(jitgate_base: &str) -> Self {
        Self::start_for(&[jitgate_base.to_string()])
    }

    /// One IdP client shared by several jitgates (replicas on different ports).
    pub fn start_for(bases: &[String]) -> Self {
        let jitgate_base = bases.first().expect("a base URL");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "tests/idp is not installed: run `npm ci --prefix tests/idp` (scripts/test.sh does)"
        );
        let user = |u: &TestUser| {
            json!({
                "sub": u.sub, "login": u.login, "password": u.password,
                "email": format!("{}@example.test", u.login), "preferred_username": u.login,
                "name": format!("{} Example", u.login), "groups": u.groups,
            })
        };
        let config = json!({
            "port": 0,
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": bases.iter().map(|b| format!("{b}/.jitgate/callback")).collect::<Vec<_>>(),
                "post_logout_redirect_uris": bases.iter().map(|b| format!("{b}/.jitgate/logged-out")).collect::<Vec<_>>(),
                "backchannel_logout_uri": format!("{jitgate_base}/.jitgate/backchannel-logout"),
                "backchannel_logout_session_required": true,
            }],
            "users": [user(&ALICE), user(&BOB), user(&MALLORY)],
        });
        // A start that never says it is ready must fail the test, not hang CI (once, on a
        // loaded 2-core machine, node listened but never printed IDP_READY): three tries.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::spawn(&dir, &config, Duration::from_secs(30)) {
                Ok(idp) => return idp,
                Err(why) => {
                    eprintln!("the test IdP did not start: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("the test IdP did not start in three tries: {failures:?}");
    }

    /// Starts node and waits up to `ready_within` for its `IDP_READY <issuer>` line.
    fn spawn(dir: &Path, config: &Value, ready_within: Duration) -> Result<Self, String> {
        let stderr = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .env("IDP_CONFIG", config.to_string())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start node: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (ready, issuer) = std::sync::mpsc::channel();
        // Reads the ready line, then keeps draining stdout so the child never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("IDP_READY ") {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(issuer.trim().to_string());
                    }
                }
            }
        });
        match issuer.recv_timeout(ready_within) {
            Ok(issuer) => Ok(Self { child, issuer }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let said = std::fs::read_to_string(stderr.path()).unwrap_or_default();
                Err(format!("{e}; its stderr: {said}"))
            }
        }
    }
}

impl IdpProcess {
    /// Changes a user's groups at the IdP (effective at their next login).
    pub fn set_groups(&self, login: &str, groups: &[&str]) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/test/groups", self.issuer))
            .form(&[("login", login), ("groups", &groups.join(","))])
            .send()
            .expect("IdP reachable");
        assert_eq!(answer.status(), 200, "IdP refused the group change");
    }
}

impl IdpProcess {
    /// Deletes a user at the IdP (their refresh tokens are refused from now on).
    pub fn remove_user(&self, login: &str) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/test/remove", self.issuer))
            .form(&[("login", login)])
            .send()
            .expect("IdP reachable");
        assert_eq!(answer.status(), 200, "IdP refused the removal");
    }
}

impl IdpProcess {
    /// Makes the token endpoint wait `delay` before each answer (zero: answer at once).
    pub fn delay_token_endpoint(&self, delay: std::time::Duration) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/test/token-delay", self.issuer))
            .form(&[("ms", delay.as_millis().to_string())])
            .send()
            .expect("IdP reachable");
        assert_eq!(answer.status(), 200, "IdP refused the delay");
    }
}

impl Drop for IdpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TestShutdown(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for TestShutdown {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// Which identity provider the jitgate under test trusts.
pub enum Idp {
    /// The real oidc-provider.
    Real,
    /// The token-forging test issuer (see `forge_idp`).
    Forge(Arc<forge_idp::ForgeIdp>),
    /// An issuer URL nobody listens on.
    Unreachable,
}

pub struct Options {
    pub idle_timeout: &'static str,
    pub absolute_timeout: &'static str,
    pub https: bool,
    pub idp: Idp,
    /// Replaces the default wiki policy (`{UPSTREAM}` is replaced by the echo app's URL).
    pub policy: Option<String>,
    /// The store URL (default: SQLite in the test's directory).
    pub store: Option<String>,
    /// Serve the SCIM service, with [`SCIM_TOKEN`] (from a file) as its token.
    pub scim: bool,
    /// `session.refresh_claims` (off when `None`).
    pub refresh_claims: Option<&'static str>,
}

/// The bearer token of the SCIM service in tests (`Options::scim`).
pub const SCIM_TOKEN: &str = "test-scim-token-0123456789abcdef";

impl Default for Options {
    fn default() -> Self {
        Self {
            idle_timeout: "30m",
            absolute_timeout: "12h",
            https: false,
            idp: Idp::Real,
            policy: None,
            store: None,
            scim: false,
            refresh_claims: None,
        }
    }
}

pub const WIKI_POLICY: &str = "\
app: wiki
hosts: [wiki.example.test]
upstream: {UPSTREAM}
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Email: email
    X-Forwarded-Groups: groups
routes:
  - path: /admin/**
    allow: { groups: [wiki-admins] }
  - path: /**
    allow: { groups: [engineering, support] }
";

pub struct Jitgate {
    pub port: u16,
    pub admin_port: u16,
    pub upstream_port: u16,
    /// The public base URL (the auth host).
    pub base: String,
    pub dir: tempfile::TempDir,
    pub idp: Option<IdpProcess>,
    shutdown: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
    control: Option<Control>,
    https: bool,
}

impl Jitgate {
    pub fn start(options: Options) -> Self {
        // One pingora server listens on all of these: they must differ (see `free_ports`).
        let [port, admin_port, upstream_port, forge_port] = free_ports();
        let scheme = if options.https { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{port}");
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).expect("policies dir");
        let policy = options
            .policy
            .clone()
            .unwrap_or_else(|| WIKI_POLICY.to_string())
            .replace("{UPSTREAM}", &format!("http://127.0.0.1:{upstream_port}"));
        std::fs::write(policies.join("wiki.yaml"), policy).expect("write policy");
        std::fs::write(dir.path().join("client-secret"), CLIENT_SECRET).expect("secret");

        let mut forge_service = None;
        let (issuer, idp) = match &options.idp {
            Idp::Real => {
                let idp = IdpProcess::start(&base);
                (idp.issuer.clone(), Some(idp))
            }
            Idp::Unreachable => (format!("http://127.0.0.1:{}", free_port()), None),
            Idp::Forge(forge) => {
                forge.set_issuer(format!("http://127.0.0.1:{forge_port}"));
                let mut service = Service::new(
                    "forge idp".to_string(),
                    forge_idp::ForgeService(forge.clone()),
                );
                service.add_tcp(&format!("127.0.0.1:{forge_port}"));
                forge_service = Some(service);
                (format!("http://127.0.0.1:{forge_port}"), None)
            }
        };
        let listen = if options.https {
            let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
            format!(
                "  https:\n    address: 127.0.0.1:{port}\n    cert: {}\n    key: {}\n",
                certs.join("dev.crt").display(),
                certs.join("dev.key").display()
            )
        } else {
            format!("  http: 127.0.0.1:{port}\n")
        };
        let config = format!(
            "listen:\n{listen}  admin: 127.0.0.1:{admin_port}\n\
public_base_url: {base}\n\
idp:\n  issuer: {issuer}\n  client_id: {CLIENT_ID}\n  client_secret_file: client-secret\n  scopes: [openid, profile, email, groups]\n\
session:\n  idle_timeout: {}\n  absolute_timeout: {}\n  revalidate_after: 1s\n{}\
policies: policies\n{}{}",
            options.idle_timeout,
            options.absolute_timeout,
            options
                .refresh_claims
                .map(|every| format!("  refresh_claims: {every}\n"))
                .unwrap_or_default(),
            options
                .store
                .as_ref()
                .map(|url| format!("store:\n  url: {url}\n"))
                .unwrap_or_default(),
            if options.scim {
                std::fs::write(dir.path().join("scim-token"), SCIM_TOKEN).expect("scim token");
                "scim:\n  token_file: scim-token\n"
            } else {
                ""
            }
        );
        let config_path = dir.path().join("jitgate.yaml");
        std::fs::write(&config_path, config).expect("write config");

        let cfg = jitgate::config::load(&config_path).unwrap_or_else(|e| panic!("config: {e}"));
        let policy_set = jitgate::policy::load_dir(&cfg.policies_dir)
            .unwrap_or_else(|e| panic!("policies: {e}"));
        let control = start_control(cfg, policy_set).expect("control");
        let mut server = build_server(control.gate.clone(), 1).expect("server");
        let mut upstream = Service::new(
            "echo".to_string(),
            jitgate::demo::upstream::EchoApp::default(),
        );
        upstream.add_tcp(&format!("127.0.0.1:{upstream_port}"));
        server.add_service(upstream);
        if let Some(service) = forge_service {
            server.add_service(service);
        }
        let shutdown = Arc::new(Notify::new());
        let signal = TestShutdown(shutdown.clone());
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        });
        wait_for_port(port);
        wait_for_port(upstream_port);
        Self {
            port,
            admin_port,
            upstream_port,
            base,
            dir,
            idp,
            shutdown,
            thread: Some(thread),
            control: Some(control),
            https: options.https,
        }
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.control.as_ref().expect("running").gate
    }

    /// Runs a future on jitgate's control runtime (e.g. to read the store).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.control.as_ref().expect("running").runtime.block_on(f)
    }

    pub fn app_url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{APP_HOST}:{}{path}", self.port)
    }

    pub fn auth_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(self.port, self.https)
    }

    pub fn policies_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// Waits (up to 5 s) for an audit event of `kind`: events about denials and expiries are
    /// written in the background so they never slow an answer down.
    pub fn has_audit(&self, kind: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.audit_kinds().iter().any(|k| k == kind) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kinds of the newest audit events, newest first.
    pub fn audit_kinds(&self) -> Vec<String> {
        let store = self.gate().store.clone();
        self.block_on(async move { store.recent_audit(100).await })
            .expect("audit")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

impl Drop for Jitgate {
    fn drop(&mut self) {
        self.shutdown.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        drop(self.control.take());
    }
}

/// Signs in through the IdP from `url` and asserts the browser ends up on a 200 page.
pub fn sign_in(browser: &Browser, url: &str, user: &TestUser) -> Vec<Page> {
    let chain = browser.login(url, user);
    let last = chain.last().expect("a page");
    assert_eq!(
        last.status, 200,
        "sign-in as {} ended at {last:?}",
        user.login
    );
    chain
}

/// The JSON the echo app returned: which headers reached the upstream.
pub fn echoed_headers(page: &Page) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(&page.body).unwrap_or_else(|_| {
        panic!(
            "not an echo from the upstream: {} {}",
            page.status, page.body
        )
    });
    v["headers"].as_object().cloned().unwrap_or_default()
}

/// The session cookie a sign-in chain set on the app's host (the last one it set: the
/// first is the auth host's).
pub fn session_cookie(chain: &[Page]) -> String {
    chain
        .iter()
        .flat_map(|p| p.set_cookies.iter())
        .rev()
        .find_map(|c| {
            let v = c.strip_prefix("jitgate_session=")?.split(';').next()?;
            (!v.is_empty()).then(|| v.to_string())
        })
        .expect("a session cookie")
}

/// Sends raw bytes to jitgate and returns the raw answer (for requests no client would make).
pub fn raw_request(port: u16, request: impl AsRef<[u8]>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_ref()).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
