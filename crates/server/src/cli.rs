//! The `idm-otp` command line. Its results are printed on stdout for people and scripts.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};

use crate::app::Application;
use crate::config::{ConfigError, Settings};

/// idm-otp: the Nevis IDM "Generate an OTP challenge" endpoint.
#[derive(Debug, Parser)]
#[command(name = "idm-otp", version, about, long_about = None)]
pub struct Cli {
    /// A TOML file layered over config/default.toml (environment variables still win).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (reads DATABASE_URL).
    Migrate,
    /// Fixture files.
    Fixtures {
        /// What to do with fixtures.
        #[command(subcommand)]
        action: FixturesCommand,
    },
    /// Run the HTTP server until SIGTERM or Ctrl-C.
    Serve {
        /// Listen address, HOST:PORT (default from config: 127.0.0.1:8080).
        #[arg(long, value_name = "HOST:PORT")]
        bind: Option<String>,
    },
    /// Print an HS256 bearer token for a caller, signed with the configured development
    /// secret (for local runs and tests only).
    DevToken {
        /// The caller's client ext id.
        #[arg(long)]
        client: String,
        /// The caller's user ext id (`sub`).
        #[arg(long)]
        user: String,
        /// Validity in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
}

/// Fixture subcommands.
#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Load a JSON fixture file in one transaction (reads DATABASE_URL and
    /// IDM_OTP_CARD_HMAC_KEY).
    Load {
        /// The file.
        file: PathBuf,
    },
}

/// Runs the command line; every failure is one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("idm-otp: {err}");
            ExitCode::FAILURE
        }
    }
}

fn connect(settings: &Settings) -> anyhow::Result<PgConnection> {
    let url = settings.database_url()?;
    PgConnection::establish(url).map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => {
            let applied = idm_otp_adapters::run_migrations(&mut connect(&settings)?)?;
            if applied.is_empty() {
                println!("database schema is up to date");
            } else {
                println!("applied migrations: {}", applied.join(", "));
            }
            Ok(())
        }
        Command::Fixtures {
            action: FixturesCommand::Load { file },
        } => {
            let hasher = settings.card_hasher()?;
            let json = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let summary = idm_otp_adapters::fixtures::load_fixtures(
                &mut connect(&settings)?,
                &json,
                &hasher,
            )?;
            println!("loaded {}: {summary}", file.display());
            Ok(())
        }
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                settings.server.bind = bind;
            }
            let _log_flush = crate::telemetry::init(&settings.log);
            let app = Application::build(&settings)?;
            tracing::info!(address = %settings.server.bind, port = app.port(), "idm-otp serving");
            actix_web::rt::System::new().block_on(app.run_until_stopped())?;
            tracing::info!("idm-otp stopped");
            Ok(())
        }
        Command::DevToken { client, user, ttl } => {
            let token = crate::auth::sign_hs256(
                &settings.auth,
                &client,
                &user,
                chrono::Duration::seconds(ttl),
            )
            .map_err(|e: ConfigError| anyhow::anyhow!(e))?;
            println!("{token}");
            Ok(())
        }
    }
}
