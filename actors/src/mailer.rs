//! The seam to e-mail delivery. Adapters (SMTP, `.eml` files) live in the
//! `loan-tracker` crate.

use thiserror::Error;

use crate::store::BoxFuture;

/// One plain-text e-mail to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The `Message-ID` header, angle brackets included (`<id@domain>`). Every
    /// attempt to send the same e-mail carries the same one, so a receiving
    /// system can recognise a second copy.
    pub message_id: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why an e-mail was not sent.
#[derive(Debug, Error)]
pub enum MailError {
    /// The message can never be sent (bad address): retrying is pointless.
    #[error("undeliverable e-mail: {0}")]
    Permanent(String),
    /// The server or the network failed; a later attempt may succeed.
    #[error("sending e-mail failed: {0}")]
    Transient(String),
}

/// Sends e-mail.
pub trait Mailer: Send + Sync + 'static {
    /// Delivers `email` to the transport (SMTP server or mail directory).
    fn send(&self, email: OutgoingEmail) -> BoxFuture<'_, Result<(), MailError>>;
}
