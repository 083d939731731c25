//! The request path: jitgate's `ProxyHttp` implementation.
//!
//! ```text
//! request_filter          `Connection: close` while draining (upgrade, shutdown);
//!                         request id; host -> app (404); /.jitgate/* -> endpoints::handle;
//!                         path normalised (400); cookie -> session (cache, else store) ->
//!                         login redirect / 401; route decision (403); on `elevate:` routes
//!                         an active grant (403 / 503 if the store is down); the user's
//!                         account in the app (JIT provisioning: 503/502/403)
//! upstream_peer           the app's upstream from its policy
//! upstream_request_filter the request the app receives: spoofable identity headers and our
//!                         cookies removed, identity (and grant) headers added, and the
//!                         request id if the app's policy names a header for it
//! response_filter         the request id back to the browser, in that same header
//! fail_to_proxy           upstream errors -> our 502 page with the request id
//! logging                 metrics: outcome, decision latency
//! ```
//! Every refusal is a [`Denial`] value, rendered by `edge::refusal` (the one table) and
//! written by `send_denial` only.
//! `request_filter` only decides; the headers the app sees are written on pingora's copy of
//! the request in `upstream_request_filter`, after pingora removed hop-by-hop headers, so a
//! client cannot have our headers removed by naming them in `Connection`.
//! Nothing here touches the network or the store when the session is in the cache.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use serde_json::json;

use crate::auth::session::cookie::{self, CookieValue};
use crate::auth::session::{ActiveSession, SessionEnd};
use crate::edge::identity_headers;
use crate::edge::refusal::{self, Format, GRANT_ENDED, GRANT_UNVERIFIABLE, NOT_FORWARDABLE};
use crate::endpoints::denial::Denial;
use crate::endpoints::{self, login, OwnRequest, Reply};
use crate::gate::Gate;
use crate::policy::{normalize_path, without_path_parameters, AppPolicy, RouteDenied};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::random;

/// Carries the request id on every answer jitgate writes itself.
const X_REQUEST_ID: &str = "X-Request-Id";

/// Per-request state.
pub struct RequestCtx {
    request_id: random::RequestId,
    started: Instant,
    app: Option<Arc<AppPolicy>>,
    /// The signed-in user a permitted request is forwarded for.
    user: Option<Arc<ActiveSession>>,
    outcome: &'static str,
    /// Set on elevated routes: long-lived connections (WebSocket, streaming) end with it.
    elevated: Option<Box<Elevated>>,
}

/// The grant an elevated request was admitted under.
struct Elevated {
    grant_type: String,
    grant_id: String,
    expires_at_ms: i64,
}

