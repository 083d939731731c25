//! Policy files: `policies/*.yaml -> PolicyFile (raw) -> validate -> PolicySet (ready to use)`.
//!
//! One file describes one app: the hosts it is served on, its upstream, the identity headers
//! jitgate sends it, and ordered routes saying who may reach which paths. Anything no route
//! allows is denied. `load_dir` validates every file and the set as a whole (an app name or a
//! host claimed twice is an error) and reports all problems as `file:line:column: message`.
//! A [`Permitted`] can only be made by [`AppPolicy::decide`], so code after the check cannot
//! forget it.

pub mod connector;
mod file;
mod grants;
pub mod header_names;
pub mod path_pattern;
#[cfg(test)]
mod properties;
mod provisioning;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::HeaderName;
use http::Method;
use marked_yaml::Spanned;
use url::Url;

use crate::auth::identity::Identity;
use crate::policy::connector::Connector;
use crate::util::diagnostics::{parse_yaml, Diagnostics, FileReport};
use file::PolicyFile;
pub use grants::GrantType;
use header_names::{folded_name, header_key};
pub use path_pattern::{normalize_path, without_path_parameters, PathError, PathPattern};

/// Headers that commonly carry identity to apps; always stripped from incoming requests, in
/// addition to whatever a policy configures.
pub const WELL_KNOWN_IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-remote-user",
    "remote-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-jitgate-request-id",
];

/// Every app policy, indexed by host.
#[derive(Debug, Default)]
pub struct PolicySet {
    apps: Vec<Arc<AppPolicy>>,
    by_host: HashMap<String, usize>,
}

impl PolicySet {
    pub fn new(apps: Vec<AppPolicy>) -> Self {
        let mut by_host = HashMap::new();
        for (i, app) in apps.iter().enumerate() {
            for host in &app.hosts {
                by_host.insert(host.clone(), i);
            }
        }
        Self {
            apps: apps.into_iter().map(Arc::new).collect(),
            by_host,
        }
    }

    /// The app served on `host` (already lower-cased, without port).
    pub fn app_for_host(&self, host: &str) -> Option<&Arc<AppPolicy>> {
        self.by_host.get(host).and_then(|&i| self.apps.get(i))
    }

    pub fn apps(&self) -> &[Arc<AppPolicy>] {
        &self.apps
    }
}

