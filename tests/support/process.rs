//! jitgate as a real OS process (`jitgate run` / `jitgate accounts …`), for tests about
//! several replicas and about what the binary prints and logs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use super::{free_port, wait_for_port, CLIENT_ID, CLIENT_SECRET};

/// A running `jitgate run`, its stderr collected for inspection.
pub struct Replica {
    pub port: u16,
    pub base: String,
    child: Child,
    logs: Arc<Mutex<Vec<u8>>>,
}

/// Writes a config for a replica on `port` into `dir` (policies in `dir/../policies`), whose
/// cached sessions are re-read from the store after `revalidate_after` (e.g. `1s`).
pub fn write_config(
    dir: &Path,
    port: u16,
    issuer: &str,
    store_url: &str,
    policies: &Path,
    revalidate_after: &str,
    scim: bool,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("client-secret"), CLIENT_SECRET).unwrap();
    let scim = if scim {
        std::fs::write(dir.join("scim-token"), super::SCIM_TOKEN).unwrap();
        "scim:\n  token_file: scim-token\n"
    } else {
        ""
    };
    let config = format!(
        "listen:\n  http: 127.0.0.1:{port}\n  admin: 127.0.0.1:{}\n\
public_base_url: http://127.0.0.1:{port}\n\
idp:\n  issuer: {issuer}\n  client_id: {CLIENT_ID}\n  client_secret_file: client-secret\n  scopes: [openid, profile, email, groups]\n\
session:\n  revalidate_after: {revalidate_after}\n\
store:\n  url: {store_url}\n\
policies: {}\n{scim}",
        // Never the proxy's own port: one address may not carry two listeners.
        std::iter::repeat_with(free_port)
            .find(|p| *p != port)
            .unwrap_or_default(),
        policies.display()
    );
    let path = dir.join("jitgate.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

impl Replica {
    pub fn start(config: &Path, port: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jitgate"))
            .args(["run", "--threads", "2", "--config"])
            .arg(config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jitgate");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        wait_for_port(port);
        Self {
            port,
            base: format!("http://127.0.0.1:{port}"),
            child,
            logs,
        }
    }

    /// SIGKILL, as a crash would: no drain, nothing finished or released.
    pub fn kill(self) {
        drop(self);
    }

    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `jitgate <args>` to completion.
pub fn jitgate_command(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jitgate"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run jitgate")
}

/// Creates a scratch PostgreSQL database; dropped (forcefully) with the guard.
pub struct ScratchDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ScratchDb {
    pub fn create() -> Self {
        let admin_url = std::env::var("JITGATE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("jitgate_it_{}_{}", std::process::id(), free_port());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap();
        Self {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }
}

impl ScratchDb {
    /// Makes the database unreachable, as an outage would: new connections are refused and
    /// every open one (pool, LISTEN) is cut.
    pub fn cut_off(&self) {
        psql(
            &self.admin_url,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name),
        );
        psql(
            &self.admin_url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.name
            ),
        );
    }

    /// Runs one statement in the scratch database (what another replica would do).
    pub fn execute(&self, sql: &str) {
        psql(&self.url, sql);
    }

    /// Ends the outage started by [`Self::cut_off`].
    pub fn restore(&self) {
        psql(
            &self.admin_url,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name),
        );
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Bounded: a test must fail, not hang CI, if PostgreSQL stops answering.
    rt.block_on(async {
        use sqlx::Connection;
        let run = async {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("PostgreSQL on 127.0.0.1:5432");
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("PostgreSQL did not answer within 60 s: {sql}"));
    });
}

/// Two `jitgate run` processes sharing one scratch PostgreSQL database, one IdP and one
/// policy, each with its own browser.
pub struct TwoReplicas {
    pub replicas: Vec<Replica>,
    pub browsers: Vec<super::Browser>,
    pub idp: super::IdpProcess,
    pub db: ScratchDb,
    _work: tempfile::TempDir,
}

impl TwoReplicas {
    /// Two replicas that re-read a cached session after a second.
    pub fn start(policy: &str) -> Self {
        Self::start_revalidating_after(policy, "1s")
    }

    /// Two replicas that re-read a cached session after `revalidate_after`.
    pub fn start_revalidating_after(policy: &str, revalidate_after: &str) -> Self {
        Self::start_with(policy, revalidate_after, false)
    }

    /// [`Self::start_revalidating_after`], with the SCIM service on (token `SCIM_TOKEN`).
    pub fn start_with(policy: &str, revalidate_after: &str, scim: bool) -> Self {
        Self::start_with_apps(&[("wiki", policy)], revalidate_after, scim)
    }

    /// [`Self::start_with`] for several apps: `(file name without .yaml, policy)`.
    pub fn start_with_apps(apps: &[(&str, &str)], revalidate_after: &str, scim: bool) -> Self {
        let db = ScratchDb::create();
        let work = tempfile::tempdir().unwrap();
        let policies = work.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        for (name, policy) in apps {
            std::fs::write(policies.join(format!("{name}.yaml")), policy).unwrap();
        }
        let ports: [u16; 2] = super::free_ports();
        let bases: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let idp = super::IdpProcess::start_for(&bases);
        let replicas: Vec<Replica> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let dir = work.path().join(format!("r{i}"));
                let config = write_config(
                    &dir,
                    *port,
                    &idp.issuer,
                    &db.url,
                    &policies,
                    revalidate_after,
                    scim,
                );
                Replica::start(&config, *port)
            })
            .collect();
        let browsers = replicas
            .iter()
            .map(|r| super::Browser::new(r.port, false))
            .collect();
        Self {
            replicas,
            browsers,
            idp,
            db,
            _work: work,
        }
    }

    /// A URL on the app's host through replica `i`.
    pub fn url(&self, i: usize, path: &str) -> String {
        self.url_on(super::APP_HOST, i, path)
    }

    /// A URL on `host` through replica `i`.
    pub fn url_on(&self, host: &str, i: usize, path: &str) -> String {
        format!("http://{host}:{}{path}", self.replicas[i].port)
    }
}
