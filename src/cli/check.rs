//! `jitgate check`: validates a config and its policies (or a policy directory alone) the
//! way `jitgate run` would, and prints every problem as `file:line:column: message`, or one
//! line per app that passed. Security teams run it in CI on their policy repository.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{config, policy};

/// Prints every problem as `file:line:column: message`; exit 1 if there was any.
pub fn check(config: Option<PathBuf>, policies: Option<PathBuf>) -> ExitCode {
    let (policies_dir, scim) = match (config, policies) {
        (Some(path), _) => match config::load(&path) {
            Ok(cfg) => (cfg.policies_dir, Some(cfg.scim)),
            Err(problems) => {
                println!("{problems}");
                return ExitCode::FAILURE;
            }
        },
        (None, Some(dir)) => (dir, None),
        (None, None) => return ExitCode::FAILURE,
    };
    match policy::load_dir(&policies_dir) {
        Ok(set) => {
            if let Some(scim) = &scim {
                let problems = ahead_problems(&set, scim.as_ref());
                if !problems.is_empty() {
                    for p in problems {
                        println!("{p}");
                    }
                    return ExitCode::FAILURE;
                }
            }
            for app in set.apps() {
                let provisioning = app
                    .provisioning
                    .as_ref()
                    .map(|c| {
                        let when = if c.ahead { " ahead of sign-in" } else { "" };
                        format!("; accounts provisioned{when} through {}", c.api)
                    })
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

/// `provisioning.ahead` keys accounts by the `sub` the IdP will sign in before anyone signs
/// in: it needs the directory, linked on `sub`.
pub fn ahead_problems(set: &policy::PolicySet, scim: Option<&config::ScimSettings>) -> Vec<String> {
    let linked_on_sub = scim.is_some_and(|s| s.link.claim == "sub");
    set.apps()
        .iter()
        .filter(|app| app.provisioning.as_ref().is_some_and(|c| c.ahead) && !linked_on_sub)
        .map(|app| {
            let (line, column) = app.provisioning.as_ref().map(|c| c.ahead_at).unwrap_or((1, 1));
            format!(
                "{}:{line}:{column}: provisioning.ahead needs the config's `scim:` with link.claim: sub (accounts made before sign-in are keyed by the sub the IdP will send)",
                app.source.display(),
            )
        })
        .collect()
}
