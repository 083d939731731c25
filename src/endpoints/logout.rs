//! Signing out: logout started by the user (here, then at the IdP), and back-channel logout
//! sent by the IdP, which ends every session of that user or IdP session on every host.

use pingora_http::RequestHeader;
use serde_json::json;

use super::denial::store_down;
use super::login::{page, session_error};
use super::{OwnRequest, Reply, PREFIX};
use crate::auth::oidc::logout_token::LogoutTokenError;
use crate::auth::session::cookie::{self, CookieValue};
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::store::LogoutSelector;
use crate::telemetry::audit::{AuditKind, Subject};

/// Largest back-channel logout request body we read.
pub const MAX_LOGOUT_BODY: usize = 16 * 1024;

/// The page after a completed logout.
pub(super) fn logged_out(req: &OwnRequest<'_>) -> Reply {
    page(
        200,
        "Signed out",
        "You are signed out. Close this window, or open an application to sign in again.",
        req.request_id,
        Vec::new(),
    )
}

/// Whether a browser says the request came from another site (`Sec-Fetch-Site`, which page
/// scripts cannot set). Clients that send no such header are not browsers.
fn from_another_site(req: &RequestHeader) -> bool {
    req.headers
        .get("sec-fetch-site")
        .is_some_and(|v| matches!(v.as_bytes(), b"cross-site" | b"same-site"))
}

pub(super) async fn logout(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    // A link or form on another site must not sign the user out of every app (logout
    // CSRF): it gets a page with a button, whose POST comes from this origin.
    if from_another_site(req.header) {
        return Ok(Reply::Page {
            status: 200,
            html: crate::endpoints::pages::render(
                "Sign out?",
                "Another site sent you here to sign out of every application.",
                &format!(
                    "<form method=\"post\" action=\"{PREFIX}logout\">\
                     <button type=\"submit\">Sign out</button></form>"
                ),
                req.request_id,
            ),
            cookies: Vec::new(),
        });
    }
    let clear = vec![gate.cookies.clear(gate.cookies.session())];
    let record = match cookie::read(req.header, gate.cookies.session()) {
        CookieValue::Token(token) => gate.sessions.record(token).await.map_err(session_error)?,
        _ => None,
    };
    let Some(record) = record else {
        return Ok(Reply::Redirect {
            location: format!("{}{PREFIX}logged-out", gate.config.public.base),
            cookies: clear,
        });
    };
    // End every session of this IdP login (all app hosts), not just this host's.
    let ended = match record.sid.as_deref() {
        Some(sid) => gate
            .store
            .delete_sessions_for_logout(LogoutSelector {
                iss: &record.iss,
                sub: Some(&record.sub),
                sid: Some(sid),
            })
            .await
            .map_err(store_down)?,
        None => {
            gate.sessions
                .end(&record.id_hash)
                .await
                .map_err(session_error)?;
            vec![record.id_hash.clone()]
        }
    };
    gate.sessions.forget(&ended);
    gate.audit
        .record(
            AuditKind::Logout,
            Subject {
                iss: Some(&record.iss),
                sub: Some(&record.sub),
                app: None,
                request_id: Some(req.request_id),
            },
            json!({ "sessions_ended": ended.len(), "host": req.host }),
        )
        .await;
    let location = match gate.oidc.end_session_url(&record.id_token).await {
        Some(url) => url,
        None => format!("{}{PREFIX}logged-out", gate.config.public.base),
    };
    Ok(Reply::Redirect {
        location,
        cookies: clear,
    })
}

pub(super) async fn backchannel_logout(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    let body = req.body.as_deref().unwrap_or(&[]);
    let token = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .ok_or(Denial::BadRequest("no logout_token"))?;
    let claims = match gate
        .oidc
        .verify_logout_token(&token, &gate.logout_replay)
        .await
    {
        Ok(claims) => claims,
        Err(LogoutTokenError::Provider(e)) => {
            tracing::warn!(error = %e, "cannot check a logout token");
            return Err(Denial::IdpUnavailable);
        }
        Err(e) => {
            tracing::warn!(error = %e, request_id = req.request_id, "back-channel logout refused");
            return Err(Denial::BadRequest("invalid logout token"));
        }
    };
    let ended = gate
        .store
        .delete_sessions_for_logout(LogoutSelector {
            iss: &claims.iss,
            sub: claims.sub.as_deref(),
            sid: claims.sid.as_deref(),
        })
        .await
        .map_err(store_down)?;
    gate.sessions.forget(&ended);
    gate.audit
        .record(
            AuditKind::BackchannelLogout,
            Subject {
                iss: Some(&claims.iss),
                sub: claims.sub.as_deref(),
                app: None,
                request_id: Some(req.request_id),
            },
            json!({ "sessions_ended": ended.len(), "by_sid": claims.sid.is_some() }),
        )
        .await;
    Ok(Reply::Empty { status: 200 })
}
