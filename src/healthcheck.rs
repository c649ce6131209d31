//! `loan-tracker healthcheck`: asks the local server for `/health`, for
//! container health checks in images that have no curl.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whole-check budget: a health check that hangs is a failed health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Enough of the response to read the status line.
const MAX_RESPONSE_BYTES: usize = 1024;

/// Succeeds when `GET /health` on `http_addr` answers 200.
pub async fn check(http_addr: SocketAddr) -> anyhow::Result<()> {
    let target = match http_addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, v4.port()))
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, v6.port()))
        }
        other => other,
    };
    let status_line = tokio::time::timeout(CHECK_TIMEOUT, fetch_status_line(target))
        .await
        .with_context(|| format!("GET http://{target}/health timed out"))??;
    if !status_line.starts_with("HTTP/1.1 200") {
        bail!("GET http://{target}/health answered {status_line:?}");
    }
    Ok(())
}

async fn fetch_status_line(target: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("connecting to {target} (HTTP_ADDR)"))?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = vec![0u8; MAX_RESPONSE_BYTES];
    let read = stream.read(&mut buffer).await?;
    let response = String::from_utf8_lossy(&buffer[..read]);
    Ok(response.lines().next().unwrap_or_default().to_owned())
}