/// pingora's own read timeout for client connections, which jitgate only ever shortens.
const CLIENT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long to wait for the client's next bytes on an elevated connection: never past the
/// grant's end, so an idle WebSocket is closed when the grant expires.
fn read_timeout_until(expires_at_ms: i64) -> std::time::Duration {
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
    async fn logging(&self, _session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        match &ctx.app {
            Some(app) if ctx.outcome == "forwarded" => self.app_metrics(app).forwarded.inc(),
            app => {
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
    /// Decides what happens to a request: `Ok(None)` forwards it (to the app and user it
    /// leaves in `ctx`), `Ok(Some(reply))` is an answer from our own endpoints, `Err` a
    /// refusal.
    async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Reply>, Denial> {
        let gate = &self.gate;
        let host = request_host(session.req_header())
            .ok_or(Denial::BadRequest("missing or invalid Host"))?;
        let app = gate.policies.load().app_for_host(&host).cloned();

        let req = session.req_header();
        let path = judged_path(req).ok_or(Denial::BadRequest("unsupported request target"))?;
        if let Some(endpoint) = path.strip_prefix(endpoints::PREFIX) {
            if app.is_none() && !gate.is_auth_host(&host) {
                return Err(Denial::UnknownHost);
            }
            let (host, endpoint) = (host.into_owned(), endpoint.to_string());
            let body = match endpoints::body_limit(&endpoint, &session.req_header().method) {
                Some(limit) => Some(Box::pin(read_body(session, limit)).await?),
                None => None,
            };
            let req = session.req_header();
            let own = OwnRequest {
                method: &req.method,
                host: &host,
                endpoint: &endpoint,
                query: req.uri.query(),
                header: req,
                request_id: ctx.request_id.as_str(),
                body,
            };
            // Boxed: the sign-in future is large (token exchange, discovery), and inlining it
            // would make every request's future, which pingora boxes and moves, that large too.
            return Box::pin(endpoints::handle(gate, own)).await.map(Some);
        }

        let RequestCtx {
            request_id,
            app: admitted_app,
            user: admitted_user,
            elevated: admitted_grant,
            started,
            ..
        } = ctx;
        let app: &Arc<AppPolicy> = admitted_app.insert(app.ok_or(Denial::UnknownHost)?);
        let normalized =
            normalize_path(path).map_err(|_| Denial::BadRequest("ambiguous or malformed path"))?;
        // `;` starts path parameters for some servers (Tomcat, Jetty: `/admin;x/users` is
        // `/admin/users`) and is a plain character for others: the path must fall under the
        // same route either way.
        match without_path_parameters(&normalized) {
            Ok(None) => {}
            Ok(Some(stripped))
                if app.route_index(&req.method, &stripped)
                    == app.route_index(&req.method, &normalized) => {}
            _ => return Err(Denial::BadRequest("ambiguous path parameters")),
        }

        let token = match cookie::read(req, gate.cookies.session()) {
            CookieValue::Token(t) => t,
            CookieValue::Absent => return Err(self.login_required(req, &host)),
            CookieValue::Malformed => return Err(Denial::BadSessionCookie),
        };
        let active = match gate.sessions.resolve(token, &host).await {
            Ok(Ok(active)) => active,
            Ok(Err(end)) => {
                if matches!(end, SessionEnd::IdleTimeout | SessionEnd::AbsoluteTimeout) {
                    gate.audit.record_in_background(
                        AuditKind::SessionExpired,
                        Subject {
                            app: Some(&app.name),
                            request_id: Some(request_id.as_str()),
                            ..Subject::default()
                        },
                        json!({ "reason": format!("{end:?}") }),
                    );
                }
                return Err(self.login_required(req, &host));
            }
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return Err(Denial::StoreUnavailable);
            }
        };

        let identity = &active.identity;
        let permitted = app.decide(&req.method, &normalized, identity);
        if let Err(denied) = permitted {
            gate.metrics
                .decisions
                .with_label_values(&[&app.name, "deny"])
                .inc();
            let route = match &denied {
                RouteDenied::NoRoute => "no matching route".to_string(),
                RouteDenied::NotAllowed { route } => route.clone(),
            };
            gate.audit.record_in_background(
                AuditKind::AccessDenied,
                Subject {
                    iss: Some(&identity.iss),
                    sub: Some(&identity.sub),
                    app: Some(&app.name),
                    request_id: Some(request_id.as_str()),
                },
                json!({ "method": req.method.as_str(), "path": normalized, "route": route }),
            );
            return Err(Denial::Forbidden {
                app: app.name.clone(),
            });
        }
        self.app_metrics(app).allowed.inc();

        // Elevated route: the user also needs an active grant, checked against the clock now.
        let elevation = permitted.ok().and_then(|p| app.elevation(p));
        if let Some(kind) = elevation {
            let grant_type = kind.name.as_str();
            let grant = match gate.grants.check(app, identity, grant_type).await {
                Ok(grant) => grant,
                Err(e) => {
                    tracing::error!(error = %e, "grant lookup failed: elevated route refused");
                    return Err(Denial::StoreUnavailable);
                }
            };
            let Some(grant) = grant else {
                gate.audit.record_in_background(
                    AuditKind::ElevationDenied,
                    Subject {
                        iss: Some(&identity.iss),
                        sub: Some(&identity.sub),
                        app: Some(&app.name),
                        request_id: Some(request_id.as_str()),
                    },
                    json!({ "method": req.method.as_str(), "path": normalized, "grant_type": grant_type }),
                );
                return Err(Denial::ElevationRequired {
                    app: app.name.clone(),
                    grant_type: grant_type.to_string(),
                });
            };
            *admitted_grant = Some(Box::new(Elevated {
                grant_type: grant_type.to_string(),
                grant_id: grant.id.clone(),
                expires_at_ms: grant.expires_at_ms,
            }));
        }

        // JIT provisioning: a cache hit costs one lookup; anything else is boxed out of the
        // per-request future (it may call the app's API).
        if let Some(connector) = &app.provisioning {
            if !gate.accounts.is_current(app, identity, active.login_at) {
                let rid = request_id.as_str();
                Box::pin(
                    gate.accounts
                        .ensure(app, connector, identity, active.login_at, rid),
                )
                .await
                .map_err(|e| Denial::from_provisioning(&app.name, &e))?;
            }
        }

        self.app_metrics(app)
            .decision_latency
            .observe(started.elapsed());
        *admitted_user = Some(active);
        if let Some(e) = admitted_grant {
            session.set_read_timeout(Some(read_timeout_until(e.expires_at_ms)));
        }
        Ok(None)
    }

    /// The app's metric handles (resolved on its first request after each policy load).
    fn app_metrics<'a>(&self, app: &'a AppPolicy) -> &'a crate::telemetry::metrics::AppMetrics {
        app.metrics
            .get_or_init(|| self.gate.metrics.for_app(&app.name))
    }

    fn login_required(&self, req: &RequestHeader, host: &str) -> Denial {
        if req.method == Method::GET || req.method == Method::HEAD {
            let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            login::login_redirect(&self.gate, req, host, target)
        } else {
            Denial::LoginRequired
        }
    }

    async fn send_reply(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        reply: Reply,
    ) -> Result<()> {
        match reply {
            Reply::Redirect { location, cookies } => {
                let mut resp = ResponseHeader::build(302, Some(4))?;
                resp.insert_header("location", location)?;
                for c in cookies {
                    resp.append_header("set-cookie", c)?;
                }
                write(session, ctx, resp, None).await
            }
            Reply::Page {
                status,
                html,
                cookies,
            } => {
                let mut resp = ResponseHeader::build(status, Some(4))?;
                resp.insert_header("content-type", "text/html; charset=utf-8")?;
                for c in cookies {
                    resp.append_header("set-cookie", c)?;
                }
                write(session, ctx, resp, Some(Bytes::from(html))).await
            }
            Reply::Json { status, body } => {
                let mut resp = ResponseHeader::build(status, Some(4))?;
                resp.insert_header("content-type", "application/json")?;
                write(session, ctx, resp, Some(Bytes::from(body))).await
            }
            Reply::Empty { status } => {
                let resp = ResponseHeader::build(status, Some(4))?;
                write(session, ctx, resp, None).await
            }
        }
    }

    /// Writes a [`Denial`]'s answer, as `refusal::answer` (the one table) renders it.
    async fn send_denial(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        denial: &Denial,
    ) -> Result<()> {
        let format = Format::for_path(session.req_header().uri.path());
        let rendered = refusal::answer(denial, ctx.request_id.as_str(), format);
        let mut resp = ResponseHeader::build(rendered.status, Some(4))?;
        if let Some(location) = rendered.location {
            resp.insert_header("location", location)?;
            if let Some(cookie) = rendered.set_cookie {
                resp.append_header("set-cookie", cookie)?;
            }
            return write(session, ctx, resp, None).await;
        }
        if let Some(content_type) = rendered.content_type {
            resp.insert_header("content-type", content_type)?;
        }
        if rendered.clear_cookie {
            let cookies = self.gate.cookies;
            resp.append_header("set-cookie", cookies.clear(cookies.session()))?;
        }
        write(session, ctx, resp, Some(Bytes::from(rendered.body))).await
    }
}

