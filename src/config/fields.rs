//! Validating the config file's fields one by one: listen addresses, TLS files, the public
//! URL, the identity provider, secrets, session timeouts and the lifecycle queue. Each check
//! reports what is wrong at the field's `file:line:column` and returns the ready value, or
//! `None` if it cannot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marked_yaml::Spanned;
use url::Url;

use super::{file, IdpSettings, LifecycleSettings, PublicUrl, Secret, SessionSettings};
use crate::util::diagnostics::FileReport;
use crate::util::duration::parse_duration;

pub(super) fn socket_addr(report: &mut FileReport, value: &Spanned<String>) -> Option<SocketAddr> {
    match value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            report.at(
                value.span(),
                format!("`{}` is not an address like 0.0.0.0:8080", value.as_str()),
            );
            None
        }
    }
}

pub(super) fn check_pem_certs(report: &mut FileReport, at: &Spanned<String>, path: &Path) {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    match CertificateDer::pem_file_iter(path) {
        Ok(iter) => {
            let certs: Vec<_> = iter.collect();
            if certs.is_empty() || certs.iter().any(|c| c.is_err()) {
                report.at(
                    at.span(),
                    format!("`{}` holds no PEM certificate", path.display()),
                );
            }
        }
        Err(e) => report.at(
            at.span(),
            format!("cannot read certificate `{}`: {e}", path.display()),
        ),
    }
}

pub(super) fn check_pem_key(report: &mut FileReport, at: &Spanned<String>, path: &Path) {
    use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
    if let Err(e) = PrivateKeyDer::from_pem_file(path) {
        report.at(
            at.span(),
            format!(
                "cannot read a PEM private key from `{}`: {e}",
                path.display()
            ),
        );
    }
}

pub(super) fn public_url(report: &mut FileReport, value: &Spanned<String>) -> Option<PublicUrl> {
    let url = match Url::parse(value) {
        Ok(url) => url,
        Err(e) => {
            report.at(
                value.span(),
                format!("public_base_url `{}` is not a URL: {e}", value.as_str()),
            );
            return None;
        }
    };
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            report.at(
                value.span(),
                format!("public_base_url must be http or https, not {other}"),
            );
            return None;
        }
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        report.at(
            value.span(),
            "public_base_url must be an origin such as https://auth.example.com (no path)",
        );
        return None;
    }
    let Some(host) = url.host_str() else {
        report.at(value.span(), "public_base_url needs a host name");
        return None;
    };
    let port_suffix = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let host = host.to_ascii_lowercase();
    Some(PublicUrl {
        base: format!("{}://{}{}", url.scheme(), host, port_suffix),
        host,
        port_suffix,
        https,
    })
}

