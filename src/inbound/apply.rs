//! One inbound payment message, judged and applied: what became of it.

use actors::core::{LoanCommand, LoanId, LoanStatus, Money, PaymentId};
use actors::store::BoxFuture;
use actors::tree::{LoanRequest, LoanTree, TreeError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Clock;
use crate::cluster::forward::{ForwardHandler, Forwarded};
use crate::cluster::{ClusterNode, partition_of};
use crate::events::inbound::InboundPayment;
use crate::store::Db;
use crate::store::loans::{get_loan, loan_paid_by_reference};

/// Longest accepted external reference.
const MAX_REF_CHARS: usize = 200;
/// Namespace of payment ids derived from (loan, external_ref).
const INBOUND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x696e_626f_756e_642d_7061_796d_656e_7473);

/// What became of a message (also the answer of a message forwarded to its
/// loan's owner, hence serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The payment was recorded now.
    Applied,
    /// A payment with this reference was already recorded on this loan: nothing changed.
    AlreadyApplied,
    /// It may apply later: the loan is still `PENDING`.
    NotYet {
        /// The sender's reference.
        external_ref: String,
        /// Why not now.
        reason: String,
    },
    /// It can never apply as it is.
    Never {
        /// The sender's reference, when the message had one.
        external_ref: Option<String>,
        /// Why.
        reason: String,
    },
    /// The database or the loan's actor failed; try again later.
    Failed {
        /// What failed.
        reason: String,
    },
}

/// The kind of a message forwarded to its loan's owner.
pub const INBOUND_KIND: &str = "inbound";

/// Applies inbound payment messages through the loan actors.
#[derive(Clone)]
pub struct InboundPayments {
    db: Db,
    tree: LoanTree,
    clock: Clock,
    cluster: Option<ClusterNode>,
}

impl InboundPayments {
    /// Payments applied through `tree`, looked up in `db`, dated by `clock`.
    pub fn new(db: Db, tree: LoanTree, clock: Clock) -> Self {
        Self {
            db,
            tree,
            clock,
            cluster: None,
        }
    }

