//! Graceful upgrade: `jitgate run --upgrade --pid-file` takes the listening sockets over from
//! a running jitgate while requests are in flight. Every request gets its answer (a slow one
//! that outlives the old process's accept loop included), a session made before the upgrade
//! still works after it, and an upgrade that cannot start leaves the running process alone.
//!
//! Both processes are real `jitgate run` processes on one SQLite file, in front of a small app
//! whose `/slow` path answers after a few seconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{free_port, wait_for_port, IdpProcess, ALICE, APP_HOST, BOB, CLIENT_ID};

/// How long the app takes to answer `/slow`: longer than pingora's 5 s hand-over window, so
/// the answer arrives after the old process stopped accepting.
const SLOW: Duration = Duration::from_secs(6);

/// An app on its own runtime: `/slow` answers after [`SLOW`], every other path at once, with
/// `ok <path>`. HTTP/1.1 with keep-alive, GET only.
struct App {
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl App {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        Self {
            port,
            _runtime: runtime,
        }
    }
}

async fn serve(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        if path.starts_with("/slow") {
            tokio::time::sleep(SLOW).await;
        }
        let body = format!("ok {path}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A `jitgate run` process, killed when dropped; its stderr goes to a file.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(config: &Path, log: PathBuf, extra: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_jitgate"))
            .args(["run", "--threads", "2", "--config"])
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start jitgate");
        Self { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `within` for the process to exit.
    fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_pid_file(path: &Path, pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|text| text.trim() == pid.to_string()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A client that sends the session cookie itself and keeps its connections alive.
fn client(port: u16) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .resolve(APP_HOST, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap()
}

/// One request; `Err` describes anything but a 200 from the app.
fn fetch(client: &reqwest::blocking::Client, url: &str, cookie: &str) -> Result<String, String> {
    let answer = client
        .get(url)
        .header("Cookie", format!("jitgate_session={cookie}"))
        .send()
        .map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status();
    let body = answer.text().map_err(|e| format!("{url}: body: {e}"))?;
    if status == 200 && body.starts_with("ok ") {
        Ok(body)
    } else {
        Err(format!("{url}: {status} {body}"))
    }
}

#[test]
fn upgrade_under_load_fails_no_request_and_keeps_sessions() {
    let app = App::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/wiki.yaml"),
        support::WIKI_POLICY.replace("{UPSTREAM}", &format!("http://127.0.0.1:{}", app.port)),
    )
    .unwrap();
    std::fs::write(dir.join("client-secret"), support::CLIENT_SECRET).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let idp = IdpProcess::start(&base);
    let config = dir.join("jitgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen:\n  http: 127.0.0.1:{port}\n  admin: 127.0.0.1:{}\n  upgrade_socket: upgrade.sock\n  drain_timeout: 3s\n\
public_base_url: {base}\n\
idp:\n  issuer: {}\n  client_id: {CLIENT_ID}\n  client_secret_file: client-secret\n  scopes: [openid, profile, email, groups]\n\
store:\n  url: sqlite://{}/jitgate.db\n\
policies: policies\n",
            free_port(),
            idp.issuer,
            dir.display()
        ),
    )
    .unwrap();
    let pid_file = dir.join("jitgate.pid");
    let pid_arg = pid_file.to_str().unwrap();

    let mut old = Process::start(&config, dir.join("old.log"), &["--pid-file", pid_arg]);
    wait_for_port(port);
    assert!(
        wait_for_pid_file(&pid_file, old.pid(), Duration::from_secs(10)),
        "the old process wrote no pid file: {}",
        old.logs()
    );
    let browser = support::Browser::new(port, false);
    let url = |path: &str| format!("http://{APP_HOST}:{port}{path}");
    let cookie = support::session_cookie(&support::sign_in(&browser, &url("/"), &ALICE));

    let stop = AtomicBool::new(false);
    let served = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let mut new = None;
    std::thread::scope(|scope| {
        // A slow request, in flight through the whole hand-over.
        let slow = scope.spawn(|| fetch(&client(port), &url("/slow"), &cookie));
        // Four streams of requests on kept-alive connections.
        for stream in 0..4 {
            let (stop, served, failures, cookie, url) = (&stop, &served, &failures, &cookie, &url);
            scope.spawn(move || {
                let client = client(port);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match fetch(&client, &url(&format!("/s{stream}/{n}")), cookie) {
                        Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            0
                        }
                    };
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));

        let upgraded = Process::start(
            &config,
            dir.join("new.log"),
            &["--upgrade", "--pid-file", pid_arg],
        );
        assert!(
            wait_for_pid_file(&pid_file, upgraded.pid(), Duration::from_secs(20)),
            "the new process did not take over: {}\nold: {}",
            upgraded.logs(),
            old.logs()
        );
        let served_at_take_over = served.load(Ordering::Relaxed);
        // The old process hands over, drains and exits by itself.
        let status = old.exited_within(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "the old process did not exit cleanly ({status:?}): {}",
            old.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let slow = slow.join().unwrap();
        assert_eq!(slow, Ok("ok /slow".to_string()), "the slow request");
        assert!(
            served.load(Ordering::Relaxed) > served_at_take_over,
            "no request served after the old process left"
        );
        new = Some(upgraded);
    });
    let mut new = new.unwrap();
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the upgrade, first: {:?}\nold: {}\nnew: {}",
        failures.len(),
        failures.len() + served.load(Ordering::Relaxed),
        failures.first(),
        old.logs(),
        new.logs()
    );
    assert!(
        old.logs().contains("draining"),
        "old process: {}",
        old.logs()
    );

    // The session made before the upgrade, on a fresh connection to the new process; and a
    // new sign-in there.
    assert_eq!(
        fetch(&client(port), &url("/after"), &cookie),
        Ok("ok /after".into())
    );
    support::sign_in(&support::Browser::new(port, false), &url("/"), &BOB);

    // An upgrade that cannot start (here: a broken config) never signals the running process.
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("policies: policies", "policies: no-such-dir"),
    )
    .unwrap();
    let mut failed = Process::start(
        &broken,
        dir.join("failed.log"),
        &["--upgrade", "--pid-file", pid_arg],
    );
    let status = failed.exited_within(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "a broken upgrade ran: {status:?}"
    );
    assert!(
        failed.logs().contains("no-such-dir"),
        "no clear message: {}",
        failed.logs()
    );
    assert!(new.exited_within(Duration::from_millis(500)).is_none());
    assert_eq!(
        fetch(&client(port), &url("/still"), &cookie),
        Ok("ok /still".into())
    );

    // A pid file naming no running process is refused at once, with a clear message.
    let stale = dir.join("stale.pid");
    std::fs::write(&stale, "2147483000\n").unwrap();
    let mut refused = Process::start(
        &config,
        dir.join("refused.log"),
        &["--upgrade", "--pid-file", stale.to_str().unwrap()],
    );
    let status = refused.exited_within(Duration::from_secs(20));
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(
        refused.logs().contains("without --upgrade"),
        "{}",
        refused.logs()
    );
    assert!(new.exited_within(Duration::from_millis(200)).is_none());
}
