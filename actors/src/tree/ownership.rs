//! Which loans this instance runs actors for (several instances, SPEC §8).
//!
//! With one instance it owns every loan ([`OwnsAll`]). With several, each loan
//! belongs to one of them at a time (the adapter leases partitions of the
//! loan ids); the tree spawns no actor for a loan it does not own and refuses
//! the call with [`super::TreeError::NotOwner`], so the caller forwards it to
//! the owner. Before an instance gives a loan up, the tree passivates its
//! actor ([`super::LoanTree::passivate_unowned`]), so two instances never run
//! actors for one loan at once.

use std::sync::{Arc, RwLock};

use crate::core::LoanId;

/// Answers whether this instance owns a loan; asked on every routed call, so cheap.
pub trait LoanOwnership: Send + Sync + 'static {
    /// True when this instance may run `loan_id`'s actor now.
    fn owns(&self, loan_id: LoanId) -> bool;
}

/// A single instance: it owns every loan.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnsAll;

impl LoanOwnership for OwnsAll {
    fn owns(&self, _loan_id: LoanId) -> bool {
        true
    }
}

/// The ownership the tree asks, replaceable while it runs.
#[derive(Clone)]
pub(crate) struct OwnershipSlot(Arc<RwLock<Arc<dyn LoanOwnership>>>);

impl Default for OwnershipSlot {
    fn default() -> Self {
        OwnershipSlot(Arc::new(RwLock::new(Arc::new(OwnsAll))))
    }
}

impl OwnershipSlot {
    pub(crate) fn set(&self, ownership: Arc<dyn LoanOwnership>) {
        *self.0.write().unwrap_or_else(|poison| poison.into_inner()) = ownership;
    }

    pub(crate) fn owns(&self, loan_id: LoanId) -> bool {
        self.0
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .owns(loan_id)
    }
}