/// Writes a complete response of our own, with the headers every such answer carries.
async fn write(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    body: Option<Bytes>,
) -> Result<()> {
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header(X_REQUEST_ID, ctx.request_id.header_value())?;
    resp.insert_header("referrer-policy", "no-referrer")?;
    resp.insert_header("x-content-type-options", "nosniff")?;
    resp.insert_header("x-frame-options", "DENY")?;
    let head_only = session.req_header().method == Method::HEAD;
    let len = body.as_ref().map(|b| b.len()).unwrap_or(0);
    resp.insert_header("content-length", len.to_string())?;
    match body {
        Some(body) if !head_only && !body.is_empty() => {
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await
        }
        _ => session.write_response_header(Box::new(resp), true).await,
    }
}

/// Reads a small request body completely, refusing anything larger than `limit`.
async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, Denial> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(Denial::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(_) => return Err(Denial::BadRequest("the request body could not be read")),
        }
    }
}

/// Whether the bytes pingora will send as the app's request target are the path `admit`
/// judges (`req.uri`): true for origin-form (`/path`), and for absolute-form
/// (`http://host/path`), which `upstream_request_filter` rewrites to its path. pingora keeps
/// other forms (`x:/admin` reads as `/` in the URI) and non-UTF-8 targets verbatim for the
/// wire, so the app would get a path nobody judged: those are refused.
fn target_is_forwarded_as_judged(req: &RequestHeader) -> bool {
    let raw = req.raw_path();
    let scheme = |s: &[u8]| {
        raw.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    req.raw_path_is_utf8()
        && (raw.first() == Some(&b'/') || scheme(b"http://") || scheme(b"https://"))
}

/// The path `admit` judges, or `None` for a target whose bytes would not reach the app as
/// that path (see [`target_is_forwarded_as_judged`]).
fn judged_path(req: &RequestHeader) -> Option<&str> {
    target_is_forwarded_as_judged(req).then(|| req.uri.path())
}

/// Writes the target the app receives: an absolute-form target (`GET http://host/path`) was
/// judged on its path, so the app gets that path (and query) in origin form. Origin-form
/// targets are left as they are. (Every other form was refused in `admit`.)
fn in_origin_form(upstream: &mut RequestHeader) -> Result<(), http::uri::InvalidUri> {
    if upstream.raw_path().first() != Some(&b'/') {
        let origin = upstream.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = http::Uri::try_from(origin)?;
        upstream.set_uri(uri);
    }
    Ok(())
}

/// The request's host, lower case, without port: from `Host`, or the URI under HTTP/2.
/// Borrowed when the host is already in that form, as nearly every browser sends it.
pub fn request_host(req: &RequestHeader) -> Option<std::borrow::Cow<'_, str>> {
    let raw = match req.headers.get(http::header::HOST) {
        Some(h) => h.as_bytes(),
        None => req.uri.authority()?.as_str().as_bytes(),
    };
    let host = if raw.first() == Some(&b'[') {
        // IPv6 literal: keep the brackets, drop the port.
        let end = raw.iter().position(|&b| b == b']')?;
        raw.get(..=end)?
    } else {
        match raw.iter().rposition(|&b| b == b':') {
            Some(colon) => raw.get(..colon)?,
            None => raw,
        }
    };
    let mut host = host;
    while let [rest @ .., b'.'] = host {
        host = rest;
    }
    // Brackets and colons only in an IPv6 literal: `a:b:80` is not the host `a:b`.
    let ipv6 = host.first() == Some(&b'[');
    let mut upper = false;
    for &b in host {
        upper |= b.is_ascii_uppercase();
        if !(b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.')
            || (ipv6 && matches!(b, b'[' | b']' | b':')))
        {
            return None;
        }
    }
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    // Only ASCII is left, so this cannot fail.
    let host = std::str::from_utf8(host).ok()?;
    Some(if upper {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    })
}

