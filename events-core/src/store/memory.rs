//! The event store in memory: for tests, examples and `memory://`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    Appended, Delivery, DeliveryQuery, DeliveryResult, Entity, EventPage, EventQuery, EventStore,
    NewEvent, Order, Prune, SchemaSeen, StatsQuery, StatsRow, StoreError, StoredEvent,
    Subscription, SubscriptionChange, SubscriptionState, TimelineQuery,
};
use crate::envelope::EventId;

/// An event store in memory. Cheap to make; gone with the process.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By position (positions are never reused, so pruning leaves gaps).
    events: BTreeMap<u64, StoredEvent>,
    ids: HashMap<EventId, u64>,
    streams: HashMap<Entity, u64>,
    last: u64,
    checkpoints: HashMap<String, u64>,
    subscriptions: Vec<Subscription>,
    deliveries: Vec<Delivery>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves whole values behind: every
        // change below is made after its checks.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn append(&mut self, events: Vec<NewEvent>) -> Vec<Appended> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            if let Some(&position) = self.ids.get(&event.id) {
                out.push(Appended::new(position, false));
                continue;
            }
            self.last += 1;
            let position = self.last;
            let version = event.entity.as_ref().map(|entity| {
                let v = self.streams.entry(entity.clone()).or_default();
                *v += 1;
                *v
            });
            self.ids.insert(event.id, position);
            self.events
                .insert(position, StoredEvent::from_parts(position, event, version));
            out.push(Appended::new(position, true));
        }
        out
    }

    fn page<'a>(
        &'a self,
        order: Order,
        after: Option<u64>,
        before: Option<u64>,
    ) -> Box<dyn Iterator<Item = &'a StoredEvent> + 'a> {
        let lo = after.map_or(0, |a| a.saturating_add(1));
        let hi = before.unwrap_or(u64::MAX);
        if lo >= hi {
            return Box::new(std::iter::empty());
        }
        let range = self.events.range(lo..hi).map(|(_, e)| e);
        match order {
            Order::Asc => Box::new(range),
            Order::Desc => Box::new(range.rev()),
        }
    }
}

