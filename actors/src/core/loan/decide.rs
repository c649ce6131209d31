//! `Loan::decide`: checks a command against the state and returns the events it causes.

use chrono::NaiveDate;

use super::command::{LoanCommand, LoanEvent};
use super::ledger;
use super::records::{Allocation, AssessedFee, Installment, PaymentRecord, Reallocation};
use super::{Loan, LoanStatus, MAX_PAYMENTS_PER_LOAN, MAX_TEXT_CHARS};
use crate::core::error::LoanError;
use crate::core::ids::PaymentId;
use crate::core::money::{Money, MoneyError};
use crate::core::schedule;

impl Loan {
    /// Decides `command` on `today`: the events to apply, or why not.
    ///
    /// Pure: reads no clock and changes nothing. Repeating a payment (same id or
    /// reference, same details) yields no events, so a redelivered command is harmless.
    pub fn decide(
        &self,
        command: &LoanCommand,
        today: NaiveDate,
    ) -> Result<Vec<LoanEvent>, LoanError> {
        if self.is_deleted() {
            return Err(LoanError::Deleted);
        }
        match command {
            LoanCommand::Delete => self.decide_delete(),
            LoanCommand::Approve { disbursed_on } => self.decide_approve(*disbursed_on, today),
            LoanCommand::Reject { reason } => {
                self.require_pending("reject")?;
                Ok(vec![LoanEvent::Rejected {
                    reason: checked_text("reason", reason)?,
                }])
            }
            LoanCommand::Cancel => {
                self.require_pending("cancel")?;
                Ok(vec![LoanEvent::Cancelled])
            }
            LoanCommand::ApplyPayment {
                payment_id,
                amount,
                paid_on,
                reference,
                note,
            } => {
                let payment = PaymentRecord {
                    payment_id: *payment_id,
                    amount: *amount,
                    paid_on: *paid_on,
                    reference: reference
                        .as_deref()
                        .map(|text| checked_text("reference", text))
                        .transpose()?,
                    note: note
                        .as_deref()
                        .map(|text| checked_text("note", text))
                        .transpose()?,
                    allocation: Allocation::empty(amount.currency()),
                    reversed_on: None,
                };
                self.decide_payment(payment, today)
            }
            LoanCommand::ReversePayment { payment_id } => self.decide_reversal(*payment_id, today),
            LoanCommand::AssessLateFees { as_of } => self.decide_late_fees(*as_of, today),
            LoanCommand::WriteOff => {
                self.require_repaying("write off")?;
                let figures = self.figures(today);
                Ok(vec![LoanEvent::WrittenOff {
                    principal_outstanding: figures.principal_outstanding,
                    interest_outstanding: figures.interest_outstanding,
                    fees_outstanding: figures.fees_outstanding,
                }])
            }
        }
    }

    /// Only a loan that never moved money may go: `PENDING`, `REJECTED` or
    /// `CANCELLED` (so never disbursed) and without any payment on record.
    fn decide_delete(&self) -> Result<Vec<LoanEvent>, LoanError> {
        let status = self.status();
        let deletable = matches!(
            status,
            LoanStatus::Pending | LoanStatus::Rejected | LoanStatus::Cancelled
        );
        if !deletable || self.payment_count() > 0 {
            return Err(LoanError::InvalidTransition {
                action: "delete",
                status,
            });
        }
        Ok(vec![LoanEvent::Deleted { status }])
    }

    fn decide_approve(
        &self,
        disbursed_on: NaiveDate,
        today: NaiveDate,
    ) -> Result<Vec<LoanEvent>, LoanError> {
        self.require_pending("approve")?;
        if disbursed_on > today {
            return Err(date_error("disbursed_on", disbursed_on, "in the future"));
        }
        if disbursed_on < self.applied_on() {
            return Err(date_error(
                "disbursed_on",
                disbursed_on,
                "before the application",
            ));
        }
        let schedule = schedule::preview(self.terms(), disbursed_on)?;
        let approved = LoanEvent::Approved {
            disbursed_on,
            schedule,
        };
        Ok(self.with_status_change(vec![approved], today))
    }

