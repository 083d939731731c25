//! The request path: jitgate's `ProxyHttp` implementation.
//!
//! ```text
//! request_filter          `Connection: close` while draining (upgrade, shutdown); request id;
//!                         then admit.rs, one step each:
//!   own endpoint          /.jitgate/* -> endpoints::handle (body read within its limit)
//!   route                 host -> app (404); path normalised, same route with or without
//!                         `;` parameters (400)
//!   session               cookie -> session (cache, else store) -> login redirect / 401
//!   decision              the app's routes admit the user (403, audited)
//!   grant                 on `elevate:` routes, an active grant (403 audited / 503 if the
//!                         store is down)
//!   account               the user's account in the app (JIT provisioning: 503/502/403)
//! upstream_peer           the app's upstream from its policy
//! upstream_request_filter the request the app receives: spoofable identity headers and our
//!                         cookies removed, identity (and grant) headers added, and the
//!                         request id if the app's policy names a header for it
//! response_filter         the request id back to the browser, in that same header
//! fail_to_proxy           upstream errors -> our 502 page with the request id
//!                         (refusal::after_admission)
//! logging                 metrics: outcome, decision latency; SCIM requests to their log
//! ```
//! Every refusal is a [`Denial`](crate::endpoints::denial::Denial) value, rendered by
//! `edge::refusal` (the one table) and written by `send_denial` (`answer.rs`) only.
//! `request_filter` only decides; the headers the app sees are written on pingora's copy of
//! the request in `upstream_request_filter`, after pingora removed hop-by-hop headers, so a
//! client cannot have our headers removed by naming them in `Connection`.
//! Nothing here touches the network or the store when the session is in the cache.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::auth::session::cookie;
use crate::auth::session::ActiveSession;
use crate::edge::identity_headers;
use crate::edge::refusal::{self, Format, GRANT_ENDED, GRANT_UNVERIFIABLE, NOT_FORWARDABLE};
use crate::edge::request_target::in_origin_form;
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::policy::AppPolicy;
use crate::store::ScimRequest;
use crate::util::random;

/// Per-request state.
pub struct RequestCtx {
    pub(super) request_id: random::RequestId,
    pub(super) started: Instant,
    pub(super) app: Option<Arc<AppPolicy>>,
    /// The signed-in user a permitted request is forwarded for.
    pub(super) user: Option<Arc<ActiveSession>>,
    outcome: &'static str,
    /// Set on elevated routes: long-lived connections (WebSocket, streaming) end with it.
    pub(super) elevated: Option<Box<Elevated>>,
    /// Set on SCIM requests: what their log entry needs besides the request and status.
    pub(super) scim: Option<Box<ScimNote>>,
}

/// A SCIM request's token (`scim token 1`, if one was valid) and the `scimType` it was
/// refused with, if any.
#[derive(Default)]
pub(super) struct ScimNote {
    pub(super) by: Option<String>,
    pub(super) scim_type: Option<&'static str>,
}

/// The grant an elevated request was admitted under.
pub(super) struct Elevated {
    pub(super) grant_type: String,
    pub(super) grant_id: String,
    pub(super) expires_at_ms: i64,
}

/// The longest path kept in the SCIM request log (any client can send any path).
const LOGGED_PATH: usize = 256;

/// pingora's own read timeout for client connections, which jitgate only ever shortens.
const CLIENT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long to wait for the client's next bytes on an elevated connection: never past the
/// grant's end, so an idle WebSocket is closed when the grant expires.
pub(super) fn read_timeout_until(expires_at_ms: i64) -> std::time::Duration {
    let left = (expires_at_ms - crate::util::clock::now_ms()).max(1) as u64;
    std::time::Duration::from_millis(left).min(CLIENT_READ_TIMEOUT)
}

fn grant_ended() -> Box<Error> {
    Error::explain(
        ErrorType::Custom(GRANT_ENDED),
        "the grant this connection was opened under has ended",
    )
}

