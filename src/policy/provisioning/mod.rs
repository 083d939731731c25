//! A policy's `roles:` and `provisioning:` sections, validated into a [`Connector`].
//!
//! Every mistake is reported with file:line:column like the rest of the policy: an unknown
//! template variable or a template that does not parse points at the string that holds it.
//! Secrets are named (env var or file), never inline; relative secret files are read from
//! the policy file's directory.

mod list;
mod operation;

use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use marked_yaml::{Node, Span, Spanned};
use url::Url;

use super::file::{AuthFile, OperationFile, ProvisioningFile, SecretFile};
use crate::policy::connector::template::Templates;
use crate::policy::connector::{ApiAuth, Connector, OpName, Secret};
use crate::util::diagnostics::FileReport;
use crate::util::duration::parse_duration;
use operation::{operation, OpCtx};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 2;
const MAX_RETRIES: u32 = 5;

/// The validated role mapping, in the order the policy lists it.
pub fn roles(
    report: &mut FileReport,
    raw: &std::collections::HashMap<Spanned<String>, Spanned<String>>,
) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = raw.iter().collect();
    pairs.sort_by_key(|(g, _)| g.span().start().map(|m| (m.line(), m.column())));
    let mut out = Vec::new();
    for (group, role) in pairs {
        if group.trim().is_empty() {
            report.at(group.span(), "name the IdP group this role is for");
        }
        if role.trim().is_empty() {
            report.at(role.span(), "name the app role this group maps to");
        }
        out.push((group.trim().to_string(), role.trim().to_string()));
    }
    out
}

/// Validates the `provisioning:` section. `tree` is the file's YAML tree, where bodies are
/// read with their spans.
pub fn connector(
    report: &mut FileReport,
    policy_path: &Path,
    tree: Option<&Node>,
    app: &str,
    roles: Vec<(String, String)>,
    raw: &ProvisioningFile,
) -> Option<Connector> {
    let section = tree
        .and_then(Node::as_mapping)
        .and_then(|m| m.get_node("provisioning"))
        .and_then(Node::as_mapping);
    let auth_span = section
        .and_then(|s| s.get_node("auth"))
        .map(|n| *n.span())
        .unwrap_or(*raw.api.span());
    let api = api_url(report, &raw.api);
    let auth = auth(report, policy_path, &auth_span, &raw.auth);
    let timeout = match &raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => match parse_duration(t) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(60) => d,
            Ok(_) => {
                report.at(t.span(), "timeout must be between 1s and 60s");
                DEFAULT_TIMEOUT
            }
            Err(msg) => {
                report.at(t.span(), msg);
                DEFAULT_TIMEOUT
            }
        },
    };
    let retries = match &raw.retries {
        None => DEFAULT_RETRIES,
        Some(r) if **r <= MAX_RETRIES => **r,
        Some(r) => {
            report.at(r.span(), format!("retries must be at most {MAX_RETRIES}"));
            DEFAULT_RETRIES
        }
    };

    let mut templates = Templates::new();
    let mut uses_account = false;
    let auth_header = match &auth {
        Some(ApiAuth::Header { name, .. }) => Some(name.clone()),
        _ => None,
    };
    let mut op =
        |report: &mut FileReport, name: OpName, raw: &OperationFile, called: Option<&str>| {
            let holder = match called {
                Some(n) => section
                    .and_then(|s| s.get_node("operations"))
                    .and_then(Node::as_mapping)
                    .and_then(|m| m.get_node(n)),
                None => section.and_then(|s| s.get_node(name.as_str())),
            };
            let body = holder
                .and_then(Node::as_mapping)
                .and_then(|m| m.get_node("body"));
            let ctx = OpCtx {
                templates: &mut templates,
                uses_account: &mut uses_account,
                auth_header: auth_header.as_ref(),
                prefix: called.map(|n| format!("operations.{n}")),
            };
            operation(report, ctx, name, raw, body)
        };
    let lookup = raw
        .lookup
        .as_ref()
        .and_then(|r| op(report, OpName::Lookup, r, None));
    let create = op(report, OpName::Create, &raw.create, None);
    let update = raw
        .update
        .as_ref()
        .and_then(|r| op(report, OpName::Update, r, None));
    let deactivate = raw
        .deactivate
        .as_ref()
        .and_then(|r| op(report, OpName::Deactivate, r, None));
    let reactivate = raw
        .reactivate
        .as_ref()
        .and_then(|r| op(report, OpName::Reactivate, r, None));
    let mut named_ops: Vec<_> = raw.operations.iter().collect();
    named_ops.sort_by_key(|(n, _)| n.span().start().map(|m| (m.line(), m.column())));
    let mut named = Vec::new();
    for (n, r) in named_ops {
        if let Some(operation) = op(report, OpName::GrantCall, r, Some(n.trim())) {
            named.push((n.trim().to_string(), operation));
        }
    }
    let list = raw.list.as_ref().and_then(|r| {
        let ctx = OpCtx {
            templates: &mut templates,
            uses_account: &mut uses_account,
            auth_header: auth_header.as_ref(),
            prefix: None,
        };
        list::list_operation(report, ctx, r)
    });

    if let Some(lookup_raw) = &raw.lookup {
        if lookup_raw.account_id.is_none() {
            report.at(
                lookup_raw.url.span(),
                "lookup needs `account_id`: a JSON pointer to the account id in its answer (e.g. /0/id)",
            );
        }
    }
    if uses_account {
        if raw.create.account_id.is_none() && raw.lookup.is_none() {
            report.at(
                raw.create.url.span(),
                "update/deactivate use `account.id`: give create an `account_id` (a JSON pointer such as /id) or add a `lookup`",
            );
        } else if raw.lookup.is_none() && create.as_ref().is_some_and(|c| !c.exists.is_empty()) {
            report.at(
                raw.create.url.span(),
                "when create answers \"already exists\", jitgate needs a `lookup` to find that account's id for update/deactivate",
            );
        }
    }

    let (api, auth, create) = (api?, auth?, create?);
    if report.has_problems() {
        return None;
    }
    Some(Connector {
        app: app.to_string(),
        api,
        auth,
        timeout,
        retries,
        roles,
        lookup,
        create,
        update,
        deactivate,
        reactivate,
        list,
        ahead: raw.ahead.as_ref().is_some_and(|a| **a),
        ahead_at: raw
            .ahead
            .as_ref()
            .and_then(|a| a.span().start())
            .map(|m| (m.line(), m.column()))
            .unwrap_or((1, 1)),
        named,
        templates,
    })
}

