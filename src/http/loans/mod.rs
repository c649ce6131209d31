//! Loans and payments: applications, decisions, repayments, reversals.
//! Every write goes through the loan's actor, and so do the reads of one
//! loan's schedule and payoff (from memory); the other reads go to the store.

mod commands;
mod errors;
mod payments;
mod reads;
pub mod wire;

pub use reads::list_for;

use actors::core::{Currency, Loan, LoanId, UserId};
use salvo::prelude::*;

use crate::http::access::{Principal, require_admin, require_staff, require_user};
use crate::http::idempotency::idempotent_in_commit;
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::store::loans::loan_access;

/// The `/loans` routes but a loan's payments (see [`payment_routers`]).
pub fn routers() -> Vec<Router> {
    let loans = Router::with_path("loans")
        .hoop(require_user)
        .get(reads::list_loans)
        .post(commands::apply)
        .push(Router::with_path("quote").post(commands::quote))
        .push(
            // Only what can be a UUID: `quote` is not a loan id, so
            // `/loans/quote` allows exactly POST.
            Router::with_path("{id|[0-9a-fA-F-]+}")
                .get(reads::get_loan)
                .push(Router::new().hoop(require_admin).delete(commands::delete))
                .push(Router::with_path("schedule").get(reads::schedule))
                .push(Router::with_path("payoff").get(reads::payoff))
                .push(
                    Router::with_path("approve")
                        .hoop(require_staff)
                        .post(commands::approve),
                )
                .push(
                    Router::with_path("reject")
                        .hoop(require_staff)
                        .post(commands::reject),
                )
                .push(Router::with_path("cancel").post(commands::cancel))
                .push(
                    Router::with_path("write-off")
                        .hoop(require_admin)
                        .post(commands::write_off),
                ),
        );
    vec![loans]
}

/// The payment routes: their Idempotency-Key is taken by the payment's own
/// commit ([`idempotent_in_commit`]), so they are mounted outside the
/// routers whose keys are claimed beforehand.
pub fn payment_routers() -> Vec<Router> {
    let on_loan = Router::with_path("loans/{id}/payments")
        .hoop(require_user)
        .hoop(idempotent_in_commit)
        .get(payments::list_for_loan)
        .post(payments::pay_loan);
    let payments = Router::with_path("payments")
        .hoop(require_user)
        .hoop(idempotent_in_commit)
        .get(payments::list)
        .post(payments::pay)
        .push(
            Router::with_path("{id}").get(payments::get).push(
                Router::with_path("reverse")
                    .hoop(require_admin)
                    .post(payments::reverse),
            ),
        );
    vec![on_loan, payments]
}

/// Owner and currency of `loan_id` if the caller may see it; 404 otherwise
/// (as if it did not exist). Asked of the loan's actor, which the command
/// goes to next: no query once the loan is live.
async fn accessible_loan(
    state: &AppState,
    principal: Principal,
    loan_id: LoanId,
) -> Result<(UserId, Currency), ApiError> {
    visible(state, principal, loan_id, |loan| {
        (loan.user_id(), loan.terms().currency())
    })
    .await
}

/// `look` of the loan `loan_id`, computed in its actor from memory, if the
/// caller may see the loan; 404 otherwise (as if it did not exist).
async fn visible<R: Send + 'static>(
    state: &AppState,
    principal: Principal,
    loan_id: LoanId,
    look: impl FnOnce(&Loan) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let (staff, caller) = (principal.is_staff(), UserId::new(principal.user_id));
    state
        .tree
        .inspect(loan_id, move |loan| {
            (staff || loan.user_id() == caller).then(|| look(loan))
        })
        .await
        .map_err(errors::tree_failure)?
        .ok_or_else(|| ApiError::NotFound("loan not found".into()))
}

/// `look` of the loan `loan_id` if the caller may see it (404 otherwise):
/// from its live actor's memory, or, when it has none, from the loan as the
/// store shows it without its payments (no actor is started, no history read).
async fn shown<R: Send + 'static>(
    state: &AppState,
    principal: Principal,
    loan_id: LoanId,
    look: impl Fn(&Loan) -> R + Send + Sync + 'static,
) -> Result<R, ApiError> {
    let (staff, caller) = (principal.is_staff(), UserId::new(principal.user_id));
    let may_see = move |loan: &Loan| staff || loan.user_id() == caller;
    let look = std::sync::Arc::new(look);
    let in_memory = {
        let look = std::sync::Arc::clone(&look);
        state
            .tree
            .inspect_if_live(loan_id, move |loan| may_see(loan).then(|| look(loan)))
            .await
            .map_err(errors::tree_failure)?
    };
    let seen = match in_memory {
        Some(seen) => seen,
        None => {
            let today = state.clock.today();
            crate::store::loans::get_loan_for_showing(&state.db, loan_id, today)
                .await
                .map_err(ApiError::internal)?
                .filter(|loan| may_see(loan))
                .map(|loan| look(&loan))
        }
    };
    seen.ok_or_else(|| ApiError::NotFound("loan not found".into()))
}

/// Whether the caller may see `loan_id`, from the loan row (for reads that
/// do not go to the actor); 404 otherwise.
async fn listed_loan(
    state: &AppState,
    principal: Principal,
    loan_id: LoanId,
) -> Result<(), ApiError> {
    match loan_access(&state.db, loan_id)
        .await
        .map_err(ApiError::internal)?
    {
        Some((owner, _)) if principal.is_staff() || owner == UserId::new(principal.user_id) => {
            Ok(())
        }
        _ => Err(ApiError::NotFound("loan not found".into())),
    }
}
