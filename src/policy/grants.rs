//! A policy's `grants:` section, validated into [`GrantType`]s, and routes' `elevate:`.
//!
//! Every mistake is reported with file:line:column: a maximum duration that is not a
//! duration, a ticket pattern that is not a regular expression, nobody allowed to ask, an
//! approval nobody can give (no auto groups and no approvers), headers HTTP itself uses.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use marked_yaml::Spanned;

use super::file::{GrantTypeFile, GroupsFile};
use crate::util::diagnostics::FileReport;
use crate::util::duration::parse_duration;

/// A kind of elevated access, from a policy's `grants:`.
#[derive(Debug)]
pub struct GrantType {
    pub name: String,
    pub max_duration: Duration,
    pub purpose_required: bool,
    /// Anchored regular expression for the ticket, if tickets are asked for.
    pub ticket: Option<regex::Regex>,
    pub requesters: Vec<String>,
    /// Groups whose requests the policy approves by itself.
    pub auto: Vec<String>,
    pub approvers: Vec<String>,
    pub required: u32,
    /// Header name, its spelling on the wire, and the fixed value sent while active.
    pub headers: Vec<(HeaderName, &'static str, HeaderValue)>,
    /// Connector `operations:` to call in the app when a grant starts and when it ends.
    pub start_call: Option<String>,
    pub end_call: Option<String>,
}

/// Longest grant any policy may allow: elevated access is meant to be short.
const MAX_GRANT: Duration = Duration::from_secs(7 * 86_400);
const MAX_APPROVERS_REQUIRED: u32 = 5;

pub fn grant_types(
    report: &mut FileReport,
    raw: &HashMap<Spanned<String>, GrantTypeFile>,
    reserved_header: impl Fn(&HeaderName) -> bool,
) -> Vec<GrantType> {
    let mut named: Vec<_> = raw.iter().collect();
    named.sort_by_key(|(n, _)| n.span().start().map(|m| (m.line(), m.column())));
    let mut out = Vec::new();
    for (name, g) in named {
        let ok_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_name {
            report.at(name.span(), "grant type names are letters, digits, - or _");
        }
        let max_duration = match parse_duration(&g.max_duration) {
            Ok(d) if d.is_zero() => {
                report.at(g.max_duration.span(), "max_duration must be more than 0");
                None
            }
            Ok(d) if d > MAX_GRANT => {
                report.at(
                    g.max_duration.span(),
                    "max_duration is at most 7d: elevated access is meant to be short",
                );
                None
            }
            Ok(d) => Some(d),
            Err(msg) => {
                report.at(g.max_duration.span(), msg);
                None
            }
        };
        let ticket = g.ticket_pattern.as_ref().and_then(|p| {
            // Anchored: the whole ticket must match, not a part of it.
            // The pattern must be valid on its own first, so that it cannot close the
            // anchoring group (`a)|(b`).
            let alone = regex::Regex::new(p.as_str()).map(|_| ());
            match alone.and_then(|()| regex::Regex::new(&format!("^(?:{})$", p.as_str()))) {
                Ok(re) => Some(re),
                Err(e) => {
                    // regex's message spans several lines; its last line says what is wrong.
                    let text = e.to_string();
                    let why = text
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim_start_matches("error: ");
                    report.at(
                        p.span(),
                        format!("ticket_pattern is not a regular expression: {why}"),
                    );
                    None
                }
            }
        });
        let requesters = groups(report, &g.requesters, name, "requesters");
        if requesters.is_empty() {
            report.at(name.span(), "`requesters.groups` names nobody who may ask");
        }
        let auto = g
            .approval
            .auto
            .as_ref()
            .map(|a| groups(report, a, name, "approval.auto"))
            .unwrap_or_default();
        let approvers = g
            .approval
            .approvers
            .as_ref()
            .map(|a| groups(report, a, name, "approval.approvers"))
            .unwrap_or_default();
        let required = match &g.approval.required {
            None => 1,
            Some(r) if **r >= 1 && **r <= MAX_APPROVERS_REQUIRED => **r,
            Some(r) => {
                report.at(
                    r.span(),
                    format!("required is between 1 and {MAX_APPROVERS_REQUIRED}"),
                );
                1
            }
        };
        if approvers.is_empty() && !requesters.iter().all(|r| auto.contains(r)) {
            report.at(
                name.span(),
                "some requesters can never be approved: give `approval.approvers` (or list all requester groups under `approval.auto`)",
            );
        }
        let mut headers = Vec::new();
        let mut configured: Vec<_> = g.headers.iter().collect();
        configured.sort_by_key(|(h, _)| h.span().start().map(|m| (m.line(), m.column())));
        for (header, value) in configured {
            match (
                HeaderName::from_bytes(header.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            ) {
                (Ok(h), _) if reserved_header(&h) => {
                    report.at(
                        header.span(),
                        format!(
                            "`{}` cannot be set by a grant: it is used by HTTP itself",
                            header.as_str()
                        ),
                    );
                }
                (Ok(h), Ok(v)) => headers.push((h, super::wire_name(header.trim()), v)),
                (Err(_), _) => report.at(header.span(), "not a valid header name"),
                (_, Err(_)) => report.at(value.span(), "not a valid header value"),
            }
        }
        if let Some(max_duration) = max_duration {
            out.push(GrantType {
                name: name.trim().to_string(),
                max_duration,
                purpose_required: g.purpose_required.as_ref().is_none_or(|p| **p),
                ticket,
                requesters,
                auto,
                approvers,
                required,
                headers,
                start_call: g
                    .app_calls
                    .as_ref()
                    .and_then(|c| c.start.as_ref())
                    .map(|s| s.trim().to_string()),
                end_call: g
                    .app_calls
                    .as_ref()
                    .and_then(|c| c.end.as_ref())
                    .map(|s| s.trim().to_string()),
            });
        }
    }
    out
}

fn groups(
    report: &mut FileReport,
    raw: &GroupsFile,
    name: &Spanned<String>,
    field: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for g in &raw.groups {
        if g.trim().is_empty() {
            report.at(
                g.span(),
                format!("empty group name in `{field}` of grant `{}`", name.as_str()),
            );
        } else {
            out.push(g.trim().to_string());
        }
    }
    out
}