/// One app, validated.
#[derive(Debug)]
pub struct AppPolicy {
    pub name: String,
    pub source: PathBuf,
    pub hosts: Vec<String>,
    pub upstream: Upstream,
    pub identity_headers: Vec<IdentityHeader>,
    /// Every header to strip from incoming requests.
    pub strip_header_keys: header_names::SpoofableHeaders,
    /// The header jitgate's request id goes to the app in, and comes back to the browser in
    /// on the app's answers (`identity.request_id_header`); `None` sends it neither way.
    pub request_id_header: Option<&'static str>,
    pub routes: Vec<Route>,
    /// IdP group -> app role, most privileged first (`roles:`).
    pub roles: Vec<(String, String)>,
    /// How to keep accounts in the app (`provisioning:`); `None` if the app needs none.
    pub provisioning: Option<Arc<Connector>>,
    /// Stable key of the app name, for caches that outlive a policy reload.
    pub key: u64,
    /// Kinds of elevated access users can ask for (`grants:`).
    pub grant_types: Vec<GrantType>,
    /// This app's metric handles, filled on first use (see `crate::telemetry::metrics::AppMetrics`).
    pub metrics: std::sync::OnceLock<Arc<crate::telemetry::metrics::AppMetrics>>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` to connect to.
    pub address: String,
    /// The address itself when the host is an IP literal: nothing to parse per request.
    /// (A host name is resolved per request, so that DNS changes are followed.)
    pub socket: Option<std::net::SocketAddr>,
    pub tls: bool,
    pub sni: String,
}

#[derive(Debug, Clone)]
pub struct IdentityHeader {
    pub name: HeaderName,
    /// The name as written in the policy (its letter case is kept on the wire).
    pub wire_name: &'static str,
    pub claim: String,
}

#[derive(Debug)]
pub struct Route {
    pub pattern: PathPattern,
    pub pattern_text: String,
    pub methods: Option<Vec<Method>>,
    pub allow: Allow,
    /// `file:line` of the route, for audit events and logs.
    pub location: String,
    /// The grant type (index into the app's `grant_types`) users also need, active, here.
    pub elevate: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Allow {
    pub groups: Vec<String>,
    pub users: Vec<String>,
    pub any_authenticated: bool,
}

impl Allow {
    fn admits(&self, identity: &Identity) -> bool {
        self.any_authenticated
            || self.users.iter().any(|u| **u == *identity.username)
            || self.groups.iter().any(|g| identity.in_group(g))
    }
}

/// Proof that a route allows this identity; only [`AppPolicy::decide`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Permitted {
    route: usize,
}

impl Permitted {
    pub fn route_index(&self) -> usize {
        self.route
    }
}

impl AppPolicy {
    /// The grant type the permitted route also requires, if it is an elevated route.
    pub fn elevation(&self, permitted: Permitted) -> Option<&GrantType> {
        let index = self.routes.get(permitted.route)?.elevate?;
        self.grant_types.get(index)
    }
}

/// Why the policy refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDenied {
    /// No route covers this method and path.
    NoRoute,
    /// A route covers it but does not admit this user; carries the route's location.
    NotAllowed { route: String },
}

impl AppPolicy {
    /// Which route (by position) a request for `normalized_path` falls under, if any.
    pub fn route_index(&self, method: &Method, normalized_path: &str) -> Option<usize> {
        self.routes.iter().position(|r| {
            r.methods.as_ref().is_none_or(|m| m.contains(method))
                && r.pattern.matches(normalized_path)
        })
    }

    /// The first route matching `method` and `normalized_path` decides; none means deny.
    pub fn decide(
        &self,
        method: &Method,
        normalized_path: &str,
        identity: &Identity,
    ) -> Result<Permitted, RouteDenied> {
        let index = self
            .route_index(method, normalized_path)
            .ok_or(RouteDenied::NoRoute)?;
        let route = self.routes.get(index).ok_or(RouteDenied::NoRoute)?;
        if route.allow.admits(identity) {
            Ok(Permitted { route: index })
        } else {
            Err(RouteDenied::NotAllowed {
                route: route.location.clone(),
            })
        }
    }
}

/// Loads and validates every `*.yaml` / `*.yml` file in `dir`.
pub fn load_dir(dir: &Path) -> Result<PolicySet, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml") | Some("yml")
                    )
            })
            .collect(),
        Err(e) => {
            let mut report = FileReport::new(dir);
            report.at_line(1, 1, format!("cannot read policies directory: {e}"));
            return Err(report.into_diagnostics());
        }
    };
    files.sort();
    let mut apps = Vec::new();
    let mut raw_hosts: HashMap<String, (String, PathBuf)> = HashMap::new();
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    for path in &files {
        match load_file(path) {
            Ok((app, raw)) => {
                let mut report = FileReport::new(path);
                if let Some(first) = names.get(&app.name) {
                    report.at(
                        raw.app.span(),
                        format!(
                            "app `{}` is already defined in {}",
                            app.name,
                            first.display()
                        ),
                    );
                } else {
                    names.insert(app.name.clone(), path.clone());
                }
                for host in &raw.hosts {
                    let key = host.to_ascii_lowercase();
                    if let Some((other_app, other)) = raw_hosts.get(&key) {
                        report.at(
                            host.span(),
                            format!(
                                "host `{key}` is already served by app `{other_app}` ({})",
                                other.display()
                            ),
                        );
                    } else {
                        raw_hosts.insert(key, (app.name.clone(), path.clone()));
                    }
                }
                match report.finish(()) {
                    Ok(()) => apps.push(app),
                    Err(d) => problems.extend(d),
                }
            }
            Err(d) => problems.extend(d),
        }
    }
    if problems.is_empty() {
        Ok(PolicySet::new(apps))
    } else {
        Err(problems)
    }
}

fn load_file(path: &Path) -> Result<(AppPolicy, PolicyFile), Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut report = FileReport::new(path);
        report.at_line(1, 1, format!("cannot read policy file: {e}"));
        report.into_diagnostics()
    })?;
    let raw: PolicyFile = parse_yaml(path, &text)?;
    let tree =
        marked_yaml::parse_yaml_with_options(0, &text, marked_yaml::LoaderOptions::default()).ok();
    let app = validate(path, &raw, tree.as_ref())?;
    Ok((app, raw))
}

fn validate(
    path: &Path,
    raw: &PolicyFile,
    tree: Option<&marked_yaml::Node>,
) -> Result<AppPolicy, Diagnostics> {
    let mut report = FileReport::new(path);
    let name = raw.app.trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        report.at(
            raw.app.span(),
            "app name must be letters, digits, - or _ (it is used in URLs, logs and metrics)",
        );
    }
    let mut hosts = Vec::new();
    if raw.hosts.is_empty() {
        report.at(raw.app.span(), "`hosts` needs at least one host name");
    }
    for host in &raw.hosts {
        match valid_host(host) {
            Ok(h) => hosts.push(h),
            Err(msg) => report.at(host.span(), msg),
        }
    }
    let upstream = upstream(&mut report, &raw.upstream);

    let mut identity_headers = Vec::new();
    let mut strip = header_names::SpoofableHeaders::default();
    for name in WELL_KNOWN_IDENTITY_HEADERS {
        strip.add(name);
    }
    let mut configured: Vec<_> = raw.identity.headers.iter().collect();
    configured.sort_by_key(|(h, _)| h.span().start().map(|m| (m.line(), m.column())));
    for (header, claim) in configured {
        match identity_header_name(header) {
            Ok(name) => {
                strip.add(name.as_str());
                if claim.trim().is_empty() {
                    report.at(claim.span(), "name the claim this header carries");
                }
                identity_headers.push(IdentityHeader {
                    wire_name: wire_name(header.trim()),
                    name,
                    claim: claim.trim().to_string(),
                });
            }
            Err(msg) => report.at(header.span(), msg),
        }
    }
    if raw.routes.is_empty() {
        report.at(
            raw.app.span(),
            "`routes` is empty: nothing would be reachable (access is denied by default)",
        );
    }
    let grant_types = grants::grant_types(&mut report, &raw.grants, |h| {
        identity_header_name_reserved(h.as_str())
    });
    for kind in &grant_types {
        for (name, _, _) in &kind.headers {
            strip.add(name.as_str());
        }
    }
    let request_id_header = raw.identity.request_id_header.as_ref().and_then(|header| {
        let name = identity_header_name(header)
            .map_err(|msg| report.at(header.span(), msg))
            .ok()?;
        let key = header_key(name.as_str());
        let taken = identity_headers.iter().any(|h| h.name == name)
            || grant_types
                .iter()
                .any(|k| k.headers.iter().any(|(h, _, _)| *h == name))
            || (strip.contains(&key) && key != "x-jitgate-request-id");
        let refused = REQUEST_ID_HEADER_REFUSED
            .iter()
            .any(|r| folded_name(r) == folded_name(&key));
        let problem = if !key.starts_with("x-") || refused {
            Some("must be an `X-` header that neither HTTP nor browsers give a meaning to, e.g. `X-Request-Id`")
        } else if taken {
            Some("is already an identity or grant header: the app could mistake the id for one")
        } else {
            None
        };
        if let Some(problem) = problem {
            report.at(header.span(), format!("`{}` {problem}", header.trim()));
            return None;
        }
        strip.add(&key);
        Some(wire_name(header.trim()))
    });
    for route in &raw.routes {
        if let Some(e) = &route.elevate {
            if !grant_types.iter().any(|g| g.name == e.trim()) {
                report.at(
                    e.span(),
                    format!("there is no grant type `{}` in `grants:`", e.as_str()),
                );
            }
        }
    }
    let mut routes = Vec::new();
    for route in &raw.routes {
        let pattern = match PathPattern::parse(&route.path) {
            Ok(p) => Some(p),
            Err(msg) => {
                report.at(route.path.span(), msg);
                None
            }
        };
        let mut methods = None;
        if let Some(list) = &route.methods {
            let mut parsed = Vec::new();
            for m in list {
                match m.to_ascii_uppercase().parse::<Method>() {
                    Ok(method) if KNOWN_METHODS.contains(&method.as_str()) => parsed.push(method),
                    _ => report.at(
                        m.span(),
                        format!(
                            "unknown method `{}`, expected one of {}",
                            m.as_str(),
                            KNOWN_METHODS.join(", ")
                        ),
                    ),
                }
            }
            if list.is_empty() {
                report.at(
                    route.path.span(),
                    "`methods` is empty; leave it out to match every method",
                );
            }
            methods = Some(parsed);
        }
        let allow = &route.allow;
        let any_authenticated = allow.authenticated.as_ref().is_some_and(|a| **a);
        if allow.groups.is_empty() && allow.users.is_empty() && !any_authenticated {
            report.at(
                route.path.span(),
                "`allow` names nobody: give groups, users or `authenticated: true`",
            );
        }
        let line = route.path.span().start().map(|m| m.line()).unwrap_or(1);
        if let Some(pattern) = pattern {
            routes.push(Route {
                pattern,
                pattern_text: route.path.as_str().to_string(),
                methods,
                allow: Allow {
                    groups: trimmed(&allow.groups),
                    users: trimmed(&allow.users),
                    any_authenticated,
                },
                location: format!("{}:{}", path.display(), line),
                elevate: route
                    .elevate
                    .as_ref()
                    .and_then(|e| grant_types.iter().position(|g| g.name == e.trim())),
            });
        }
    }

    let roles = provisioning::roles(&mut report, &raw.roles);
    let connector = raw.provisioning.as_ref().and_then(|p| {
        provisioning::connector(&mut report, path, tree, &name, roles.clone(), p).map(Arc::new)
    });

    // Grant types' app calls must name operations of this app's connector.
    for g in raw.grants.values() {
        let calls = g
            .app_calls
            .iter()
            .flat_map(|c| [&c.start, &c.end])
            .flatten();
        for call in calls {
            let known = connector
                .as_ref()
                .is_some_and(|c| c.named(call.trim()).is_some());
            if !known {
                report.at(
                    call.span(),
                    format!(
                        "`{}` is not one of this app's `provisioning.operations`",
                        call.as_str()
                    ),
                );
            }
        }
    }

    match upstream {
        Some(upstream) if !report.has_problems() => report.finish(AppPolicy {
            key: app_key(&name),
            name,
            source: path.to_path_buf(),
            hosts,
            upstream,
            identity_headers,
            strip_header_keys: strip,
            request_id_header,
            routes,
            roles,
            provisioning: connector,
            grant_types,
            metrics: std::sync::OnceLock::new(),
        }),
        _ => Err(report.into_diagnostics()),
    }
}

/// First 8 bytes of SHA-256 of the app name.
fn app_key(name: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(digest.as_ref().get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(bytes)
}

const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

fn trimmed(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_string()).collect()
}

fn valid_host(host: &Spanned<String>) -> Result<String, String> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(h)
    } else {
        Err(format!(
            "`{}` is not a host name (no scheme, port or path: e.g. wiki.example.com)",
            host.as_str()
        ))
    }
}

fn upstream(report: &mut FileReport, value: &Spanned<String>) -> Option<Upstream> {
    let url = match Url::parse(value) {
        Ok(url) => url,
        Err(e) => {
            report.at(value.span(), format!("upstream is not a URL: {e}"));
            return None;
        }
    };
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            report.at(
                value.span(),
                format!("upstream must be http or https, not {other}"),
            );
            return None;
        }
    };
    if url.path() != "/" || url.query().is_some() {
        report.at(
            value.span(),
            "upstream must be an origin like http://10.0.0.5:8080 (paths are forwarded as requested)",
        );
        return None;
    }
    let host = url.host_str()?.to_string();
    let port = url.port_or_known_default()?;
    let address = format!("{host}:{port}");
    Some(Upstream {
        socket: address.parse().ok(),
        address,
        tls,
        sni: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    })
}

/// A header name as jitgate writes it on the wire, kept for the life of the process.
///
/// Static, because pingora copies a `&'static str` name by pointer, while a shared buffer
/// would be reference-counted on every request by every worker thread. Each distinct
/// spelling is kept once, so reloading policies does not grow memory.
pub fn wire_name(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// `X-` headers that browsers or proxies act on: never a request id (it also goes on answers).
const REQUEST_ID_HEADER_REFUSED: &[&str] = &[
    "x-frame-options",
    "x-content-type-options",
    "x-xss-protection",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "x-dns-prefetch-control",
    "x-permitted-cross-domain-policies",
];

/// Header names jitgate may set; connection-level and credential headers are refused.
fn identity_header_name(header: &Spanned<String>) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(header.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", header.as_str()))?;
    if identity_header_name_reserved(name.as_str()) {
        return Err(format!(
            "`{}` cannot carry identity: it is used by HTTP itself",
            header.as_str()
        ));
    }
    Ok(name)
}

/// Headers HTTP itself uses, which no policy may set.
/// Compared with case and punctuation ignored, as stripping compares them: a policy header
/// named `Content.Length` would otherwise make jitgate strip the real `Content-Length`.
fn identity_header_name_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "cookie",
        "authorization",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "expect",
        "keep-alive",
        "proxy-connection",
    ];
    let name = folded_name(name);
    RESERVED.iter().any(|r| folded_name(r) == name)
}
