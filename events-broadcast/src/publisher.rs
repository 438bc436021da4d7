//! Publishing from a process that serves no sockets (a worker, a web
//! process behind a load balancer): through a broadcast server's HTTP API
//! (`POST /apps/{id}/events`, signed as Pusher signs it), or straight into
//! the servers' Redis (feature `redis`), as the configuration chooses.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, Uri, header};
use events_core::Config;
use events_core::broadcast::Broadcast;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::app::{App, REDIS_URL_VAR, setting};
use crate::{BuildError, protocol, sign};

/// The variable naming the broadcast server's host for publishing through
/// its HTTP API (`REVERB_HOST` too).
pub const HOST_VAR: &str = "EVENTS_BROADCAST_HOST";
/// The variable naming the broadcast server's port (`REVERB_PORT` too;
/// default 80 for `http`, 443 for `https`).
pub const PORT_VAR: &str = "EVENTS_BROADCAST_PORT";
/// The variable naming the scheme the server's HTTP API speaks, `http` or
/// `https` (`REVERB_SCHEME` too; default `http`).
pub const SCHEME_VAR: &str = "EVENTS_BROADCAST_SCHEME";
/// The variable choosing how a process that serves no sockets publishes,
/// `http` or `redis`, when both are configured.
pub const VIA_VAR: &str = "EVENTS_BROADCAST_VIA";

inventory::submit! {
    events_core::config::Var::new(
        HOST_VAR,
        "The broadcast server's host: a process that serves no sockets (a worker) publishes through its HTTP API, http(s)://host:port/apps/{id}/events.",
    )
    .aliases(&["REVERB_HOST"])
}

inventory::submit! {
    events_core::config::Var::new(
        PORT_VAR,
        "The broadcast server's port for publishing through its HTTP API (default 80 with http, 443 with https).",
    )
    .aliases(&["REVERB_PORT"])
}

inventory::submit! {
    events_core::config::Var::new(
        SCHEME_VAR,
        "`http` or `https`: how the broadcast server's HTTP API is reached (default http).",
    )
    .aliases(&["REVERB_SCHEME"])
}

inventory::submit! {
    events_core::config::Var::new(
        VIA_VAR,
        "How a process that serves no sockets publishes broadcasts: `http` (EVENTS_BROADCAST_HOST) or `redis` (EVENTS_BROADCAST_REDIS_URL); needed only when both are set.",
    )
}

/// How long one request to the server may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many idle connections to the server are kept.
const IDLE: usize = 8;

/// Where a process that serves no sockets publishes `#[event(broadcast)]`
/// events: a [`Publish`](events_core::broadcast::Publish) to give as
/// [`Broadcasts`](events_core::broadcast::Broadcasts) state.
///
/// [`from_config`](Self::from_config) chooses from the configuration;
/// [`configured`](Self::configured) does so at the first broadcast (what
/// `events::cli::commands()` gives `work`). Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use events_broadcast::{App, Publisher};
/// let publisher = Publisher::http("http://broadcast.internal:8080", App::new("1", "key", "secret"))?;
/// let worker_state = events_core::broadcast::Broadcasts::new(publisher);
/// # let _ = worker_state; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Publisher {
    route: Arc<Route>,
}

enum Route {
    Http(HttpApi),
    #[cfg(feature = "redis")]
    Redis(crate::redis::RedisPublisher),
    Configured(tokio::sync::OnceCell<Publisher>),
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Publisher").field(&self.describe()).finish()
    }
}

impl Publisher {
    /// Publishes through the HTTP API of the broadcast server at `url`
    /// (`http://host[:port][/path]`; `https://` too), for `app`, whose key
    /// and secret sign each request. A broadcast to more than 100 channels
    /// goes out in requests of 100 (Pusher's limit); when a later one
    /// fails, the job's retry sends the earlier ones again.
    pub fn http(url: &str, app: App) -> Result<Publisher, BuildError> {
        Ok(Publisher {
            route: Arc::new(Route::Http(HttpApi::new(url, app)?)),
        })
    }

