//! `#[event]` finds out whether an event is JSON with one autoref probe,
//! which sees serde's traits however they were implemented: derived above or
//! below the attribute, spelled with the crate or not, by hand, or not at
//! all. A derive that implements them for another type (`serde(remote)`),
//! another crate's `Serialize`, or a `Deserialize` that borrows must neither
//! fool it nor fail to compile.

use events::AnyEvent;
use events::prelude::*;
use serde::{Deserialize, Serialize};

#[event(name = "detect.below")]
#[derive(Serialize, Deserialize)]
pub struct DerivedBelow {
    pub n: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[event(name = "detect.above")]
pub struct DerivedAbove {
    pub n: u32,
}

#[event(name = "detect.by_hand")]
pub struct ByHand {
    pub n: u32,
}

impl Serialize for ByHand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.n)
    }
}

#[event(name = "detect.serialize_only")]
#[derive(::serde::Serialize)]
pub struct SerializeOnly {
    pub n: u32,
}

#[event(name = "detect.neither")]
pub struct Neither {
    pub n: u32,
}

/// A remote derive implements serde's traits for another type, not this one.
pub struct Foreign {
    pub n: u32,
}

#[event(name = "detect.remote")]
#[derive(Serialize, Deserialize)]
#[serde(remote = "Foreign")]
pub struct RemoteShape {
    pub n: u32,
}

/// A bare `Serialize` with borrowed `'static` fields: serde's `Deserialize`
/// is then `Deserialize<'static>`, not `DeserializeOwned`.
#[event(name = "detect.static_str")]
#[derive(Serialize, Deserialize)]
pub struct StaticStr {
    pub source: &'static str,
}

/// The same, spelled with the crate.
#[event(name = "detect.qualified_static_str")]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct QualifiedStaticStr {
    pub source: &'static str,
}

pub struct Foreign2 {
    pub n: u32,
}

/// A remote derive hidden behind `cfg_attr`.
#[event(name = "detect.cfg_remote")]
#[derive(serde::Serialize)]
#[cfg_attr(all(), serde(remote = "Foreign2"))]
pub struct CfgRemote {
    pub n: u32,
}

fn json_of<E: Event>(event: &E) -> Option<String> {
    AnyEvent::new(event).payload_json()
}

/// Whether a queued job could rebuild the event: what
/// `EventInfo::is_deserializable` reports for an event with listeners.
fn deserializable<E: Event>() -> bool {
    let generated = E::__static().expect("`#[event]` generated a static");
    (generated.def.json)().from.is_some()
}

#[test]
fn json_support_is_the_same_whichever_way_serde_is_reached() {
    assert_eq!(
        json_of(&DerivedBelow { n: 1 }).as_deref(),
        Some(r#"{"n":1}"#)
    );
    assert_eq!(
        json_of(&DerivedAbove { n: 2 }).as_deref(),
        Some(r#"{"n":2}"#)
    );
    assert_eq!(json_of(&ByHand { n: 3 }).as_deref(), Some("3"));
    assert_eq!(
        json_of(&SerializeOnly { n: 4 }).as_deref(),
        Some(r#"{"n":4}"#)
    );
    assert_eq!(json_of(&Neither { n: 5 }), None);
    assert_eq!(json_of(&RemoteShape { n: 6 }), None);
    assert_eq!(Foreign { n: 7 }.n, 7);
    assert_eq!(
        json_of(&StaticStr { source: "web" }).as_deref(),
        Some(r#"{"source":"web"}"#)
    );
    assert_eq!(
        json_of(&QualifiedStaticStr { source: "api" }).as_deref(),
        Some(r#"{"source":"api"}"#)
    );
    assert_eq!(json_of(&CfgRemote { n: 8 }), None);
    assert_eq!(Foreign2 { n: 9 }.n, 9);

    assert!(deserializable::<DerivedBelow>());
    assert!(deserializable::<DerivedAbove>());
    assert!(!deserializable::<ByHand>());
    assert!(!deserializable::<SerializeOnly>());
    assert!(!deserializable::<Neither>());
    assert!(!deserializable::<RemoteShape>());
    assert!(!deserializable::<StaticStr>());
    assert!(!deserializable::<QualifiedStaticStr>());
    assert!(!deserializable::<CfgRemote>());
}
