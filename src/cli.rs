//! Command-line interface.

use clap::{Parser, Subcommand};

/// Loan servicing backend: apply, approve, repay, remind, audit.
///
/// Every setting is an environment variable (a `.env` file is read); see README.md.
#[derive(Debug, Parser)]
#[command(name = "loan-tracker", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server, the actors and the jobs (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Exit 0 if the server at HTTP_ADDR answers GET /health (container health checks).
    Healthcheck,
    /// Administrative tasks.
    Admin {
        /// The administrative task.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Administrative subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an ADMIN account, or promote an existing account to ADMIN.
    Create {
        /// E-mail address of the account.
        #[arg(long)]
        email: String,
        /// Password (12–128 characters); used only when the account is created.
        #[arg(long)]
        password: String,
    },
}