fn api_url(report: &mut FileReport, raw: &Spanned<String>) -> Option<Url> {
    match Url::parse(raw.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => Some(url),
        Ok(_) => {
            report.at(
                raw.span(),
                "api must be an http(s) URL without a query, e.g. http://10.0.0.5:8080/api",
            );
            None
        }
        Err(e) => {
            report.at(raw.span(), format!("api is not a URL: {e}"));
            None
        }
    }
}

fn auth(report: &mut FileReport, policy_path: &Path, at: &Span, raw: &AuthFile) -> Option<ApiAuth> {
    let given = [
        raw.bearer.is_some(),
        raw.basic.is_some(),
        raw.header.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        report.at(
            at,
            "`auth` needs exactly one of `bearer`, `basic` or `header`",
        );
        return None;
    }
    if let Some(secret) = &raw.bearer {
        return secret_source(report, policy_path, at, secret).map(ApiAuth::Bearer);
    }
    if let Some(basic) = &raw.basic {
        if basic.username.trim().is_empty() || basic.username.contains(':') {
            report.at(
                basic.username.span(),
                "username must be non-empty and without `:`",
            );
        }
        let password = secret_source(report, policy_path, basic.username.span(), &basic.password)?;
        return Some(ApiAuth::Basic {
            username: basic.username.trim().to_string(),
            password,
        });
    }
    let header = raw.header.as_ref()?;
    let name = match HeaderName::from_bytes(header.name.trim().as_bytes()) {
        Ok(n) => n,
        Err(_) => {
            report.at(header.name.span(), "not a valid header name");
            return None;
        }
    };
    let value = secret_source(report, policy_path, header.name.span(), &header.value)?;
    Some(ApiAuth::Header { name, value })
}

fn secret_source(
    report: &mut FileReport,
    policy_path: &Path,
    at: &Span,
    raw: &SecretFile,
) -> Option<Secret> {
    match (&raw.env, &raw.file) {
        (Some(env), None) => {
            let ok = !env.is_empty() && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                report.at(env.span(), "not an environment variable name");
                return None;
            }
            Some(Secret::Env(env.to_string()))
        }
        (None, Some(file)) => {
            let path = Path::new(file.as_str());
            let path = if path.is_relative() {
                policy_path.parent().unwrap_or(Path::new(".")).join(path)
            } else {
                path.to_path_buf()
            };
            Some(Secret::File(path))
        }
        _ => {
            report.at(
                at,
                "a secret needs exactly one of `env: VAR_NAME` or `file: path` (never the secret itself)",
            );
            None
        }
    }
}