pub(super) fn idp_settings(
    report: &mut FileReport,
    raw: &file::IdpFile,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<IdpSettings> {
    match Url::parse(&raw.issuer) {
        Ok(url) if url.scheme() == "https" || is_loopback(&url) => {}
        Ok(_) => report.at(
            raw.issuer.span(),
            "the issuer must use https (plain http is allowed only on loopback addresses)",
        ),
        Err(e) => report.at(raw.issuer.span(), format!("issuer is not a URL: {e}")),
    }
    if raw.client_id.trim().is_empty() {
        report.at(raw.client_id.span(), "client_id is empty");
    }
    let secret = match (&raw.client_secret, &raw.client_secret_file) {
        (Some(_), Some(file)) => {
            report.at(
                file.span(),
                "give client_secret or client_secret_file, not both",
            );
            None
        }
        (Some(value), None) => secret_from_env(report, value),
        (None, Some(file)) => {
            let path = resolve(file);
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim().to_string())),
                Ok(_) => {
                    report.at(file.span(), format!("`{}` is empty", path.display()));
                    None
                }
                Err(e) => {
                    report.at(
                        file.span(),
                        format!("cannot read `{}`: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (None, None) => {
            report.at(
                raw.client_id.span(),
                "the idp needs client_secret: ${ENV_VAR} or client_secret_file: PATH",
            );
            None
        }
    };
    let scopes: Vec<String> = match &raw.scopes {
        Some(list) => list.iter().map(|s| s.as_str().to_string()).collect(),
        None => ["openid", "profile", "email"].map(String::from).to_vec(),
    };
    if !scopes.iter().any(|s| s == "openid") {
        let span = raw
            .scopes
            .as_ref()
            .and_then(|l| l.first())
            .map(|s| s.span())
            .unwrap_or(raw.issuer.span());
        report.at(span, "scopes must include `openid`");
    }
    let claim = |c: &Option<Spanned<String>>, default: &str| {
        c.as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_else(|| default.to_string())
    };
    Some(IdpSettings {
        issuer: raw.issuer.as_str().trim_end_matches('/').to_string(),
        client_id: raw.client_id.as_str().to_string(),
        client_secret: secret?,
        scopes,
        username_claim: claim(&raw.claims.username, "preferred_username"),
        groups_claim: claim(&raw.claims.groups, "groups"),
    })
}

pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// `${NAME}` reads the environment; anything else is an inline secret, which we refuse so
/// that secrets stay out of files kept in git.
pub(super) fn secret_from_env(report: &mut FileReport, value: &Spanned<String>) -> Option<Secret> {
    secret_named(report, value, "client_secret")
}

/// [`secret_from_env`] for the secret called `what` in messages.
pub(super) fn secret_named(
    report: &mut FileReport,
    value: &Spanned<String>,
    what: &str,
) -> Option<Secret> {
    let text = value.as_str().trim();
    let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        let hint = if what == "client_secret" {
            "client_secret must be `${ENV_VAR}` (or use client_secret_file); inline secrets are refused".to_string()
        } else {
            format!(
                "a {what} must be `${{ENV_VAR}}` (or use token_file); inline secrets are refused"
            )
        };
        report.at(value.span(), hint);
        return None;
    };
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(Secret::new(v)),
        _ => {
            report.at(
                value.span(),
                format!("environment variable `{name}` is not set or empty"),
            );
            None
        }
    }
}

pub(super) fn session_settings(
    report: &mut FileReport,
    raw: &file::SessionFile,
) -> SessionSettings {
    let defaults = SessionSettings::default();
    let mut pick = |v: &Option<Spanned<String>>, default: Duration| match v {
        None => default,
        Some(text) => match parse_duration(text) {
            Ok(d) if d.as_secs() > 0 => d,
            Ok(_) => {
                report.at(text.span(), "must be longer than zero");
                default
            }
            Err(msg) => {
                report.at(text.span(), msg);
                default
            }
        },
    };
    let settings = SessionSettings {
        idle_timeout: pick(&raw.idle_timeout, defaults.idle_timeout),
        absolute_timeout: pick(&raw.absolute_timeout, defaults.absolute_timeout),
        revalidate_after: pick(&raw.revalidate_after, defaults.revalidate_after),
        refresh_claims: raw
            .refresh_claims
            .is_some()
            .then(|| pick(&raw.refresh_claims, Duration::from_secs(300))),
    };
    if settings.idle_timeout > settings.absolute_timeout {
        if let Some(idle) = &raw.idle_timeout {
            report.at(
                idle.span(),
                "idle_timeout cannot be longer than absolute_timeout",
            );
        }
    }
    settings
}

/// `lifecycle:`. `retake_after` is at least a second (a live runner must not lose its job to
/// a tick) and at most an hour (a dead runner's leaver must not wait longer).
pub(super) fn lifecycle_settings(
    report: &mut FileReport,
    raw: &file::LifecycleFile,
) -> LifecycleSettings {
    let mut settings = LifecycleSettings::default();
    if let Some(text) = &raw.retake_after {
        match parse_duration(text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => {
                settings.retake_after = d;
            }
            Ok(_) => report.at(
                text.span(),
                format!(
                    "lifecycle.retake_after `{}` must be between 1s and 1h",
                    text.as_str()
                ),
            ),
            Err(msg) => report.at(text.span(), msg),
        }
    }
    settings
}
