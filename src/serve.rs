//! What `cli serve` runs: every server part compiled into the facade, on
//! one port (the dashboard at `/dashboard`, metrics at `/metrics`, the
//! broadcast server at `/app/{key}`, `/apps/{id}` and `/broadcasting/auth`).

use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "metrics")]
use std::time::Duration;

use events_core::Config;
use events_core::cli::{ServeFuture, Server};
use events_core::queue::Queue;

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
    fn parts(&self, config: &Config) -> Vec<String> {
        let mut parts = Vec::new();
        #[cfg(feature = "dashboard")]
        parts.push(
            match config.get(crate::dashboard::TOKEN_VAR) {
                Some(token) if !token.value().is_empty() => "dashboard at /dashboard",
                _ => "dashboard at /dashboard, closed: set EVENTS_DASHBOARD_TOKEN to open it",
            }
            .to_owned(),
        );
        #[cfg(feature = "broadcast")]
        parts.push(broadcast_part(config));
        #[cfg(not(any(feature = "dashboard", feature = "broadcast")))]
        let _ = config;
        #[cfg(feature = "metrics")]
        parts.push("metrics at /metrics".to_owned());
        parts
    }

    fn serve<'a>(
        &'a self,
        listener: tokio::net::TcpListener,
        queue: Queue,
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
            #[cfg(any(feature = "dashboard", feature = "broadcast"))]
            {
                #[cfg(feature = "broadcast")]
                use crate::broadcast::axum;
                #[cfg(all(feature = "dashboard", not(feature = "broadcast")))]
                use crate::dashboard::axum;

                #[allow(unused_mut)]
                let mut app = axum::Router::new();
                #[cfg(feature = "dashboard")]
                {
                    let dashboard = crate::dashboard::Dashboard::new(queue).config(config);
                    app = app.merge(dashboard.mount("/dashboard"));
                }
                #[cfg(not(feature = "dashboard"))]
                let _ = queue;
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
            #[cfg(not(any(feature = "dashboard", feature = "broadcast")))]
            {
                let _ = (queue, config);
                tokio::select! {
                    () = crate::metrics::serve(listener, metrics) => Ok(()),
                    () = shutdown => Ok(()),
                }
            }
        })
    }
}
