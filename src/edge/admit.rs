//! `request_filter`'s decision, one named step per line of the phase chart in `proxy.rs`:
//! own endpoint, route, session, decision, grant, account. Each step either lets the request
//! go on or returns the [`Denial`] that answers it; only a request that passed every step
//! leaves its app, user and grant in the context for the phases that forward it.
//! Nothing here touches the network or the store when the session, the grant and the
//! account are in their caches.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use serde_json::json;

use super::proxy::{read_timeout_until, Elevated, JitgateProxy, RequestCtx, ScimNote};
use super::request_target::{judged_path, request_host};
use crate::auth::session::cookie::{self, CookieValue};
use crate::auth::session::{ActiveSession, SessionEnd};
use crate::endpoints::denial::Denial;
use crate::endpoints::{self, login, OwnRequest, Reply};
use crate::policy::{normalize_path, without_path_parameters, AppPolicy, GrantType, RouteDenied};
use crate::telemetry::audit::{AuditKind, Subject};

impl JitgateProxy {
    /// Decides whether a request may go to its app. `Ok(Some(reply))`: one of jitgate's own
    /// endpoints answered it; `Ok(None)`: forward it; `Err`: refuse it.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Reply>, Denial> {
        let req = session.req_header();
        let host = request_host(req).ok_or(Denial::BadRequest("missing or invalid Host"))?;
        let app = self.gate.policies.load().app_for_host(&host).cloned();
        let path = judged_path(req).ok_or(Denial::BadRequest("unsupported request target"))?;

        // Own endpoint: /.jitgate/* on any app's host or the auth host.
        if let Some(endpoint) = path.strip_prefix(endpoints::PREFIX) {
            if app.is_none() && !self.gate.is_auth_host(&host) {
                return Err(Denial::UnknownHost);
            }
            let (host, endpoint) = (host.into_owned(), endpoint.to_string());
            let mut by = None;
            let answer = self
                .own_endpoint(session, ctx.request_id.as_str(), &host, &endpoint, &mut by)
                .await;
            if endpoints::scim::is_scim(&endpoint) {
                ctx.scim = Some(Box::new(ScimNote {
                    by,
                    scim_type: None,
                }));
            }
            return answer.map(Some);
        }

        let RequestCtx {
            request_id,
            app: admitted_app,
            user: admitted_user,
            elevated: admitted_grant,
            started,
            ..
        } = ctx;
        let request_id = request_id.as_str();
        // Route: the app of this host, and the path as every server reads it.
        let app: &Arc<AppPolicy> = admitted_app.insert(app.ok_or(Denial::UnknownHost)?);
        let normalized = judged_route(app, req, path)?;
        // Session: the signed-in user.
        let active = self.signed_in(req, &host, app, request_id).await?;
        // Decision: a route of this app admits the user (and may ask for a grant).
        let elevation = self.decision(app, req, &normalized, &active, request_id)?;
        // Grant: on an elevated route, an active grant of its type, checked now.
        if let Some(kind) = elevation {
            let grant = self
                .active_grant(app, req, &normalized, &active, kind, request_id)
                .await?;
            *admitted_grant = Some(Box::new(grant));
        }
        // Account: the user's account in the app exists and is current (JIT provisioning).
        self.account_ready(app, &active, request_id).await?;

