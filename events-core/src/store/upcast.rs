//! Versioned events: upcasters registered at link time with
//! `#[upcast(Event, from = N)]` turn a stored payload of version `N` into
//! version `N + 1`; reading an older record runs the chain up to the
//! event's current `#[event(version = ..)]`. A record at the current
//! version is handed on as stored, with no parsing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::event::{EventEntry, LogDef};
use crate::registry::RegistryError;

/// One upcaster, as `#[upcast]` registers it.
#[doc(hidden)]
pub struct UpcastDef {
    /// The event's name.
    pub event: &'static str,
    /// What `#[event]` says of the event for the log (its version).
    pub log: fn() -> Option<&'static LogDef>,
    /// The version it reads; it writes `from + 1`.
    pub from: u32,
    /// The function.
    pub run: fn(serde_json::Value) -> serde_json::Value,
    /// Where it is declared.
    pub file: &'static str,
    /// Its line.
    pub line: u32,
}

inventory::collect!(UpcastDef);

/// Why a stored payload could not be brought to the current version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpcastError {
    /// The payload is not JSON.
    #[error("the stored payload of `{event}` (version {version}) is not JSON: {source}")]
    Json {
        /// The event's name.
        event: String,
        /// The record's version.
        version: u32,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// No upcaster reads this version.
    #[error(
        "`{event}` is stored at version {version}, which no upcaster reads (versions start at 1; this program knows version {current})"
    )]
    Missing {
        /// The event's name.
        event: String,
        /// The record's version.
        version: u32,
        /// The current version.
        current: u32,
    },
    /// The record is newer than this program's event.
    #[error(
        "`{event}` is stored at version {version}, newer than version {current} this program knows: deploy the newer program to read it"
    )]
    Newer {
        /// The event's name.
        event: String,
        /// The record's version.
        version: u32,
        /// The current version.
        current: u32,
    },
}

struct Chains {
    /// By event name: its current version and the upcaster from each
    /// older version (index `from - 1`).
    by_name: HashMap<&'static str, Chain>,
    problems: Vec<RegistryError>,
}

struct Chain {
    current: u32,
    steps: Vec<fn(serde_json::Value) -> serde_json::Value>,
}

fn chains() -> &'static Chains {
    static CHAINS: OnceLock<Chains> = OnceLock::new();
    CHAINS.get_or_init(|| {
        let versions = inventory::iter::<EventEntry>
            .into_iter()
            .filter_map(|entry| {
                let def = (entry.def)()?;
                Some((def.name, (entry.log)().map_or(1, |log| log.version)))
            });
        build(
            versions.collect(),
            inventory::iter::<UpcastDef>.into_iter().collect(),
        )
    })
}

fn build(versions: Vec<(&'static str, u32)>, mut defs: Vec<&'static UpcastDef>) -> Chains {
    let mut problems = Vec::new();
    let mut current: HashMap<&'static str, u32> = versions.into_iter().collect();
    for def in &defs {
        current
            .entry(def.event)
            .or_insert_with(|| (def.log)().map_or(1, |log| log.version));
    }
    defs.sort_by_key(|d| (d.event, d.from, d.file, d.line));
    let mut by_name = HashMap::new();
    let mut names: Vec<&&'static str> = current.keys().collect();
    names.sort();
    for &name in names {
        let version = current[name];
        let mine: Vec<&&UpcastDef> = defs.iter().filter(|d| d.event == name).collect();
        let problem = |reason: String| RegistryError::UpcastChain {
            event: name,
            version,
            reason,
        };
        let mut steps = Vec::new();
        let mut ok = true;
        for from in 1..version {
            let found: Vec<&&&UpcastDef> = mine.iter().filter(|d| d.from == from).collect();
            match found.as_slice() {
                [one] => steps.push(one.run),
                [] => {
                    problems.push(problem(format!(
                        "none reads version {from} (add `#[upcast(.., from = {from})]`): every version from 1 to {} needs one",
                        version - 1
                    )));
                    ok = false;
                }
                [a, b, ..] => {
                    problems.push(problem(format!(
                        "two read version {from}: at {}:{} and {}:{}",
                        a.file, a.line, b.file, b.line
                    )));
                    ok = false;
                }
            }
        }
        for extra in mine.iter().filter(|d| d.from == 0 || d.from >= version) {
            problems.push(problem(format!(
                "the one at {}:{} reads version {}, which is not older than the current one (raise `#[event(version = ..)]` or remove it)",
                extra.file, extra.line, extra.from
            )));
            ok = false;
        }
        if ok && version > 1 {
            by_name.insert(
                name,
                Chain {
                    current: version,
                    steps,
                },
            );
        }
    }
    Chains { by_name, problems }
}

/// Mistakes in the upcasters this program registers: an older version
/// with no upcaster, two for one version, one beyond the current
/// version. A dispatcher with a store and a replay refuse to start on
/// any.
pub fn problems() -> &'static [RegistryError] {
    &chains().problems
}