#[cfg(test)]
mod tests {
    use super::request_host;
    use pingora_http::RequestHeader;

    fn with_host(h: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("Host", h).unwrap();
        r
    }

    #[test]
    fn host_is_lowercased_without_port() {
        assert_eq!(
            request_host(&with_host("Wiki.Example.TEST:8443")).as_deref(),
            Some("wiki.example.test")
        );
        assert_eq!(
            request_host(&with_host("wiki.example.test.")).as_deref(),
            Some("wiki.example.test")
        );
        assert_eq!(
            request_host(&with_host("[::1]:80")).as_deref(),
            Some("[::1]")
        );
        assert_eq!(request_host(&with_host("bad host")), None);
        // Found by the property tests: `wiki.example.test::` was read as `wiki.example.test:`.
        assert_eq!(request_host(&with_host("wiki.example.test::")), None);
        assert_eq!(request_host(&with_host("a:b:80")), None);
        assert_eq!(request_host(&with_host("a]:80")), None);
        assert_eq!(request_host(&with_host("evil/x")), None);
    }
}

/// Properties over attacker-shaped request targets and `Host` values; `scripts/fuzz.sh` runs
/// them with many more cases.
#[cfg(test)]
mod properties {
    use pingora_core::protocols::http::v1::client::http_req_header_to_wire;
    use pingora_http::RequestHeader;
    use proptest::prelude::*;

    use super::{in_origin_form, judged_path, request_host};
    use crate::policy::normalize_path;
    use crate::util::attacker_input;

    /// The request target in the request line pingora writes to the app (`None`: pingora
    /// refuses to write it, so nothing is sent).
    fn target_on_the_wire(upstream: &RequestHeader) -> Option<Vec<u8>> {
        let wire = http_req_header_to_wire(upstream)?;
        let line = wire.strip_prefix(b"GET ")?;
        let end = line.iter().position(|&b| b == b' ')?;
        line.get(..end).map(<[u8]>::to_vec)
    }

