//! The `jitgate` command: `run`, `check` and `demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

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
    /// The company directory the IdP pushes over SCIM.
    Scim {
        #[command(subcommand)]
        command: ScimCommand,
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
enum ScimCommand {
    /// The directory's size and the newest SCIM changes and refusals.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// How many changes and refusals to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
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
        /// A JSON object of ID-token claims (`sub` required; not for `--op list`).
        #[arg(long, required_unless_present = "op")]
        claims: Option<PathBuf>,
        /// `list`: read the app's accounts through the connector's `list` and print them.
        #[arg(long, value_parser = ["list"])]
        op: Option<String>,
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
        Command::Check { config, policies } => Ok(jitgate::cli::check::check(config, policies)),
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
            for problem in jitgate::cli::check::ahead_problems(&policies, cfg.scim.as_ref()) {
                tracing::warn!("no account is created ahead of sign-in: {problem}");
            }
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
            jitgate::cli::run::run(cfg, policies, threads, upgrade, pid_file.as_deref())
                .map_err(anyhow::Error::from)
        }
        Command::Accounts { command } => accounts(command),
        Command::Grants { command } => grants(command),
        Command::Scim { command } => scim(command),
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
            app,
            claims,
            send,
            op,
            ..
        } => match (op.as_deref(), claims) {
            (Some("list"), _) => jitgate::cli::app_accounts::list(&cfg, &policies, &app),
            (_, Some(claims)) => jitgate::cli::accounts::test(&cfg, &policies, &app, &claims, send),
            (_, None) => Err(jitgate::cli::accounts::AccountsError::Claims(
                "--claims".into(),
                "required without --op list".into(),
            )),
        },
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

fn scim(command: ScimCommand) -> anyhow::Result<ExitCode> {
    let ScimCommand::Status { config, limit } = command;
    let Some((cfg, _)) = load(&config) else {
        return Ok(ExitCode::FAILURE);
    };
    match jitgate::cli::scim::status(&cfg, limit) {
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
