//! A stand-in for a legacy app without SCIM: a user API guarded by an admin token, and pages
//! that only serve users who have an account.
//!
//! It behaves like the real thing where it matters: 401 without the admin token, 409 when a
//! username is taken, 404 for unknown ids, and pages that answer 403 to a forwarded user who
//! has no active account. Tests can make it slow, make its API fail (503), hang (never
//! answer, change nothing: a call in flight when its caller dies) or refuse creates with any
//! status, and read how many calls of each kind it received.
//!
//! API: `GET /api/users?username=U` (a list), `POST /api/users` (201 `{"id": N, ...}`),
//! `PUT /api/users/N` (or `/api/users/by-username/U`), `DELETE /api/users/N`, and two
//! listings of every account: `GET /api/users/pages?page=N` and `GET /api/users/cursor?after=ID`.
//! Every other path is an app page.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Account {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: String,
    pub active: bool,
}

#[derive(Default)]
pub struct AppState {
    token: String,
    accounts: Mutex<Vec<Account>>,
    next_id: AtomicU64,
    /// Delay before every API answer.
    pub delay_ms: AtomicU64,
    /// The API answers 503 to everything.
    pub failing: AtomicBool,
    /// API requests received while set are counted as `hung`, never answered, and change
    /// nothing.
    pub hang: AtomicBool,
    /// If non-zero, creates are answered with this status.
    pub create_status: AtomicU16,
    calls: Mutex<HashMap<String, usize>>,
    /// The Authorization headers the API received (to check the token was sent).
    pub authorizations: Mutex<Vec<String>>,
}

impl AppState {
    pub fn calls(&self, kind: &str) -> usize {
        self.calls.lock().unwrap().get(kind).copied().unwrap_or(0)
    }

    fn count(&self, kind: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(kind.to_string())
            .or_default() += 1;
    }

    pub fn accounts(&self) -> Vec<Account> {
        self.accounts.lock().unwrap().clone()
    }

    /// An account that exists before jitgate ever sees the user (for 409 tests).
    pub fn seed(&self, username: &str, role: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.accounts.lock().unwrap().push(Account {
            id,
            username: username.into(),
            email: String::new(),
            role: role.into(),
            active: true,
        });
        id
    }
}

pub struct LegacyApp {
    pub port: u16,
    pub state: Arc<AppState>,
    _runtime: tokio::runtime::Runtime,
}

impl LegacyApp {
    /// Starts an app and fills `template` for it (see [`Self::policy`]); the token file lives
    /// in the returned directory.
    pub fn start_with_policy(token: &str, template: &str) -> (Self, String, tempfile::TempDir) {
        let app = Self::start(token);
        let dir = tempfile::tempdir().unwrap();
        let policy = app.policy(template, token, dir.path());
        (app, policy, dir)
    }

    /// Fills a policy template for this app: `{ORIGIN}`, `{API}`, and `{TOKEN_FILE}` (a file
    /// in `dir` holding `token`, written here).
    pub fn policy(&self, template: &str, token: &str, dir: &std::path::Path) -> String {
        let port = self
            .origin()
            .rsplit(':')
            .next()
            .unwrap_or("app")
            .to_string();
        let token_file = dir.join(format!("token-{port}"));
        std::fs::write(&token_file, token).unwrap();
        template
            .replace("{ORIGIN}", &self.origin())
            .replace("{API}", &self.api())
            .replace("{TOKEN_FILE}", &token_file.display().to_string())
    }

