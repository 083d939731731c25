//! A validated provisioning connector: how jitgate talks to one app's user API.
//!
//! Built from a policy file's `provisioning:` section by `policy::provisioning` (which reports
//! every mistake with file:line:column). This module turns a connector plus a user into the
//! exact HTTP requests to send ([`Connector::request`]) and reads the answers
//! ([`Operation::classify`], [`Operation::account_id`]). Secrets are named here (an env var
//! or a file) and read only when a request is built, so a rotated file is picked up and no
//! secret sits in a policy file or in memory longer than a call.

pub mod listing;
pub mod template;

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use url::Url;

use self::template::{Kind, TemplateContext, TemplateError, Templates};

/// The six things a connector can do for accounts (only `create` is required), and the
/// named calls grant types make when a grant starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    Lookup,
    Create,
    Update,
    Deactivate,
    Reactivate,
    List,
    GrantCall,
}

impl OpName {
    pub fn as_str(&self) -> &'static str {
        match self {
            OpName::Lookup => "lookup",
            OpName::Create => "create",
            OpName::Update => "update",
            OpName::Deactivate => "deactivate",
            OpName::Reactivate => "reactivate",
            OpName::List => "list",
            OpName::GrantCall => "grant_call",
        }
    }

    /// Whether the app's account id is known when this operation runs.
    pub fn account_known(&self) -> bool {
        matches!(
            self,
            OpName::Update | OpName::Deactivate | OpName::Reactivate | OpName::GrantCall
        )
    }
}

/// Where a secret comes from. Never inline in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

impl Secret {
    pub fn read(&self) -> Result<String, ConnectorError> {
        match self {
            Secret::Env(name) => std::env::var(name)
                .map(|v| v.trim().to_string())
                .map_err(|_| {
                    ConnectorError::Secret(format!("environment variable {name} is not set"))
                }),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|v| v.trim().to_string())
                .map_err(|e| {
                    ConnectorError::Secret(format!("cannot read {}: {e}", path.display()))
                }),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Secret::Env(name) => format!("env {name}"),
            Secret::File(path) => format!("file {}", path.display()),
        }
    }
}

/// How jitgate authenticates to the app's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAuth {
    Bearer(Secret),
    Basic { username: String, password: Secret },
    Header { name: HeaderName, value: Secret },
}

/// A JSON body whose strings are templates.
#[derive(Debug, Clone)]
pub enum BodyNode {
    /// A value with no template in it (numbers, booleans, fixed strings).
    Literal(Value),
    /// A string template; renders to a JSON string.
    Text(String),
    /// A string that is one `{{ expression }}`; renders to the expression's JSON value.
    Json(String),
    Map(Vec<(String, BodyNode)>),
    List(Vec<BodyNode>),
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub name: OpName,
    pub method: Method,
    /// Template name of the URL (relative to the connector's `api`, or absolute under it).
    pub url: String,
    /// Header name and the template name of its value.
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<BodyNode>,
    /// Statuses meaning success; empty means any 2xx.
    pub success: Vec<u16>,
    /// Statuses meaning "the account already exists" (create).
    pub exists: Vec<u16>,
    /// Statuses meaning "no such account" (lookup, deactivate).
    pub not_found: Vec<u16>,
    /// JSON pointer to the app's account id in the response.
    pub account_id: Option<String>,
}

/// What an answer from the app means for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Exists,
    NotFound,
    /// 5xx, 429 or 408: worth retrying.
    Unavailable,
    /// Any other status: the connector or the app is wrong; retrying will not help.
    Unexpected,
}

impl Operation {
    pub fn classify(&self, status: u16) -> Outcome {
        if self.exists.contains(&status) {
            Outcome::Exists
        } else if self.not_found.contains(&status) {
            Outcome::NotFound
        } else if (self.success.is_empty() && (200..300).contains(&status))
            || self.success.contains(&status)
        {
            Outcome::Success
        } else if status >= 500 || status == 429 || status == 408 {
            Outcome::Unavailable
        } else {
            Outcome::Unexpected
        }
    }

    /// The app's account id in a JSON answer, if the operation says where it is.
    pub fn account_id(&self, body: &[u8]) -> Option<String> {
        let pointer = self.account_id.as_deref()?;
        let json: Value = serde_json::from_slice(body).ok()?;
        match json.pointer(pointer)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnectorError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the app API secret is unavailable: {0}")]
    Secret(String),
    #[error("`{0}` is not a valid URL under the connector's api: {1}")]
    Url(String, String),
    #[error("header {0} would not be a valid header value")]
    Header(String),
}

/// One request, ready to send (and to print, with secrets masked, for `accounts test`).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub op: OpName,
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Value>,
}

