//! The live feed: fresh figures pushed to the page as server-sent events,
//! so it updates without a reload and without polling every screen.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;

use crate::Shared;
use crate::snapshot::{self, Look};

/// `GET /api/live`: a `snapshot` event at once and then every
/// `live_every`, holding the Overview and the Queues; an `error` event,
/// in words, while the backend fails (the feed goes on).
pub(crate) async fn stream(
    State(shared): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let every = shared.live_every;
    let feed = stream::unfold((shared, true), move |(shared, first)| async move {
        if !first {
            tokio::time::sleep(every).await;
        }
        let event = match snapshot_json(&shared).await {
            Ok(data) => Event::default().event("snapshot").data(data),
            Err(error) => Event::default().event("error").data(
                json!({ "error": events_core::error::Chain(&error).to_string() }).to_string(),
            ),
        };
        Some((Ok(event), (shared, false)))
    });
    Sse::new(feed).keep_alive(KeepAlive::default())
}

async fn snapshot_json(shared: &Shared) -> Result<String, events_core::queue::QueueError> {
    let look = Look::take(shared).await?;
    let overview = snapshot::overview(shared, &look).await?;
    Ok(json!({ "overview": overview, "queues": snapshot::queues(&look) }).to_string())
}
