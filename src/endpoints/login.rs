//! Signing in: login, callback, hand-off.
//!
//! One client registration serves every app: the IdP redirects to the *auth host* (the public
//! base URL) and back-channel logout goes there too. Because session cookies are `__Host-`
//! cookies bound to one host, a login for `wiki.example.com` continues with a one-time,
//! 60-second, host-bound hand-off code that the wiki host exchanges for its own session.
//!
//! ```text
//! browser -> wiki/…            no session: 302 auth/.jitgate/login?host=wiki&rd=/…
//! browser -> auth/.jitgate/login   302 IdP /authorize (state, nonce, PKCE S256) + binding cookie
//! browser -> auth/.jitgate/callback  code -> tokens -> validated identity -> auth session
//!                                    302 wiki/.jitgate/handoff?code=…
//! browser -> wiki/.jitgate/handoff   new wiki session cookie, 302 /…
//! ```
//! `state` is single-use (taken from the store with `DELETE … RETURNING`) and bound to the
//! browser by the binding cookie; the return path is checked to be same-origin and relative.

use pingora_http::RequestHeader;
use serde_json::json;

use super::denial::store_down;
use super::sign_in_directory::{directory_allows, link_of, settle};
use super::{query_param, OwnRequest, Reply, PREFIX};
use crate::auth::identity::Identity;
use crate::auth::oidc::OidcError;
use crate::auth::session::cookie::{self, CookieValue};
use crate::auth::session::{ActiveSession, SessionError};
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::lifecycle::claims_refresh;
use crate::store::{Handoff, LoginTransaction, SessionRecord};
use crate::telemetry::audit::{detail, AuditKind, Subject};
use crate::util::clock::now_secs;
use crate::util::random;

const LOGIN_TTL_SECS: i64 = 600;
const HANDOFF_TTL_SECS: i64 = 60;
const MAX_RETURN_PATH: usize = 2048;

/// Sends an anonymous browser to sign in so it comes back to `host` + `path_and_query`.
///
/// On an app host the sign-in ends with a one-time hand-off link to this host. That link
/// must complete only in this browser (else anyone could sign a victim in as themselves by
/// sending them their own link), so this host sets a binding cookie now, and the auth host
/// gets only its hash (`bind`) to put in the hand-off.
pub fn login_redirect(
    gate: &Gate,
    req: &RequestHeader,
    host: &str,
    path_and_query: &str,
) -> Denial {
    let rd = safe_return_path(path_and_query).unwrap_or_else(|| "/".to_string());
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("host", host).append_pair("rd", &rd);
    let mut binding_cookie = None;
    if !gate.is_auth_host(host) {
        let binding = match binding_token(gate, req) {
            Ok(binding) => binding,
            Err(denial) => return denial,
        };
        query.append_pair("bind", &random::hash(&binding));
        binding_cookie = Some(gate.cookies.set(
            gate.cookies.login_binding(),
            &binding,
            Some(LOGIN_TTL_SECS),
        ));
    }
    Denial::LoginRedirect {
        location: format!(
            "{}{PREFIX}login?{}",
            gate.config.public.base,
            query.finish()
        ),
        binding_cookie,
    }
}

/// Accepts only a same-origin relative path: `/…`, not `//…`, `/\…`, absolute URLs,
/// backslashes or control characters.
pub fn safe_return_path(rd: &str) -> Option<String> {
    let ok = !rd.is_empty()
        && rd.len() <= MAX_RETURN_PATH
        && rd.starts_with('/')
        && !rd.starts_with("//")
        && !rd.contains('\\')
        && !rd.chars().any(|c| c.is_control() || c.is_whitespace());
    if !ok {
        return None;
    }
    // Belt and braces: resolving it against an origin must keep that origin.
    let base = url::Url::parse("http://origin.invalid/").ok()?;
    let joined = base.join(rd).ok()?;
    (joined.host_str() == Some("origin.invalid") && joined.port().is_none()).then(|| rd.to_string())
}

pub(super) fn page(
    status: u16,
    title: &str,
    message: &str,
    request_id: &str,
    cookies: Vec<String>,
) -> Reply {
    Reply::Page {
        status,
        html: crate::endpoints::pages::render(title, message, "", request_id),
        cookies,
    }
}

pub(super) fn session_error(e: SessionError) -> Denial {
    match e {
        SessionError::Store(e) => store_down(e),
        other => {
            tracing::error!(error = %other, "session operation failed");
            Denial::Internal
        }
    }
}