    /// What `admit` judged against what the app receives: the path byte for byte, and the
    /// query with it.
    fn judged_is_forwarded(req: &RequestHeader) -> Result<(), TestCaseError> {
        // `admit` refuses (400) a target it cannot judge, or whose path does not normalise.
        let Some(judged) = judged_path(req).filter(|p| normalize_path(p).is_ok()) else {
            return Ok(());
        };
        // pingora's copy of the request, which `upstream_request_filter` writes on.
        let mut upstream = req.clone();
        prop_assert!(in_origin_form(&mut upstream).is_ok());
        let Some(sent) = target_on_the_wire(&upstream) else {
            return Ok(());
        };
        let (path, query) = match sent.iter().position(|&b| b == b'?') {
            Some(q) => (&sent[..q], Some(&sent[q + 1..])),
            None => (&sent[..], None),
        };
        prop_assert_eq!(
            path,
            judged.as_bytes(),
            "sent {:?}",
            String::from_utf8_lossy(&sent)
        );
        prop_assert_eq!(query, req.uri.query().map(str::as_bytes));
        Ok(())
    }

    /// `Host` values: names in any case, ports, brackets, trailing dots and junk.
    fn host_header() -> impl Strategy<Value = Vec<u8>> {
        const NAMES: &[&str] = &[
            "wiki.example.test",
            "WIKI.Example.TEST",
            "wiki.example.test.",
            "wiki.example.test..",
            "[::1]",
            "[::1",
            "::1]",
            "[::ffff:127.0.0.1]",
            "[]",
            "a:b",
            "",
            ".",
            "-",
            "xn--bcher-kva.example",
            "wiki example",
            "wiki/x",
            "wiki@evil",
            "é.example",
        ];
        const PORTS: &[&str] = &["", ":80", ":", ":8443", "::", ":80:80", ":x", "]:80", "."];
        prop_oneof![
            4 => (proptest::sample::select(NAMES), proptest::sample::select(PORTS))
                .prop_map(|(name, port)| format!("{name}{port}").into_bytes()),
            1 => attacker_input::text().prop_map(String::into_bytes),
            1 => attacker_input::bytes(),
        ]
    }

    proptest! {
        #![proptest_config(attacker_input::config(1024))]

        #[test]
        fn the_judged_path_is_the_path_the_app_receives(target in attacker_input::target_bytes()) {
            // pingora answers 400 itself to what it cannot build a request from.
            if let Ok(req) = RequestHeader::build("GET", &target, None) {
                judged_is_forwarded(&req)?;
            }
        }

        #[test]
        fn the_judged_path_is_the_path_the_app_receives_from_http2(path in attacker_input::path()) {
            // Under HTTP/2 the request carries an absolute URI (scheme, authority, path).
            let uri = format!("https://wiki.example.test{path}");
            if let Ok(uri) = http::Uri::try_from(uri) {
                let (mut parts, ()) = http::Request::new(()).into_parts();
                parts.uri = uri;
                judged_is_forwarded(&RequestHeader::from(parts))?;
            }
        }

        #[test]
        fn a_host_is_read_once_and_for_all(host in host_header()) {
            let Ok(value) = http::HeaderValue::from_bytes(&host) else {
                return Ok(()); // not a header value: pingora refuses the request
            };
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header("Host", value).unwrap();
            if let Some(read) = request_host(&req) {
                prop_assert!(!read.is_empty() && read.len() <= 253);
                prop_assert!(!read.bytes().any(|b| b.is_ascii_uppercase()), "{:?}", read);
                // Canonical: no port, no trailing dot left to strip; reading it again is a no-op.
                let mut again = RequestHeader::build("GET", b"/", None).unwrap();
                again.insert_header("Host", read.as_ref()).unwrap();
                let reread = request_host(&again).map(|h| h.into_owned());
                prop_assert_eq!(reread.as_deref(), Some(read.as_ref()), "from {:?}", String::from_utf8_lossy(&host));
            }
        }

        #[test]
        fn a_host_name_is_found_in_any_case_with_any_port(
            labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..5),
            upper in proptest::collection::vec(any::<bool>(), 0..40),
            port in proptest::option::of(0u16..),
            trailing_dot in any::<bool>(),
        ) {
            let name = labels.join(".");
            let mut written: String = name
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            if trailing_dot {
                written.push('.');
            }
            if let Some(port) = port {
                written.push_str(&format!(":{port}"));
            }
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header("Host", written.as_str()).unwrap();
            let read = request_host(&req).map(|h| h.into_owned());
            prop_assert_eq!(read.as_deref(), Some(name.as_str()), "{}", written);
        }
    }
}