/// The current version of the event named `name` (1 when it declares
/// none or is not in this program).
pub fn current_version(name: &str) -> u32 {
    chains().by_name.get(name).map_or(1, |c| c.current)
}

/// The JSON Schema of the event named `name`, where its type is in this
/// program, has event-log keys (`#[event(store)]`, `entity`, `version`)
/// and implements `schemars::JsonSchema` (feature `schemars`).
pub fn json_schema(name: &str) -> Option<serde_json::Value> {
    inventory::iter::<EventEntry>.into_iter().find_map(|entry| {
        let def = (entry.def)()?;
        if def.name != name {
            return None;
        }
        ((entry.log)()?.schema)()
    })
}

/// `payload`, stored at `version` for the event `name`, at the event's
/// current version: as stored (borrowed, not parsed) when it is current,
/// else through the upcasters in order.
///
/// ```
/// let (version, payload) = events::store::upcast("not.versioned", 1, r#"{"a":1}"#).unwrap();
/// assert_eq!((version, &*payload), (1, r#"{"a":1}"#));
/// ```
pub fn upcast<'a>(
    name: &str,
    version: u32,
    payload: &'a str,
) -> Result<(u32, Cow<'a, str>), UpcastError> {
    let Some(chain) = chains().by_name.get(name) else {
        return match version {
            1 => Ok((1, Cow::Borrowed(payload))),
            _ => Err(UpcastError::Newer {
                event: name.to_owned(),
                version,
                current: 1,
            }),
        };
    };
    if version == chain.current {
        return Ok((version, Cow::Borrowed(payload)));
    }
    if version > chain.current {
        return Err(UpcastError::Newer {
            event: name.to_owned(),
            version,
            current: chain.current,
        });
    }
    if version == 0 {
        return Err(UpcastError::Missing {
            event: name.to_owned(),
            version,
            current: chain.current,
        });
    }
    let mut value: serde_json::Value =
        serde_json::from_str(payload).map_err(|source| UpcastError::Json {
            event: name.to_owned(),
            version,
            source,
        })?;
    for step in &chain.steps[(version - 1) as usize..] {
        value = step(value);
    }
    Ok((chain.current, Cow::Owned(value.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_b(mut v: serde_json::Value) -> serde_json::Value {
        v["b"] = serde_json::json!(2);
        v
    }

    fn no_log() -> Option<&'static LogDef> {
        None
    }

    fn def(event: &'static str, from: u32) -> &'static UpcastDef {
        Box::leak(Box::new(UpcastDef {
            event,
            log: no_log,
            from,
            run: add_b,
            file: "here.rs",
            line: from,
        }))
    }

    #[test]
    fn a_gap_a_twin_and_one_beyond_are_each_a_problem() {
        let chains = build(
            vec![("a", 3), ("b", 2), ("c", 2)],
            vec![
                def("a", 1),
                def("b", 1),
                def("b", 1),
                def("c", 1),
                def("c", 2),
            ],
        );
        let text: Vec<String> = chains.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(
            text[0].contains("`a` is at version 3") && text[0].contains("none reads version 2")
        );
        assert!(text[1].contains("two read version 1"));
        assert!(text[2].contains("reads version 2, which is not older"));
    }

    #[test]
    fn a_full_chain_has_no_problem() {
        let chains = build(vec![("a", 3)], vec![def("a", 2), def("a", 1)]);
        assert!(chains.problems.is_empty());
        assert_eq!(chains.by_name["a"].steps.len(), 2);
    }
}
