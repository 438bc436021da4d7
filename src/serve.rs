//! What `cli serve` runs: every server part compiled into the facade, on
//! one port (the dashboard at `/dashboard`, the event log's API at
//! `/events`, metrics at `/metrics`, the broadcast server at `/app/{key}`,
//! `/apps/{id}` and `/broadcasting/auth`).

use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "metrics")]
use std::time::Duration;

use events_core::Config;
use events_core::cli::{ServeFuture, Server};
use events_core::queue::Queue;
use events_core::store::Store;

#[cfg(all(feature = "broadcast", not(feature = "http")))]
use crate::broadcast::axum;
#[cfg(all(
    feature = "dashboard",
    not(any(feature = "http", feature = "broadcast"))
))]
use events_dashboard::axum;
#[cfg(feature = "http")]
use events_http::axum;

/// The server parts of this build, for [`Commands::server`](events_core::cli::Commands::server).
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts;

/// The start line's words for the broadcast server under `config`.
#[cfg(feature = "broadcast")]
fn broadcast_part(config: &Config) -> String {
    use crate::broadcast::App;
    match App::from_config(config) {
        Ok(Some(app)) => format!(
            "broadcasting at /app/{} with its API at /apps/{} and auth at /broadcasting/auth",
            app.key(),
            app.id()
        ),
        Ok(None) => "broadcasting at /app/{key} with no app: set EVENTS_BROADCAST_APP_ID, _KEY and _SECRET (or REVERB_APP_*)".to_owned(),
        Err(error) => format!("broadcasting not started: {error}"),
    }
}

impl Server for Parts {
    // Each push has a feature of its own.
    #[allow(clippy::vec_init_then_push)]
    fn parts(&self, config: &Config, store: Option<&Store>) -> Vec<String> {
        let mut parts = Vec::new();
        #[cfg(feature = "dashboard")]
        parts.push(
            match config.get(crate::dashboard::TOKEN_VAR) {
                Some(token) if !token.value().is_empty() => "dashboard at /dashboard",
                _ => "dashboard at /dashboard, closed: set EVENTS_DASHBOARD_TOKEN to open it",
            }
            .to_owned(),
        );
        #[cfg(feature = "http")]
        parts.push(http_part(config, store).to_owned());
        #[cfg(not(feature = "http"))]
        let _ = store;
        #[cfg(feature = "broadcast")]
        parts.push(broadcast_part(config));
        #[cfg(not(any(feature = "dashboard", feature = "http", feature = "broadcast")))]
        let _ = config;
        #[cfg(feature = "metrics")]
        parts.push("metrics at /metrics".to_owned());
        parts
    }

    fn serve<'a>(
        &'a self,
        listener: tokio::net::TcpListener,
        queue: Queue,
        store: Option<Store>,
        config: &'a Config,
        shutdown: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
    ) -> ServeFuture<'a> {
        Box::pin(async move {
            #[cfg(feature = "metrics")]
            let metrics = {
                let metrics = crate::metrics::Metrics::prometheus();
                metrics.watch_queue(queue.clone(), Duration::from_secs(5));
                metrics
            };
            #[cfg(any(feature = "dashboard", feature = "http", feature = "broadcast"))]
            {
                #[allow(unused_mut)]
                let mut app = axum::Router::new();
                #[cfg(feature = "dashboard")]
                {
                    let dashboard = crate::dashboard::Dashboard::new(queue).config(config);
                    app = app.merge(dashboard.mount("/dashboard"));
                }
                #[cfg(not(feature = "dashboard"))]
                let _ = queue;
                #[cfg(not(feature = "http"))]
                let _ = store;
                #[cfg(feature = "http")]
                {
                    app = app.merge(http_routes(store, config)?);
                }
                #[cfg(feature = "broadcast")]
                let broadcaster = {
                    let broadcaster = crate::broadcast::Broadcaster::from_config(config)
                        .await
                        .map_err(std::io::Error::other)?;
                    app = app.merge(broadcaster.router());
                    broadcaster
                };
                #[cfg(feature = "metrics")]
                {
                    app = app.route(
                        "/metrics",
                        axum::routing::get(move || {
                            let text = metrics.render();
                            async move {
                                use axum::http::{StatusCode, header};
                                match text {
                                    Some(text) => (
                                        StatusCode::OK,
                                        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
                                        text,
                                    ),
                                    None => (
                                        StatusCode::SERVICE_UNAVAILABLE,
                                        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                                        "these metrics cannot be rendered here\n".to_owned(),
                                    ),
                                }
                            }
                        }),
                    );
                }
                let shutdown = async move {
                    shutdown.await;
                    // WebSockets outlive axum's graceful shutdown: close
                    // them with 4200 so clients reconnect (to this server
                    // once it is back, or to another node).
                    #[cfg(feature = "broadcast")]
                    broadcaster.shutdown().await;
                };
                // Small frames go out at once, not after the peer's delayed
                // ACK (Nagle): WebSocket latency depends on it.
                use axum::serve::ListenerExt as _;
                let listener = listener.tap_io(|tcp| {
                    // Without it the socket still works, only slower.
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            #[cfg(not(any(feature = "dashboard", feature = "http", feature = "broadcast")))]
            {
                let _ = (queue, store, config);
                tokio::select! {
                    () = crate::metrics::serve(listener, metrics) => Ok(()),
                    () = shutdown => Ok(()),
                }
            }
        })
    }
}

/// The start line's words for the event log's API.
#[cfg(feature = "http")]
fn http_part(config: &Config, store: Option<&Store>) -> &'static str {
    let token = config
        .get(crate::http::TOKEN_VAR)
        .is_some_and(|t| !t.value().is_empty());
    match (store.is_some(), token) {
        (true, true) => "event log API at /events",
        (true, false) => "event log API at /events, closed: set EVENTS_HTTP_TOKEN to open it",
        (false, _) => {
            "event log API at /events without a store: pass --store-url or set EVENTS_STORE_URL to serve the event log"
        }
    }
}

/// The event log's API on `store`; without one, `/events` and what is
/// under it answer 503 saying how to give one.
#[cfg(feature = "http")]
fn http_routes(store: Option<Store>, config: &Config) -> Result<axum::Router, std::io::Error> {
    let Some(store) = store else {
        let no_store = || async {
            crate::http::ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "this server has no event store: start it with --store-url or EVENTS_STORE_URL (`sqlite://path`, `postgres://..`)",
            )
        };
        return Ok(axum::Router::new()
            .route("/events", axum::routing::any(no_store))
            .route("/events/{*rest}", axum::routing::any(no_store)));
    };
    #[allow(unused_mut)]
    let mut api = crate::http::Api::new(store.clone()).config(config);
    #[cfg(feature = "webhooks")]
    {
        use events_core::error::Chain;
        let webhooks = crate::webhooks::Webhooks::new(store)
            .config(config)
            .map_err(|e| std::io::Error::other(format!("{}", Chain(&e))))?;
        api = api.webhooks(webhooks);
    }
    #[cfg(not(feature = "webhooks"))]
    drop(store);
    Ok(api.router())
}
