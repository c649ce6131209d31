//! Building and running the whole service: used by `main` and by the tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use salvo::conn::TcpListener;
use salvo::prelude::*;
use salvo::server::ServerHandle;

use crate::audit::consumer::AuditConsumer;
use crate::auth::tokens::TokenKeys;
use crate::background::Periodic;
use crate::bus::BusConnection;
use crate::bus::Namespace;
use crate::bus::consumer::{BatchHandler, ConsumerService, OneAtATime};
use crate::bus::metered::Metered;
use crate::bus::relay::RelayService;
use crate::clock::Clock;
use crate::cluster::forward::ForwardHandler;
use crate::cluster::{ClusterConfig, ClusterNode, InstanceId, LeaseTimings};
use crate::http::rate_limit::{EVICTION_INTERVAL, RateLimits};
use crate::http::{self, state::AppState};
use crate::inbound::{InboundPaymentHandler, InboundPayments};
use crate::jobs::JobRunner;
use crate::jobs::scheduler::{SCHEDULER_SERVICE, SchedulerService};
use crate::notifications::consumer::{NotificationHandler, PENDING_SWEEP_INTERVAL};
use crate::ops::summary::{OPS_METRICS_SUBJECT, summary};
use crate::settings::Settings;
use crate::store;
use crate::store::loans::SqlLoanStore;
use actors::tree::{LoanTree, RestartBudget, TreeConfig};

/// How long in-flight requests may take to finish after a stop signal.
const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A built service, bound to its port, not yet serving.
pub struct Application {
    addr: SocketAddr,
    server: Server<salvo::conn::tcp::TcpAcceptor>,
    service: Service,
    state: Arc<AppState>,
}

