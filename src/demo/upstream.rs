//! The demo app behind jitgate: a page that shows exactly which headers it received.
//!
//! It stands in for a legacy app in `jitgate demo` and in the tests (which read its JSON
//! answer to see what reached the upstream). In the demo it also behaves like an app that
//! only knows users with an account (`with_accounts`): its page shows the account jitgate
//! created for you through the app's user API (with its role, which a grant raises), or
//! refuses you if there is none. In the demo the page also shows the time left on your
//! active grant, read from jitgate's grants API by the browser.

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Map, Value};

use super::accounts::DemoAccounts;
use crate::endpoints::pages::escape;

/// The countdown on the demo page: the browser asks jitgate's grants API (same origin, the
/// user's own session) for an active grant and counts its seconds down, reloading at zero.
const GRANT_CLOCK: &str = r#"<p id="grant">Checking for an active grant…</p>
<script>
fetch('/.jitgate/api/grants').then(r => r.ok ? r.json() : null).then(d => {
  const el = document.getElementById('grant');
  const g = d && (d.mine || []).find(g => g.status === 'active' && g.seconds_left > 0);
  if (!g) { el.textContent = 'No active grant: /admin is refused, and your role is your standing one.'; return; }
  let left = g.seconds_left;
  const tick = () => {
    el.textContent = 'Grant ' + g.type + ' for "' + g.purpose + '" (' + (g.ticket || 'no ticket') + '): '
      + Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0') + ' left.';
    if (left-- <= 0) { location.reload(); } else { setTimeout(tick, 1000); }
  };
  tick();
});
</script>"#;

#[derive(Default)]
pub struct EchoApp {
    accounts: Option<std::sync::Arc<DemoAccounts>>,
}

impl EchoApp {
    /// An echo that also requires an account in `accounts` (403 without one).
    pub fn with_accounts(accounts: std::sync::Arc<DemoAccounts>) -> Self {
        Self {
            accounts: Some(accounts),
        }
    }
}

#[async_trait]
impl ServeHttp for EchoApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let mut headers = Map::new();
        for (name, value) in req.headers.iter() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::Array(list)) => list.push(Value::String(value)),
                _ => {
                    headers.insert(name.as_str().to_string(), json!([value]));
                }
            }
        }
        let echo = json!({
            "method": req.method.as_str(),
            "path": req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            // The request target exactly as it arrived (the URI above is pingora's reading).
            "target": String::from_utf8_lossy(req.raw_path()),
            "headers": headers,
        });
        let wants_json = req
            .headers
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let user = headers
            .get("x-forwarded-user")
            .and_then(|v| v.get(0))
            .and_then(Value::as_str)
            .unwrap_or("(nobody)")
            .to_string();
        let (status, account_html) = match &self.accounts {
            None => (200, String::new()),
            Some(accounts) => match accounts.active(&user) {
                Some(a) => (
                    200,
                    format!(
                        "<p>Your account in this app: <b>#{}</b>, role <b>{}</b>. jitgate created \
                         it through the app's user API on your first visit (see the \
                         <code>provisioning:</code> section of the demo policy).</p>{GRANT_CLOCK}",
                        a.id,
                        escape(&a.role)
                    ),
                ),
                None => (
                    403,
                    format!(
                        "<p>This app has no account for {}: it would refuse you without jitgate.</p>",
                        escape(&user)
                    ),
                ),
            },
        };
        let path = req.uri.path();
        let heading = if path == "/admin" || path.starts_with("/admin/") {
            format!("Admin area: hello, {}", escape(&user))
        } else {
            format!("Hello, {}", escape(&user))
        };
        let (content_type, body) = if wants_json {
            ("application/json", echo.to_string())
        } else {
            (
                "text/html; charset=utf-8",
                format!(
                    "<!doctype html><title>demo app</title><h1>{heading}</h1>{account_html}\
                     <p>This is the demo app behind jitgate. It received:</p><pre>{}</pre>\
                     <p><a href=\"/admin\">/admin</a> (needs a demo-admin grant) · \
                     <a href=\"/.jitgate/access\">access page</a> · \
                     <a href=\"/.jitgate/logout\">sign out</a></p>",
                    escape(&serde_json::to_string_pretty(&echo).unwrap_or_default())
                ),
            )
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(body.into_bytes())
            .unwrap_or_default()
    }
}
