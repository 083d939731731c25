//! The `jitgate` command: `run`, `check` and `demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use jitgate::ops::server;
use jitgate::{config, policy};

#[derive(Parser)]
#[command(
    name = "jitgate",
    version,
    about = "Identity-aware reverse proxy with just-in-time access"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads per listener (default: number of CPUs).
        #[arg(long)]
        threads: Option<usize>,
        /// Take over the listening sockets of the running jitgate (graceful upgrade). With
        /// --pid-file, that process is told to hand them over once this one is ready;
        /// without it, send SIGQUIT to it yourself within 5 s.
        #[arg(long)]
        upgrade: bool,
        /// Write this process's id here once it listens (and read the old one's from here
        /// with --upgrade).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Validate a config file and its policies, or a policies directory alone.
    Check {
        #[arg(long, short, required_unless_present = "policies")]
        config: Option<PathBuf>,
        /// Check only this policies directory (no config, no secrets needed).
        #[arg(long, conflicts_with = "config")]
        policies: Option<PathBuf>,
    },
    /// Accounts jitgate keeps in apps (JIT provisioning).
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Grants of elevated access: list them, or decide on one as an operator.
    Grants {
        #[command(subcommand)]
        command: GrantsCommand,
    },
    /// Try jitgate on this machine: a development issuer, a demo app and a demo policy.
    Demo {
        /// Where the demo keeps its database and policy.
        #[arg(long, default_value = "jitgate-demo")]
        dir: PathBuf,
        /// First of the demo's ports: jitgate, then the issuer, the app and its API on the
        /// next three, the admin listener at +1010.
        #[arg(long, default_value_t = jitgate::demo::DEFAULT_PORT_BASE)]
        port_base: u16,
    },
}

#[derive(Subcommand)]
enum GrantsCommand {
    /// List grants, newest first.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: Option<String>,
        /// pending, active, denied, revoked or expired.
        #[arg(long)]
        status: Option<String>,
    },
    /// Approve a pending grant as an operator (it starts at once).
    Approve {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
    /// Deny a pending grant.
    Deny {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
    /// End a pending or active grant now.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// List accounts with when they were created and last used (every app without --app).
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: Option<String>,
    },
    /// Leaver: deactivate a user's account in the app, end their sessions and grants there.
    Deactivate {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: String,
        /// The user's username or IdP subject (`sub`).
        #[arg(long)]
        user: String,
        /// Why (e.g. "left the company, HR-4411"); recorded in the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Undo a deactivation: the account is set up again on the user's next visit.
    Reactivate {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: String,
        /// The user's username or IdP subject (`sub`).
        #[arg(long)]
        user: String,
    },
    /// Print the requests a connector would send for some claims (secrets masked).
    Test {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: String,
        /// A JSON object of ID-token claims (`sub` required).
        #[arg(long)]
        claims: PathBuf,
        /// Send them to the app (lookup, create, update) and show the answers.
        #[arg(long)]
        send: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jitgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config, policies } => Ok(check(config, policies)),
        Command::Run {
            config,
            threads,
            upgrade,
            pid_file,
        } => {
            let Some((cfg, policies)) = load(&config) else {
                return Ok(ExitCode::FAILURE);
            };
            for app in policies.apps() {
                if let Some(problem) = app.provisioning.as_ref().and_then(|c| c.secret_problem()) {
                    tracing::warn!(app = %app.name, "provisioning will fail until this is fixed: {problem}");
                }
            }
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
            run_proxy(cfg, policies, threads, upgrade, pid_file.as_deref())
        }
        Command::Accounts { command } => accounts(command),
        Command::Grants { command } => grants(command),
        Command::Demo { dir, port_base } => match jitgate::demo::run(&dir, port_base) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e @ jitgate::demo::DemoError::PortTaken { .. }) => {
                eprintln!("jitgate demo: {e}");
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e).context("running the demo"),
        },
    }
}

