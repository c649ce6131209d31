//! `/admin`: the operator's view of the loan actor tree, running jobs now
//! (`jobs.rs`), and inbound dead letters (`dead_letters.rs`).

use actors::tree::{
    BlockedLoan, LiveActor, ServiceSnapshot, SupervisionSnapshot, TreeConfig, TreeCounts,
    TreeSnapshot,
};
use chrono::{DateTime, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::problem::ApiError;
use super::state::app_state;
use crate::http::access::require_admin;

/// The `/admin` routes (ADMIN only).
pub fn router() -> Router {
    Router::with_path("admin")
        .hoop(require_admin)
        .push(Router::with_path("actors").get(actor_tree))
        .push(super::jobs::router())
        .push(super::dead_letters::router())
}

/// The supervision tree: the root supervisor, the loan supervisor under it,
/// and the services it supervises beside the loans.
#[derive(Debug, Serialize, ToSchema)]
struct ActorTreeBody {
    /// Always `root`.
    supervisor: &'static str,
    /// Supervisors under the root (the loan supervisor).
    children: Vec<LoanSupervisorBody>,
    /// Services under the root, in start order: the audit, notification and
    /// inbound consumers, the outbox relay, the job scheduler, then the
    /// background loops (e-mail sweep, housekeeping, outbox retention,
    /// session changes, metrics upkeep, the `ops.metrics` summary on NATS).
    services: Vec<ServiceBody>,
    /// This instance's part in a cluster (`CLUSTER_INSTANCE_ID`); null for a
    /// single instance, which owns every loan.
    cluster: Option<ClusterBody>,
}

/// Which instance this is and which loan partitions it owns.
#[derive(Debug, Serialize, ToSchema)]
struct ClusterBody {
    /// This instance's id.
    instance: String,
    /// The partitions (0-255, of the loan ids) it holds now; it runs the
    /// actors of their loans and answers commands forwarded for them.
    owned_partitions: Vec<u16>,
    /// Instances it sees alive, itself included.
    live_instances: Vec<String>,
}

fn cluster_body(ownership: &crate::cluster::Ownership) -> ClusterBody {
    ClusterBody {
        instance: ownership.instance().instance.as_str().to_owned(),
        owned_partitions: ownership
            .owned()
            .into_iter()
            .map(crate::cluster::Partition::number)
            .collect(),
        live_instances: ownership
            .live_instances()
            .into_iter()
            .map(|info| info.instance.as_str().to_owned())
            .collect(),
    }
}

/// One long-lived service supervised by the root.
#[derive(Debug, Serialize, ToSchema)]
struct ServiceBody {
    /// Its name (`audit`, `notifications`, `inbound-payments`, `relay`,
    /// `scheduler`, `email-sweep`, …).
    #[salvo(schema(example = "relay"))]
    name: String,
    /// `running`, `restarting` (failed, re-spawned after a pause), `failed`
    /// (past its restart budget: down until the process restarts; `/ready`
    /// answers 503), `stopping` or `stopped`.
    #[salvo(schema(example = "running"))]
    state: &'static str,
    /// Re-spawns after a failure since start.
    restarts: u64,
    /// Failures in the current restart window.
    failures_in_window: usize,
    /// Restarts allowed within `restart_window_secs`.
    #[salvo(schema(example = 5))]
    max_restarts: u32,
    /// Length of the restart window, in seconds.
    #[salvo(schema(example = 60))]
    restart_window_secs: u64,
    /// What its last failure said.
    last_failure: Option<String>,
    /// Work waiting for it: unpublished outbox rows (relay), undelivered or
    /// unsettled messages (consumers), job catch-ups running or queued
    /// (scheduler); `null` for the loops, or when it could not be read in time.
    backlog: Option<u64>,
}

impl From<ServiceSnapshot> for ServiceBody {
    fn from(service: ServiceSnapshot) -> Self {
        Self {
            name: service.name,
            state: service.state.as_str(),
            restarts: service.restarts,
            failures_in_window: service.failures_in_window,
            max_restarts: service.budget.max_restarts,
            restart_window_secs: service.budget.window.as_secs(),
            last_failure: service.last_failure,
            backlog: service.backlog,
        }
    }
}

/// The loan supervisor: one child actor per loan in use.
#[derive(Debug, Serialize, ToSchema)]
struct LoanSupervisorBody {
    /// Always `loans`.
    supervisor: &'static str,
    /// Re-spawns of the loan supervisor itself by the root since start.
    restarts: u32,
    /// Live (routable) loan actors.
    #[salvo(schema(example = 2))]
    live_count: usize,
    /// Loan actors passivated and finishing their queue.
    stopping_count: usize,
    /// Idle time after which a loan actor is passivated, in seconds.
    #[salvo(schema(example = 300))]
    idle_timeout_secs: u64,
    /// Failures a loan actor may have within `restart_window_secs` before the loan is blocked.
    #[salvo(schema(example = 3))]
    max_restarts: u32,
    /// Length of the restart window, in seconds.
    #[salvo(schema(example = 60))]
    restart_window_secs: u64,
    /// Live loan actors, longest idle first (at most 1000 listed).
    actors: Vec<LoanActorBody>,
    /// Loans refused for now because their actor exhausted its restart budget.
    blocked: Vec<BlockedLoanBody>,
    /// Counters since start.
    counters: CountersBody,
}

/// One live loan actor.
#[derive(Debug, Serialize, ToSchema)]
struct LoanActorBody {
    /// The loan this actor owns.
    loan_id: Uuid,
    /// Commands routed to it and not yet answered.
    #[salvo(schema(example = 0))]
    mailbox_depth: usize,
    /// When a command was last routed to it.
    last_activity_at: DateTime<Utc>,
    /// Milliseconds since then.
    #[salvo(schema(example = 1250))]
    idle_ms: u64,
    /// Failures of this loan's actor in the current restart window.
    restarts_in_window: usize,
}

/// A loan blocked after too many failures of its actor.
#[derive(Debug, Serialize, ToSchema)]
struct BlockedLoanBody {
    /// The loan.
    loan_id: Uuid,
    /// Milliseconds until it is tried again.
    retry_after_ms: u64,
}

/// The tree's monotonic counters (also exported at `/metrics`).
#[derive(Debug, Serialize, ToSchema)]
struct CountersBody {
    /// Loan actors started (first use, after passivation, restarts).
    spawned: u64,
    /// Loan actors stopped for being idle.
    passivated: u64,
    /// Loan actors re-spawned after a failure.
    restarted: u64,
    /// Loan actors that failed (panic or handler error).
    failed: u64,
    /// Failures past the restart budget.
    budget_exhausted: u64,
    /// Store commits.
    commits: u64,
    /// Commands in those commits.
    commands_committed: u64,
    /// Largest batch committed.
    max_batch: u64,
    /// Version conflicts met.
    version_conflicts: u64,
    /// Store failures other than conflicts.
    store_errors: u64,
    /// Calls that timed out on the caller's side.
    timeouts: u64,
    /// Queued commands dropped because their caller had given up.
    abandoned: u64,
}

impl From<TreeCounts> for CountersBody {
    fn from(counts: TreeCounts) -> Self {
        Self {
            spawned: counts.spawned,
            passivated: counts.passivated,
            restarted: counts.restarted,
            failed: counts.failed,
            budget_exhausted: counts.budget_exhausted,
            commits: counts.commits,
            commands_committed: counts.commands_committed,
            max_batch: counts.max_batch,
            version_conflicts: counts.version_conflicts,
            store_errors: counts.store_errors,
            timeouts: counts.timeouts,
            abandoned: counts.abandoned,
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn actor_body(actor: &LiveActor, now: DateTime<Utc>) -> LoanActorBody {
    let idle = chrono::Duration::from_std(actor.idle_for).unwrap_or(chrono::Duration::zero());
    LoanActorBody {
        loan_id: actor.loan_id.as_uuid(),
        mailbox_depth: actor.queued,
        last_activity_at: now - idle,
        idle_ms: millis(actor.idle_for),
        restarts_in_window: actor.restarts_in_window,
    }
}

fn blocked_body(loan: &BlockedLoan) -> BlockedLoanBody {
    BlockedLoanBody {
        loan_id: loan.loan_id.as_uuid(),
        retry_after_ms: millis(loan.retry_after),
    }
}

fn tree_body(
    snapshot: TreeSnapshot,
    supervision: SupervisionSnapshot,
    config: &TreeConfig,
    now: DateTime<Utc>,
) -> ActorTreeBody {
    let loans = LoanSupervisorBody {
        supervisor: "loans",
        restarts: supervision.loan_supervisor_restarts,
        live_count: snapshot.live_count,
        stopping_count: snapshot.stopping,
        idle_timeout_secs: config.idle_timeout.as_secs(),
        max_restarts: config.max_restarts,
        restart_window_secs: config.restart_window.as_secs(),
        actors: snapshot.live.iter().map(|a| actor_body(a, now)).collect(),
        blocked: snapshot.blocked.iter().map(blocked_body).collect(),
        counters: snapshot.counts.into(),
    };
    ActorTreeBody {
        supervisor: "root",
        children: vec![loans],
        services: supervision.services.into_iter().map(Into::into).collect(),
        cluster: None,
    }
}

/// The supervision tree (ADMIN): live loan actors with mailbox depths and last
/// activity, restarts in the current window, blocked loans, counters; and
/// every supervised service with its state, restarts and backlog.
#[endpoint(
    tags("admin"),
    status_codes(200, 401, 403, 503),
    responses((status_code = 200, body = ActorTreeBody)),
    security(("bearer" = []))
)]
async fn actor_tree(depot: &mut Depot) -> Result<Json<ActorTreeBody>, ApiError> {
    let state = app_state(depot)?;
    let snapshot = state
        .tree
        .snapshot()
        .await
        .map_err(|error| ApiError::Unavailable(format!("actor tree: {error}")))?;
    let supervision = state.tree.supervision().await;
    // Wall-clock time: idle times are measured by the runtime, not the business clock.
    let mut body = tree_body(snapshot, supervision, state.tree.config(), Utc::now());
    body.cluster = state
        .cluster
        .as_ref()
        .map(|cluster| cluster_body(cluster.ownership()));
    Ok(Json(body))
}
