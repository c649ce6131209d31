//! Entry point: parse the command line and settings, then run the chosen command.

use std::process::ExitCode;

use clap::Parser;
use loan_tracker::accounts::admin::AdminOutcome;
use loan_tracker::app::{Application, shutdown_signal};
use loan_tracker::cli::{AdminCommand, Cli, Command};
use loan_tracker::settings::Settings;
use loan_tracker::{store, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{error:#}")),
    }
}

/// Prints one line naming what went wrong and returns exit code 1.
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("loan-tracker: {error}");
    ExitCode::FAILURE
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Healthcheck => loan_tracker::healthcheck::check(settings.http_addr).await,
        Command::Migrate => {
            let db = store::connect(&settings).await?;
            tracing::info!(database = %settings.database.redacted(), "migrations applied");
            db.close().await;
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Create { email, password },
        } => {
            let db = store::connect(&settings).await?;
            let outcome =
                loan_tracker::accounts::admin::create_or_promote(&db, &email, &password).await;
            db.close().await;
            match outcome? {
                AdminOutcome::Created(user) => {
                    println!("created ADMIN {} ({})", user.email, user.id)
                }
                AdminOutcome::Promoted(user) => {
                    println!("promoted {} ({}) to ADMIN", user.email, user.id)
                }
                AdminOutcome::AlreadyAdmin(user) => {
                    println!("{} ({}) already is an ADMIN", user.email, user.id)
                }
            }
            Ok(())
        }
    }
}