    fn decide_payment(
        &self,
        mut payment: PaymentRecord,
        today: NaiveDate,
    ) -> Result<Vec<LoanEvent>, LoanError> {
        if self.is_repeat_of_recorded(&payment)? {
            return Ok(Vec::new());
        }
        let disbursed_on = self.require_repaying("accept a payment on")?;
        if self.payment_count() >= MAX_PAYMENTS_PER_LOAN {
            return Err(LoanError::TooManyPayments(MAX_PAYMENTS_PER_LOAN));
        }
        let currency = self.terms().currency();
        if payment.amount.currency() != currency {
            return Err(LoanError::CurrencyMismatch {
                expected: currency,
                found: payment.amount.currency(),
            });
        }
        if payment.amount.is_zero() {
            return Err(MoneyError::Zero.into());
        }
        if payment.paid_on < disbursed_on || payment.paid_on > today {
            return Err(date_error(
                "paid_on",
                payment.paid_on,
                "before disbursement or in the future",
            ));
        }
        let ledger_of = (disbursed_on, currency);
        let latest_live = self
            .payments()
            .iter()
            .filter(|recorded| !recorded.is_reversed())
            .map(|recorded| recorded.paid_on)
            .chain(self.folded().latest_paid_on())
            .max();
        let reallocations = if latest_live.is_none_or(|latest| payment.paid_on >= latest) {
            // Allocated last: nothing else moves.
            payment.allocation = ledger::allocate_last(
                self.installments(),
                payment.amount,
                payment.paid_on,
                ledger_of,
            )?;
            Vec::new()
        } else {
            // Back-dated: later payments move, folded ones must not.
            self.require_after_folded(payment.paid_on)?;
            let mut payments = self.payments().to_vec();
            payments.push(payment.clone());
            let mut allocations =
                ledger::replay(self.installments(), self.payments(), &payments, ledger_of)?;
            payment.allocation = allocations
                .pop()
                .flatten()
                .expect("a live payment is allocated");
            changed_allocations(self.payments(), &allocations)
        };
        let applied = LoanEvent::PaymentApplied {
            payment,
            reallocations,
        };
        Ok(self.with_status_change(vec![applied], today))
    }

    /// A replay that starts after the folded payments is exact only when a
    /// change dated `on` comes after every one of them.
    fn require_after_folded(&self, on: NaiveDate) -> Result<(), LoanError> {
        match self.folded().latest_paid_on() {
            Some(latest) if on <= latest => Err(LoanError::HistoryNeeded),
            _ => Ok(()),
        }
    }

    /// True when `payment` repeats a recorded one (same id, or same reference) with the
    /// same details; a reuse with other details is a conflict.
    fn is_repeat_of_recorded(&self, payment: &PaymentRecord) -> Result<bool, LoanError> {
        let same_reference = |recorded: &PaymentRecord| {
            payment.reference.is_some() && recorded.reference == payment.reference
        };
        let Some(recorded) = self
            .payments()
            .iter()
            .find(|recorded| recorded.payment_id == payment.payment_id || same_reference(recorded))
        else {
            // A folded payment may carry the reference: only its record can tell.
            // (Ids are not kept: the edge makes fresh ones or derives them from
            // a reference or an idempotency key, whose records answer repeats;
            // the store's key refuses any other reuse.)
            return match &payment.reference {
                Some(reference) if self.folded().may_hold_reference(reference) => {
                    Err(LoanError::HistoryNeeded)
                }
                _ => Ok(false),
            };
        };
        // A redelivered bank message may carry another default date: the reference and amount identify it.
        let same_details = recorded.amount == payment.amount
            && (recorded.paid_on == payment.paid_on || same_reference(recorded))
            && (recorded.reference == payment.reference || payment.reference.is_none());
        if same_details {
            Ok(true)
        } else {
            Err(LoanError::DuplicatePayment {
                payment_id: recorded.payment_id,
            })
        }
    }

    fn decide_reversal(
        &self,
        payment_id: PaymentId,
        today: NaiveDate,
    ) -> Result<Vec<LoanEvent>, LoanError> {
        let index = self
            .payments()
            .iter()
            .position(|payment| payment.payment_id == payment_id)
            .ok_or(if self.folded().is_empty() {
                LoanError::UnknownPayment(payment_id)
            } else {
                LoanError::HistoryNeeded
            })?;
        if self.payments()[index].is_reversed() {
            return Err(LoanError::AlreadyReversed(payment_id));
        }
        let disbursed_on = match (self.status(), self.disbursed_on()) {
            (LoanStatus::Approved | LoanStatus::Overdue | LoanStatus::Paid, Some(disbursed_on)) => {
                disbursed_on
            }
            (status, _) => {
                return Err(LoanError::InvalidTransition {
                    action: "reverse a payment on",
                    status,
                });
            }
        };
        let mut payments = self.payments().to_vec();
        payments[index].reversed_on = Some(today);
        // Kept payments are all allocated after the folded ones, so a kept
        // payment's reversal never moves a folded one.
        let allocations = ledger::replay(
            self.installments(),
            self.payments(),
            &payments,
            (disbursed_on, self.terms().currency()),
        )?;
        let reallocations = changed_allocations(self.payments(), &allocations);
        let reversed = LoanEvent::PaymentReversed {
            payment_id,
            reversed_on: today,
            reallocations,
        };
        Ok(self.with_status_change(vec![reversed], today))
    }

