//! jitgate's config: `file -> ConfigFile (raw) -> validate -> Config (ready to use)`.
//!
//! `load` reads one YAML file, rejects unknown keys, and checks every value it can without
//! touching the network: addresses parse, the public URL is absolute, secrets come from an
//! environment variable or a file (never inline), TLS files exist and hold PEM data, the store
//! URL names a backend we have. Every problem is reported as `file:line:column: message`.
//! Relative paths are taken relative to the directory holding the config file.

mod fields;
mod file;
#[cfg(test)]
mod properties;
mod scim;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::diagnostics::{parse_yaml, Diagnostics, FileReport};
use crate::util::duration::parse_duration;
use fields::{
    check_pem_certs, check_pem_key, idp_settings, lifecycle_settings, public_url, session_settings,
    socket_addr,
};
use file::ConfigFile;
pub use scim::{GroupSource, LinkAttribute, ScimLink, ScimSettings};

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub public: PublicUrl,
    pub idp: IdpSettings,
    pub session: SessionSettings,
    pub store_url: String,
    pub policies_dir: PathBuf,
    /// The SCIM service for the company's directory; off when the section is absent.
    pub scim: Option<ScimSettings>,
    /// The lifecycle queue (`lifecycle:`; defaults when absent).
    pub lifecycle: LifecycleSettings,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub http: Option<SocketAddr>,
    pub https: Option<HttpsListener>,
    pub admin: Option<SocketAddr>,
    /// Where a new process started with `run --upgrade` receives the listening sockets of the
    /// running one (default: `upgrade.sock` in `data_dir`).
    pub upgrade_socket: PathBuf,
    /// How long a process that hands over or stops lets requests in flight finish.
    pub drain_timeout: Duration,
}

/// The longest path a unix socket address holds (`sun_path`, with its final NUL).
const MAX_SOCKET_PATH: usize = 107;
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Listen {
    fn default() -> Self {
        Self {
            http: None,
            https: None,
            admin: None,
            upgrade_socket: PathBuf::from("data/upgrade.sock"),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpsListener {
    pub address: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where users reach jitgate's own pages (login callback, back-channel logout).
#[derive(Debug, Clone)]
pub struct PublicUrl {
    /// `https://auth.example.com` (no trailing slash).
    pub base: String,
    /// The host name of `base`, lower case, without port.
    pub host: String,
    /// `:8443` when the URL names a non-default port, else empty.
    pub port_suffix: String,
    /// True for `https`: cookies get `Secure` and the `__Host-` prefix.
    pub https: bool,
}

impl PublicUrl {
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The externally visible origin of another host served on the same listener.
    pub fn origin_for_host(&self, host: &str) -> String {
        format!("{}://{}{}", self.scheme(), host, self.port_suffix)
    }
}

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct IdpSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: String,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// How long a replica trusts its in-memory copy of a session before re-reading the store
    /// (so a logout on another replica is honoured within this time).
    pub revalidate_after: Duration,
    /// How often a login's claims are refreshed from the IdP with its refresh token (groups
    /// that changed apply as a mover; a refused refresh ends the user's sessions). Off when
    /// `None`.
    pub refresh_claims: Option<Duration>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            revalidate_after: Duration::from_secs(10),
            refresh_claims: None,
        }
    }
}

/// The lifecycle queue (jobs a directory change causes).
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSettings {
    /// A job still `running` this long after it was taken is taken again by any jitgate: its
    /// runner died. Longer than the slowest app call a job makes, so a live runner keeps it.
    pub retake_after: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            retake_after: Duration::from_secs(120),
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut report = FileReport::new(path);
        report.at_line(1, 1, format!("cannot read config file: {e}"));
        report.into_diagnostics()
    })?;
    let raw: ConfigFile = parse_yaml(path, &text)?;
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    validate(path, &base_dir, raw)
}

