//! One provisioning operation (`lookup`, `create`, `update`, `deactivate` or a named one in
//! `operations:`), validated into an [`Operation`]: its method, URL and header templates, the
//! JSON body turned into templates where it has template syntax, and the statuses that mean
//! success, "already exists" and "not found". The section as a whole (API URL, auth, secrets,
//! timeout, retries, and which operations it needs) is checked in `provisioning`, which
//! calls [`operation`] once per operation it lists.

use http::{HeaderName, Method};
use marked_yaml::{Node, Spanned};
use serde_json::Value;

use crate::policy::connector::template::{is_template, whole_expression, Kind, Templates};
use crate::policy::connector::{BodyNode, OpName, Operation};
use crate::policy::file::OperationFile;
use crate::util::diagnostics::FileReport;

/// What validating one operation shares with the others.
pub(super) struct OpCtx<'a> {
    pub(super) templates: &'a mut Templates,
    pub(super) uses_account: &'a mut bool,
    /// A custom credential header's name, which operations may not set themselves.
    pub(super) auth_header: Option<&'a HeaderName>,
    /// Template-name prefix of a named operation (`operations.<name>`).
    pub(super) prefix: Option<String>,
}

pub(super) fn operation(
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
        OpName::Deactivate | OpName::Reactivate => (&[], &[], &[404]),
        OpName::List => (&[], &[], &[]),
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