pub(super) async fn start_login(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    if !gate.is_auth_host(req.host) {
        // Logins always start on the auth host, where the callback is registered.
        let q = req.query.unwrap_or("");
        return Ok(Reply::Redirect {
            location: format!("{}{PREFIX}login?{q}", gate.config.public.base),
            cookies: Vec::new(),
        });
    }
    let target_host = query_param(req.query, "host")
        .map(|h| h.to_ascii_lowercase())
        .ok_or(Denial::BadRequest(
            "the login link names no application host",
        ))?;
    if gate.policies.load().app_for_host(&target_host).is_none() {
        return Err(Denial::BadRequest("the login link names an unknown host"));
    }
    let return_to = query_param(req.query, "rd")
        .and_then(|rd| safe_return_path(&rd))
        .unwrap_or_else(|| "/".to_string());
    // The hash of the binding cookie the app host set (see `login_redirect`). A link
    // without one (a bookmark, an old link) goes back to the app, which starts over with one.
    let target_binding_hash = if gate.is_auth_host(&target_host) {
        String::new()
    } else {
        match query_param(req.query, "bind").filter(|b| random::looks_like_token(b)) {
            Some(bind) => bind,
            None => {
                return Ok(Reply::Redirect {
                    location: format!(
                        "{}{return_to}",
                        gate.config.public.origin_for_host(&target_host)
                    ),
                    cookies: Vec::new(),
                })
            }
        }
    };

    // Already signed in on the auth host: no trip to the IdP (single sign-on across apps).
    if let CookieValue::Token(token) = cookie::read(req.header, gate.cookies.session()) {
        if let Ok(Ok(session)) = gate.sessions.resolve(token, req.host).await {
            let target = Target {
                host: &target_host,
                return_to: &return_to,
                binding_hash: &target_binding_hash,
            };
            return finish_at_target(gate, &session, target, Vec::new()).await;
        }
    }

    let state = random::token().map_err(|_| Denial::Internal)?;
    let nonce = random::token().map_err(|_| Denial::Internal)?;
    let binding = binding_token(gate, req.header)?;
    let start = gate.oidc.begin_login(&state, &nonce).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot start a login");
        gate.metrics
            .logins
            .with_label_values(&["idp_unavailable"])
            .inc();
        Denial::IdpUnavailable
    })?;
    gate.store
        .put_login_transaction(&LoginTransaction {
            state_hash: random::hash(&state),
            browser_hash: random::hash(&binding),
            nonce,
            pkce_verifier: start.pkce_verifier,
            target_host,
            return_to,
            target_binding_hash,
            expires_at: now_secs() + LOGIN_TTL_SECS,
        })
        .await
        .map_err(store_down)?;
    Ok(Reply::Redirect {
        location: start.authorize_url,
        cookies: vec![gate.cookies.set(
            gate.cookies.login_binding(),
            &binding,
            Some(LOGIN_TTL_SECS),
        )],
    })
}

/// The browser's binding cookie on this host, or a new one: a sign-in started in a second
/// tab keeps the first tab's binding, so both can finish.
fn binding_token(gate: &Gate, req: &RequestHeader) -> Result<String, Denial> {
    match cookie::read(req, gate.cookies.login_binding()) {
        CookieValue::Token(existing) => Ok(existing.to_string()),
        _ => random::token().map_err(|_| Denial::Internal),
    }
}

/// Whether this browser holds the binding cookie whose hash a sign-in step recorded.
fn has_binding(gate: &Gate, req: &OwnRequest<'_>, expected_hash: &str) -> bool {
    match cookie::read(req.header, gate.cookies.login_binding()) {
        CookieValue::Token(binding) => random::same_secret(&random::hash(binding), expected_hash),
        _ => false,
    }
}

/// A sign-in that cannot complete: counted, audited, and answered with why.
/// A refusal by the directory is a failed sign-in, audited with its reason.
fn audited(gate: &Gate, req: &OwnRequest<'_>, denial: Denial) -> Denial {
    if matches!(denial, Denial::DirectoryRemoved) {
        login_failed(gate, req, "the directory removed this user's access");
    }
    denial
}

fn login_failed(gate: &Gate, req: &OwnRequest<'_>, why: &'static str) -> Denial {
    gate.metrics.logins.with_label_values(&["failed"]).inc();
    gate.audit.record_in_background(
        AuditKind::LoginFailed,
        Subject {
            request_id: Some(req.request_id),
            ..Subject::default()
        },
        detail(&[("reason", why), ("host", req.host)]),
    );
    Denial::LoginFailed(why)
}

