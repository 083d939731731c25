//! Assembling a running jitgate: the control runtime, the gate, and the pingora server.
//!
//! pingora runs its services on runtimes of its own and must not be started inside a tokio
//! runtime, so start-up has two halves. [`start_control`] builds a small tokio runtime that
//! lives as long as the process: it opens the store (creating and migrating it), owns the
//! store's connection pool and runs the background jobs (policy reload, session sweep, IdP
//! discovery). [`build_server`] then makes the pingora server with the proxy listeners
//! (HTTP, HTTPS with rustls and HTTP/2) and the admin listener. [`build_server_taking_over`]
//! makes the same server for `run --upgrade`: its listening sockets come from the running
//! jitgate (see [`crate::ops::upgrade`]). [`Control::drain_when_told`] starts draining when pingora
//! hands the sockets over or shuts down, and [`Control::finish`] lets the background jobs end
//! before the process exits.

use std::sync::Arc;

use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{ExecutionPhase, Server};
use pingora_core::services::listening::Service;
use tokio::runtime::Runtime;

use crate::config::Config;
use crate::edge::proxy::JitgateProxy;
use crate::gate::{Gate, GateError};
use crate::ops::admin::AdminApp;
use crate::ops::{claims_refresh, lifecycle_jobs, reload};
use crate::policy::PolicySet;
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

/// Opens the store and builds the gate; starts policy reload, session sweep, discovery and
/// the SCIM request log's writer.
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
    // These stop when the process drains: the process taking over runs them.
    gate.draining
        .track(runtime.spawn(reload::watch(gate.clone())));
    gate.draining
        .track(runtime.spawn(reload::sweep_sessions(gate.clone())));
    gate.draining
        .track(runtime.spawn(reload::expire_grants(gate.clone())));
    gate.draining
        .track(runtime.spawn(lifecycle_jobs::run_lifecycle_jobs(gate.clone())));
    gate.draining
        .track(runtime.spawn(claims_refresh::run_claims_refresh(gate.clone())));
    // These serve the requests still in flight, up to the end of the process.
    runtime.spawn(reload::listen_grant_changes(gate.clone()));
    runtime.spawn(reload::listen_session_changes(gate.clone()));
    runtime.spawn(discover_until_reachable(gate.clone()));
    if let Some(writer) = gate.scim_log.writer(gate.store.clone()) {
        runtime.spawn(writer);
    }
    Ok(Control { runtime, gate })
}

/// How long the background jobs get to finish a sweep under way when the process exits.
const JOBS_FINISH_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

impl Control {
    /// Starts draining as soon as pingora hands the listening sockets to a new process
    /// (SIGQUIT) or begins to shut down (SIGTERM, SIGINT). Call before `server.run`.
    pub fn drain_when_told(&self, server: &Server) {
        let mut phases = server.watch_execution_phase();
        let gate = self.gate.clone();
        self.runtime.spawn(async move {
            loop {
                match phases.recv().await {
                    Ok(
                        ExecutionPhase::GracefulUpgradeTransferringFds
                        | ExecutionPhase::GracefulTerminate
                        | ExecutionPhase::ShutdownStarted,
                    )
                    | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        gate.draining.begin_draining();
                        return;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                }
            }
        });
    }

    /// After `server.run` returned: lets the background jobs finish what they are doing,
    /// then stops the control runtime.
    pub fn finish(self) {
        self.runtime
            .block_on(self.gate.draining.finish_jobs(JOBS_FINISH_WITHIN));
        self.runtime.shutdown_timeout(JOBS_FINISH_WITHIN);
    }
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

/// Builds the pingora server for a gate, binding the configured addresses. `threads` is per
/// listener service.
pub fn build_server(gate: Arc<Gate>, threads: usize) -> Result<Server, ServerError> {
    let mut server = assemble(gate, threads, None)?;
    server.bootstrap();
    Ok(server)
}

/// Builds the pingora server for `run --upgrade`. Its listening sockets come from the running
/// jitgate: signal that process, then call `server.bootstrap()`, which waits about 5 s for
/// them on `listen.upgrade_socket` (and exits the process if none come).
pub fn build_server_taking_over(gate: Arc<Gate>, threads: usize) -> Result<Server, ServerError> {
    let upgrade = Opt {
        upgrade: true,
        ..Opt::default()
    };
    assemble(gate, threads, Some(upgrade))
}

fn assemble(gate: Arc<Gate>, threads: usize, opt: Option<Opt>) -> Result<Server, ServerError> {
    let mut conf = server_conf(threads);
    let listen = &gate.config.listen;
    conf.upgrade_sock = listen.upgrade_socket.display().to_string();
    // pingora waits this long after it stopped accepting, for requests in flight to finish.
    conf.grace_period_seconds = Some(listen.drain_timeout.as_secs().max(1));
    let mut server = Server::new_with_opt_and_conf(opt, conf);

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
