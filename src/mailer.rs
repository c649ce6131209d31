//! E-mail adapters: SMTP (`SMTP_URL`) or `.eml` files under `DATA_DIR/mail`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actors::mailer::{MailError, Mailer, OutgoingEmail};
use actors::store::BoxFuture;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::Settings;

/// Longest a whole SMTP send may take (lettre's own timeout covers only the connect).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the mailer the settings select.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Mailer>> {
    let from: Mailbox = settings
        .mail_from
        .parse()
        .map_err(|error| anyhow::anyhow!("MAIL_FROM: {error}"))?;
    match &settings.smtp_url {
        Some(url) => {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                .map_err(|error| anyhow::anyhow!("SMTP_URL: {error}"))?
                .timeout(Some(SEND_TIMEOUT))
                .build();
            Ok(Arc::new(SmtpMailer { transport, from }))
        }
        None => {
            let dir = settings.data_dir.join("mail");
            std::fs::create_dir_all(&dir)
                .map_err(|error| anyhow::anyhow!("creating {}: {error}", dir.display()))?;
            Ok(Arc::new(FileMailer {
                transport: AsyncFileTransport::new(&dir),
                dir,
                from,
            }))
        }
    }
}

fn message(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, MailError> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|error| MailError::Permanent(format!("recipient {:?}: {error}", email.to)))?;
    Message::builder()
        .message_id(Some(email.message_id.clone()))
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone())
        .map_err(|error| MailError::Permanent(error.to_string()))
}

/// Sends through an SMTP server.
struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer for SmtpMailer {
    fn send(&self, email: OutgoingEmail) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(async move {
            let message = message(&self.from, &email)?;
            match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
                Err(_) => Err(MailError::Transient(format!(
                    "no answer from the SMTP server within {SEND_TIMEOUT:?}"
                ))),
                Ok(Err(error)) if error.is_permanent() => {
                    Err(MailError::Permanent(error.to_string()))
                }
                Ok(Err(error)) => Err(MailError::Transient(error.to_string())),
                Ok(Ok(_)) => Ok(()),
            }
        })
    }
}

/// Writes each message as an `.eml` file (the embedded default).
struct FileMailer {
    transport: AsyncFileTransport<Tokio1Executor>,
    dir: PathBuf,
    from: Mailbox,
}

impl Mailer for FileMailer {
    fn send(&self, email: OutgoingEmail) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(async move {
            let message = message(&self.from, &email)?;
            self.transport
                .send(message)
                .await
                .map(drop)
                .map_err(|error| {
                    MailError::Transient(format!("writing to {}: {error}", self.dir.display()))
                })
        })
    }
}
