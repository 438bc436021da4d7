//! JSON Schemas of stored events that derive `schemars::JsonSchema`
//! (feature `schemars`).

use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "schema.booked", store)]
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Booked {
    /// The appointment.
    appointment_id: u64,
    note: Option<String>,
}

#[event(name = "schema.plain", store)]
#[derive(Serialize, Deserialize)]
struct Plain {
    n: u32,
}

#[test]
fn a_stored_event_that_derives_json_schema_has_its_schema() {
    let schema = events::store::json_schema("schema.booked").expect("a schema");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["appointment_id"]["type"], "integer");
    assert_eq!(schema["required"], serde_json::json!(["appointment_id"]));
    assert!(events::store::json_schema("schema.plain").is_none());
    assert!(events::store::json_schema("schema.unknown").is_none());
    let _ = (
        Booked {
            appointment_id: 1,
            note: None,
        }
        .note,
        Plain { n: 1 }.n,
    );
}
