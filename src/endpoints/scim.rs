//! The SCIM 2.0 service (RFC 7644) under `/.jitgate/scim/v2/`, on the auth host, for the
//! company's IdP to push its directory.
//!
//! ```text
//! GET                      ServiceProviderConfig | ResourceTypes[/name] | Schemas[/urn]
//! GET, POST                Users | Groups              (list: filter, startIndex, count)
//! GET, PUT, PATCH, DELETE  Users/{id} | Groups/{id}    (attributes, excludedAttributes)
//! ```
//! The bearer token is checked before the body is read ([`authenticate`]): a wrong or
//! missing one gets 401 with `WWW-Authenticate: Bearer`; after
//! [`SCIM_FAILURES_PER_MINUTE`](crate::gate::SCIM_FAILURES_PER_MINUTE) failures an address (an IPv6 /64) gets 429 for its further
//! failures until the minute is over, without an audit event each. The right token is
//! always accepted. Tokens are compared as SHA-256 digests in constant time; the audit
//! names a token by its place in the config (`scim token 2`), never by its value. Answers
//! are `application/scim+json`; refusals are SCIM error bodies from the edge's one table.

use std::net::IpAddr;

use http::Method;
use pingora_http::RequestHeader;
use serde_json::{json, Value};

use super::{query_param, OwnRequest, Reply};
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::lifecycle::directory::discovery;
use crate::lifecycle::directory::resource::Projection;
use crate::lifecycle::directory::service::{Caller, ListQuery};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::random::{hash_bytes, same_secret_bytes};

/// Where the service lives, below `/.jitgate/`.
pub const ROOT: &str = "scim/v2";
/// The largest SCIM body read (a PUT of a large group is the biggest thing IdPs send).
pub const MAX_SCIM_BODY: usize = 1024 * 1024;

/// True for paths of the SCIM service.
pub fn is_scim(endpoint: &str) -> bool {
    endpoint == ROOT || endpoint.starts_with("scim/v2/")
}

/// Checks the bearer token of a SCIM request before its body is read; returns who sent it
/// (`scim token N`). Requests on other hosts, or with SCIM not configured, find nothing.
pub fn authenticate(
    gate: &Gate,
    host: &str,
    header: &RequestHeader,
    request_id: &str,
    client: Option<IpAddr>,
) -> Result<String, Denial> {
    let Some(settings) = gate
        .config
        .scim
        .as_ref()
        .filter(|_| gate.is_auth_host(host))
    else {
        return Err(Denial::NotFound);
    };
    let throttle = &gate.scim_failures;
    let presented = header
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let matched = presented.and_then(|token| {
        let digest = hash_bytes(token);
        // Every configured token is compared, so the time taken does not say which matched.
        let mut found = None;
        for (n, secret) in settings.tokens.iter().enumerate() {
            if same_secret_bytes(&digest, &hash_bytes(secret.expose())) && found.is_none() {
                found = Some(n + 1);
            }
        }
        found
    });
    if let Some(n) = matched {
        return Ok(format!("scim token {n}"));
    }
    // The right token always passes: IdPs send from addresses other tenants share, and a
    // stranger's wrong guesses there must not stop provisioning (and with it, leavers).
    // Tokens are long enough that guessing is hopeless; the limit keeps the failures cheap.
    let Some(address) = client.map(throttle_key) else {
        return Err(Denial::ScimUnauthorized);
    };
    if throttle.is_blocked(address) {
        return Err(Denial::ScimThrottled {
            retry_after: throttle.retry_after_secs(),
        });
    }
    throttle.fail(address);
    let reason = if presented.is_some() {
        "wrong token"
    } else {
        "no bearer token"
    };
    gate.audit.record_in_background(
        AuditKind::ScimRefused,
        Subject {
            request_id: Some(request_id),
            ..Subject::default()
        },
        json!({ "reason": reason, "client": address.to_string() }),
    );
    Err(Denial::ScimUnauthorized)
}

