//! Issue 12's memory target: the resident memory of 100,000 live loan actors
//! (12-month loans, a few payments each) in the real service on the embedded
//! default (SQLite, in-process bus). Not a test: it prints what it measures.
//!
//! ```sh
//! cargo bench --bench live_actors                 # 100,000 loans (a few minutes)
//! LIVE_ACTORS=20000 cargo bench --bench live_actors
//! ```
//!
//! Each loan is applied for, approved and paid twice through the loan tree
//! (so through its actor and the store, as the HTTP edge would), then read
//! once more so every actor is live; the actors stay live (idle timeout one
//! hour). Printed: the process's RSS before the loans, after them, the
//! difference per actor, and the tree's live count.

use std::sync::Arc;
use std::time::Instant;

use actors::core::{
    Currency, Loan, LoanCommand, LoanId, LoanTerms, Money, PaymentId, Rate, TermMonths, UserId,
};
use actors::tree::{LoanRequest, LoanTree};
use loan_tracker::accounts::admin::AdminOutcome;
use loan_tracker::app::Application;
use loan_tracker::settings::Settings;
use uuid::Uuid;

/// Loans, and so live actors, unless `LIVE_ACTORS` says otherwise.
const DEFAULT_LOANS: usize = 100_000;
/// Commands in flight at once.
const CONCURRENCY: usize = 256;
/// The target of issue 12.
const TARGET_MIB: f64 = 500.0;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn request(command: LoanCommand) -> LoanRequest {
    LoanRequest {
        command,
        today: chrono::Utc::now().date_naive(),
        now: chrono::Utc::now(),
        actor_id: None,
        reply: None,
    }
}

/// One loan through its life so far: applied, approved, paid twice.
async fn one_loan(tree: LoanTree, user: UserId, terms: LoanTerms) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let loan_id = LoanId::new(Uuid::now_v7());
    let (loan, _) = Loan::apply_for(loan_id, user, terms, today);
    tree.create(loan, chrono::Utc::now(), None).await??;
    tree.execute(
        loan_id,
        request(LoanCommand::Approve {
            disbursed_on: today,
        }),
    )
    .await??;
    for _ in 0..2 {
        let payment = LoanCommand::ApplyPayment {
            payment_id: PaymentId::new(Uuid::now_v7()),
            amount: Money::parse("12.34", Currency::parse("USD")?)?,
            paid_on: today,
            reference: None,
            note: None,
        };
        tree.execute(loan_id, request(payment)).await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let loans: usize = std::env::var("LIVE_ACTORS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_LOANS);
    let dir = tempfile::TempDir::new()?;
    let data_dir = dir.path().display().to_string();
    let vars = [
        ("DATA_DIR", data_dir.as_str()),
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("LOAN_ACTOR_IDLE_SECS", "3600"),
        ("REMINDER_CRON", ""),
        ("OVERDUE_CRON", ""),
    ];
    let settings = Settings::from_lookup(|name| {
        vars.iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| (*value).to_owned())
    })?;
    let app = Application::build(settings).await?;
    let tree = app.tree().clone();
    let db = app.db().clone();
    let user = match loan_tracker::accounts::admin::create_or_promote(
        &db,
        "bench@example.com",
        "a long benchmark passphrase",
    )
    .await?
    {
        AdminOutcome::Created(user)
        | AdminOutcome::Promoted(user)
        | AdminOutcome::AlreadyAdmin(user) => UserId::new(user.id),
    };
    let terms = LoanTerms::new(
        Money::parse("1200.00", Currency::parse("USD")?)?,
        Rate::parse("6")?,
        TermMonths::new(12)?,
    )?;
    let before = rss_mib();
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loans {
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        let (tree, terms) = (tree.clone(), terms.clone());
        tasks.spawn(async move {
            let outcome = one_loan(tree, user, terms).await;
            drop(permit);
            outcome
        });
    }
    let mut failed = 0;
    while let Some(outcome) = tasks.join_next().await {
        if outcome
            .map_err(anyhow::Error::from)
            .and_then(|inner| inner)
            .is_err()
        {
            failed += 1;
        }
    }
    let seeded_in = started.elapsed();
    let snapshot = tree.snapshot().await?;
    let after = rss_mib();
    let per_actor_kib = (after - before) * 1024.0 / loans.max(1) as f64;
    println!(
        "live_actors: {loans} loans ({failed} failed) in {seeded_in:.1?}; live actors {}; \
         RSS before {before:.0} MiB, after {after:.0} MiB; {per_actor_kib:.1} KiB per actor; \
         target {TARGET_MIB:.0} MiB for 100,000: {}",
        snapshot.live_count,
        if loans == DEFAULT_LOANS && after <= TARGET_MIB {
            "met"
        } else if loans == DEFAULT_LOANS {
            "not met"
        } else {
            "(scaled run)"
        }
    );
    drop(app);
    Ok(())
}
