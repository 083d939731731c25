//! The demo app's user API: what a legacy app without SCIM typically offers, so that
//! `jitgate demo` shows JIT provisioning end to end.
//!
//! In memory, guarded by an admin token that `jitgate demo` writes to a file the demo policy
//! names. `GET /api/users?username=U` lists matches, `POST /api/users` creates (409 when
//! the username is taken), `PUT /api/users/N` updates (`active: true` brings an account back), `DELETE /api/users/N` deactivates.
//! The demo app's pages only greet users who have an active account here.

use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct DemoAccount {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: String,
    pub active: bool,
}

impl DemoAccount {
    fn json(&self) -> Value {
        json!({ "id": self.id, "username": self.username, "email": self.email, "role": self.role, "active": self.active })
    }
}

pub struct DemoAccounts {
    token: String,
    accounts: Mutex<Vec<DemoAccount>>,
}

impl DemoAccounts {
    pub fn new(token: String) -> Self {
        Self {
            token,
            accounts: Mutex::new(Vec::new()),
        }
    }

    /// The active account for `username`, if the app has one.
    pub fn active(&self, username: &str) -> Option<DemoAccount> {
        let accounts = self.accounts.lock().ok()?;
        accounts
            .iter()
            .find(|a| a.username == username && a.active)
            .cloned()
    }

    fn handle(&self, method: &str, rest: &str, query: &str, body: &Value) -> (u16, Value) {
        let Ok(mut accounts) = self.accounts.lock() else {
            return (500, json!({ "error": "busy" }));
        };
        match (method, rest.trim_start_matches('/')) {
            ("GET", "") => {
                let wanted = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("username="))
                    .unwrap_or("");
                let wanted = url::form_urlencoded::parse(format!("u={wanted}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let found: Vec<Value> = accounts
                    .iter()
                    .filter(|a| a.username == wanted)
                    .map(DemoAccount::json)
                    .collect();
                (200, Value::Array(found))
            }
            ("POST", "") => {
                let username = body["username"].as_str().unwrap_or("").to_string();
                if username.is_empty() {
                    return (422, json!({ "error": "username is required" }));
                }
                if accounts.iter().any(|a| a.username == username) {
                    return (409, json!({ "error": "username is taken" }));
                }
                let account = DemoAccount {
                    id: accounts.len() as u64 + 1,
                    username,
                    email: body["email"].as_str().unwrap_or("").into(),
                    role: body["role"].as_str().unwrap_or("viewer").into(),
                    active: true,
                };
                let answer = account.json();
                accounts.push(account);
                (201, answer)
            }
            (m @ ("PUT" | "DELETE"), id) => {
                let Some(account) = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| accounts.iter_mut().find(|a| a.id == id))
                else {
                    return (404, json!({ "error": "no such user" }));
                };
                if m == "PUT" {
                    if let Some(role) = body["role"].as_str() {
                        account.role = role.into();
                    }
                    if let Some(email) = body["email"].as_str() {
                        account.email = email.into();
                    }
                    if let Some(active) = body["active"].as_bool() {
                        account.active = active;
                    }
                } else {
                    account.active = false;
                }
                (200, account.json())
            }
            _ => (405, json!({ "error": "method not allowed" })),
        }
    }
}

/// The API as a listener of its own.
pub struct DemoUserApi(pub std::sync::Arc<DemoAccounts>);

#[async_trait]
impl ServeHttp for DemoUserApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.as_str().to_string();
        let path_and_query = req
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let authorized = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                crate::util::random::same_secret(v, &format!("Bearer {}", self.0.token))
            });
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body.extend_from_slice(&chunk);
            if body.len() > 64 * 1024 {
                break;
            }
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let (status, answer) = match path.strip_prefix("/api/users") {
            None => (404, json!({ "error": "not found" })),
            Some(_) if !authorized => (401, json!({ "error": "admin token required" })),
            Some(rest) => {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                self.0.handle(&method, rest, query, &body)
            }
        };
        let text = Bytes::from(answer.to_string());
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("content-length", text.len())
            .body(text.to_vec())
            .unwrap_or_default()
    }
}
