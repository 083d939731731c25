//! The JSON API for grants under `/.jitgate/api/grants`, on each app's host, signed in with
//! that host's session.
//!
//! ```text
//! GET  /.jitgate/api/grants               {"mine": [...], "to_decide": [...]} for this app
//! POST /.jitgate/api/grants               {"type", "purpose", "ticket", "duration"} -> 201
//! POST /.jitgate/api/grants/{id}/approve | deny | revoke
//! ```
//! POSTs must be `Content-Type: application/json`: a cross-site form cannot send that
//! without a CORS preflight, which jitgate never grants, so no CSRF token is needed here
//! (and session cookies are SameSite=Lax besides).

use http::Method;
use serde_json::{json, Value};

use super::{OwnRequest, Reply};
use crate::auth::session::cookie::{self, CookieValue};
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::lifecycle::grants::{Actor, GrantAsk, GrantError};
use crate::store::GrantRecord;

const MAX_BODY: usize = 16 * 1024;
pub const MAX_API_BODY: usize = MAX_BODY;

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Json {
        status,
        body: body.to_string(),
    }
}

fn error(status: u16, message: impl Into<String>, request_id: &str) -> Reply {
    json_reply(
        status,
        json!({ "error": message.into(), "request_id": request_id }),
    )
}

fn status_of(e: &GrantError) -> u16 {
    match e {
        GrantError::NotFound | GrantError::UnknownApp(_) | GrantError::UnknownType { .. } => 404,
        GrantError::SelfApproval
        | GrantError::NotAnApprover(_)
        | GrantError::NotARequester(..)
        | GrantError::NotAllowedToRevoke
        | GrantError::AccountDeactivated { .. } => 403,
        GrantError::Conflict | GrantError::NotPending(_) | GrantError::NotRevocable(_) => 409,
        GrantError::Store(_) | GrantError::Random(_) => 503,
        _ => 400,
    }
}

/// What a client is told: the refusal itself, but never a database's own error text.
fn public_message(e: &GrantError, rid: &str) -> String {
    match e {
        GrantError::Store(_) | GrantError::Random(_) => {
            tracing::error!(request_id = rid, error = %e, "grant action failed");
            "jitgate cannot reach its store right now; try again shortly".into()
        }
        e => e.to_string(),
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
            return Ok(error(
                415,
                "send JSON (Content-Type: application/json)",
                rid,
            ));
        }
    }
    // The signed-in user of this host.
    let token = match cookie::read(req.header, gate.cookies.session()) {
        CookieValue::Token(t) => t,
        _ => return Ok(error(401, "sign in first", rid)),
    };
    let active = match gate.sessions.resolve(token, req.host).await {
        Ok(Ok(active)) => active,
        Ok(Err(_)) => return Ok(error(401, "sign in first", rid)),
        Err(_) => return Err(Denial::StoreUnavailable),
    };
    let identity = &active.identity;
    let policies = gate.policies.load();
    let Some(app) = policies.app_for_host(req.host).cloned() else {
        return Ok(error(404, "no app is served on this host", rid));
    };
    let path = req
        .endpoint
        .trim_start_matches("api/grants")
        .trim_matches('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let body: Value = match &req.body {
        Some(b) if post => match serde_json::from_slice(b) {
            Ok(v) => v,
            Err(_) => return Ok(error(400, "the body is not JSON", rid)),
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
                    Err(e) => error(status_of(&e), public_message(&e, rid), rid),
                },
            )
        }
        (true, []) => {
            // Requests are for the app of this host.
            let Value::Object(mut ask) = body else {
                return Ok(error(400, "send a JSON object", rid));
            };
            if ask
                .get("app")
                .is_some_and(|a| a.as_str() != Some(app.name.as_str()))
            {
                return Ok(error(
                    400,
                    "ask on the host of the app the grant is for",
                    rid,
                ));
            }
            ask.insert("app".into(), json!(app.name));
            let ask = Value::Object(ask);
            let ask: GrantAsk = match serde_json::from_value(ask) {
                Ok(a) => a,
                Err(e) => return Ok(error(400, format!("bad request: {e}"), rid)),
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
        _ => return Ok(error(404, "no such grants endpoint", rid)),
    };
    Ok(match result {
        Ok((status, grant)) => json_reply(status, view(&grant)),
        Err(e) => error(status_of(&e), public_message(&e, rid), rid),
    })
}
