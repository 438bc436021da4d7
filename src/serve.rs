//! What `cli serve` runs: every server part compiled into the facade, on
//! one port (the dashboard at `/dashboard`, metrics at `/metrics`).

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
        #[cfg(not(feature = "dashboard"))]
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
            #[cfg(feature = "dashboard")]
            {
                use crate::dashboard::{Dashboard, axum};
                let dashboard = Dashboard::new(queue).config(config);
                #[allow(unused_mut)]
                let mut app = dashboard.mount("/dashboard");
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
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            #[cfg(not(feature = "dashboard"))]
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
