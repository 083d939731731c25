//! The access portal under `/.jitgate/access`: server-rendered pages, no JavaScript.
//!
//! ```text
//! GET  /.jitgate/access                 my grants (time left, end early), the request form,
//!                                       and the requests I may approve or deny
//! POST /.jitgate/access/request         type, purpose, ticket, duration
//! POST /.jitgate/access/{id}/approve | deny | revoke
//! ```
//! Every form carries a CSRF token derived from the session id (a cross-site page cannot
//! know it), and a POST whose `Origin` is another site is refused as well. After a POST the
//! browser is redirected back to the portal with a one-line outcome.

use http::Method;
use serde_json::Value;

use super::login::login_redirect;
use super::{query_param, OwnRequest, Reply};
use crate::auth::session::cookie::{self, CookieValue};
use crate::endpoints::denial::Denial;
use crate::endpoints::grants_api::view;
use crate::endpoints::pages::{escape, render};
use crate::gate::Gate;
use crate::lifecycle::grants::{Actor, GrantAsk, GrantError};
use crate::policy::AppPolicy;
use crate::store::GrantRecord;

pub const PATH: &str = "/.jitgate/access";
pub const MAX_FORM_BODY: usize = 8 * 1024;

/// The CSRF token of a session: SHA-256 of a label and the session id, never the id itself.
fn csrf_token(session_token: &str) -> String {
    crate::util::random::hash(&format!("jitgate-csrf:{session_token}"))
}

