//! This instance's part in a cluster: the partition leases, the ownership
//! the loan tree asks, and the forwarding of commands both ways.
//!
//! Order of a handover, so that two instances never run one loan's actor:
//! giving partitions up (to a joining instance, or at a graceful stop), this
//! instance first stops answering their forwarded commands, then refuses
//! local ones (they are forwarded, and find no owner until the next one
//! subscribes: 503), then passivates their actors after their queues, and
//! only then is the lease released. A lost lease stopped counting as owned
//! before anyone else could take it; the actors are passivated after.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use actors::core::LoanId;
use actors::store::BoxFuture;
use actors::tree::{LoanOwnership, LoanTree};

use super::forward::{ForwardHandler, Forwarder, PartitionServer};
use super::manager::{ClusterConfig, LeaseManager};
use super::ownership::Ownership;
use super::partition::{Partition, partition_of};
use super::{ClusterError, PartitionListener};
use crate::bus::Namespace;
use crate::metrics::Metrics;

/// The loans this instance owns: those of the partitions it holds, less the
/// ones it is handing over.
pub struct OwnedLoans {
    ownership: Ownership,
    handing_over: RwLock<HashSet<Partition>>,
}

impl OwnedLoans {
    fn handing_over(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<Partition>> {
        self.handing_over
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl LoanOwnership for OwnedLoans {
    fn owns(&self, loan_id: LoanId) -> bool {
        let partition = partition_of(loan_id);
        self.ownership.is_owned(partition)
            && !self
                .handing_over
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .contains(&partition)
    }
}

/// Passivates and (un)subscribes as partitions change hands.
struct Handoff {
    loans: OnceLock<Arc<OwnedLoans>>,
    tree: OnceLock<LoanTree>,
    server: OnceLock<Arc<PartitionServer>>,
}

impl Handoff {
    async fn give_up(&self, partitions: &[Partition]) {
        if let Some(server) = self.server.get() {
            server.stop_serving(partitions).await;
        }
        if let Some(loans) = self.loans.get() {
            loans.handing_over().extend(partitions.iter().copied());
        }
        if let Some(tree) = self.tree.get()
            && let Err(error) = tree.passivate_unowned().await
        {
            tracing::warn!(%error, "passivating the actors of partitions handed over");
        }
    }
}

impl PartitionListener for Handoff {
    fn releasing<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        Box::pin(self.give_up(partitions))
    }

    fn lost<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        tracing::warn!(count = partitions.len(), "partition leases lost");
        Box::pin(self.give_up(partitions))
    }

    fn acquired<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(loans) = self.loans.get() {
                let mut handing_over = loans.handing_over();
                for partition in partitions {
                    handing_over.remove(partition);
                }
            }
            match self.server.get() {
                Some(server) => server.serve(partitions).await,
                None => tracing::error!("partitions acquired before the forward server was set"),
            }
        })
    }
}

/// A running cluster member; cheap to clone.
#[derive(Clone)]
pub struct ClusterNode {
    manager: LeaseManager,
    ownership: Ownership,
    forwarder: Forwarder,
    handoff: Arc<Handoff>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("ownership", &self.ownership)
            .finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Joins the cluster on `client` and makes `tree` run only the loans this
    /// instance owns (none until [`ClusterNode::start`] takes its share).
    pub async fn join(
        client: async_nats::Client,
        namespace: &Namespace,
        config: ClusterConfig,
        tree: LoanTree,
        metrics: Metrics,
    ) -> Result<Self, ClusterError> {
        let handoff = Arc::new(Handoff {
            loans: OnceLock::new(),
            tree: OnceLock::new(),
            server: OnceLock::new(),
        });
        let manager = LeaseManager::connect(
            client.clone(),
            namespace,
            config,
            Arc::clone(&handoff) as Arc<dyn PartitionListener>,
        )
        .await?;
        let ownership = manager.ownership();
        let loans = Arc::new(OwnedLoans {
            ownership: ownership.clone(),
            handing_over: RwLock::default(),
        });
        tree.set_ownership(Arc::clone(&loans) as Arc<dyn LoanOwnership>);
        let _ = handoff.loans.set(loans);
        let _ = handoff.tree.set(tree);
        Ok(Self {
            manager,
            ownership,
            forwarder: Forwarder::new(client, namespace.clone(), metrics),
            handoff,
        })
    }

    /// Answers forwarded commands with `handlers` (by kind) and starts taking
    /// this instance's share: the leases run as the supervised service
    /// [`ClusterNode::lease_service`].
    pub fn serve_with(
        &self,
        client: async_nats::Client,
        namespace: Namespace,
        handlers: HashMap<&'static str, Arc<dyn ForwardHandler>>,
    ) {
        let server = PartitionServer::new(client, namespace, handlers);
        let _ = self.handoff.server.set(server);
    }

    /// The lease loops, to run under the tree's supervision (after [`ClusterNode::serve_with`]).
    pub fn lease_service(&self) -> LeaseManager {
        self.manager.clone()
    }

    /// Who owns what.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Sends commands to other owners.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// True when this instance serves `loan_id` itself.
    pub fn owns(&self, loan_id: LoanId) -> bool {
        match self.handoff.loans.get() {
            Some(loans) => loans.owns(loan_id),
            None => false,
        }
    }

    /// Graceful stop: hands every partition over (their actors passivated
    /// first) and leaves the cluster.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.ownership.shutdown().await
    }
}
