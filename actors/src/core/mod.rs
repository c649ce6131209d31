//! The pure loan domain: money, terms, schedules, allocation and the loan aggregate.
//!
//! Everything here is plain synchronous Rust: no IO, no async, no clock, no
//! randomness (ids and dates come from the caller). A test scans these files to
//! keep it that way. Entry points: [`Loan::apply_for`], [`Loan::decide`],
//! [`Loan::apply`], [`Loan::snapshot`] / [`Loan::restore`], [`schedule::preview`].

pub mod disclosure;
pub mod error;
pub mod ids;
pub mod loan;
pub mod money;
pub mod rate;
pub mod schedule;
pub mod terms;

pub use error::{ErrorKind, LoanError};
pub use ids::{LoanId, PaymentId, UserId};
pub use loan::{
    Allocation, AllocationLine, AssessedFee, FoldedPayments, Installment, InstallmentStatus,
    InstallmentView, Loan, LoanCommand, LoanEvent, LoanFigures, LoanSnapshot, LoanStatus,
    PaymentRecord, PayoffQuote, Reallocation,
};
pub use money::{Currency, Money, MoneyError};
pub use rate::{Rate, RateError};
pub use schedule::{ScheduledInstallment, preview};
pub use terms::{DayCount, Frequency, GraceDays, LoanTerms, RepaymentMethod, TermMonths};
