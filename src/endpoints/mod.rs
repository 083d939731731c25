//! jitgate's own endpoints under `/.jitgate/`: sign-in, hand-off, logout, back-channel logout,
//! the grants API, the access portal, and the SCIM service for the company's directory (and
//! its say at sign-in, `sign_in_directory.rs`).

pub mod access_portal;
pub mod denial;
pub mod grants_api;
pub mod login;
pub mod logout;
pub mod pages;
pub mod scim;
mod sign_in_directory;

use bytes::Bytes;
use http::Method;
use pingora_http::RequestHeader;

use crate::gate::Gate;
use denial::Denial;

/// Every path below this prefix, on every host, is jitgate's own.
pub const PREFIX: &str = "/.jitgate/";

/// A successful answer from one of our endpoints.
#[derive(Debug)]
pub enum Reply {
    Redirect {
        location: String,
        cookies: Vec<String>,
    },
    Page {
        status: u16,
        html: String,
        cookies: Vec<String>,
    },
    /// Plain answer for machine clients (back-channel logout).
    Empty { status: u16 },
    /// A JSON answer (the grants API).
    Json { status: u16, body: String },
    /// A SCIM answer (`application/scim+json`); `body` empty for 204.
    Scim {
        status: u16,
        body: String,
        location: Option<String>,
    },
}

/// What an endpoint needs to know about the request.
pub struct OwnRequest<'a> {
    pub method: &'a Method,
    pub host: &'a str,
    /// The path below the reserved prefix, e.g. `callback`.
    pub endpoint: &'a str,
    pub query: Option<&'a str>,
    pub header: &'a RequestHeader,
    pub request_id: &'a str,
    pub body: Option<Bytes>,
    /// Who a bearer token authenticated ([`before_body`]), e.g. `scim token 1`.
    pub authenticated: Option<String>,
}

/// What is checked before a body is read: the SCIM service's bearer token, so that a client
/// without one cannot make jitgate read a megabyte. Returns who the token names.
pub fn before_body(
    gate: &Gate,
    host: &str,
    endpoint: &str,
    header: &RequestHeader,
    request_id: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Option<String>, Denial> {
    if scim::is_scim(endpoint) {
        return scim::authenticate(gate, host, header, request_id, client).map(Some);
    }
    Ok(None)
}

/// The largest body `endpoint` may send with `method`, or `None` when the endpoint reads no
/// body (then none is read).
pub fn body_limit(endpoint: &str, method: &Method) -> Option<usize> {
    if endpoint == "backchannel-logout" {
        Some(logout::MAX_LOGOUT_BODY)
    } else if endpoint.starts_with("api/") && method == Method::POST {
        Some(grants_api::MAX_API_BODY)
    } else if endpoint.starts_with("access/") && method == Method::POST {
        Some(access_portal::MAX_FORM_BODY)
    } else if scim::is_scim(endpoint) && scim::reads_body(method) {
        Some(scim::MAX_SCIM_BODY)
    } else {
        None
    }
}

/// Dispatches a request under `/.jitgate/`.
pub async fn handle(gate: &Gate, req: OwnRequest<'_>) -> Result<Reply, Denial> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    match req.endpoint {
        "login" if get => login::start_login(gate, &req).await,
        "callback" if get => login::callback(gate, &req).await,
        "handoff" if get => login::handoff(gate, &req).await,
        "logout" if get || req.method == Method::POST => logout::logout(gate, &req).await,
        "logged-out" if get => Ok(logout::logged_out(&req)),
        "backchannel-logout" if req.method == Method::POST => {
            logout::backchannel_logout(gate, &req).await
        }
        e if e == "access" || e.starts_with("access/") => access_portal::handle(gate, &req).await,
        e if e == "api/grants" || e.starts_with("api/grants/") => {
            grants_api::handle(gate, &req).await
        }
        e if scim::is_scim(e) => match req.authenticated.as_deref() {
            Some(by) => scim::handle(gate, &req, by).await,
            None => Err(Denial::ScimUnauthorized),
        },
        "login" | "callback" | "handoff" | "logout" | "logged-out" | "backchannel-logout" => {
            Err(Denial::MethodNotAllowed)
        }
        _ => Err(Denial::NotFound),
    }
}

/// One parameter of a query string, decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
