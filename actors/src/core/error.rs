//! `LoanError`: every way the loan domain refuses a command, with the kind the edge maps to a status.

use chrono::NaiveDate;

use super::ids::PaymentId;
use super::loan::LoanStatus;
use super::money::{Currency, Money, MoneyError};
use super::rate::RateError;

/// How the HTTP edge answers a [`LoanError`]: one match on this instead of on every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input (amount, rate, term, date): `422 Unprocessable Content`.
    Invalid,
    /// Valid input the loan's current state refuses: `409 Conflict`.
    Conflict,
    /// The command names something the loan does not have: `404 Not Found`.
    NotFound,
    /// A stored snapshot breaks an invariant: `500`, never the caller's fault.
    Corrupt,
}

impl ErrorKind {
    /// The HTTP status the edge answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 422,
            ErrorKind::Conflict => 409,
            ErrorKind::NotFound => 404,
            ErrorKind::Corrupt => 500,
        }
    }
}

/// Why the loan domain refused a command or a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoanError {
    /// An amount or currency was malformed or out of range.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A rate was malformed or out of range.
    #[error("{field}: {source}")]
    Rate {
        /// Which rate: `annual_interest_rate` or `late_fee_rate`.
        field: &'static str,
        /// What was wrong with it.
        source: RateError,
    },
    /// A bounded number (term months, grace days, principal) is out of its range.
    #[error("{field} must be between {min} and {max}")]
    OutOfRange {
        /// The field name as the API spells it.
        field: &'static str,
        /// Lowest allowed value.
        min: i64,
        /// Highest allowed value.
        max: i64,
    },
    /// The repayment method is not `annuity`, `equal_principal` or `flat`.
    #[error("unknown repayment method {0:?}")]
    UnknownRepaymentMethod(String),
    /// A status name that is not one of `PENDING`, `APPROVED`, … (e.g. a `?status=` filter).
    #[error("unknown loan status {0:?}")]
    UnknownStatus(String),
    /// An amount is in another currency than the loan.
    #[error("amount is in {found}, the loan is in {expected}")]
    CurrencyMismatch {
        /// The loan's currency.
        expected: Currency,
        /// The amount's currency.
        found: Currency,
    },
    /// A payment is larger than everything payable on its date.
    #[error("payment of {amount} exceeds the {payable} outstanding")]
    Overpayment {
        /// The payment amount.
        amount: Money,
        /// What could be paid on that date.
        payable: Money,
    },
    /// A date is outside the window the command allows (e.g. a payment before disbursement).
    #[error("{field} {date} is out of range: {reason}")]
    DateOutOfRange {
        /// The field name as the API spells it.
        field: &'static str,
        /// The date given.
        date: NaiveDate,
        /// Which bound it broke.
        reason: &'static str,
    },
    /// A free-text field (reason, reference) is empty or too long.
    #[error("{field} must be 1 to {max_chars} characters")]
    BadText {
        /// The field name as the API spells it.
        field: &'static str,
        /// Longest allowed length.
        max_chars: usize,
    },
    /// The command is not allowed in the loan's current status.
    #[error("cannot {action} a loan that is {status}")]
    InvalidTransition {
        /// What was attempted, e.g. `approve`.
        action: &'static str,
        /// The loan's status.
        status: LoanStatus,
    },
    /// A payment id or external reference was reused with different content.
    #[error("payment {payment_id} already exists with different details")]
    DuplicatePayment {
        /// The recorded payment with that id or reference.
        payment_id: PaymentId,
    },
    /// The payment has already been reversed.
    #[error("payment {0} is already reversed")]
    AlreadyReversed(PaymentId),
    /// The loan has reached its limit of recorded payments.
    #[error("the loan has reached {0} payments")]
    TooManyPayments(usize),
    /// The loan was deleted; it answers as if it never existed.
    #[error("loan not found (deleted)")]
    Deleted,
    /// No payment with this id on this loan.
    #[error("no payment {0} on this loan")]
    UnknownPayment(PaymentId),
    /// Exact-decimal interest math overflowed; only reachable with extreme terms.
    #[error("interest calculation overflowed")]
    ArithmeticOverflow,
    /// The command needs payments the loan folded out of memory: decide it
    /// again on the full history (the loan actor does; never an answer).
    #[error("the command needs the loan's full payment history")]
    HistoryNeeded,
    /// Not one of `monthly`, `biweekly`, `weekly`.
    #[error("unknown repayment frequency {0:?}: monthly, biweekly or weekly")]
    UnknownFrequency(String),
    /// Not one of `30/360`, `actual/365`, `actual/360`.
    #[error("unknown day count {0:?}: 30/360, actual/365 or actual/360")]
    UnknownDayCount(String),
    /// A stored snapshot breaks an invariant.
    #[error("corrupt loan snapshot: {0}")]
    CorruptSnapshot(String),
}

impl LoanError {
    /// How the edge should answer: see [`ErrorKind::http_status`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            LoanError::Money(_)
            | LoanError::Rate { .. }
            | LoanError::OutOfRange { .. }
            | LoanError::UnknownRepaymentMethod(_)
            | LoanError::UnknownFrequency(_)
            | LoanError::UnknownDayCount(_)
            | LoanError::UnknownStatus(_)
            | LoanError::CurrencyMismatch { .. }
            | LoanError::Overpayment { .. }
            | LoanError::DateOutOfRange { .. }
            | LoanError::BadText { .. }
            | LoanError::ArithmeticOverflow => ErrorKind::Invalid,
            LoanError::InvalidTransition { .. }
            | LoanError::DuplicatePayment { .. }
            | LoanError::AlreadyReversed(_)
            | LoanError::TooManyPayments(_) => ErrorKind::Conflict,
            LoanError::UnknownPayment(_) | LoanError::Deleted => ErrorKind::NotFound,
            LoanError::CorruptSnapshot(_) | LoanError::HistoryNeeded => ErrorKind::Corrupt,
        }
    }
}
