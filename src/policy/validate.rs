//! Validating one parsed policy file into an [`AppPolicy`]: its name, hosts, upstream,
//! identity headers, routes and (through `grants` and `provisioning`) its grant types and
//! connector. Every mistake is reported with `file:line:column`; the file is refused if
//! there is any.

use std::path::Path;
use std::sync::Arc;

use http::Method;
use marked_yaml::Spanned;
use url::Url;

use super::file::PolicyFile;
use super::header_names::{self, folded_name, header_key};
use super::header_rules::{
    identity_header_name, identity_header_name_reserved, wire_name, REQUEST_ID_HEADER_REFUSED,
    WELL_KNOWN_IDENTITY_HEADERS,
};
use super::{grants, provisioning};
use super::{Allow, AppPolicy, IdentityHeader, PathPattern, Route, Upstream};
use crate::util::diagnostics::{Diagnostics, FileReport};

pub(super) fn validate(
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