impl Application {
    /// Connects the database (migrating it) and the bus, and binds the HTTP port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Like [`Application::build`] with a given clock (tests move time with a manual one).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let db = store::connect(&settings).await?;
        let bus = BusConnection::connect(
            settings.nats_url.as_deref(),
            settings.nats_namespace.as_deref(),
        )
        .await?;
        let acceptor = TcpListener::new(settings.http_addr)
            .try_bind()
            .await
            .with_context(|| format!("binding HTTP_ADDR {}", settings.http_addr))?;
        let addr = acceptor.local_addr().context("reading the bound address")?;
        let secret = crate::auth::signing_key::jwt_secret(&settings)?;
        // One clock for everything: "today" in the business time zone.
        let clock = clock.in_timezone(settings.jobs.business_timezone);
        let tree = LoanTree::start(
            tree_config(&settings),
            Arc::new(SqlLoanStore::new(db.clone())),
        )
        .await
        .context("starting the loan actors")?;
        let mailer = crate::mailer::from_settings(&settings)?;
        let metrics = crate::metrics::Metrics::new();
        let cluster = join_cluster(&settings, &bus, &tree, &metrics).await?;
        let jobs = JobRunner::new(
            db.clone(),
            tree.clone(),
            mailer.clone(),
            clock.clone(),
            metrics.clone(),
            (settings.jobs.batch_parallelism, cluster.clone()),
        );
        let state = Arc::new(AppState {
            tokens: TokenKeys::new(&secret, settings.access_token_ttl),
            rate_limits: RateLimits::new(
                settings.rate_limit_per_min,
                settings.login_rate_limit_per_min,
            ),
            standing: crate::accounts::standing::StandingCache::new(settings.session_poll_interval),
            refresh_ttl: chrono::Duration::from_std(settings.refresh_token_ttl)
                .context("REFRESH_TOKEN_TTL_DAYS is too large")?,
            tree,
            mailer,
            clock,
            metrics,
            jobs,
            cluster,
            db,
            bus,
            settings,
        });
        Ok(Self {
            addr,
            server: Server::new(acceptor),
            service: http::service(state.clone()),
            state,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The loan actor tree (tests inspect and poke it).
    pub fn tree(&self) -> &LoanTree {
        &self.state.tree
    }

    /// The connected database (tests look behind the API with it).
    pub fn db(&self) -> &crate::store::Db {
        &self.state.db
    }

    /// The job runner (tests run jobs through it without HTTP).
    pub fn jobs(&self) -> &JobRunner {
        &self.state.jobs
    }

    /// The event bus (tests publish and inspect through it).
    pub fn bus(&self) -> &BusConnection {
        &self.state.bus
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish, flushes the outbox, drains the consumers, and closes
    /// the bus and the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle: ServerHandle = self.server.handle();
        start_services(&self.state).await?;
        start_cluster(&self.state).await?;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            handle.stop_graceful(GRACEFUL_STOP_TIMEOUT);
        });
        tracing::info!(addr = %self.addr, database = self.state.db.backend(), bus = actors::bus::Bus::kind(&self.state.bus), "serving");
        self.server
            .try_serve(self.service)
            .await
            .context("HTTP server failed")?;
        tracing::info!("HTTP stopped; handing the partitions over");
        if let Some(cluster) = &self.state.cluster
            && let Err(error) = cluster.leave().await
        {
            tracing::warn!(%error, "handing the partitions over; their leases lapse instead");
        }
        tracing::info!("stopping the scheduler");
        // Before the actors: a run in progress still needs them for its current page.
        self.state.jobs.interrupt();
        if let Err(error) = self.state.tree.stop_service(SCHEDULER_SERVICE).await {
            tracing::warn!(%error, "stopping the scheduler");
        }
        // The tree drains the loan actors, then stops the services last
        // registered first: the relay flushes the outbox (their last
        // commits' events) while the consumers still run, then they drain.
        tracing::info!("draining loan actors, then the relay and the consumers");
        if let Err(error) = self.state.tree.clone().stop().await {
            tracing::warn!(%error, "loan actors did not drain in time");
        }
        self.state.bus.close().await;
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Joins the cluster when `CLUSTER_INSTANCE_ID` is set: from here on the
/// tree runs only the loans of the partitions this instance holds.
async fn join_cluster(
    settings: &Settings,
    bus: &BusConnection,
    tree: &LoanTree,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<Option<ClusterNode>> {
    let Some(id) = settings.cluster_instance_id.as_deref() else {
        return Ok(None);
    };
    let BusConnection::Nats(nats) = bus else {
        anyhow::bail!("CLUSTER_INSTANCE_ID needs NATS_URL: instances lease loans over NATS");
    };
    let id = match id {
        "auto" => InstanceId::generate(),
        id => InstanceId::parse(id).context("CLUSTER_INSTANCE_ID")?,
    };
    let namespace = Namespace::new(settings.nats_namespace.as_deref());
    let config = ClusterConfig::new(id, &namespace, LeaseTimings::default());
    let node = ClusterNode::join(
        nats.client().clone(),
        &namespace,
        config,
        tree.clone(),
        metrics.clone(),
    )
    .await
    .context("joining the cluster (CLUSTER_INSTANCE_ID)")?;
    Ok(Some(node))
}

/// Answers forwarded commands with this instance's routes and starts the
/// partition leases under the tree's supervision.
async fn start_cluster(state: &Arc<AppState>) -> anyhow::Result<()> {
    let (Some(cluster), BusConnection::Nats(nats)) = (&state.cluster, &state.bus) else {
        return Ok(());
    };
    let mut handlers: HashMap<&'static str, Arc<dyn ForwardHandler>> = HashMap::new();
    handlers.insert(
        http::forward::HTTP_KIND,
        Arc::new(http::forward::ServeForwarded::new(http::service(
            state.clone(),
        ))),
    );
    handlers.insert(
        crate::inbound::INBOUND_KIND,
        Arc::new(InboundPayments::new(
            state.db.clone(),
            state.tree.clone(),
            state.clock.clone(),
        )),
    );
    handlers.insert(
        crate::jobs::overdue::ASSESS_KIND,
        Arc::new(state.jobs.assessments()),
    );
    cluster.serve_with(
        nats.client().clone(),
        Namespace::new(state.settings.nats_namespace.as_deref()),
        handlers,
    );
    state
        .tree
        .supervise(Arc::new(cluster.lease_service()), RestartBudget::default())
        .await
        .context("starting the partition leases")?;
    Ok(())
}

/// Durable name of the notification consumer (`nats/consumers/notifications.json`).
const NOTIFICATIONS_CONSUMER: &str = "notifications";
/// Durable name of the inbound payment consumer (`nats/consumers/inbound.json`).
const INBOUND_CONSUMER: &str = "inbound-payments";

/// The actor tree's limits from the settings; the rest keep their defaults.
fn tree_config(settings: &Settings) -> TreeConfig {
    TreeConfig {
        idle_timeout: settings.loan_actor_idle,
        // Sweep often enough that an idle actor goes within 1.5× the idle time.
        sweep_interval: (settings.loan_actor_idle / 2).min(TreeConfig::default().sweep_interval),
        call_timeout: settings.actor_call_timeout,
        max_restarts: settings.actor_restart_limit,
        restart_window: settings.actor_restart_window,
        ..TreeConfig::default()
    }
}

/// Puts the long-lived components under the tree's root, each with the
/// default [`RestartBudget`]: the consumers first (an in-process consumer
/// must be registered before the relay publishes anything), then the relay,
/// the scheduler and the background loops ([`background_loops`]).
async fn start_services(state: &Arc<AppState>) -> anyhow::Result<()> {
    let bus = state.bus.as_bus();
    let notifications = Arc::new(NotificationHandler::new(
        state.db.clone(),
        state.mailer.clone(),
        state.clock.clone(),
        state.metrics.clone(),
    ));
    notifications.resume_pending().await;
    let email_sweep = {
        let notifications = notifications.clone();
        Periodic::new("email-sweep", move || {
            let notifications = notifications.clone();
            Box::pin(async move { notifications.sweep_every(PENDING_SWEEP_INTERVAL).await })
        })
    };
    let inbound = InboundPaymentHandler::new(
        InboundPayments::new(state.db.clone(), state.tree.clone(), state.clock.clone())
            .in_cluster(state.cluster.clone()),
        state.db.clone(),
        bus.clone(),
        state.clock.clone(),
        state.settings.events.pending_retry,
    );
    // Audit and notifications take batches; inbound payments go one at
    // a time (each is a command to a loan's actor).
    let handlers: [(&str, Arc<dyn BatchHandler>); 3] = [
        (
            crate::audit::consumer::CONSUMER_NAME,
            Arc::new(AuditConsumer::new(state.db.clone())),
        ),
        (NOTIFICATIONS_CONSUMER, notifications),
        (INBOUND_CONSUMER, Arc::new(OneAtATime(Arc::new(inbound)))),
    ];
    let budget = RestartBudget::default();
    for (name, handler) in handlers {
        let metered = Arc::new(Metered::new(name, handler, state.metrics.clone()));
        let consumer = ConsumerService::new(
            bus.clone(),
            crate::bus::definitions::consumer(name),
            metered,
        )
        .await;
        state
            .tree
            .supervise(Arc::new(consumer), budget)
            .await
            .with_context(|| format!("starting the {name} consumer"))?;
    }
    let relay = RelayService::new(
        state.db.clone(),
        bus,
        state.settings.events.outbox_poll_interval,
    );
    state
        .tree
        .supervise(Arc::new(relay), budget)
        .await
        .context("starting the outbox relay")?;
    let scheduler = SchedulerService::new(state.jobs.clone(), &state.settings.jobs);
    state
        .tree
        .supervise(Arc::new(scheduler), budget)
        .await
        .context("starting the job scheduler")?;
    for periodic in std::iter::once(email_sweep).chain(background_loops(state)) {
        let name = actors::tree::Service::name(&periodic).to_owned();
        state
            .tree
            .supervise(Arc::new(periodic), budget)
            .await
            .with_context(|| format!("starting {name}"))?;
    }
    Ok(())
}

/// Housekeeping, outbox retention, the session-change follower, metrics
/// upkeep and (on NATS) the `ops.metrics` summary, as supervised loops.
fn background_loops(state: &Arc<AppState>) -> Vec<Periodic> {
    let mut loops = vec![
        Periodic::new("housekeeping", {
            let state = state.clone();
            move || Box::pin(housekeeping(state.clone()))
        }),
        Periodic::new("outbox-retention", {
            let state = state.clone();
            move || {
                Box::pin(crate::bus::retention::run(
                    state.db.clone(),
                    state.clock.clone(),
                    state.settings.events.outbox_retention,
                    state.settings.events.outbox_purge_interval,
                ))
            }
        }),
        Periodic::new("session-changes", {
            let state = state.clone();
            move || {
                let state = state.clone();
                Box::pin(async move { state.standing.follow_changes(state.db.clone()).await })
            }
        }),
        Periodic::new("metrics-upkeep", {
            let metrics = state.metrics.clone();
            move || Box::pin(metrics_upkeep(metrics.clone()))
        }),
    ];
    if let BusConnection::Nats(nats) = &state.bus {
        let (nats, state) = (nats.clone(), state.clone());
        loops.push(Periodic::new("ops-summary", move || {
            Box::pin(publish_summaries(state.clone(), nats.clone()))
        }));
    }
    loops
}

/// Keeps memory and tables bounded: drops idle rate-limiter keys and
/// idempotency records past their retention.
async fn housekeeping(state: Arc<AppState>) {
    let mut ticks = tokio::time::interval(EVICTION_INTERVAL);
    loop {
        ticks.tick().await;
        state.rate_limits.evict_idle();
        match crate::store::idempotency::purge_expired(&state.db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(%error, "purging idempotency keys failed"),
        }
    }
}

/// Drains the metrics histograms now and then (the exporter has no listener
/// of its own that would).
async fn metrics_upkeep(metrics: crate::metrics::Metrics) {
    let mut ticks = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    loop {
        ticks.tick().await;
        metrics.run_upkeep();
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Publishes a summary on `ops.metrics` every `OPS_METRICS_INTERVAL_SECS`.
fn json_bytes(summary: &crate::events::ops::OpsSummary) -> Vec<u8> {
    serde_json::to_vec(summary).expect("a summary always serializes")
}

async fn publish_summaries(state: Arc<AppState>, nats: Arc<crate::bus::NatsBus>) {
    let interval = state.settings.ops_metrics_interval;
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let summary = summary(&state.tree, &state.db, &state.clock).await;
        if let Err(error) = nats
            .publish_core(OPS_METRICS_SUBJECT, json_bytes(&summary))
            .await
        {
            tracing::debug!(%error, "ops.metrics summary not published");
        }
    }
}
