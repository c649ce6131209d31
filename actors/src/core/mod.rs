//! The pure loan domain: money, terms, schedules, allocation and the loan aggregate.