fn form(body: Option<&bytes::Bytes>) -> Vec<(String, String)> {
    body.map(|b| {
        url::form_urlencoded::parse(b)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn back(msg: &str) -> Reply {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("msg", msg)
        .finish();
    Reply::Redirect {
        location: format!("{PATH}?{query}"),
        cookies: Vec::new(),
    }
}

pub async fn handle(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    let rid = req.request_id;
    let post = *req.method == Method::POST;
    let token = match cookie::read(req.header, gate.cookies.session()) {
        CookieValue::Token(t) => t,
        _ if post => return Err(Denial::LoginRequired),
        _ => return Err(login_redirect(gate, req.header, req.host, PATH)),
    };
    let active = match gate.sessions.resolve(token, req.host).await {
        Ok(Ok(active)) => active,
        Ok(Err(_)) if post => return Err(Denial::LoginRequired),
        Ok(Err(_)) => return Err(login_redirect(gate, req.header, req.host, PATH)),
        Err(_) => return Err(Denial::StoreUnavailable),
    };
    let identity = &active.identity;
    let policies = gate.policies.load();
    let app = policies
        .app_for_host(req.host)
        .cloned()
        .ok_or(Denial::NotFound)?;
    let csrf = csrf_token(token);

    let sub = req.endpoint.trim_start_matches("access").trim_matches('/');
    if !post {
        if !sub.is_empty() {
            return Err(Denial::NotFound);
        }
        let query = |name: &str| query_param(req.query, name);
        let (mine, to_decide) = gate
            .grants
            .overview(&policies, &app, identity)
            .await
            .map_err(|_| Denial::StoreUnavailable)?;
        let html = portal(
            &app,
            identity,
            &mine,
            &to_decide,
            &csrf,
            query("type").as_deref(),
        );
        let msg = query("msg").unwrap_or_default();
        return Ok(page(200, &app, &msg, &html, rid));
    }

    // POST: same-site only, with this session's token. (Browsers send `Origin: null` for
    // pages served with `Referrer-Policy: no-referrer`, as ours are: then the token decides.)
    let origin_ok = match req
        .header
        .headers
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        None | Some("null") => true,
        Some(origin) => url::Url::parse(origin)
            .ok()
            .is_some_and(|u| u.host_str() == Some(req.host)),
    };
    let fields = form(req.body.as_ref());
    if !origin_ok || !crate::util::random::same_secret(field(&fields, "csrf"), &csrf) {
        return Err(Denial::FormExpired);
    }
    let actor = Actor::user(identity);
    let result = match sub.split('/').collect::<Vec<_>>().as_slice() {
        ["request"] => {
            let ticket = field(&fields, "ticket");
            let ask = GrantAsk {
                app: app.name.clone(),
                grant_type: field(&fields, "type").to_string(),
                purpose: field(&fields, "purpose").to_string(),
                ticket: (!ticket.trim().is_empty()).then(|| ticket.to_string()),
                duration: field(&fields, "duration").to_string(),
            };
            gate.grants
                .request(&policies, identity, &ask)
                .await
                .map(|g| outcome("requested", &g))
        }
        [id, "approve"] => gate
            .grants
            .approve(&policies, id, &actor, Some(&app.name))
            .await
            .map(|g| outcome("approved", &g)),
        [id, "deny"] => gate
            .grants
            .deny(&policies, id, &actor, Some(&app.name))
            .await
            .map(|g| outcome("denied", &g)),
        [id, "revoke"] => gate
            .grants
            .revoke(&policies, id, &actor, Some(&app.name))
            .await
            .map(|g| outcome("ended", &g)),
        _ => return Err(Denial::NotFound),
    };
    match result {
        Ok(msg) => Ok(back(&msg)),
        // A refusal the user can act on is shown on the access page itself; one that
        // ends their access here (deactivated account) or a failure is a refusal page.
        Err(e @ (GrantError::Store(_) | GrantError::AccountDeactivated { .. })) => {
            Err(Denial::from_grant(&e, rid))
        }
        Err(e) => Ok(back(&format!("Not done: {e}."))),
    }
}

fn outcome(what: &str, g: &GrantRecord) -> String {
    let state = match g.status.as_str() {
        "active" => "it is active now".to_string(),
        "pending" => "it is waiting for approval".to_string(),
        s => format!("it is {s}"),
    };
    format!("{} grant {} {what}: {state}.", g.grant_type, g.id)
}

fn page(status: u16, app: &AppPolicy, msg: &str, html: &str, rid: &str) -> Reply {
    Reply::Page {
        status,
        html: render(&format!("Access to {}", app.name), msg, html, rid),
        cookies: Vec::new(),
    }
}

fn left(g: &Value) -> String {
    match g["seconds_left"].as_i64() {
        Some(s) if s >= 3600 => format!("{} h {} min left", s / 3600, s % 3600 / 60),
        Some(s) if s >= 60 => format!("{} min left", s / 60),
        Some(s) => format!("{s} s left"),
        None => String::new(),
    }
}

fn button(id: &str, action: &str, label: &str, csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{PATH}/{}/{action}\" style=\"display:inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" name=\"do\" value=\"{action}\">{label}</button></form>",
        escape(id),
        escape(csrf)
    )
}

fn portal(
    app: &AppPolicy,
    identity: &crate::auth::identity::Identity,
    mine: &[GrantRecord],
    to_decide: &[GrantRecord],
    csrf: &str,
    chosen: Option<&str>,
) -> String {
    let mut html = String::new();
    html.push_str("<h2>Your grants</h2>");
    let current: Vec<&GrantRecord> = mine
        .iter()
        .filter(|g| matches!(g.status.as_str(), "pending" | "active"))
        .collect();
    if current.is_empty() {
        html.push_str("<p>None pending or active.</p>");
    } else {
        html.push_str("<ul id=\"mine\">");
        for g in current {
            let v = view(g);
            let end = if g.status == "active" {
                "End now"
            } else {
                "Withdraw"
            };
            html.push_str(&format!(
                "<li data-grant=\"{id}\"><b>{ty}</b> — <span class=\"status\">{st}</span> {left} — {purpose}{ticket} {btn}</li>",
                id = escape(&g.id),
                ty = escape(&g.grant_type),
                st = escape(&g.status),
                left = escape(&left(&v)),
                purpose = escape(&g.purpose),
                ticket = g.ticket.as_deref().map(|t| format!(" ({})", escape(t))).unwrap_or_default(),
                btn = button(&g.id, "revoke", end, csrf),
            ));
        }
        html.push_str("</ul>");
    }

    let groups: Vec<&str> = identity.groups().collect();
    let askable: Vec<_> = app
        .grant_types
        .iter()
        .filter(|t| t.requesters.iter().any(|r| groups.contains(&r.as_str())))
        .collect();
    if !askable.is_empty() {
        html.push_str(&format!(
            "<h2>Ask for elevated access</h2><form method=\"post\" action=\"{PATH}/request\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><p><label>Access <select name=\"type\">",
            escape(csrf)
        ));
        for t in &askable {
            let selected = if chosen == Some(t.name.as_str()) {
                " selected"
            } else {
                ""
            };
            html.push_str(&format!(
                "<option value=\"{n}\"{selected}>{n} (up to {max})</option>",
                n = escape(&t.name),
                max = escape(&crate::lifecycle::grants::human(t.max_duration)),
            ));
        }
        html.push_str(
            "</select></label></p>\
             <p><label>Purpose <input name=\"purpose\" size=\"40\" required></label></p>\
             <p><label>Ticket <input name=\"ticket\" placeholder=\"if required, e.g. INC-1234\"></label></p>\
             <p><label>For <input name=\"duration\" value=\"30m\" size=\"6\"></label> \
             (e.g. 15m, 1h; at most the maximum above)</p>\
             <p><button type=\"submit\">Ask</button></p></form>",
        );
    }

    if !to_decide.is_empty() {
        html.push_str("<h2>Requests waiting for you</h2><ul id=\"queue\">");
        for g in to_decide {
            html.push_str(&format!(
                "<li data-grant=\"{id}\"><b>{user}</b> asks for <b>{ty}</b> on {app} for {dur} — {purpose}{ticket} {approve} {deny}</li>",
                id = escape(&g.id),
                user = escape(&g.username),
                ty = escape(&g.grant_type),
                app = escape(&g.app),
                dur = escape(&crate::lifecycle::grants::human(std::time::Duration::from_secs(g.duration_secs.max(0) as u64))),
                purpose = escape(&g.purpose),
                ticket = g.ticket.as_deref().map(|t| format!(" ({})", escape(t))).unwrap_or_default(),
                approve = button(&g.id, "approve", "Approve", csrf),
                deny = button(&g.id, "deny", "Deny", csrf),
            ));
        }
        html.push_str("</ul>");
    }
    html.push_str(
        "<p><a href=\"/\">Back to the app</a> · <a href=\"/.jitgate/logout\">Sign out</a></p>",
    );
    html
}