fn validate_all(events: &[NewEvent]) -> Result<(), StoreError> {
    events.iter().try_for_each(NewEvent::validate)
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        validate_all(&events)?;
        Ok(self.lock().append(events))
    }

    async fn append_expecting(
        &self,
        entity: &Entity,
        expected: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, StoreError> {
        validate_all(&events)?;
        if let Some(other) = events.iter().find(|e| e.entity.as_ref() != Some(entity)) {
            return Err(StoreError::Invalid(format!(
                "event `{}` ({}) is not about `{entity}`: an append expecting a version of one stream takes only that stream's events",
                other.id, other.name
            )));
        }
        let mut state = self.lock();
        let actual = state.streams.get(entity).copied().unwrap_or(0);
        if actual != expected {
            return Err(StoreError::Conflict {
                entity: entity.clone(),
                expected,
                actual,
            });
        }
        Ok(state.append(events))
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        query.validate()?;
        let state = self.lock();
        let events = state
            .page(query.order, query.after, query.before)
            .filter(|e| query.admits(e))
            .take(query.limit)
            .cloned()
            .collect();
        Ok(EventPage::of(events, query))
    }

    async fn event(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        let state = self.lock();
        Ok(state
            .ids
            .get(&id)
            .and_then(|p| state.events.get(p))
            .cloned())
    }

    async fn timeline(&self, query: &TimelineQuery) -> Result<EventPage, StoreError> {
        if query.limit == 0 {
            return Err(StoreError::Invalid("`limit` must be at least 1".into()));
        }
        let state = self.lock();
        let (after, before) = match query.order {
            Order::Asc => (query.after, None),
            Order::Desc => (None, query.after),
        };
        let events: Vec<StoredEvent> = state
            .page(query.order, after, before)
            .filter(|e| query.admits(e))
            .take(query.limit)
            .cloned()
            .collect();
        let next = (events.len() >= query.limit)
            .then(|| events.last().map(|e| e.position))
            .flatten();
        Ok(EventPage { events, next })
    }

    async fn stream_version(&self, entity: &Entity) -> Result<u64, StoreError> {
        Ok(self.lock().streams.get(entity).copied().unwrap_or(0))
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().last)
    }

    async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsRow>, StoreError> {
        let state = self.lock();
        let mut counts: BTreeMap<(SystemTime, String), u64> = BTreeMap::new();
        for event in state.events.values() {
            let named = query.names.is_empty()
                || query
                    .names
                    .iter()
                    .any(|p| crate::pattern::matches(p, &event.name));
            if named
                && query.since.is_none_or(|t| event.occurred_at >= t)
                && query.until.is_none_or(|t| event.occurred_at < t)
            {
                *counts
                    .entry((query.bucket.start_of(event.occurred_at), event.name.clone()))
                    .or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|((start, name), count)| StatsRow::new(name, start, count))
            .collect())
    }

    async fn schemas(&self) -> Result<Vec<SchemaSeen>, StoreError> {
        let state = self.lock();
        let mut seen: BTreeMap<(String, u32), SchemaSeen> = BTreeMap::new();
        for event in state.events.values() {
            let row = seen
                .entry((event.name.clone(), event.version))
                .or_insert_with(|| {
                    SchemaSeen::new(&event.name, event.version, 0, event.occurred_at, "")
                });
            row.count += 1;
            // Positions ascend: the last one seen is the newest.
            row.last_seen = event.occurred_at;
            row.sample.clone_from(&event.payload);
        }
        Ok(seen.into_values().collect())
    }

    async fn prune(&self, prune: &Prune) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let gone: Vec<u64> = state
            .events
            .values()
            .filter(|e| prune.admits(e))
            .map(|e| e.position)
            .collect();
        for position in &gone {
            if let Some(event) = state.events.remove(position) {
                state.ids.remove(&event.id);
            }
        }
        Ok(gone.len() as u64)
    }

    async fn checkpoint(&self, projector: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().checkpoints.get(projector).copied())
    }

    async fn save_checkpoint(&self, projector: &str, position: u64) -> Result<(), StoreError> {
        self.lock()
            .checkpoints
            .insert(projector.to_owned(), position);
        Ok(())
    }

    async fn clear_checkpoint(&self, projector: &str) -> Result<bool, StoreError> {
        Ok(self.lock().checkpoints.remove(projector).is_some())
    }

    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.subscriptions.iter().any(|s| s.id == subscription.id) {
            return Err(StoreError::Invalid(format!(
                "a subscription with id `{}` exists already",
                subscription.id
            )));
        }
        state.subscriptions.push(subscription.clone());
        Ok(())
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.lock().subscriptions.clone())
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .iter()
            .find(|s| s.id == id)
            .cloned())
    }

    async fn update_subscription(
        &self,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut state = self.lock();
        Ok(state
            .subscriptions
            .iter_mut()
            .find(|s| s.id == id)
            .map(|s| {
                change.apply(s);
                s.clone()
            }))
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let before = state.subscriptions.len();
        state.subscriptions.retain(|s| s.id != id);
        Ok(state.subscriptions.len() != before)
    }

    async fn note_delivery(
        &self,
        id: &str,
        result: &DeliveryResult,
        disable_after: u32,
    ) -> Result<Option<SubscriptionState>, StoreError> {
        let mut state = self.lock();
        Ok(state
            .subscriptions
            .iter_mut()
            .find(|s| s.id == id)
            .map(|s| {
                let now = result.apply(s, disable_after);
                SubscriptionState::of(s, now)
            }))
    }

    async fn log_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.lock().deliveries.push(delivery.clone());
        Ok(())
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let state = self.lock();
        // Newest first: by time, then by the order they were logged.
        let mut found: Vec<&Delivery> = state
            .deliveries
            .iter()
            .rev()
            .filter(|d| query.admits(d))
            .collect();
        found.sort_by_key(|d| std::cmp::Reverse(d.at));
        Ok(found.into_iter().take(query.limit).cloned().collect())
    }

    async fn prune_deliveries(&self, before: SystemTime) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let count = state.deliveries.len();
        state.deliveries.retain(|d| d.at >= before);
        Ok((count - state.deliveries.len()) as u64)
    }
}