    /// In a cluster, a message for a loan owned elsewhere is handed to its owner.
    pub fn in_cluster(mut self, cluster: Option<ClusterNode>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Judges the raw message and, if it can, applies it (on the loan's
    /// owning instance: forwarded there when that is another).
    pub async fn apply(&self, payload: &[u8]) -> Verdict {
        let message = match parse(payload) {
            Ok(message) => message,
            Err(verdict) => return verdict,
        };
        if let Some(cluster) = &self.cluster
            && !cluster.owns(LoanId::new(message.loan_id))
        {
            return self.forward(cluster, &message, payload).await;
        }
        self.apply_here(message).await
    }

    async fn apply_here(&self, message: InboundPayment) -> Verdict {
        match self.check(&message).await {
            Ok(checked) => self.execute(&message, checked).await,
            Err(verdict) => verdict,
        }
    }

    /// What the loan says about the message before its actor is asked.
    async fn check(&self, message: &InboundPayment) -> Result<Checked, Verdict> {
        let loan_id = LoanId::new(message.loan_id);
        let view = match get_loan(&self.db, loan_id).await {
            Ok(Some(view)) => view,
            Ok(None) => return Err(message.never(format!("unknown loan {loan_id}"))),
            Err(error) => {
                return Err(Verdict::Failed {
                    reason: error.to_string(),
                });
            }
        };
        let currency = view.loan.terms().currency();
        if message.currency != currency.code() {
            return Err(message.never(format!(
                "currency {} does not match the loan's {}",
                message.currency,
                currency.code()
            )));
        }
        let amount = Money::parse_positive(&message.amount, currency)
            .map_err(|error| message.never(format!("amount: {error}")))?;
        let reference = message.reference();
        let already_paid = match loan_paid_by_reference(&self.db, reference).await {
            Ok(Some(other)) if other != loan_id => {
                return Err(message.never(format!(
                    "external_ref {reference} already pays another loan ({other})"
                )));
            }
            Ok(found) => found.is_some(),
            Err(error) => {
                return Err(Verdict::Failed {
                    reason: error.to_string(),
                });
            }
        };
        if view.loan.status() == LoanStatus::Pending {
            return Err(Verdict::NotYet {
                external_ref: reference.to_owned(),
                reason: format!("loan {loan_id} is still PENDING"),
            });
        }
        Ok(Checked {
            amount,
            already_paid,
        })
    }

    /// Applies the checked payment through the loan's actor.
    async fn execute(&self, message: &InboundPayment, checked: Checked) -> Verdict {
        let loan_id = LoanId::new(message.loan_id);
        let reference = message.reference();
        let (now, today) = (self.clock.now(), self.clock.today());
        let command = LoanCommand::ApplyPayment {
            payment_id: PaymentId::new(Uuid::new_v5(
                &INBOUND_ID_NAMESPACE,
                format!("{loan_id}:{reference}").as_bytes(),
            )),
            amount: checked.amount,
            paid_on: message.paid_on.unwrap_or(today),
            reference: Some(reference.to_owned()),
            note: None,
        };
        let request = LoanRequest {
            command,
            today,
            now,
            actor_id: None,
            reply: None,
        };
        match self.tree.execute(loan_id, request).await {
            Ok(Ok(_)) if checked.already_paid => Verdict::AlreadyApplied,
            Ok(Ok(_)) => Verdict::Applied,
            Ok(Err(rejection)) => message.never(rejection.to_string()),
            Err(TreeError::NotFound(_)) => message.never(format!("unknown loan {loan_id}")),
            Err(error) => Verdict::Failed {
                reason: error.to_string(),
            },
        }
    }
}

impl InboundPayments {
    async fn forward(
        &self,
        cluster: &ClusterNode,
        message: &InboundPayment,
        payload: &[u8],
    ) -> Verdict {
        let request = Forwarded {
            headers: async_nats::HeaderMap::new(),
            body: Bytes::copy_from_slice(payload),
        };
        let partition = partition_of(LoanId::new(message.loan_id));
        match cluster
            .forwarder()
            .send(partition, INBOUND_KIND, request, FORWARD_DEADLINE)
            .await
        {
            Ok(answer) => {
                serde_json::from_slice(&answer.body).unwrap_or_else(|error| Verdict::Failed {
                    reason: format!("the owner's answer was unreadable: {error}"),
                })
            }
            Err(error) => Verdict::Failed {
                reason: error.to_string(),
            },
        }
    }
}

/// Longest a forwarded message waits for its owner's verdict.
const FORWARD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies, on the owner, messages forwarded by other instances.
impl ForwardHandler for InboundPayments {
    fn handle(&self, request: Forwarded) -> BoxFuture<'_, Forwarded> {
        Box::pin(async move {
            let verdict = match parse(&request.body) {
                Ok(message) => self.apply_here(message).await,
                Err(verdict) => verdict,
            };
            Forwarded {
                headers: async_nats::HeaderMap::new(),
                body: serde_json::to_vec(&verdict).unwrap_or_default().into(),
            }
        })
    }
}

/// A message passed the checks: the amount in the loan's currency, and
/// whether its reference is already recorded on the loan.
struct Checked {
    amount: Money,
    already_paid: bool,
}

impl InboundPayment {
    /// The reference as applied (surrounding blanks dropped).
    fn reference(&self) -> &str {
        self.external_ref.trim()
    }

    /// It can never apply, for `reason`.
    fn never(&self, reason: String) -> Verdict {
        Verdict::Never {
            external_ref: Some(self.external_ref.clone()),
            reason,
        }
    }
}

/// The message, well-formed with a usable reference, or why not.
fn parse(payload: &[u8]) -> Result<InboundPayment, Verdict> {
    let message: InboundPayment =
        serde_json::from_slice(payload).map_err(|error| Verdict::Never {
            external_ref: None,
            reason: format!("invalid message: {error}"),
        })?;
    let length = message.reference().chars().count();
    if length == 0 || length > MAX_REF_CHARS {
        return Err(message.never(format!(
            "external_ref must be 1 to {MAX_REF_CHARS} characters"
        )));
    }
    Ok(message)
}
