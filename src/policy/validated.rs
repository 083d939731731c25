//! The validated policy: a [`PolicySet`] of [`AppPolicy`]s, each with its upstream, identity
//! headers and ordered [`Route`]s, and the access decision they make.
//!
//! These types are what the rest of jitgate uses; they are only built by validating policy
//! files (see `load` and `validate`), so holding one means its file passed every check.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use http::header::HeaderName;
use http::Method;

use super::connector::Connector;
use super::header_names;
use super::{GrantType, PathPattern};
use crate::auth::identity::Identity;

/// Every app policy, indexed by host.
#[derive(Debug, Default)]
pub struct PolicySet {
    apps: Vec<Arc<AppPolicy>>,
    by_host: HashMap<String, usize>,
}

impl PolicySet {
    pub fn new(apps: Vec<AppPolicy>) -> Self {
        let mut by_host = HashMap::new();
        for (i, app) in apps.iter().enumerate() {
            for host in &app.hosts {
                by_host.insert(host.clone(), i);
            }
        }
        Self {
            apps: apps.into_iter().map(Arc::new).collect(),
            by_host,
        }
    }

    /// The app served on `host` (already lower-cased, without port).
    pub fn app_for_host(&self, host: &str) -> Option<&Arc<AppPolicy>> {
        self.by_host.get(host).and_then(|&i| self.apps.get(i))
    }

    pub fn apps(&self) -> &[Arc<AppPolicy>] {
        &self.apps
    }
}

/// One app, validated.
#[derive(Debug)]
pub struct AppPolicy {
    pub name: String,
    pub source: PathBuf,
    pub hosts: Vec<String>,
    pub upstream: Upstream,
    pub identity_headers: Vec<IdentityHeader>,
    /// Every header to strip from incoming requests.
    pub strip_header_keys: header_names::SpoofableHeaders,
    /// The header jitgate's request id goes to the app in, and comes back to the browser in
    /// on the app's answers (`identity.request_id_header`); `None` sends it neither way.
    pub request_id_header: Option<&'static str>,
    pub routes: Vec<Route>,
    /// IdP group -> app role, most privileged first (`roles:`).
    pub roles: Vec<(String, String)>,
    /// How to keep accounts in the app (`provisioning:`); `None` if the app needs none.
    pub provisioning: Option<Arc<Connector>>,
    /// Stable key of the app name, for caches that outlive a policy reload.
    pub key: u64,
    /// Kinds of elevated access users can ask for (`grants:`).
    pub grant_types: Vec<GrantType>,
    /// This app's metric handles, filled on first use (see `crate::telemetry::metrics::AppMetrics`).
    pub metrics: std::sync::OnceLock<Arc<crate::telemetry::metrics::AppMetrics>>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` to connect to.
    pub address: String,
    /// The address itself when the host is an IP literal: nothing to parse per request.
    /// (A host name is resolved per request, so that DNS changes are followed.)
    pub socket: Option<std::net::SocketAddr>,
    pub tls: bool,
    pub sni: String,
}

#[derive(Debug, Clone)]
pub struct IdentityHeader {
    pub name: HeaderName,
    /// The name as written in the policy (its letter case is kept on the wire).
    pub wire_name: &'static str,
    pub claim: String,
}

#[derive(Debug)]
pub struct Route {
    pub pattern: PathPattern,
    pub pattern_text: String,
    pub methods: Option<Vec<Method>>,
    pub allow: Allow,
    /// `file:line` of the route, for audit events and logs.
    pub location: String,
    /// The grant type (index into the app's `grant_types`) users also need, active, here.
    pub elevate: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Allow {
    pub groups: Vec<String>,
    pub users: Vec<String>,
    pub any_authenticated: bool,
}

impl Allow {
    fn admits(&self, identity: &Identity) -> bool {
        self.any_authenticated
            || self.users.iter().any(|u| **u == *identity.username)
            || self.groups.iter().any(|g| identity.in_group(g))
    }
}

/// Proof that a route allows this identity; only [`AppPolicy::decide`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Permitted {
    route: usize,
}

impl Permitted {
    pub fn route_index(&self) -> usize {
        self.route
    }
}

impl AppPolicy {
    /// Whether any route lets this identity in (whatever the method, path or elevation):
    /// who the app is for, as a joiner ahead of sign-in is judged.
    pub fn admits_anywhere(&self, identity: &Identity) -> bool {
        self.routes.iter().any(|r| r.allow.admits(identity))
    }

    /// The grant type the permitted route also requires, if it is an elevated route.
    pub fn elevation(&self, permitted: Permitted) -> Option<&GrantType> {
        let index = self.routes.get(permitted.route)?.elevate?;
        self.grant_types.get(index)
    }
}

/// Why the policy refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDenied {
    /// No route covers this method and path.
    NoRoute,
    /// A route covers it but does not admit this user; carries the route's location.
    NotAllowed { route: String },
}

impl AppPolicy {
    /// Which route (by position) a request for `normalized_path` falls under, if any.
    pub fn route_index(&self, method: &Method, normalized_path: &str) -> Option<usize> {
        self.routes.iter().position(|r| {
            r.methods.as_ref().is_none_or(|m| m.contains(method))
                && r.pattern.matches(normalized_path)
        })
    }

    /// The first route matching `method` and `normalized_path` decides; none means deny.
    pub fn decide(
        &self,
        method: &Method,
        normalized_path: &str,
        identity: &Identity,
    ) -> Result<Permitted, RouteDenied> {
        let index = self
            .route_index(method, normalized_path)
            .ok_or(RouteDenied::NoRoute)?;
        let route = self.routes.get(index).ok_or(RouteDenied::NoRoute)?;
        if route.allow.admits(identity) {
            Ok(Permitted { route: index })
        } else {
            Err(RouteDenied::NotAllowed {
                route: route.location.clone(),
            })
        }
    }
}