/// Whose failures count together: an IPv4 address, or an IPv6 /64 (one host can use a
/// whole /64, and would otherwise count as billions of clients).
fn throttle_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Answers an authenticated SCIM request; `by` names the token that authenticated it.
pub async fn handle(gate: &Gate, req: &OwnRequest<'_>, by: &str) -> Result<Reply, Denial> {
    let Some(directory) = gate.directory.as_ref() else {
        return Err(Denial::NotFound);
    };
    let rid = req.request_id;
    let caller = Caller {
        by,
        request_id: rid,
    };
    let rest = req.endpoint.strip_prefix(ROOT).unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let projection = Projection::new(
        query_param(req.query, "attributes").as_deref(),
        query_param(req.query, "excludedAttributes").as_deref(),
    );
    let method = req.method;
    let base = directory.base();
    let fail = |e| Denial::from_scim(&e, rid);
    let ok = |status, value: Value| scim_reply(status, projection.apply(value));
    let (resource, rest) = match parts.split_first() {
        Some((head, rest)) => (Some(head.to_ascii_lowercase()), rest),
        None => (None, &[][..]),
    };
    match (resource.as_deref(), rest, method) {
        (Some("serviceproviderconfig"), [], &Method::GET) => {
            Ok(scim_reply(200, discovery::service_provider_config(base)))
        }
        (Some("resourcetypes"), [], &Method::GET) => {
            Ok(scim_reply(200, discovery::resource_types(base)))
        }
        (Some("resourcetypes"), [name], &Method::GET) => discovery::resource_type(base, name)
            .map(|v| scim_reply(200, v))
            .ok_or_else(|| not_found("resource type")),
        (Some("schemas"), [], &Method::GET) => Ok(scim_reply(200, discovery::schemas(base))),
        (Some("schemas"), [urn], &Method::GET) => discovery::schema(base, urn)
            .map(|v| scim_reply(200, v))
            .ok_or_else(|| not_found("schema")),
        (Some("users"), [], &Method::GET) => {
            let query = list_query(req)?;
            let list = directory.list_users(&query).await.map_err(fail)?;
            Ok(scim_reply(200, project_list(list, &projection)))
        }
        (Some("users"), [], &Method::POST) => {
            let body = json_body(req)?;
            let user = directory.create_user(caller, &body).await.map_err(fail)?;
            Ok(created(user, &projection))
        }
        (Some("users"), [id], &Method::GET) => directory
            .get_user(id)
            .await
            .map(|v| ok(200, v))
            .map_err(fail),
        (Some("users"), [id], &Method::PUT) => {
            let body = json_body(req)?;
            let user = directory
                .replace_user(caller, id, &body)
                .await
                .map_err(fail)?;
            Ok(ok(200, user))
        }
        (Some("users"), [id], m) if m.as_str() == "PATCH" => {
            let body = json_body(req)?;
            let user = directory
                .patch_user(caller, id, &body)
                .await
                .map_err(fail)?;
            Ok(ok(200, user))
        }
        (Some("users"), [id], &Method::DELETE) => {
            directory.delete_user(caller, id).await.map_err(fail)?;
            Ok(no_content())
        }
        (Some("groups"), [], &Method::GET) => {
            let query = list_query(req)?;
            let list = directory.list_groups(&query).await.map_err(fail)?;
            Ok(scim_reply(200, project_list(list, &projection)))
        }
        (Some("groups"), [], &Method::POST) => {
            let body = json_body(req)?;
            let group = directory.create_group(caller, &body).await.map_err(fail)?;
            Ok(created(group, &projection))
        }
        (Some("groups"), [id], &Method::GET) => directory
            .get_group(id)
            .await
            .map(|v| ok(200, v))
            .map_err(fail),
        (Some("groups"), [id], &Method::PUT) => {
            let body = json_body(req)?;
            let group = directory
                .replace_group(caller, id, &body)
                .await
                .map_err(fail)?;
            Ok(ok(200, group))
        }
        (Some("groups"), [id], m) if m.as_str() == "PATCH" => {
            let body = json_body(req)?;
            let group = directory
                .patch_group(caller, id, &body)
                .await
                .map_err(fail)?;
            Ok(ok(200, group))
        }
        (Some("groups"), [id], &Method::DELETE) => {
            directory.delete_group(caller, id).await.map_err(fail)?;
            Ok(no_content())
        }
        // Searching by POST (RFC 7644 §3.4.3) is not offered; GET with `filter` is.
        (Some(".search"), [], &Method::POST)
        | (Some("users" | "groups"), [".search"], &Method::POST) => Err(Denial::Scim {
            status: 501,
            scim_type: None,
            detail: "search by POST is not supported; use GET with filter".into(),
        }),
        (
            Some("serviceproviderconfig" | "resourcetypes" | "schemas" | "users" | "groups"),
            _,
            _,
        ) if parts.len() <= 2 => Err(Denial::Scim {
            status: 405,
            scim_type: None,
            detail: format!("{method} is not supported here"),
        }),
        _ => Err(not_found("endpoint")),
    }
}

/// Whether the body limit applies: SCIM writes send a body.
pub fn reads_body(method: &Method) -> bool {
    method == Method::POST || method == Method::PUT || method.as_str() == "PATCH"
}

fn not_found(what: &str) -> Denial {
    Denial::Scim {
        status: 404,
        scim_type: None,
        detail: format!("no such {what}"),
    }
}

fn scim_reply(status: u16, body: Value) -> Reply {
    Reply::Scim {
        status,
        body: body.to_string(),
        location: None,
    }
}

fn created(resource: Value, projection: &Projection) -> Reply {
    let location = resource["meta"]["location"].as_str().map(str::to_string);
    Reply::Scim {
        status: 201,
        body: projection.apply(resource).to_string(),
        location,
    }
}

fn no_content() -> Reply {
    Reply::Scim {
        status: 204,
        body: String::new(),
        location: None,
    }
}

/// A list answer with the projection applied to each resource.
fn project_list(mut list: Value, projection: &Projection) -> Value {
    if let Some(Value::Array(resources)) = list.get_mut("Resources") {
        let taken = std::mem::take(resources);
        *resources = taken.into_iter().map(|r| projection.apply(r)).collect();
    }
    list
}

/// A write's JSON body: `application/scim+json` or `application/json`.
fn json_body(req: &OwnRequest<'_>) -> Result<Value, Denial> {
    let content_type = req
        .header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start().to_ascii_lowercase())
        .unwrap_or_default();
    if !(content_type.starts_with("application/scim+json")
        || content_type.starts_with("application/json"))
    {
        return Err(Denial::UnsupportedMediaType);
    }
    let body = req.body.as_deref().unwrap_or_default();
    serde_json::from_slice(body).map_err(|_| Denial::Scim {
        status: 400,
        scim_type: Some("invalidSyntax"),
        detail: "the body is not JSON".into(),
    })
}

fn list_query(req: &OwnRequest<'_>) -> Result<ListQuery, Denial> {
    let number = |name: &str| -> Result<Option<i64>, Denial> {
        match query_param(req.query, name) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| Denial::Scim {
                status: 400,
                scim_type: Some("invalidValue"),
                detail: format!("{name} must be an integer"),
            }),
        }
    };
    Ok(ListQuery {
        filter: query_param(req.query, "filter"),
        start_index: number("startIndex")?,
        count: number("count")?,
    })
}
