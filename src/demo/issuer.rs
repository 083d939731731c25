//! A development OpenID Provider for `jitgate demo`: loopback only, not for production.
//!
//! It implements just enough of OpenID Connect for the demo: discovery, JWKS (ES256),
//! an authorization endpoint with a pick-a-user form, the token endpoint (client secret and
//! PKCE S256 checked), userinfo and an end-session endpoint. Codes are single-use and live
//! for one minute. It also serves the directory page ([`DemoDirectory`]), the demo's stand-in
//! for an IdP that provisions over SCIM. Every page says it is for trying jitgate only.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};

use super::directory::DemoDirectory;
use super::signing_key::SigningKey;
use super::users::DEMO_USERS;
use crate::endpoints::pages::escape;
use crate::util::clock::now_secs;
use crate::util::random;

struct PendingCode {
    user: usize,
    nonce: String,
    challenge: String,
    redirect_uri: String,
    expires_at: i64,
}

pub struct DevIssuer {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    key: SigningKey,
    codes: Mutex<HashMap<String, PendingCode>>,
    access_tokens: Mutex<HashMap<String, usize>>,
    /// The directory page, when jitgate's SCIM service is on.
    directory: Option<DemoDirectory>,
}

impl DevIssuer {
    pub fn new(
        issuer: String,
        client_id: String,
        client_secret: String,
        redirect_uri: String,
    ) -> Result<Self, super::signing_key::KeyError> {
        Ok(Self {
            issuer,
            client_id,
            client_secret,
            redirect_uri,
            key: SigningKey::generate("dev-1")?,
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            directory: None,
        })
    }

    /// Serves the directory page (`/directory`), which pushes to jitgate over SCIM.
    pub fn with_directory(mut self, directory: DemoDirectory) -> Self {
        self.directory = Some(directory);
        self
    }

    fn discovery(&self) -> Value {
        let i = &self.issuer;
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "userinfo_endpoint": format!("{i}/userinfo"),
            "jwks_uri": format!("{i}/jwks"),
            "end_session_endpoint": format!("{i}/logout"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "name", "preferred_username", "email", "groups"],
        })
    }

    fn authorize_form(&self, query: &HashMap<String, String>) -> (u16, String) {
        let get = |k: &str| query.get(k).cloned().unwrap_or_default();
        if get("client_id") != self.client_id || get("redirect_uri") != self.redirect_uri {
            return (400, dev_page("Unknown client or redirect_uri.", ""));
        }
        if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
            return (400, dev_page("PKCE (S256) is required.", ""));
        }
        let hidden: String = ["state", "nonce", "code_challenge", "redirect_uri"]
            .iter()
            .map(|k| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    escape(&get(k))
                )
            })
            .collect();
        let buttons: String = DEMO_USERS
            .iter()
            .enumerate()
            .map(|(i, u)| {
                format!(
                    "<p><button name=\"user\" value=\"{i}\">Sign in as {}</button> — groups: {}</p>",
                    escape(u.name),
                    escape(&u.groups.join(", "))
                )
            })
            .collect();
        (
            200,
            dev_page(
                "Pick a demo user.",
                &format!("<form method=\"post\" action=\"/authorize\">{hidden}{buttons}</form>"),
            ),
        )
    }

    fn authorize_submit(&self, form: &HashMap<String, String>) -> Result<String, String> {
        let user: usize = form
            .get("user")
            .and_then(|u| u.parse().ok())
            .filter(|u| *u < DEMO_USERS.len())
            .ok_or("unknown user")?;
        let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
        if redirect_uri != self.redirect_uri {
            return Err("unknown redirect_uri".into());
        }
        let code = random::token().map_err(|e| e.to_string())?;
        let pending = PendingCode {
            user,
            nonce: form.get("nonce").cloned().unwrap_or_default(),
            challenge: form.get("code_challenge").cloned().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
            expires_at: now_secs() + 60,
        };
        self.codes
            .lock()
            .map_err(|_| "lock")?
            .insert(code.clone(), pending);
        let state = form.get("state").cloned().unwrap_or_default();
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &state)
            .append_pair("iss", &self.issuer)
            .finish();
        Ok(format!("{redirect_uri}?{query}"))
    }

    fn token(
        &self,
        form: &HashMap<String, String>,
        authorization: Option<&str>,
    ) -> Result<Value, &'static str> {
        let (id, secret) = match authorization.and_then(|a| a.strip_prefix("Basic ")) {
            Some(b64) => {
                let decoded = STANDARD.decode(b64).map_err(|_| "invalid_client")?;
                let text = String::from_utf8(decoded).map_err(|_| "invalid_client")?;
                let (id, secret) = text.split_once(':').ok_or("invalid_client")?;
                let decode = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (decode(id), decode(secret))
            }
            None => (
                form.get("client_id").cloned().unwrap_or_default(),
                form.get("client_secret").cloned().unwrap_or_default(),
            ),
        };
        if id != self.client_id || !random::same_secret(&secret, &self.client_secret) {
            return Err("invalid_client");
        }
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err("unsupported_grant_type");
        }
        let code = form.get("code").ok_or("invalid_grant")?;
        let pending = self
            .codes
            .lock()
            .map_err(|_| "server_error")?
            .remove(code)
            .ok_or("invalid_grant")?;
        let verifier = form.get("code_verifier").ok_or("invalid_grant")?;
        let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        if pending.expires_at < now_secs()
            || computed != pending.challenge
            || form.get("redirect_uri") != Some(&pending.redirect_uri)
        {
            return Err("invalid_grant");
        }
        let user = DEMO_USERS.get(pending.user).ok_or("invalid_grant")?;
        let now = now_secs();
        let claims = json!({
            "iss": self.issuer, "sub": user.subject(), "aud": self.client_id,
            "iat": now, "exp": now + 300, "nonce": pending.nonce, "sid": random::token().map_err(|_| "server_error")?,
            "preferred_username": user.login, "name": user.name,
            "email": format!("{}@demo.jitgate.invalid", user.login), "groups": user.groups,
        });
        let id_token = self
            .key
            .sign(&json!({ "typ": "JWT" }), &claims)
            .map_err(|_| "server_error")?;
        let access_token = random::token().map_err(|_| "server_error")?;
        self.access_tokens
            .lock()
            .map_err(|_| "server_error")?
            .insert(access_token.clone(), pending.user);
        Ok(
            json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token }),
        )
    }

    fn userinfo(&self, authorization: Option<&str>) -> Option<Value> {
        let token = authorization?.strip_prefix("Bearer ")?;
        let user = *self.access_tokens.lock().ok()?.get(token)?;
        let user = DEMO_USERS.get(user)?;
        Some(json!({
            "sub": user.subject(), "preferred_username": user.login, "name": user.name,
            "email": format!("{}@demo.jitgate.invalid", user.login), "groups": user.groups,
        }))
    }
}

