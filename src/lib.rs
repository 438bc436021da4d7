//! # events
//!
//! Laravel's event system for Rust services, declared with attributes and
//! found at link time: no registration list, and mistakes are compile errors.
//!
//! ```
//! use events::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[event(name = "appointment.created")]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct AppointmentCreated { pub appointment_id: u64 }
//!
//! #[listener(priority = 10)]
//! fn log_booking(e: &AppointmentCreated) {
//!     println!("booked #{}", e.appointment_id);
//! }
//!
//! #[listener(queue = "calendar", tries = 3, backoff = ["1s", "5s"])]
//! async fn sync_to_calendar(e: &AppointmentCreated) -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), events::DispatchError> {
//! let done = AppointmentCreated { appointment_id: 7 }.dispatch().await?;
//! assert_eq!((done.ran(), done.queued()), (1, 1));
//! # Ok(()) }
//! ```
//!
//! See the README for the attribute reference and the testing guide.

#![warn(missing_docs)]

pub use events_core::*;
pub use events_macros::{event, listen, listener, subscriber};

/// The attributes, `Event`, the `Dispatch` extension trait, `Flow` and
/// `AnyEvent`: `use events::prelude::*;`.
pub mod prelude {
    pub use events_core::{AnyEvent, Dispatch, Event, Flow};
    pub use events_macros::{event, listen, listener, subscriber};
}