/// The store could not confirm the grant: fail closed, with the 503 page when the answer
/// has not started yet.
fn grant_unverifiable() -> Box<Error> {
    Error::explain(
        ErrorType::Custom(GRANT_UNVERIFIABLE),
        "the store cannot confirm the grant this connection was opened under",
    )
}

pub struct JitgateProxy {
    pub gate: Arc<Gate>,
}

#[async_trait]
impl ProxyHttp for JitgateProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: random::RequestId::next(),
            started: Instant::now(),
            app: None,
            user: None,
            outcome: "forwarded",
            elevated: None,
            scim: None,
        }
    }

    /// Runs once the request head is read. `Ok(true)` means we answered it ourselves.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if self.gate.draining.is_draining() {
            // Handing over: the client's next request opens a connection to the new process.
            session.set_keepalive(None);
        }
        match self.admit(session, ctx).await {
            Ok(None) => Ok(false),
            Ok(Some(reply)) => {
                ctx.outcome = "own_endpoint";
                self.send_reply(session, ctx, reply).await?;
                Ok(true)
            }
            Err(denial) => {
                ctx.outcome = refusal::kind(&denial);
                if let (Some(note), Denial::Scim { scim_type, .. }) = (&mut ctx.scim, &denial) {
                    note.scim_type = *scim_type;
                }
                self.send_denial(session, ctx, &denial).await?;
                Ok(true)
            }
        }
    }

    /// Bytes from the client on an elevated connection: only while its grant lasts (and then
    /// the next read may not wait past the grant's end).
    async fn request_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(e), Some(app), Some(user)) =
            (ctx.elevated.as_mut(), ctx.app.as_ref(), ctx.user.as_ref())
        else {
            return Ok(());
        };
        match self
            .gate
            .grants
            .check(app, &user.identity, &e.grant_type)
            .await
        {
            Ok(Some(grant)) => {
                e.expires_at_ms = grant.expires_at_ms;
                session.set_read_timeout(Some(read_timeout_until(e.expires_at_ms)));
                Ok(())
            }
            Ok(None) => Err(grant_ended()),
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "grant lookup failed: elevated connection closed");
                Err(grant_unverifiable())
            }
        }
    }

    /// Bytes from the app on an elevated connection: only while its grant lasts.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        let (Some(e), Some(app), Some(user)) =
            (ctx.elevated.as_ref(), ctx.app.as_ref(), ctx.user.as_ref())
        else {
            return Ok(None);
        };
        let expired = crate::util::clock::now_ms() >= e.expires_at_ms;
        // A revoke (here, or announced by another replica) without a store read.
        let revoked = self.gate.grants.is_revoked(&e.grant_id)
            || matches!(
                self.gate
                    .grants
                    .check_cached(app, &user.identity, &e.grant_type),
                Some(None)
            );
        if expired || revoked {
            return Err(grant_ended());
        }
        Ok(None)
    }

    /// Where a permitted request goes: the upstream of the app that admitted it.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let app = ctx.app.as_ref().ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "no app was admitted for this request",
            )
        })?;
        let upstream = &app.upstream;
        let peer = match upstream.socket {
            Some(socket) => HttpPeer::new(socket, upstream.tls, upstream.sni.clone()),
            None => HttpPeer::new(
                upstream.address.as_str(),
                upstream.tls,
                upstream.sni.clone(),
            ),
        };
        Ok(Box::new(peer))
    }

    /// Runs on pingora's copy of the request, just before it is sent to the app: what the app
    /// receives is written here, and only for a request `request_filter` admitted.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(app), Some(user)) = (ctx.app.as_deref(), ctx.user.as_deref()) else {
            return Err(Error::explain(
                ErrorType::Custom(NOT_FORWARDABLE),
                "no signed-in user was admitted for this request",
            ));
        };
        let not_forwardable = |e: Box<Error>| {
            Error::because(
                ErrorType::Custom(NOT_FORWARDABLE),
                "cannot write the request for the app",
                e,
            )
        };
        in_origin_form(upstream).map_err(|e| {
            Error::because(
                ErrorType::Custom(NOT_FORWARDABLE),
                "cannot write the request target for the app",
                e,
            )
        })?;
        // Removals first: they leave room in the header map for what is added after.
        identity_headers::strip_spoofed(upstream, &app.strip_header_keys);
        cookie::strip_own(upstream, self.gate.cookies);
        identity_headers::set_identity_headers(upstream, app, &user.identity)
            .map_err(not_forwardable)?;
        // Incoming copies of grant headers were stripped with the identity headers.
        if let Some(e) = &ctx.elevated {
            if let Some(kind) = app.grant_types.iter().find(|k| k.name == e.grant_type) {
                for (_, wire_name, value) in &kind.headers {
                    upstream
                        .append_header(*wire_name, value.clone())
                        .map_err(not_forwardable)?;
                }
            }
        }
        // Incoming copies of the request id header were stripped with the identity headers.
        if let Some(name) = app.request_id_header {
            upstream
                .append_header(name, ctx.request_id.header_value())
                .map_err(not_forwardable)?;
        }
        Ok(())
    }

    /// Runs on the app's response head before it goes to the browser: the request id goes
    /// back in the app's `request_id_header`, if it has one. (jitgate's own answers always
    /// carry `X-Request-Id`.)
    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(name) = ctx.app.as_ref().and_then(|app| app.request_id_header) {
            response.insert_header(name, ctx.request_id.header_value())?;
        }
        Ok(())
    }

    /// The upstream failed (connect, timeout, reset): answer with our page, not a bare 502.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (code, page) = refusal::after_admission(e, session.response_written().is_some());
        if let Some((denial, outcome)) = page {
            ctx.outcome = outcome;
            tracing::warn!(request_id = %ctx.request_id, error = %e, "request failed after admission");
            let _ = self.send_denial(session, ctx, &denial).await;
        } else if code > 0 {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// After the response: metrics only (audit events were written where they happened).
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        match &ctx.app {
            Some(app) if ctx.outcome == "forwarded" => self.app_metrics(app).forwarded.inc(),
            app => {
                let req = session.req_header();
                if Format::for_path(req.uri.path()) == Format::Scim {
                    // Labels stay bounded: any client can send any method.
                    let method = match req.method.as_str() {
                        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => m,
                        _ => "other",
                    };
                    let status = session.response_written().map(|r| r.status.as_u16());
                    let status = status.unwrap_or(0);
                    self.gate
                        .metrics
                        .scim_requests
                        .with_label_values(&[method, &status.to_string()])
                        .inc();
                    let note = ctx.scim.take();
                    self.log_scim(
                        req.uri.path(),
                        method,
                        status,
                        note,
                        ctx.request_id.as_str(),
                    );
                }
                let name = app.as_ref().map(|a| a.name.as_str()).unwrap_or("-");
                self.gate
                    .metrics
                    .requests
                    .with_label_values(&[name, ctx.outcome])
                    .inc();
            }
        }
    }
}

impl JitgateProxy {
    /// Hands an answered SCIM request to the request log (written in the background; the
    /// path only, never the query, and at most [`LOGGED_PATH`] characters of it).
    fn log_scim(
        &self,
        path: &str,
        method: &str,
        status: u16,
        note: Option<Box<ScimNote>>,
        request_id: &str,
    ) {
        if self.gate.directory.is_none() {
            return;
        }
        let note = note.unwrap_or_default();
        self.gate.scim_log.record(ScimRequest {
            at_ms: crate::util::clock::now_ms(),
            method: method.to_string(),
            path: path.chars().take(LOGGED_PATH).collect(),
            status: i64::from(status),
            scim_type: note.scim_type.map(str::to_string),
            token_label: note.by,
            request_id: request_id.to_string(),
        });
    }

    /// The app's metric handles (resolved on its first request after each policy load).
    pub(super) fn app_metrics<'a>(
        &self,
        app: &'a AppPolicy,
    ) -> &'a crate::telemetry::metrics::AppMetrics {
        app.metrics
            .get_or_init(|| self.gate.metrics.for_app(&app.name))
    }
}