pub(super) async fn callback(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    let state = query_param(req.query, "state")
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or(Denial::BadRequest(
            "the sign-in response has no valid state",
        ))?;
    let failed = |why: &'static str| login_failed(gate, req, why);
    let txn = gate
        .store
        .take_login_transaction(&random::hash(&state))
        .await
        .map_err(store_down)?
        .ok_or_else(|| failed("the sign-in link is unknown, expired or already used"))?;
    if !has_binding(gate, req, &txn.browser_hash) {
        return Err(failed("the sign-in was started in another browser"));
    }
    if txn.expires_at < now_secs() {
        return Err(failed("the sign-in took too long"));
    }
    if let Some(error) = query_param(req.query, "error") {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        tracing::info!(error = %error, "identity provider declined the login");
        return Err(failed("the identity provider declined the sign-in"));
    }
    let code = query_param(req.query, "code")
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or_else(|| failed("the sign-in response has no code"))?;
    let login = gate
        .oidc
        .finish_login(&code, &txn.nonce, &txn.pkce_verifier)
        .await
        .map_err(|e| match e {
            OidcError::Unavailable(_) | OidcError::Setup(_) => {
                tracing::warn!(error = %e, "cannot complete a login");
                Denial::IdpUnavailable
            }
            OidcError::InvalidToken(_) | OidcError::Refused(_) => {
                tracing::warn!(error = %e, "login refused");
                failed("the identity provider's answer did not pass validation")
            }
        })?;
    let link = link_of(gate, &login);
    let directory_groups = directory_allows(gate, &login, link.as_deref())
        .await
        .map_err(|d| audited(gate, req, d))?;
    let settings = gate.oidc.settings();
    let mut identity = Identity::from_claims(
        login.iss.clone(),
        login.sub.clone(),
        login.claims,
        &settings.username_claim,
        &settings.groups_claim,
    );
    if let Some(groups) = &directory_groups {
        identity = identity.with_groups(groups, &settings.groups_claim);
    }
    let now = now_secs();
    // The refresh row before the session: a row left without one is swept, a session left
    // without its row would never be refreshed.
    let (sid, refresh_token) = (login.sid.as_deref(), login.refresh_token.as_ref());
    remember_for_refresh(gate, &identity, now, sid, refresh_token).await?;
    let created = gate
        .sessions
        .create(req.host, &identity, login.sid.clone(), login.id_token, now)
        .await
        .map_err(session_error)?;
    let applied = directory_groups.as_deref();
    settle(
        gate,
        &created.record.id_hash,
        &identity,
        link.as_deref(),
        applied,
    )
    .await
    .map_err(|d| audited(gate, req, d))?;
    gate.metrics.logins.with_label_values(&["success"]).inc();
    gate.audit
        .record(
            AuditKind::Login,
            Subject {
                iss: Some(&identity.iss),
                sub: Some(&identity.sub),
                app: None,
                request_id: Some(req.request_id),
            },
            json!({ "username": &*identity.username, "groups": identity.groups().collect::<Vec<_>>(), "target_host": txn.target_host }),
        )
        .await;
    let max_age = gate.sessions.settings().absolute_timeout.as_secs() as i64;
    let cookies = vec![
        gate.cookies
            .set(gate.cookies.session(), &created.cookie_value, Some(max_age)),
        gate.cookies.clear(gate.cookies.login_binding()),
    ];
    let target = Target {
        host: &txn.target_host,
        return_to: &txn.return_to,
        binding_hash: &txn.target_binding_hash,
    };
    finish_at_target_record(gate, created.record, target, cookies).await
}

/// With `session.refresh_claims` on, keeps the login's refresh token (sealed) so its claims
/// are refreshed. A login that cannot be recorded fails: a user removed at the IdP would
/// otherwise keep this session to its timeout.
async fn remember_for_refresh(
    gate: &Gate,
    identity: &Identity,
    login_at: i64,
    sid: Option<&str>,
    refresh_token: Option<&crate::config::Secret>,
) -> Result<(), Denial> {
    let (Some(interval), Some(seal)) = (gate.config.session.refresh_claims, &gate.refresh_seal)
    else {
        return Ok(());
    };
    let login = claims_refresh::NewLogin {
        identity,
        login_at,
        sid,
        refresh_token,
    };
    claims_refresh::remember_login(&gate.store, seal, &gate.metrics, login, interval)
        .await
        .map_err(store_down)
}