    /// Publishes into the Redis the servers fan out through
    /// (`redis://host:port/db?prefix=name`, the servers' own
    /// `EVENTS_BROADCAST_REDIS_URL`), for the app `app_id`: every node
    /// delivers to its sockets, and no server is asked.
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str, app_id: impl Into<String>) -> Result<Publisher, BuildError> {
        Ok(Publisher {
            route: Arc::new(Route::Redis(
                crate::redis::RedisPublisher::connect(url, app_id.into()).await?,
            )),
        })
    }

    /// The publisher `config` describes: the app
    /// (`EVENTS_BROADCAST_APP_*` or `REVERB_APP_*`), and either the
    /// server's HTTP API (`EVENTS_BROADCAST_HOST`, `_PORT`, `_SCHEME`, or
    /// Laravel's `REVERB_HOST`, `REVERB_PORT`, `REVERB_SCHEME`) or the
    /// servers' Redis (`EVENTS_BROADCAST_REDIS_URL`); when both are set,
    /// `EVENTS_BROADCAST_VIA` (`http` or `redis`) chooses.
    ///
    /// ```
    /// use events_core::Config;
    /// let config = Config::from_vars([
    ///     ("REVERB_APP_ID", "1"), ("REVERB_APP_KEY", "k"), ("REVERB_APP_SECRET", "s"),
    ///     ("REVERB_HOST", "broadcast.internal"), ("REVERB_PORT", "8080"),
    /// ])?;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let publisher = events_broadcast::Publisher::from_config(&config).await?;
    /// assert_eq!(publisher.describe(), "the HTTP API of http://broadcast.internal:8080 (app 1)");
    /// # Ok::<(), events_broadcast::BuildError>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn from_config(config: &Config) -> Result<Publisher, BuildError> {
        let app = App::from_config(config)?.ok_or_else(|| {
            BuildError::Publisher(
                "no app to publish for: set EVENTS_BROADCAST_APP_ID, _KEY and _SECRET (or REVERB_APP_*), as the server has them".into(),
            )
        })?;
        let host = setting(config, HOST_VAR);
        let redis = setting(config, REDIS_URL_VAR);
        let via = setting(config, VIA_VAR).map(|v| v.to_ascii_lowercase());
        let http = |host: String| -> Result<Publisher, BuildError> {
            let scheme = setting(config, SCHEME_VAR).unwrap_or_else(|| "http".into());
            let url = match setting(config, PORT_VAR) {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            };
            Publisher::http(&url, app.clone())
        };
        match (via.as_deref(), host, redis) {
            (Some("http"), Some(host), _) | (None, Some(host), None) => http(host),
            (Some("redis"), _, Some(url)) | (None, None, Some(url)) => {
                Publisher::through_redis(&url, app.id()).await
            }
            (Some("http"), None, _) => Err(BuildError::Publisher(format!(
                "{VIA_VAR}=http, but {HOST_VAR} (or REVERB_HOST) is not set: name the broadcast server"
            ))),
            (Some("redis"), _, None) => Err(BuildError::Publisher(format!(
                "{VIA_VAR}=redis, but {REDIS_URL_VAR} is not set: name the servers' Redis"
            ))),
            (Some(other), _, _) => Err(BuildError::Publisher(format!(
                "{VIA_VAR} is `{other}`: it is `http` or `redis`"
            ))),
            (None, Some(_), Some(_)) => Err(BuildError::Publisher(format!(
                "both {HOST_VAR} (or REVERB_HOST) and {REDIS_URL_VAR} are set: choose how to publish with {VIA_VAR}=http or {VIA_VAR}=redis"
            ))),
            (None, None, None) => Err(BuildError::Publisher(format!(
                "nowhere to publish: set {HOST_VAR} (with _PORT and _SCHEME, or Laravel's REVERB_HOST, REVERB_PORT, REVERB_SCHEME) for the server's HTTP API, or {REDIS_URL_VAR} for the servers' Redis"
            ))),
        }
    }

    #[cfg(feature = "redis")]
    async fn through_redis(url: &str, app: &str) -> Result<Publisher, BuildError> {
        Publisher::redis(url, app).await
    }

    #[cfg(not(feature = "redis"))]
    async fn through_redis(_url: &str, _app: &str) -> Result<Publisher, BuildError> {
        Err(BuildError::Redis(format!(
            "{REDIS_URL_VAR} is set, but this build cannot publish through Redis: turn on the `redis` feature of events-broadcast (or publish through the HTTP API with {HOST_VAR})"
        )))
    }

    /// The publisher the process's environment describes (see
    /// [`from_config`](Self::from_config)), read and connected at the first
    /// broadcast: until then nothing is asked of the environment, and a
    /// mistake there fails each broadcast job in words (and is tried again
    /// on the next, so a fixed Redis is found).
    pub fn configured() -> Publisher {
        Publisher {
            route: Arc::new(Route::Configured(tokio::sync::OnceCell::new())),
        }
    }

    /// Where it publishes, in words: `the HTTP API of http://host:port (app
    /// 1)`, `Redis at redis://host:6379/0, prefix events (app 1)`.
    pub fn describe(&self) -> String {
        match &*self.route {
            Route::Http(api) => format!("the HTTP API of {} (app {})", api.base, api.app.id()),
            #[cfg(feature = "redis")]
            Route::Redis(redis) => redis.describe(),
            Route::Configured(cell) => match cell.get() {
                Some(publisher) => publisher.describe(),
                None => "the configuration's choice, at the first broadcast".into(),
            },
        }
    }

    /// Publishes `broadcast`: checks it and writes its data once, then
    /// hands it to the route.
    async fn send(&self, broadcast: &Broadcast) -> Result<(), events_core::BoxError> {
        protocol::validate_targets(&broadcast.channels, broadcast.except.as_deref())?;
        let data = serde_json::to_string(&broadcast.data)?;
        self.deliver(broadcast, data).await
    }

    /// Sends the checked `broadcast` with its `data` on this route (boxed:
    /// [`Route::Configured`] goes on to the route it makes).
    fn deliver<'a>(
        &'a self,
        broadcast: &'a Broadcast,
        data: String,
    ) -> futures_util::future::BoxFuture<'a, Result<(), events_core::BoxError>> {
        Box::pin(async move {
            match &*self.route {
                Route::Http(api) => api.publish(broadcast, &data).await,
                #[cfg(feature = "redis")]
                Route::Redis(redis) => Ok(redis.publish(broadcast, data).await?),
                Route::Configured(cell) => {
                    let publisher = cell
                        .get_or_try_init(|| async {
                            let config = Config::from_env()?;
                            let publisher = Publisher::from_config(&config).await?;
                            tracing::info!(
                                "broadcasts are published through {}",
                                publisher.describe()
                            );
                            Ok::<_, events_core::BoxError>(publisher)
                        })
                        .await?;
                    publisher.deliver(broadcast, data).await
                }
            }
        })
    }
}

