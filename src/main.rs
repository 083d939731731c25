//! The `jitgate` command: `run`, `check` and `demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use jitgate::{config, policy, server};

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
    },
    /// Validate a config file and its policies, or a policies directory alone.
    Check {
        #[arg(long, short, required_unless_present = "policies")]
        config: Option<PathBuf>,
        /// Check only this policies directory (no config, no secrets needed).
        #[arg(long, conflicts_with = "config")]
        policies: Option<PathBuf>,
    },
    /// Try jitgate on this machine: a development issuer, a demo app and a demo policy.
    Demo {
        /// Where the demo keeps its database and policy.
        #[arg(long, default_value = "jitgate-demo")]
        dir: PathBuf,
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
        Command::Run { config, threads } => {
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(problems) => {
                    eprintln!("{problems}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let policies = match policy::load_dir(&cfg.policies_dir) {
                Ok(p) => p,
                Err(problems) => {
                    eprintln!("{problems}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
            let control = server::start_control(cfg, policies).context("starting jitgate")?;
            let server = server::build_server(control.gate.clone(), threads)
                .context("building the listeners")?;
            tracing::info!("jitgate is running");
            server.run(pingora_core::server::RunArgs::default());
            drop(control);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir } => {
            jitgate::demo::run(&dir).context("running the demo")?;
            Ok(ExitCode::SUCCESS)
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
                println!(
                    "ok: {} ({}): {} route(s) on {}",
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