/// Where a finished sign-in goes: the app host, the path there, and the hash of the
/// binding cookie that host set in the browser (empty for the auth host itself).
struct Target<'a> {
    host: &'a str,
    return_to: &'a str,
    binding_hash: &'a str,
}

async fn finish_at_target(
    gate: &Gate,
    session: &ActiveSession,
    target: Target<'_>,
    cookies: Vec<String>,
) -> Result<Reply, Denial> {
    let record = gate
        .store
        .get_session(&session.id_hash())
        .await
        .map_err(store_down)?
        .ok_or(Denial::LoginFailed("the session ended during sign-in"))?;
    finish_at_target_record(gate, record, target, cookies).await
}

/// Sends the browser back to where it started: directly on the auth host, via a hand-off
/// code on any other host.
async fn finish_at_target_record(
    gate: &Gate,
    session: SessionRecord,
    target: Target<'_>,
    cookies: Vec<String>,
) -> Result<Reply, Denial> {
    if gate.is_auth_host(target.host) {
        return Ok(Reply::Redirect {
            location: target.return_to.to_string(),
            cookies,
        });
    }
    let code = random::token().map_err(|_| Denial::Internal)?;
    gate.store
        .put_handoff(&Handoff {
            code_hash: random::hash(&code),
            target_host: target.host.to_string(),
            return_to: target.return_to.to_string(),
            browser_hash: target.binding_hash.to_string(),
            session,
            expires_at: now_secs() + HANDOFF_TTL_SECS,
        })
        .await
        .map_err(store_down)?;
    let location = format!(
        "{}{PREFIX}handoff?code={code}",
        gate.config.public.origin_for_host(target.host)
    );
    Ok(Reply::Redirect { location, cookies })
}

pub(super) async fn handoff(gate: &Gate, req: &OwnRequest<'_>) -> Result<Reply, Denial> {
    let code = query_param(req.query, "code")
        .filter(|c| random::looks_like_token(c))
        .ok_or(Denial::BadRequest("the sign-in hand-off link is malformed"))?;
    let handoff = gate
        .store
        .take_handoff(&random::hash(&code))
        .await
        .map_err(store_down)?
        .ok_or(Denial::LoginFailed(
            "the sign-in hand-off is unknown or already used",
        ))?;
    if handoff.target_host != req.host {
        return Err(Denial::LoginFailed(
            "the sign-in hand-off is for another site",
        ));
    }
    if handoff.expires_at < now_secs() {
        return Err(Denial::LoginFailed("the sign-in hand-off expired"));
    }
    if !has_binding(gate, req, &handoff.browser_hash) {
        // Someone else's link (login CSRF), or cookies cleared mid-sign-in.
        return Err(login_failed(
            gate,
            req,
            "the sign-in was started in another browser",
        ));
    }
    // The auth host's session as it is now, not as it was when the code was made: a leaver
    // ended it, or a mover changed its groups, in the meantime.
    let mut record = gate
        .store
        .get_session(&handoff.session.id_hash)
        .await
        .map_err(store_down)?
        .ok_or(Denial::LoginFailed("the session ended during sign-in"))?;
    let token = random::token().map_err(|_| Denial::Internal)?;
    record.id_hash = random::hash(&token);
    record.host = req.host.to_string();
    record.last_seen = now_secs();
    gate.sessions
        .insert_record(&token, &record)
        .await
        .map_err(session_error)?;
    let max_age = (record.login_at + gate.sessions.settings().absolute_timeout.as_secs() as i64
        - now_secs())
    .max(0);
    Ok(Reply::Redirect {
        location: handoff.return_to,
        cookies: vec![
            gate.cookies
                .set(gate.cookies.session(), &token, Some(max_age)),
            gate.cookies.clear(gate.cookies.login_binding()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::safe_return_path;

    #[test]
    fn only_same_origin_relative_paths_are_return_targets() {
        assert_eq!(
            safe_return_path("/wiki/page?x=1").as_deref(),
            Some("/wiki/page?x=1")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/a\\b",
            "/a\nb",
            "/a\tb",
            "evil",
            "",
            "javascript:alert(1)",
        ] {
            assert!(safe_return_path(bad).is_none(), "{bad:?} should be refused");
        }
        // Encoded CR/LF stays encoded: harmless inside a Location path.
        assert_eq!(
            safe_return_path("/%0d%0aSet-Cookie:x").as_deref(),
            Some("/%0d%0aSet-Cookie:x")
        );
    }
}