        self.app_metrics(app)
            .decision_latency
            .observe(started.elapsed());
        *admitted_user = Some(active);
        if let Some(e) = admitted_grant {
            session.set_read_timeout(Some(read_timeout_until(e.expires_at_ms)));
        }
        Ok(None)
    }

    /// One of jitgate's own endpoints, with its body read first (within its limit). `by`
    /// receives who a bearer token authenticated (`scim token 1`), for the SCIM log.
    async fn own_endpoint(
        &self,
        session: &mut Session,
        request_id: &str,
        host: &str,
        endpoint: &str,
        by: &mut Option<String>,
    ) -> Result<Reply, Denial> {
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let authenticated = endpoints::before_body(
            &self.gate,
            host,
            endpoint,
            session.req_header(),
            request_id,
            client,
        )?;
        by.clone_from(&authenticated);
        let body = match endpoints::body_limit(endpoint, &session.req_header().method) {
            Some(limit) => Some(Box::pin(read_body(session, limit)).await?),
            None => None,
        };
        let req = session.req_header();
        let own = OwnRequest {
            method: &req.method,
            host,
            endpoint,
            query: req.uri.query(),
            header: req,
            request_id,
            body,
            authenticated,
        };
        // Boxed: the sign-in future is large (token exchange, discovery), and inlining it
        // would make every request's future, which pingora boxes and moves, that large too.
        Box::pin(endpoints::handle(&self.gate, own)).await
    }

    /// The user of this request's session, or the way to sign in.
    async fn signed_in(
        &self,
        req: &RequestHeader,
        host: &str,
        app: &AppPolicy,
        request_id: &str,
    ) -> Result<Arc<ActiveSession>, Denial> {
        let gate = &self.gate;
        let token = match cookie::read(req, gate.cookies.session()) {
            CookieValue::Token(t) => t,
            CookieValue::Absent => return Err(self.login_required(req, host)),
            CookieValue::Malformed => return Err(Denial::BadSessionCookie),
        };
        match gate.sessions.resolve(token, host).await {
            Ok(Ok(active)) => Ok(active),
            Ok(Err(end)) => {
                if matches!(end, SessionEnd::IdleTimeout | SessionEnd::AbsoluteTimeout) {
                    gate.audit.record_in_background(
                        AuditKind::SessionExpired,
                        Subject {
                            app: Some(&app.name),
                            request_id: Some(request_id),
                            ..Subject::default()
                        },
                        json!({ "reason": format!("{end:?}") }),
                    );
                }
                Err(self.login_required(req, host))
            }
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                Err(Denial::StoreUnavailable)
            }
        }
    }

    /// The route decision for this user; the grant type the route needs, if it is elevated.
    fn decision<'a>(
        &self,
        app: &'a AppPolicy,
        req: &RequestHeader,
        normalized: &str,
        active: &ActiveSession,
        request_id: &str,
    ) -> Result<Option<&'a GrantType>, Denial> {
        let gate = &self.gate;
        let identity = &active.identity;
        match app.decide(&req.method, normalized, identity) {
            Ok(permitted) => {
                self.app_metrics(app).allowed.inc();
                Ok(app.elevation(permitted))
            }
            Err(denied) => {
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
                        request_id: Some(request_id),
                    },
                    json!({ "method": req.method.as_str(), "path": normalized, "route": route }),
                );
                Err(Denial::Forbidden {
                    app: app.name.clone(),
                })
            }
        }
    }

    /// The user's active grant of `kind`, checked against the clock now.
    async fn active_grant(
        &self,
        app: &Arc<AppPolicy>,
        req: &RequestHeader,
        normalized: &str,
        active: &ActiveSession,
        kind: &GrantType,
        request_id: &str,
    ) -> Result<Elevated, Denial> {
        let gate = &self.gate;
        let identity = &active.identity;
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
                    request_id: Some(request_id),
                },
                json!({ "method": req.method.as_str(), "path": normalized, "grant_type": grant_type }),
            );
            return Err(Denial::ElevationRequired {
                app: app.name.clone(),
                grant_type: grant_type.to_string(),
            });
        };
        Ok(Elevated {
            grant_type: grant_type.to_string(),
            grant_id: grant.id.clone(),
            expires_at_ms: grant.expires_at_ms,
        })
    }

    /// JIT provisioning: a cache hit costs one lookup; anything else is boxed out of the
    /// per-request future (it may call the app's API).
    async fn account_ready(
        &self,
        app: &Arc<AppPolicy>,
        active: &ActiveSession,
        request_id: &str,
    ) -> Result<(), Denial> {
        let Some(connector) = &app.provisioning else {
            return Ok(());
        };
        let accounts = &self.gate.accounts;
        if accounts.is_current(app, &active.identity, active.login_at) {
            return Ok(());
        }
        Box::pin(accounts.ensure(
            app,
            connector,
            &active.identity,
            active.login_at,
            request_id,
        ))
        .await
        .map_err(|e| Denial::from_provisioning(&app.name, &e))
    }

    fn login_required(&self, req: &RequestHeader, host: &str) -> Denial {
        if req.method == Method::GET || req.method == Method::HEAD {
            let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            login::login_redirect(&self.gate, req, host, target)
        } else {
            Denial::LoginRequired
        }
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

/// The path this request is judged on, normalised; refused when it is malformed or when
/// servers would read it differently.
fn judged_route<'a>(
    app: &AppPolicy,
    req: &RequestHeader,
    path: &'a str,
) -> Result<Cow<'a, str>, Denial> {
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
    Ok(normalized)
}
