//! The HTTP client: hyper 1's pooled client over a connector of our own,
//! which resolves the host itself, checks every address (`guard.rs`) and
//! connects to a checked address — so what is checked is what is connected
//! to, and DNS rebinding cannot get around the check. TLS through the
//! system's OpenSSL (native-tls), as the Redis queue's TLS does. No proxy
//! is read from the environment and no redirect is followed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Uri;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::WebhookError;
use crate::guard::{self, Target};

/// How much of a response body is kept.
pub(crate) const EXCERPT: usize = 1024;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URL or its addresses were refused.
    #[error("{0}")]
    Refused(WebhookError),
    /// No checked address took a connection.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Connecting took too long.
    #[error("connecting to {0} took longer than {1:?}")]
    ConnectTimeout(String, Duration),
    /// The TLS handshake failed.
    #[error("TLS with `{host}` failed: {source}")]
    Tls {
        host: String,
        #[source]
        source: tokio_native_tls::native_tls::Error,
    },
}

/// The connector: resolve, check, connect to the checked address, TLS.
#[derive(Clone)]
pub(crate) struct Connector {
    allow_private: bool,
    connect_timeout: Duration,
    tls: Option<tokio_native_tls::TlsConnector>,
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<TokioIo<Stream>, ConnectError> {
        // The client only calls us for URLs we built from checked ones; the
        // scheme rule (https) was applied then.
        let target = guard::parse_url(&uri.to_string(), false).map_err(ConnectError::Refused)?;
        let addrs = guard::resolve(&target, self.allow_private)
            .await
            .map_err(ConnectError::Refused)?;
        let tcp = self.tcp(&target, &addrs).await?;
        if !target.tls {
            return Ok(TokioIo::new(Stream::Plain(tcp)));
        }
        let Some(tls) = &self.tls else {
            return Err(ConnectError::Refused(WebhookError::Invalid(format!(
                "TLS could not be set up on this machine, so `{}` cannot be reached over https",
                target.host
            ))));
        };
        let stream = tls
            .connect(&target.host, tcp)
            .await
            .map_err(|source| ConnectError::Tls {
                host: target.host.clone(),
                source,
            })?;
        Ok(TokioIo::new(Stream::Tls(Box::new(stream))))
    }

    async fn tcp(&self, target: &Target, addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
        let mut last = None;
        for &addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Ok(Err(source)) => last = Some(ConnectError::Connect { addr, source }),
                Err(_) => {
                    last = Some(ConnectError::ConnectTimeout(
                        addr.to_string(),
                        self.connect_timeout,
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ConnectError::Refused(WebhookError::Invalid(format!(
                "`{}` resolves to no address",
                target.host
            )))
        }))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// A connection: plain TCP or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_native_tls::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The pooled client.
#[derive(Clone)]
pub(crate) struct Client {
    pool: Pool<Connector, Full<Bytes>>,
}

/// What one POST came to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sent {
    /// The status, when a response came.
    pub(crate) status: Option<u16>,
    /// The first KiB of the body.
    pub(crate) response: Option<String>,
    /// Why it failed, in words, when no response came.
    pub(crate) error: Option<String>,
    /// The address was refused (not sent at all).
    pub(crate) refused: bool,
    /// The response's `Retry-After`, when it had one.
    pub(crate) retry_after: Option<Duration>,
    /// From sending to the end of the excerpt.
    pub(crate) latency: Duration,
}

impl Client {
    /// A client; `allow_private` lets it connect to private addresses.
    pub(crate) fn new(allow_private: bool) -> Client {
        let tls = match tokio_native_tls::native_tls::TlsConnector::new() {
            Ok(tls) => Some(tokio_native_tls::TlsConnector::from(tls)),
            Err(e) => {
                tracing::error!(error = %e, "TLS could not be set up: https webhooks will fail");
                None
            }
        };
        let connector = Connector {
            allow_private,
            connect_timeout: Duration::from_secs(10),
            tls,
        };
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(connector);
        Client { pool }
    }

    /// POSTs `body` with `headers` to `target`, everything (connecting,
    /// sending, reading the excerpt) within `timeout`.
    pub(crate) async fn post(
        &self,
        target: &Target,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Sent {
        let started = Instant::now();
        let mut sent =
            match tokio::time::timeout(timeout, self.exchange(target, headers, body)).await {
                Ok(sent) => sent,
                Err(_) => Sent {
                    error: Some(format!(
                        "no response within {}",
                        humantime::format_duration(timeout)
                    )),
                    ..Sent::default()
                },
            };
        sent.latency = started.elapsed();
        sent
    }

    async fn exchange(
        &self,
        target: &Target,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Sent {
        let mut request = hyper::Request::post(target.uri.clone())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("events-webhooks/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => {
                return Sent {
                    error: Some(format!("the request could not be built: {e}")),
                    ..Sent::default()
                };
            }
        };
        match self.pool.request(request).await {
            Ok(response) => read(response).await,
            Err(e) => failed(&e),
        }
    }
}

/// What a client error says, and whether it was a refusal.
fn failed(error: &hyper_util::client::legacy::Error) -> Sent {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(connect) = e.downcast_ref::<ConnectError>() {
            return Sent {
                refused: matches!(connect, ConnectError::Refused(WebhookError::Forbidden(_))),
                error: Some(connect.to_string()),
                ..Sent::default()
            };
        }
        source = e.source();
    }
    Sent {
        error: Some(events_core::error::Chain(error).to_string()),
        ..Sent::default()
    }
}

/// The status, `Retry-After` and first KiB of a response.
async fn read(response: hyper::Response<Incoming>) -> Sent {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = response.into_body();
    let mut excerpt = Vec::new();
    let mut error = None;
    while excerpt.len() < EXCERPT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = EXCERPT - excerpt.len();
                    excerpt.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(e)) => {
                error = Some(format!("the response body broke off: {e}"));
                break;
            }
            None => break,
        }
    }
    Sent {
        status: Some(status),
        response: Some(String::from_utf8_lossy(&excerpt).into_owned()),
        error,
        retry_after,
        ..Sent::default()
    }
}

/// `Retry-After`: whole seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let later = std::time::SystemTime::now() + Duration::from_secs(90);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed <= Duration::from_secs(90) && parsed >= Duration::from_secs(85));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
