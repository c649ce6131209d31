//! A minimal SMTP server for tests: speaks enough of RFC 5321 for lettre,
//! records each message, and can refuse the first N with a transient 451.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// RCPT TO addresses.
    pub recipients: Vec<String>,
    /// The DATA section.
    pub data: String,
}

/// A running SMTP sink.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:<port>`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    /// Starts a sink that refuses the first `refuse_first` messages with 451.
    pub async fn start(refuse_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(Mutex::new(refuse_first));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, store.clone(), refusals.clone()));
            }
        });
        Self { url, received }
    }

    /// Messages accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Received>>>,
    refusals: Arc<Mutex<usize>>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 test-sink ESMTP\r\n").await;
    let mut recipients = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-test-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:") {
            recipients.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            let _ = write.write_all(b"354 go on\r\n").await;
            let mut data = String::new();
            while let Ok(Some(body_line)) = lines.next_line().await {
                if body_line == "." {
                    break;
                }
                data.push_str(&body_line);
                data.push('\n');
            }
            let refuse = {
                let mut left = refusals.lock().unwrap();
                let refuse = *left > 0;
                *left = left.saturating_sub(1);
                refuse
            };
            if refuse {
                b"451 try again later\r\n"
            } else {
                store.lock().unwrap().push(Received {
                    recipients: std::mem::take(&mut recipients),
                    data,
                });
                b"250 queued\r\n"
            }
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