    fn decide_late_fees(
        &self,
        as_of: NaiveDate,
        today: NaiveDate,
    ) -> Result<Vec<LoanEvent>, LoanError> {
        let disbursed_on = self.require_repaying("assess late fees on")?;
        if as_of < disbursed_on || as_of > today {
            return Err(date_error(
                "as_of",
                as_of,
                "before disbursement or in the future",
            ));
        }
        let fees = self.late_fees_due(as_of)?;
        if fees.is_empty() {
            return Ok(self.with_status_change(Vec::new(), as_of));
        }
        // A payment dated on or after `as_of` may now pay the fee: a folded one must not be.
        self.require_after_folded(as_of)?;
        let mut installments: Vec<Installment> = self.installments().to_vec();
        for fee in &fees {
            let installment = &mut installments[usize::from(fee.seq) - 1];
            installment.late_fee = fee.fee;
            installment.late_fee_assessed_on = Some(as_of);
        }
        let allocations = ledger::replay(
            &installments,
            self.payments(),
            self.payments(),
            (disbursed_on, self.terms().currency()),
        )?;
        let reallocations = changed_allocations(self.payments(), &allocations);
        let assessed = LoanEvent::LateFeesAssessed {
            as_of,
            fees,
            reallocations,
        };
        Ok(self.with_status_change(vec![assessed], as_of))
    }

    /// Installments more than `grace_days` past due on `as_of`, principal or interest
    /// unpaid (late fees ignored: no pyramiding), and never charged a fee before.
    /// Lateness is judged fee-blind, but the fee is `late_fee_rate` % of the
    /// installment's principal and interest actually unpaid (SPEC §3): money
    /// that went to an earlier fee did not pay this installment.
    fn late_fees_due(&self, as_of: NaiveDate) -> Result<Vec<AssessedFee>, LoanError> {
        let currency = self.terms().currency();
        let grace_days = i64::from(self.terms().grace_days().get());
        let unpaid =
            ledger::fee_blind_unpaid(self.installments(), (self.payments(), self.folded()), as_of);
        let mut fees = Vec::new();
        for (installment, unpaid) in self.installments().iter().zip(unpaid) {
            let days_late = (as_of - installment.due_date).num_days();
            if installment.late_fee_assessed_on.is_some() || days_late <= grace_days || unpaid == 0
            {
                continue;
            }
            let actually_unpaid =
                installment.principal_unpaid_minor() + installment.interest_unpaid_minor();
            let base = Money::from_minor(actually_unpaid, currency)?;
            let fee = base.percent_of(self.terms().late_fee_rate().percent())?;
            // A fee that rounds to nothing is not worth an event.
            if !fee.is_zero() {
                fees.push(AssessedFee {
                    seq: installment.seq,
                    base,
                    fee,
                });
            }
        }
        Ok(fees)
    }

    /// Appends the status event the new state calls for on `as_of`, judged on a projection.
    fn with_status_change(&self, mut events: Vec<LoanEvent>, as_of: NaiveDate) -> Vec<LoanEvent> {
        let mut projected = self.clone();
        for event in &events {
            projected.apply(event);
        }
        events.extend(projected.status_change(as_of));
        events
    }

    fn require_pending(&self, action: &'static str) -> Result<(), LoanError> {
        match self.status() {
            LoanStatus::Pending => Ok(()),
            status => Err(LoanError::InvalidTransition { action, status }),
        }
    }
}

/// Payments whose replayed allocation differs from the recorded one (reversed ones excluded).
fn changed_allocations(
    recorded: &[PaymentRecord],
    replayed: &[Option<Allocation>],
) -> Vec<Reallocation> {
    recorded
        .iter()
        .zip(replayed)
        .filter_map(|(payment, allocation)| match allocation {
            Some(allocation) if *allocation != payment.allocation => Some(Reallocation {
                payment_id: payment.payment_id,
                allocation: allocation.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Trimmed free text of 1 to [`MAX_TEXT_CHARS`] characters.
fn checked_text(field: &'static str, text: &str) -> Result<String, LoanError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(LoanError::BadText {
            field,
            max_chars: MAX_TEXT_CHARS,
        });
    }
    Ok(trimmed.to_owned())
}

fn date_error(field: &'static str, date: NaiveDate, reason: &'static str) -> LoanError {
    LoanError::DateOutOfRange {
        field,
        date,
        reason,
    }
}