#[async_trait::async_trait]
impl events_core::broadcast::Publish for Publisher {
    async fn publish(&self, broadcast: &Broadcast) -> Result<(), events_core::BoxError> {
        self.send(broadcast).await
    }
}

/// A stream to the server, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The server's HTTP API, over a few kept-alive HTTP/1.1 connections.
struct HttpApi {
    /// `http://host:port`, as said in words.
    base: String,
    host: String,
    port: u16,
    /// The path the server is mounted under (`""` at the root).
    path: String,
    tls: Option<tokio_native_tls::TlsConnector>,
    app: App,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl HttpApi {
    fn new(url: &str, app: App) -> Result<HttpApi, BuildError> {
        let bad =
            |why: &str| BuildError::Publisher(format!("the broadcast server's URL `{url}` {why}"));
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("is not a URL: write http://host:port"))?;
        let secure = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(bad(&format!("has the scheme `{other}`: use http or https")));
            }
            None => return Err(bad("has no scheme: write http://host:port")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if uri.query().is_some() {
            return Err(bad(
                "has a query: the API's paths and signatures are added to it",
            ));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(BuildError::Publisher(
                "the broadcast server's URL names a user: leave it out (requests are signed with the app's secret)"
                    .into(),
            ));
        }
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls = if secure {
            let connector = tokio_native_tls::native_tls::TlsConnector::new()
                .map_err(|e| bad(&format!("needs TLS, which cannot start here: {e}")))?;
            Some(tokio_native_tls::TlsConnector::from(connector))
        } else {
            None
        };
        let scheme = if secure { "https" } else { "http" };
        Ok(HttpApi {
            base: format!(
                "{scheme}://{}",
                uri.authority().map_or(host.as_str(), |a| a.as_str())
            ),
            path: uri.path().trim_end_matches('/').to_owned(),
            host,
            port,
            tls,
            app,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, events_core::BoxError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to the broadcast server at {}: {e}",
                    self.base
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some(tls) => Box::new(
                tls.connect(&self.host, tcp)
                    .await
                    .map_err(|e| format!("TLS with the broadcast server at {}: {e}", self.base))?,
            ),
            None => Box::new(tcp),
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with the broadcast server at {}: {e}", self.base))?;
        tokio::spawn(async move {
            // Ends when the server or the pool lets the connection go.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// An idle connection that still works, or none.
    fn reuse(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn keep(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE {
            idle.push(sender);
        }
    }

    async fn publish(
        &self,
        broadcast: &Broadcast,
        data: &str,
    ) -> Result<(), events_core::BoxError> {
        let path = format!("{}/apps/{}/events", self.path, self.app.id());
        for channels in broadcast.channels.chunks(protocol::MAX_EVENT_CHANNELS) {
            let channels: Vec<&str> = channels.iter().map(AsRef::as_ref).collect();
            let mut body = serde_json::json!({
                "name": broadcast.name,
                "channels": channels,
                "data": data,
            });
            if let Some(socket) = &broadcast.except {
                body["socket_id"] = socket.as_str().into();
            }
            let body = Bytes::from(serde_json::to_vec(&body)?);
            let query = sign::signed_query(
                self.app.key(),
                self.app.secret(),
                "POST",
                &path,
                &[],
                &body,
                sign::now_seconds(),
            );
            let target = format!("{path}?{query}");
            tokio::time::timeout(REQUEST_TIMEOUT, self.post(&target, body))
                .await
                .map_err(|_| {
                    format!(
                        "the broadcast server at {} did not answer within {} s",
                        self.base,
                        REQUEST_TIMEOUT.as_secs()
                    )
                })??;
        }
        Ok(())
    }

    /// One POST; on a kept connection the server had closed, once more on
    /// a new one.
    async fn post(&self, target: &str, body: Bytes) -> Result<(), events_core::BoxError> {
        let request = |body: Bytes| {
            Request::builder()
                .method(Method::POST)
                .uri(target)
                .header(
                    header::HOST,
                    self.base.split_once("://").map_or("", |(_, a)| a),
                )
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
        };
        let (mut sender, reused) = match self.reuse() {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let mut sent = send(&mut sender, request(body.clone())?).await;
        if sent.is_err() && reused {
            // The server had closed the kept connection: once more, on a
            // new one.
            sender = self.connect().await?;
            sent = send(&mut sender, request(body)?).await;
        }
        let response = sent.map_err(|e| format!("the broadcast server at {}: {e}", self.base))?;
        let status = response.status();
        let text = response.into_body().collect().await?.to_bytes();
        if status == StatusCode::OK {
            self.keep(sender);
            return Ok(());
        }
        let text = String::from_utf8_lossy(&text);
        let text: String = text.trim().chars().take(300).collect();
        Err(format!(
            "the broadcast server at {} refused the broadcast ({status}): {text}",
            self.base
        )
        .into())
    }
}

/// One request on `sender`, once it is ready.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
    sender.ready().await?;
    sender.send_request(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: [(&str, &str); 3] = [
        ("REVERB_APP_ID", "7"),
        ("REVERB_APP_KEY", "k"),
        ("REVERB_APP_SECRET", "s"),
    ];

    async fn from(vars: &[(&str, &str)]) -> Result<Publisher, String> {
        let config = Config::from_vars(APP.iter().chain(vars).copied()).expect("valid variables");
        Publisher::from_config(&config)
            .await
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn the_configuration_chooses_how_to_publish() {
        let laravel = from(&[
            ("REVERB_HOST", "ws.internal"),
            ("REVERB_PORT", "8080"),
            ("REVERB_SCHEME", "http"),
        ])
        .await
        .expect("Laravel's names");
        assert_eq!(
            laravel.describe(),
            "the HTTP API of http://ws.internal:8080 (app 7)"
        );
        let ours = from(&[("EVENTS_BROADCAST_HOST", "ws.internal")])
            .await
            .expect("a host alone");
        assert_eq!(
            ours.describe(),
            "the HTTP API of http://ws.internal (app 7)"
        );
        let secure = from(&[
            ("EVENTS_BROADCAST_HOST", "ws.example.com"),
            ("EVENTS_BROADCAST_SCHEME", "https"),
        ])
        .await
        .expect("https");
        assert_eq!(
            secure.describe(),
            "the HTTP API of https://ws.example.com (app 7)"
        );
        let chosen = from(&[
            ("EVENTS_BROADCAST_HOST", "ws.internal"),
            ("EVENTS_BROADCAST_REDIS_URL", "redis://127.0.0.1:1"),
            ("EVENTS_BROADCAST_VIA", "http"),
        ])
        .await
        .expect("VIA chooses http");
        assert!(chosen.describe().starts_with("the HTTP API"));
    }

    #[tokio::test]
    async fn what_cannot_work_is_said_in_words() {
        for (vars, words) in [
            (&[][..], "nowhere to publish: set EVENTS_BROADCAST_HOST"),
            (
                &[
                    ("EVENTS_BROADCAST_HOST", "h"),
                    ("EVENTS_BROADCAST_REDIS_URL", "redis://h"),
                ][..],
                "choose how to publish with EVENTS_BROADCAST_VIA=http or EVENTS_BROADCAST_VIA=redis",
            ),
            (
                &[("EVENTS_BROADCAST_VIA", "http")][..],
                "EVENTS_BROADCAST_VIA=http, but EVENTS_BROADCAST_HOST",
            ),
            (
                &[("EVENTS_BROADCAST_VIA", "redis"), ("REVERB_HOST", "h")][..],
                "EVENTS_BROADCAST_VIA=redis, but EVENTS_BROADCAST_REDIS_URL is not set",
            ),
            (
                &[("EVENTS_BROADCAST_VIA", "pigeon"), ("REVERB_HOST", "h")][..],
                "EVENTS_BROADCAST_VIA is `pigeon`: it is `http` or `redis`",
            ),
            (
                &[("REVERB_HOST", "h"), ("REVERB_SCHEME", "ws")][..],
                "has the scheme `ws`: use http or https",
            ),
        ] {
            let error = from(vars).await.expect_err(words);
            assert!(error.contains(words), "{vars:?}: {error}");
        }
        let config = Config::from_vars([("REVERB_HOST", "h")]).expect("valid");
        let error = Publisher::from_config(&config)
            .await
            .expect_err("no app")
            .to_string();
        assert!(error.contains("no app to publish for"), "{error}");
    }

    #[tokio::test]
    async fn configured_waits_for_the_first_broadcast() {
        let publisher = Publisher::configured();
        assert_eq!(
            publisher.describe(),
            "the configuration's choice, at the first broadcast"
        );
    }
}