/// `jitgate run`: binds the listeners, or with `upgrade` takes them over from the running
/// jitgate (see `jitgate::ops::upgrade`), and serves until told to stop.
fn run_proxy(
    cfg: config::Config,
    policies: policy::PolicySet,
    threads: usize,
    upgrade: bool,
    pid_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    // Everything that can go wrong is checked before the old process hears from us.
    let old = match (upgrade, pid_file) {
        (true, Some(path)) => Some(jitgate::ops::upgrade::OldProcess::from_pid_file(path)?),
        _ => None,
    };
    if upgrade {
        jitgate::ops::upgrade::check_socket_path(&cfg.listen.upgrade_socket)?;
    }
    let upgrade_socket = cfg.listen.upgrade_socket.clone();
    let control = server::start_control(cfg, policies).context("starting jitgate")?;
    let mut server = if upgrade {
        server::build_server_taking_over(control.gate.clone(), threads)
    } else {
        server::build_server(control.gate.clone(), threads)
    }
    .context("building the listeners")?;
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
        jitgate::ops::upgrade::write_pid_file(path)?;
    }
    control.drain_when_told(&server);
    jitgate::ops::upgrade::notify_systemd_ready();
    tracing::info!(pid = std::process::id(), "jitgate is running");
    server.run(pingora_core::server::RunArgs::default());
    control.finish();
    if let Some(path) = pid_file {
        jitgate::ops::upgrade::remove_pid_file_if_ours(path);
    }
    Ok(ExitCode::SUCCESS)
}

fn accounts(command: AccountsCommand) -> anyhow::Result<ExitCode> {
    let path = match &command {
        AccountsCommand::List { config, .. }
        | AccountsCommand::Deactivate { config, .. }
        | AccountsCommand::Reactivate { config, .. }
        | AccountsCommand::Test { config, .. } => config.clone(),
    };
    let Some((cfg, policies)) = load(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let out = match command {
        AccountsCommand::List { app, .. } => {
            jitgate::cli::accounts::list(&cfg, &policies, app.as_deref())
        }
        AccountsCommand::Deactivate {
            app, user, reason, ..
        } => jitgate::cli::accounts::deactivate(&cfg, &policies, &app, &user, &reason),
        AccountsCommand::Reactivate { app, user, .. } => {
            jitgate::cli::accounts::reactivate(&cfg, &policies, &app, &user)
        }
        AccountsCommand::Test {
            app, claims, send, ..
        } => jitgate::cli::accounts::test(&cfg, &policies, &app, &claims, send),
    };
    match out {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("jitgate: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn grants(command: GrantsCommand) -> anyhow::Result<ExitCode> {
    use jitgate::cli::grants::{decide, list, Decision};
    let (path, decision) = match &command {
        GrantsCommand::List { config, .. } => (config.clone(), None),
        GrantsCommand::Approve { config, id } => {
            (config.clone(), Some((id.clone(), Decision::Approve)))
        }
        GrantsCommand::Deny { config, id } => (config.clone(), Some((id.clone(), Decision::Deny))),
        GrantsCommand::Revoke { config, id } => {
            (config.clone(), Some((id.clone(), Decision::Revoke)))
        }
    };
    let Some((cfg, policies)) = load(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let out = match (command, decision) {
        (GrantsCommand::List { app, status, .. }, _) => {
            list(&cfg, app.as_deref(), status.as_deref())
        }
        (_, Some((id, decision))) => decide(&cfg, &policies, &id, decision),
        (_, None) => return Ok(ExitCode::FAILURE),
    };
    match out {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("jitgate: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The config and its policies, or `None` after printing every problem.
fn load(path: &std::path::Path) -> Option<(config::Config, policy::PolicySet)> {
    let cfg = match config::load(path) {
        Ok(cfg) => cfg,
        Err(problems) => {
            eprintln!("{problems}");
            return None;
        }
    };
    match policy::load_dir(&cfg.policies_dir) {
        Ok(p) => Some((cfg, p)),
        Err(problems) => {
            eprintln!("{problems}");
            None
        }
    }
}

/// Prints every problem as `file:line:column: message`; exit 1 if there was any.
fn check(config: Option<PathBuf>, policies: Option<PathBuf>) -> ExitCode {
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