fn dev_page(message: &str, form: &str) -> String {
    format!(
        "<!doctype html><title>jitgate dev issuer</title>\
         <p style=\"background:#fee;padding:.5rem\"><b>Development issuer:</b> for trying jitgate \
         on this machine only. Not for production.</p><p>{}</p>{form}",
        escape(message)
    )
}

fn parse_form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

#[async_trait]
impl ServeHttp for DevIssuer {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let method = req.method.clone();
        let query = parse_form(req.uri.query().unwrap_or("").as_bytes());
        let authorization = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = session.read_request_body().await {
            if body.len() + chunk.len() > 64 * 1024 {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let form = parse_form(&body);
        let (status, content_type, location, text) = match (method.as_str(), path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => {
                (200, "application/json", None, self.discovery().to_string())
            }
            ("GET", "/jwks") => (
                200,
                "application/json",
                None,
                json!({ "keys": [self.key.jwk()] }).to_string(),
            ),
            ("GET", "/authorize") => {
                let (status, page) = self.authorize_form(&query);
                (status, "text/html; charset=utf-8", None, page)
            }
            ("POST", "/authorize") => match self.authorize_submit(&form) {
                Ok(location) => (302, "text/plain", Some(location), String::new()),
                Err(e) => (400, "text/html; charset=utf-8", None, dev_page(&e, "")),
            },
            ("POST", "/token") => match self.token(&form, authorization.as_deref()) {
                Ok(v) => (200, "application/json", None, v.to_string()),
                Err(e) => (
                    400,
                    "application/json",
                    None,
                    json!({ "error": e }).to_string(),
                ),
            },
            ("GET", "/userinfo") => match self.userinfo(authorization.as_deref()) {
                Some(v) => (200, "application/json", None, v.to_string()),
                None => (
                    401,
                    "application/json",
                    None,
                    json!({ "error": "invalid_token" }).to_string(),
                ),
            },
            ("GET", "/directory") => match &self.directory {
                Some(directory) => {
                    let (status, body) = directory.page().await;
                    let page = dev_page(
                        "The company directory (pushed to jitgate over SCIM).",
                        &body,
                    );
                    (status, "text/html; charset=utf-8", None, page)
                }
                None => (404, "text/plain", None, "not found".to_string()),
            },
            ("POST", "/directory") => match &self.directory {
                Some(directory) => match directory.submit(&form).await {
                    Ok(()) => (
                        303,
                        "text/plain",
                        Some("/directory".to_string()),
                        String::new(),
                    ),
                    Err(e) => (400, "text/html; charset=utf-8", None, dev_page(&e, "")),
                },
                None => (404, "text/plain", None, "not found".to_string()),
            },
            ("GET", "/logout") => {
                let target = query.get("post_logout_redirect_uri").cloned();
                let known = target
                    .as_deref()
                    .is_some_and(|t| t.ends_with("/.jitgate/logged-out"));
                match target.filter(|_| known) {
                    Some(t) => (302, "text/plain", Some(t), String::new()),
                    None => (
                        200,
                        "text/html; charset=utf-8",
                        None,
                        dev_page("Signed out of the dev issuer.", ""),
                    ),
                }
            }
            _ => (404, "text/plain", None, "not found".to_string()),
        };
        let mut builder = Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .header("content-length", text.len());
        if let Some(location) = location {
            builder = builder.header("location", location);
        }
        builder.body(text.into_bytes()).unwrap_or_default()
    }
}