fn validate(path: &Path, base_dir: &Path, raw: ConfigFile) -> Result<Config, Diagnostics> {
    let mut report = FileReport::new(path);
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };

    let mut listen = Listen::default();
    if let Some(http) = &raw.listen.http {
        listen.http = socket_addr(&mut report, http);
    }
    if let Some(admin) = &raw.listen.admin {
        listen.admin = socket_addr(&mut report, admin);
    }
    if let Some(https) = &raw.listen.https {
        let cert = resolve(&https.cert);
        let key = resolve(&https.key);
        check_pem_certs(&mut report, &https.cert, &cert);
        check_pem_key(&mut report, &https.key, &key);
        if let Some(address) = socket_addr(&mut report, &https.address) {
            listen.https = Some(HttpsListener { address, cert, key });
        }
    }
    // pingora keeps one listening fd per address and hands that same fd to every service that
    // listens on it: two listeners on one address would share (and both close) one socket.
    let https_address = listen.https.as_ref().map(|h| h.address);
    let named = [
        ("http", listen.http),
        ("https", https_address),
        ("admin", listen.admin),
    ];
    for (i, (name, addr)) in named.iter().enumerate() {
        for (other, other_addr) in &named[..i] {
            if let (Some(addr), Some(other_addr)) = (addr, other_addr) {
                if addr == other_addr {
                    report.at_line(
                        1,
                        1,
                        format!("`listen.{name}` and `listen.{other}` are both {addr}: each needs its own address"),
                    );
                }
            }
        }
    }
    if listen.http.is_none() && listen.https.is_none() && !report.has_problems() {
        report.at_line(1, 1, "`listen` needs an `http` or an `https` listener");
    }

    let public = public_url(&mut report, &raw.public_base_url);
    let idp = idp_settings(&mut report, &raw.idp, &resolve);
    let session = session_settings(&mut report, &raw.session);
    let lifecycle = lifecycle_settings(&mut report, &raw.lifecycle);

    let data_dir = raw
        .data_dir
        .as_ref()
        .map(|d| resolve(d))
        .unwrap_or_else(|| resolve("data"));
    listen.upgrade_socket = match &raw.listen.upgrade_socket {
        Some(path) => {
            let resolved = resolve(path);
            if resolved.as_os_str().len() > MAX_SOCKET_PATH {
                report.at(
                    path.span(),
                    format!(
                        "upgrade socket path `{}` is longer than {MAX_SOCKET_PATH} bytes, the most a unix socket path can be",
                        resolved.display()
                    ),
                );
            }
            resolved
        }
        None => data_dir.join("upgrade.sock"),
    };
    if let Some(drain) = &raw.listen.drain_timeout {
        match parse_duration(drain) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(600) => {
                listen.drain_timeout = d;
            }
            Ok(_) => report.at(
                drain.span(),
                format!(
                    "drain_timeout `{}` must be between 1s and 10m",
                    drain.as_str()
                ),
            ),
            Err(e) => report.at(drain.span(), e),
        }
    }
    let store_url = match &raw.store.url {
        Some(url) => {
            let url = url.as_str();
            if crate::store::backend_of(url).is_none() {
                report.at(
                    raw.store
                        .url
                        .as_ref()
                        .map(|u| u.span())
                        .unwrap_or(raw.policies.span()),
                    format!(
                        "store url `{url}` must start with {}",
                        crate::store::URL_SCHEMES
                    ),
                );
            }
            url.to_string()
        }
        None => crate::store::embedded_url(&data_dir.join("jitgate.db")),
    };

    let policies_dir = resolve(&raw.policies);
    if !policies_dir.is_dir() {
        report.at(
            raw.policies.span(),
            format!(
                "policies directory `{}` does not exist",
                policies_dir.display()
            ),
        );
    }

    let scim = raw
        .scim
        .as_ref()
        .map(|section| scim::scim_settings(&mut report, section, &resolve));

    match (public, idp) {
        (Some(public), Some(idp)) => report.finish(Config {
            listen,
            public,
            idp,
            session,
            store_url,
            policies_dir,
            scim: scim.flatten(),
            lifecycle,
        }),
        _ => Err(report.into_diagnostics()),
    }
}
