//! Assembling a running jitgate: the control runtime, the gate, and the pingora server.
//!
//! pingora runs its services on runtimes of its own and must not be started inside a tokio
//! runtime, so start-up has two halves. [`start_control`] builds a small tokio runtime that
//! lives as long as the process: it opens the store (creating and migrating it), owns the
//! store's connection pool and runs the background jobs (policy reload, session sweep, IdP
//! discovery). [`build_server`] then makes the pingora server with the proxy listeners
//! (HTTP, HTTPS with rustls and HTTP/2) and the admin listener.

use std::sync::Arc;

use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use tokio::runtime::Runtime;

use crate::admin::AdminApp;
use crate::config::Config;
use crate::gate::{Gate, GateError};
use crate::policy::PolicySet;
use crate::proxy::JitgateProxy;
use crate::reload;
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the control runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot set up TLS with {cert} / {key}: {reason}")]
    Tls {
        cert: String,
        key: String,
        reason: String,
    },
}

/// The runtime that owns the store and background jobs, and the gate built on it.
pub struct Control {
    pub runtime: Runtime,
    pub gate: Arc<Gate>,
}

/// Opens the store and builds the gate; starts policy reload, session sweep and discovery.
pub fn start_control(config: Config, policies: PolicySet) -> Result<Control, ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("jitgate-control")
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let gate = runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(store::open(&config.store_url).await?);
        Ok::<_, ServerError>(Arc::new(Gate::new(config, policies, store)?))
    })?;
    runtime.spawn(reload::watch(gate.clone()));
    runtime.spawn(reload::sweep_sessions(gate.clone()));
    runtime.spawn(reload::expire_grants(gate.clone()));
    runtime.spawn(reload::listen_grant_changes(gate.clone()));
    runtime.spawn(discover_until_reachable(gate.clone()));
    Ok(Control { runtime, gate })
}

/// Discovers the IdP in the background, retrying with backoff while it is unreachable.
async fn discover_until_reachable(gate: Arc<Gate>) {
    let mut wait = std::time::Duration::from_secs(1);
    // Give our own listeners (and a co-hosted demo issuer) a moment to come up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    loop {
        match gate.oidc.discover().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "identity provider not reachable yet; logins answer 503 until it is");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}

/// jitgate's pingora settings (also used by the bare-pingora baseline in `benches/`).
/// pingora's default graceful shutdown waits 300 s; ours is short.
pub fn server_conf(threads: usize) -> ServerConf {
    ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        upstream_keepalive_pool_size: 256,
        ..ServerConf::default()
    }
}

/// Builds the pingora server for a gate. `threads` is per listener service.
pub fn build_server(gate: Arc<Gate>, threads: usize) -> Result<Server, ServerError> {
    let mut server = Server::new_with_opt_and_conf(None, server_conf(threads));
    server.bootstrap();

    let listen = gate.config.listen.clone();
    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        JitgateProxy { gate: gate.clone() },
        "jitgate proxy",
    );
    if let Some(addr) = listen.http {
        proxy.add_tcp(&addr.to_string());
    }
    if let Some(https) = &listen.https {
        let cert = https.cert.display().to_string();
        let key = https.key.display().to_string();
        // pingora panics on unreadable files: config validation checked them, check again.
        for file in [&https.cert, &https.key] {
            std::fs::metadata(file).map_err(|e| ServerError::Tls {
                cert: cert.clone(),
                key: key.clone(),
                reason: e.to_string(),
            })?;
        }
        let mut tls = TlsSettings::intermediate(&cert, &key).map_err(|e| ServerError::Tls {
            cert: cert.clone(),
            key: key.clone(),
            reason: e.to_string(),
        })?;
        tls.enable_h2();
        proxy.add_tls_with_settings(&https.address.to_string(), None, tls);
    }
    server.add_service(proxy);

    if let Some(addr) = listen.admin {
        let mut admin = Service::new("jitgate admin".to_string(), AdminApp { gate });
        admin.add_tcp(&addr.to_string());
        server.add_service(admin);
    }
    Ok(server)
}
