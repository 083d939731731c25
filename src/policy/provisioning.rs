//! A policy's `roles:` and `provisioning:` sections, validated into a [`Connector`].
//!
//! Every mistake is reported with file:line:column like the rest of the policy: an unknown
//! template variable or a template that does not parse points at the string that holds it.
//! Secrets are named (env var or file), never inline; relative secret files are read from
//! the policy file's directory.

use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method};
use marked_yaml::{Node, Span, Spanned};
use serde_json::Value;
use url::Url;

use super::file::{AuthFile, OperationFile, ProvisioningFile, SecretFile};
use crate::policy::connector::template::{is_template, whole_expression, Kind, Templates};
use crate::policy::connector::{ApiAuth, BodyNode, Connector, OpName, Operation, Secret};
use crate::util::diagnostics::FileReport;
use crate::util::duration::parse_duration;

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
    let mut named_ops: Vec<_> = raw.operations.iter().collect();
    named_ops.sort_by_key(|(n, _)| n.span().start().map(|m| (m.line(), m.column())));
    let mut named = Vec::new();
    for (n, r) in named_ops {
        if let Some(operation) = op(report, OpName::GrantCall, r, Some(n.trim())) {
            named.push((n.trim().to_string(), operation));
        }
    }

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

/// What validating one operation shares with the others.
struct OpCtx<'a> {
    templates: &'a mut Templates,
    uses_account: &'a mut bool,
    /// A custom credential header's name, which operations may not set themselves.
    auth_header: Option<&'a HeaderName>,
    /// Template-name prefix of a named operation (`operations.<name>`).
    prefix: Option<String>,
}

fn operation(
    report: &mut FileReport,
    ctx: OpCtx<'_>,
    name: OpName,
    raw: &OperationFile,
    body: Option<&Node>,
) -> Option<Operation> {
    let OpCtx {
        templates,
        uses_account,
        auth_header,
        prefix,
    } = ctx;
    let op = prefix.as_deref().unwrap_or(name.as_str());
    let method = match raw.method.trim().to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        other => {
            report.at(
                raw.method.span(),
                format!("unknown method `{other}`, expected GET, POST, PUT, PATCH or DELETE"),
            );
            Method::GET
        }
    };
    let account = name.account_known();
    let url = format!("{op}.url");
    add(
        report,
        templates,
        uses_account,
        &url,
        &raw.url,
        Kind::Url,
        account,
    );

    let mut headers = Vec::new();
    let mut configured: Vec<_> = raw.headers.iter().collect();
    configured.sort_by_key(|(h, _)| h.span().start().map(|m| (m.line(), m.column())));
    for (header, value) in configured {
        match HeaderName::from_bytes(header.trim().as_bytes()) {
            Ok(h)
                if matches!(
                    h.as_str(),
                    "authorization"
                        | "host"
                        | "content-length"
                        | "transfer-encoding"
                        | "connection"
                ) || Some(&h) == auth_header =>
            {
                report.at(
                    header.span(),
                    format!("`{}` is set by jitgate itself", header.as_str()),
                );
            }
            Ok(h) => {
                let tname = format!("{op}.header.{h}");
                add(
                    report,
                    templates,
                    uses_account,
                    &tname,
                    value,
                    Kind::Text,
                    account,
                );
                headers.push((h, tname));
            }
            Err(_) => report.at(header.span(), "not a valid header name"),
        }
    }

    let body = body.map(|node| {
        body_node(
            report,
            templates,
            uses_account,
            op,
            account,
            node,
            &mut String::new(),
        )
    });
    let statuses =
        |report: &mut FileReport, list: &Option<Vec<Spanned<u16>>>, default: &[u16]| match list {
            None => default.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|s| {
                    if (100..=599).contains(&**s) {
                        Some(**s)
                    } else {
                        report.at(s.span(), "not an HTTP status (100-599)");
                        None
                    }
                })
                .collect(),
        };
    let (success_default, exists_default, not_found_default): (&[u16], &[u16], &[u16]) = match name
    {
        OpName::Lookup => (&[200], &[], &[404]),
        OpName::Create => (&[], &[409], &[]),
        OpName::Update => (&[], &[], &[]),
        OpName::Deactivate => (&[], &[], &[404]),
        OpName::GrantCall => (&[], &[], &[]),
    };
    let success = statuses(report, &raw.success, success_default);
    let exists = statuses(report, &raw.exists, exists_default);
    let not_found = statuses(report, &raw.not_found, not_found_default);
    if !exists.is_empty() && name != OpName::Create {
        if let Some(first) = raw.exists.iter().flatten().next() {
            report.at(first.span(), "only create can answer \"already exists\"");
        }
    }
    let account_id = raw.account_id.as_ref().and_then(|p| {
        if p.is_empty() || p.starts_with('/') {
            Some(p.to_string())
        } else {
            report.at(
                p.span(),
                "account_id is a JSON pointer: it starts with / (e.g. /id or /0/id)",
            );
            None
        }
    });
    Some(Operation {
        name,
        method,
        url,
        headers,
        body,
        success,
        exists,
        not_found,
        account_id,
    })
}

#[allow(clippy::too_many_arguments)]
fn add(
    report: &mut FileReport,
    templates: &mut Templates,
    uses_account: &mut bool,
    name: &str,
    source: &Spanned<String>,
    kind: Kind,
    account_known: bool,
) {
    if source.contains("account") {
        *uses_account = true;
    }
    if let Err(e) = templates.add(name, source, kind, account_known) {
        report.at(source.span(), e.to_string());
    }
}

/// Turns a YAML body into a [`BodyNode`]: unquoted scalars keep their YAML type, strings with
/// template syntax become templates.
fn body_node(
    report: &mut FileReport,
    templates: &mut Templates,
    uses_account: &mut bool,
    op: &str,
    account: bool,
    node: &Node,
    path: &mut String,
) -> BodyNode {
    match node {
        Node::Scalar(s) => {
            let text = s.as_str();
            if s.may_coerce() {
                match text {
                    "true" => return BodyNode::Literal(Value::Bool(true)),
                    "false" => return BodyNode::Literal(Value::Bool(false)),
                    "null" | "~" => return BodyNode::Literal(Value::Null),
                    _ => {}
                }
                if let Ok(n) = text.parse::<i64>() {
                    return BodyNode::Literal(Value::from(n));
                }
                if let Some(n) = text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    return BodyNode::Literal(Value::Number(n));
                }
            }
            if !is_template(text) {
                return BodyNode::Literal(Value::String(text.to_string()));
            }
            let name = format!("{op}.body{path}");
            let kind = if whole_expression(text).is_some() {
                Kind::Json
            } else {
                Kind::Text
            };
            if text.contains("account") {
                *uses_account = true;
            }
            if let Err(e) = templates.add(&name, text, kind, account) {
                if let Some(start) = s.span().start() {
                    report.at_line(start.line(), start.column(), e.to_string());
                }
            }
            match kind {
                Kind::Json => BodyNode::Json(name),
                _ => BodyNode::Text(name),
            }
        }
        Node::Mapping(m) => BodyNode::Map(
            m.iter()
                .map(|(k, v)| {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k.as_str());
                    let value = body_node(report, templates, uses_account, op, account, v, path);
                    path.truncate(len);
                    (k.as_str().to_string(), value)
                })
                .collect(),
        ),
        Node::Sequence(items) => BodyNode::List(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    let value = body_node(report, templates, uses_account, op, account, v, path);
                    path.truncate(len);
                    value
                })
                .collect(),
        ),
    }
}
