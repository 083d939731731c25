//! `jitgate run`: start serving, or take over from the running jitgate (`--upgrade`), and
//! serve until told to stop. The order matters for an upgrade: everything that can fail is
//! checked before the old process is asked to hand over its sockets.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::ops::server::{self, ServerError};
use crate::ops::upgrade::{self, UpgradeError};
use crate::policy::PolicySet;

/// Why `jitgate run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
    #[error("starting jitgate")]
    Start(#[source] ServerError),
    #[error("building the listeners")]
    Listeners(#[source] ServerError),
}

/// `jitgate run`: binds the listeners, or with `upgrade` takes them over from the running
/// jitgate (see `jitgate::ops::upgrade`), and serves until told to stop.
pub fn run(
    cfg: Config,
    policies: PolicySet,
    threads: usize,
    upgrade: bool,
    pid_file: Option<&Path>,
) -> Result<ExitCode, RunError> {
    // Everything that can go wrong is checked before the old process hears from us.
    let old = match (upgrade, pid_file) {
        (true, Some(path)) => Some(upgrade::OldProcess::from_pid_file(path)?),
        _ => None,
    };
    if upgrade {
        upgrade::check_socket_path(&cfg.listen.upgrade_socket)?;
    }
    let upgrade_socket = cfg.listen.upgrade_socket.clone();
    let control = server::start_control(cfg, policies).map_err(RunError::Start)?;
    let mut server = if upgrade {
        server::build_server_taking_over(control.gate.clone(), threads)
    } else {
        server::build_server(control.gate.clone(), threads)
    }
    .map_err(RunError::Listeners)?;
    if upgrade {
        match (old, pid_file) {
            (Some(old), Some(path)) => {
                old.hand_over(path)?;
                tracing::info!(old_pid = old.pid(), socket = %upgrade_socket.display(), "asked the running jitgate to hand over its listening sockets");
            }
            _ => {
                tracing::info!(socket = %upgrade_socket.display(), "waiting up to 5 s for the listening sockets: send SIGQUIT to the running jitgate")
            }
        }
        // Blocks until the sockets arrive; pingora exits the process if none come.
        server.bootstrap();
    }
    if let Some(path) = pid_file {
        upgrade::write_pid_file(path)?;
    }
    control.drain_when_told(&server);
    upgrade::notify_systemd_ready();
    tracing::info!(pid = std::process::id(), "jitgate is running");
    server.run(pingora_core::server::RunArgs::default());
    control.finish();
    if let Some(path) = pid_file {
        upgrade::remove_pid_file_if_ours(path);
    }
    Ok(ExitCode::SUCCESS)
}
