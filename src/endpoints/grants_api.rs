//! The JSON API for grants under `/.jitgate/api/grants`, on each app's host, signed in with
//! that host's session.
//!
//! ```text
//! GET  /.jitgate/api/grants               {"mine": [...], "to_decide": [...]} for this app
//! POST /.jitgate/api/grants               {"type", "purpose", "ticket", "duration"} -> 201
//! POST /.jitgate/api/grants/{id}/approve | deny | revoke
//! ```
//! Refusals are [`Denial`]s like everywhere else; the edge answers them on this path as
//! JSON `{"error", "request_id"}` (see `edge::refusal`).
//!
//! POSTs must be `Content-Type: application/json`: a cross-site form cannot send that
//! without a CORS preflight, which jitgate never grants, so no CSRF token is needed here
//! (and session cookies are SameSite=Lax besides).

use http::Method;
use serde_json::{json, Value};

use super::{OwnRequest, Reply};
use crate::auth::session::cookie::{self, CookieValue};
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::lifecycle::grants::{Actor, GrantAsk};
use crate::store::GrantRecord;

const MAX_BODY: usize = 16 * 1024;
pub const MAX_API_BODY: usize = MAX_BODY;

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Json {
        status,
        body: body.to_string(),
    }
}

/// A grant as the API shows it.
pub fn view(g: &GrantRecord) -> Value {
    let now = crate::util::clock::now_ms();
    let approvals: Vec<Value> = serde_json::from_str(&g.approvals).unwrap_or_default();
    let left = match (g.status.as_str(), g.expires_at) {
        ("active", Some(e)) if e > now => Some((e - now) / 1000),
        _ => None,
    };
    json!({
        "id": g.id, "app": g.app, "type": g.grant_type, "user": g.username,
        "purpose": g.purpose, "ticket": g.ticket, "status": g.status,
        "duration_secs": g.duration_secs, "requested_at_ms": g.requested_at,
        "expires_at_ms": g.expires_at, "seconds_left": left,
        "approvals": approvals.iter().map(|a| a["username"].clone()).collect::<Vec<_>>(),
        "ended_by": g.ended_by,
    })
}

pub async fn handle(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    let rid = req.request_id;
    let post = *req.method == Method::POST;
    if post {
        let json_body = req
            .header
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !json_body {
            return Err(Denial::UnsupportedMediaType);
        }
    }
    // The signed-in user of this host.
    let token = match cookie::read(req.header, gate.cookies.session()) {
        CookieValue::Token(t) => t,
        _ => return Err(Denial::LoginRequired),
    };
    let active = match gate.sessions.resolve(token, req.host).await {
        Ok(Ok(active)) => active,
        Ok(Err(_)) => return Err(Denial::LoginRequired),
        Err(_) => return Err(Denial::StoreUnavailable),
    };
    let identity = &active.identity;
    let policies = gate.policies.load();
    let Some(app) = policies.app_for_host(req.host).cloned() else {
        return Err(Denial::UnknownHost);
    };
    let path = req
        .endpoint
        .trim_start_matches("api/grants")
        .trim_matches('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let body: Value = match &req.body {
        Some(b) if post => match serde_json::from_slice(b) {
            Ok(v) => v,
            Err(_) => return Err(Denial::InvalidBody("the body is not JSON".into())),
        },
        _ => Value::Null,
    };
    let actor = Actor::user(identity);
    let result = match (post, parts.as_slice()) {
        (false, []) => {
            return Ok(
                match gate.grants.overview(&policies, &app, identity).await {
                    Ok((mine, to_decide)) => json_reply(
                        200,
                        json!({
                            "mine": mine.iter().map(view).collect::<Vec<_>>(),
                            "to_decide": to_decide.iter().map(view).collect::<Vec<_>>(),
                        }),
                    ),
                    Err(e) => return Err(Denial::from_grant(&e, rid)),
                },
            )
        }
        (true, []) => {
            // Requests are for the app of this host.
            let Value::Object(mut ask) = body else {
                return Err(Denial::InvalidBody("send a JSON object".into()));
            };
            if ask
                .get("app")
                .is_some_and(|a| a.as_str() != Some(app.name.as_str()))
            {
                return Err(Denial::InvalidBody(
                    "ask on the host of the app the grant is for".into(),
                ));
            }
            ask.insert("app".into(), json!(app.name));
            let ask = Value::Object(ask);
            let ask: GrantAsk = match serde_json::from_value(ask) {
                Ok(a) => a,
                Err(e) => return Err(Denial::InvalidBody(format!("bad request: {e}"))),
            };
            gate.grants
                .request(&policies, identity, &ask)
                .await
                .map(|g| (201, g))
        }
        (true, [id, "approve"]) => gate
            .grants
            .approve(&policies, id, &actor, Some(&app.name))
            .await
            .map(|g| (200, g)),
        (true, [id, "deny"]) => gate
            .grants
            .deny(&policies, id, &actor, Some(&app.name))
            .await
            .map(|g| (200, g)),
        (true, [id, "revoke"]) => gate
            .grants
            .revoke(&policies, id, &actor, Some(&app.name))
            .await
            .map(|g| (200, g)),
        _ => return Err(Denial::NotFound),
    };
    Ok(match result {
        Ok((status, grant)) => json_reply(status, view(&grant)),
        Err(e) => return Err(Denial::from_grant(&e, rid)),
    })
}
