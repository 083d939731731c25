//! `jitgate check`: validates a config and its policies (or a policy directory alone) the
//! way `jitgate run` would, and prints every problem as `file:line:column: message`, or one
//! line per app that passed. Security teams run it in CI on their policy repository.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{config, policy};

/// Prints every problem as `file:line:column: message`; exit 1 if there was any.
pub fn check(config: Option<PathBuf>, policies: Option<PathBuf>) -> ExitCode {
    let policies_dir = match (config, policies) {
        (Some(path), _) => match config::load(&path) {
            Ok(cfg) => cfg.policies_dir,
            Err(problems) => {
                println!("{problems}");
                return ExitCode::FAILURE;
            }
        },
        (None, Some(dir)) => dir,
        (None, None) => return ExitCode::FAILURE,
    };
    match policy::load_dir(&policies_dir) {
        Ok(set) => {
            for app in set.apps() {
                let provisioning = app
                    .provisioning
                    .as_ref()
                    .map(|c| format!("; accounts provisioned through {}", c.api))
                    .unwrap_or_default();
                println!(
                    "ok: {} ({}): {} route(s) on {}{provisioning}",
                    app.name,
                    app.source.display(),
                    app.routes.len(),
                    app.hosts.join(", ")
                );
            }
            println!("{} app(s), no problems", set.apps().len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            ExitCode::FAILURE
        }
    }
}
