//! Identifiers chosen by the caller: the core generates nothing random.

use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID chosen by the caller (the edge or the store).
            pub fn new(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a loan.
    LoanId
);
uuid_id!(
    /// Identifies a payment; repeating a payment with the same id is a no-op.
    PaymentId
);
uuid_id!(
    /// Identifies the borrower a loan belongs to.
    UserId
);
