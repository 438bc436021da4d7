use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "appointment.created", store, entity = "appointment:{appointment_id}", version = 2)]
#[derive(Serialize, Deserialize)]
pub struct AppointmentCreated {
    pub appointment_id: u64,
    pub r#type: String,
}

#[event(store = false, entity = "booking:{r#type}-{appointment_id}")]
#[derive(Serialize)]
pub struct Typed {
    pub appointment_id: u64,
    pub r#type: String,
}

fn main() {
    let _ = AppointmentCreated { appointment_id: 1, r#type: "x".into() };
    let _ = Typed { appointment_id: 1, r#type: "x".into() };
}