    pub fn start(token: &str) -> Self {
        let port = super::free_port();
        let state = Arc::new(AppState {
            token: token.to_string(),
            ..AppState::default()
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .expect("bind legacy app");
        let served = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Self {
            port,
            state,
            _runtime: runtime,
        }
    }

    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn serve(mut stream: TcpStream, state: Arc<AppState>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let (status, body) = handle(&req, &state).await;
        let text = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            text.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(text.as_bytes()).await?;
    }
}

async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(buf) {
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let method = parsed.method.unwrap_or("").to_string();
            let path = parsed.path.unwrap_or("/").to_string();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_len + len {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[head_len..head_len + len].to_vec();
            buf.drain(..head_len + len);
            return Ok(Some(Request {
                method,
                path,
                headers,
                body,
            }));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn handle(req: &Request, state: &AppState) -> (u16, Value) {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    if let Some(rest) = path.strip_prefix("/api/users") {
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if state.hang.load(Ordering::SeqCst) {
            state.count("hung");
            std::future::pending::<()>().await;
        }
        let auth = req.header("authorization").unwrap_or("").to_string();
        state.authorizations.lock().unwrap().push(auth.clone());
        if auth != format!("Bearer {}", state.token) {
            state.count("unauthorized");
            return (401, json!({ "error": "admin token required" }));
        }
        if state.failing.load(Ordering::SeqCst) {
            state.count("failed");
            return (503, json!({ "error": "maintenance" }));
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        return api(state, &req.method, rest, query, &body);
    }
    // An app page: only for users with an active account.
    let user = req.header("x-forwarded-user").unwrap_or("");
    let account = state
        .accounts()
        .into_iter()
        .find(|a| a.username == user && a.active);
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), json!(v)))
        .collect();
    match account {
        Some(a) => (
            200,
            json!({ "account": { "id": a.id, "username": a.username, "role": a.role, "email": a.email }, "headers": headers }),
        ),
        None => (403, json!({ "error": format!("no account for `{user}`") })),
    }
}

fn api(state: &AppState, method: &str, rest: &str, query: &str, body: &Value) -> (u16, Value) {
    let mut accounts = state.accounts.lock().unwrap();
    let view = |a: &Account| json!({ "id": a.id, "username": a.username, "email": a.email, "role": a.role, "active": a.active });
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")[..]))
            .map(decode)
    };
    match (method, rest.trim_start_matches('/')) {
        // Listing by page (`?page=N`, 2 per page, an empty page after the last one) and by
        // cursor (`?after=ID`, 2 per answer, `next` absent after the last), as real apps do.
        ("GET", "pages") => {
            state.count("list");
            let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let shown: Vec<Value> = accounts
                .iter()
                .skip(page.saturating_sub(1) * 2)
                .take(2)
                .map(|a| json!({ "id": a.id, "login": a.username, "role": a.role, "admin": a.role == "admin", "active": a.active }))
                .collect();
            (200, json!({ "users": shown }))
        }
        ("GET", "cursor") => {
            state.count("list");
            let after: u64 = param("after").and_then(|p| p.parse().ok()).unwrap_or(0);
            let rest: Vec<&Account> = accounts.iter().filter(|a| a.id > after).collect();
            let shown: Vec<Value> = rest
                .iter()
                .take(2)
                .map(|a| json!({ "id": a.id, "login": a.username, "role": a.role, "admin": a.role == "admin", "active": a.active }))
                .collect();
            let next = (rest.len() > 2).then(|| rest[1].id.to_string());
            (200, json!({ "data": shown, "next": next }))
        }
        ("GET", "") => {
            state.count("lookup");
            let wanted = query
                .split('&')
                .find_map(|p| p.strip_prefix("username="))
                .map(decode)
                .unwrap_or_default();
            let found: Vec<Value> = accounts
                .iter()
                .filter(|a| a.username == wanted)
                .map(view)
                .collect();
            (200, Value::Array(found))
        }
        ("POST", "") => {
            let forced = state.create_status.load(Ordering::SeqCst);
            if forced != 0 {
                state.count("create_refused");
                return (forced, json!({ "error": "refused by test" }));
            }
            let username = body["username"].as_str().unwrap_or("").to_string();
            if username.is_empty() {
                return (422, json!({ "error": "username required" }));
            }
            if accounts.iter().any(|a| a.username == username) {
                state.count("create_conflict");
                return (409, json!({ "error": "username taken" }));
            }
            state.count("create");
            let id = state.next_id.fetch_add(1, Ordering::SeqCst) + 1;
            let account = Account {
                id,
                username,
                email: body["email"].as_str().unwrap_or("").into(),
                role: body["role"].as_str().unwrap_or("").into(),
                active: true,
            };
            let answer = view(&account);
            accounts.push(account);
            (201, answer)
        }
        (m, id) if m == "PUT" || m == "DELETE" => {
            let found = match id.strip_prefix("by-username/") {
                Some(name) => {
                    let name = decode(name);
                    accounts.iter_mut().find(|a| a.username == name)
                }
                None => id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| accounts.iter_mut().find(|a| a.id == id)),
            };
            let Some(account) = found else {
                return (404, json!({ "error": "no such user" }));
            };
            if m == "PUT" {
                state.count("update");
                if let Some(role) = body["role"].as_str() {
                    account.role = role.into();
                }
                if let Some(email) = body["email"].as_str() {
                    account.email = email.into();
                }
                if let Some(active) = body["active"].as_bool() {
                    account.active = active;
                }
                (200, view(account))
            } else {
                state.count("deactivate");
                account.active = false;
                (200, view(account))
            }
        }
        _ => (405, json!({ "error": "method not allowed" })),
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