impl ApiRequest {
    /// The request as text, with the credential header masked.
    pub fn display_masked(&self, auth: &ApiAuth) -> String {
        let mut out = format!("{} {}\n", self.method, self.url);
        for (name, value) in &self.headers {
            let shown = if value.is_sensitive() {
                match auth {
                    ApiAuth::Header { .. } => "****".to_string(),
                    _ => mask(value.to_str().unwrap_or("")),
                }
            } else {
                value.to_str().unwrap_or("<binary>").to_string()
            };
            out.push_str(&format!("{name}: {shown}\n"));
        }
        if let Some(body) = &self.body {
            out.push('\n');
            out.push_str(&serde_json::to_string_pretty(body).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

/// `Bearer abcd…` -> `Bearer ****`: keeps only the scheme word of an Authorization value.
fn mask(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} ****"),
        None => "****".to_string(),
    }
}

/// Everything needed to keep one app's accounts.
#[derive(Debug)]
pub struct Connector {
    pub app: String,
    /// Base URL of the app's API; every operation URL must stay under it.
    pub api: Url,
    pub auth: ApiAuth,
    pub timeout: Duration,
    /// Extra attempts after a failed one (timeouts, connection errors, 5xx).
    pub retries: u32,
    /// Group -> app role, in the policy's order (most privileged first).
    pub roles: Vec<(String, String)>,
    pub lookup: Option<Operation>,
    pub create: Operation,
    pub update: Option<Operation>,
    pub deactivate: Option<Operation>,
    /// Undoes `deactivate` when the directory lets a leaver back (else the account is set
    /// up again at the user's next visit).
    pub reactivate: Option<Operation>,
    /// Reads the app's accounts, page by page (for reconciliation).
    pub list: Option<listing::ListOperation>,
    /// `ahead: true`: accounts are created when the directory has an active user the app's
    /// routes allow, before their first sign-in (otherwise at first sign-in).
    pub ahead: bool,
    /// Where `ahead: true` is written (line, column), for `jitgate check`.
    pub ahead_at: (usize, usize),
    /// Named calls for grant types (`operations:`), e.g. make the user admin and back.
    pub named: Vec<(String, Operation)>,
    pub templates: Templates,
}

impl Connector {
    /// The header that carries the credential.
    pub fn auth_header_name(&self) -> HeaderName {
        match &self.auth {
            ApiAuth::Header { name, .. } => name.clone(),
            _ => http::header::AUTHORIZATION,
        }
    }

    /// Reads the API secret once, to warn at start-up (not fail) if it is missing.
    pub fn secret_problem(&self) -> Option<String> {
        let secret = match &self.auth {
            ApiAuth::Bearer(s) => s,
            ApiAuth::Basic { password, .. } => password,
            ApiAuth::Header { value, .. } => value,
        };
        secret.read().err().map(|e| e.to_string())
    }

    pub fn operation(&self, op: OpName) -> Option<&Operation> {
        match op {
            OpName::Lookup => self.lookup.as_ref(),
            OpName::Create => Some(&self.create),
            OpName::Update => self.update.as_ref(),
            OpName::Deactivate => self.deactivate.as_ref(),
            OpName::Reactivate => self.reactivate.as_ref(),
            OpName::List => self.list.as_ref().map(|l| &l.op),
            OpName::GrantCall => None,
        }
    }

    /// A named call from `operations:`.
    pub fn named(&self, name: &str) -> Option<&Operation> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, op)| op)
    }

    /// The roles `groups` map to, in policy order, without repeats.
    pub fn roles_for<'a>(&self, groups: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for (group, role) in &self.roles {
            if groups.clone().any(|g| g == group) && !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles
    }

    /// Builds the request for `op` (which must exist) for the user in `ctx`.
    pub fn request(
        &self,
        op: &Operation,
        ctx: &TemplateContext,
    ) -> Result<ApiRequest, ConnectorError> {
        let path = self.templates.render(&op.url, Kind::Url, ctx)?;
        let url = self.resolve(&path)?;
        let mut headers = Vec::with_capacity(op.headers.len() + 2);
        headers.push(self.auth_header()?);
        for (name, template) in &op.headers {
            let value = self.templates.render(template, Kind::Text, ctx)?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| ConnectorError::Header(name.to_string()))?;
            headers.push((name.clone(), value));
        }
        let body = match &op.body {
            Some(node) => {
                headers.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ));
                Some(self.render_body(node, ctx)?)
            }
            None => None,
        };
        if !headers.iter().any(|(n, _)| *n == http::header::ACCEPT) {
            headers.push((
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            ));
        }
        Ok(ApiRequest {
            op: op.name,
            method: op.method.clone(),
            url,
            headers,
            body,
        })
    }

    /// Joins an operation's rendered URL onto `api`, refusing anything that leaves it.
    fn resolve(&self, path: &str) -> Result<Url, ConnectorError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path)
        } else {
            let base = self.api.as_str().trim_end_matches('/');
            let rel = path.trim_start_matches('/');
            Url::parse(&format!("{base}/{rel}"))
        }
        .map_err(|e| ConnectorError::Url(path.to_string(), e.to_string()))?;
        let base_path = self.api.path().trim_end_matches('/');
        let inside = url.origin() == self.api.origin()
            && (url.path() == base_path || url.path().starts_with(&format!("{base_path}/")));
        if !inside {
            return Err(ConnectorError::Url(
                path.to_string(),
                format!("it leaves {}", self.api),
            ));
        }
        Ok(url)
    }

    fn auth_header(&self) -> Result<(HeaderName, HeaderValue), ConnectorError> {
        let (name, value) = match &self.auth {
            ApiAuth::Bearer(secret) => (
                http::header::AUTHORIZATION,
                format!("Bearer {}", secret.read()?),
            ),
            ApiAuth::Basic { username, password } => (
                http::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{}", password.read()?))
                ),
            ),
            ApiAuth::Header { name, value } => (name.clone(), value.read()?),
        };
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| ConnectorError::Secret("the secret is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok((name, value))
    }

    fn render_body(&self, node: &BodyNode, ctx: &TemplateContext) -> Result<Value, ConnectorError> {
        Ok(match node {
            BodyNode::Literal(v) => v.clone(),
            BodyNode::Text(name) => Value::String(self.templates.render(name, Kind::Text, ctx)?),
            BodyNode::Json(name) => self.templates.render_json(name, ctx)?,
            BodyNode::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    map.insert(key.clone(), self.render_body(value, ctx)?);
                }
                Value::Object(map)
            }
            BodyNode::List(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_body(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}
