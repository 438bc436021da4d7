//! Parsing of attribute arguments: keys, values, durations, the crate path.
//! Every problem goes into the `Ctxt` and parsing goes on, so one pass reports
//! every mistake in the attribute.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, Lit, LitStr, Path};

use crate::ctxt::Ctxt;
use crate::symbol::*;

/// A value with the span of its key, for later checks that point at it.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub span: Span,
    pub value: T,
}

/// One key's slot: reports a second occurrence as a duplicate.
struct Slot<'c, T> {
    cx: &'c Ctxt,
    key: &'static str,
    value: Option<Spanned<T>>,
}

impl<'c, T> Slot<'c, T> {
    fn new(cx: &'c Ctxt, key: &'static str) -> Self {
        Slot {
            cx,
            key,
            value: None,
        }
    }

    fn set(&mut self, span: Span, value: T) {
        if self.value.is_some() {
            self.cx.error_at(
                span,
                format!("duplicate key `{}`: it is already set above", self.key),
            );
        } else {
            self.value = Some(Spanned { span, value });
        }
    }

    fn get(self) -> Option<Spanned<T>> {
        self.value
    }
}

/// The arguments of `#[listener(..)]` and `#[listen(..)]`.
#[derive(Default)]
pub struct ListenerArgs {
    pub queue: Option<Spanned<String>>,
    pub tries: Option<Spanned<u32>>,
    pub backoff: Option<Spanned<Vec<Duration>>>,
    pub delay: Option<Spanned<Duration>>,
    pub timeout: Option<Spanned<Duration>>,
    pub priority: Option<Spanned<i32>>,
    pub name: Option<Spanned<String>>,
    pub pattern: Option<Spanned<String>>,
    pub when: Option<Path>,
    pub on_failure: Option<Spanned<Path>>,
    pub krate: Option<Path>,
}

impl ListenerArgs {
    /// Fills what a `#[listen]` method leaves unset from its subscriber's
    /// `#[subscriber(..)]` keys: the method's own keys win. `queue` applies
    /// to every method; `tries`, `backoff`, `delay` and `timeout` to the
    /// methods that end up queued.
    pub fn inherit(&mut self, defaults: &ListenerArgs) {
        if self.queue.is_none() {
            self.queue.clone_from(&defaults.queue);
        }
        if self.queue.is_none() {
            return;
        }
        if self.tries.is_none() {
            self.tries.clone_from(&defaults.tries);
        }
        if self.backoff.is_none() {
            self.backoff.clone_from(&defaults.backoff);
        }
        if self.delay.is_none() {
            self.delay.clone_from(&defaults.delay);
        }
        if self.timeout.is_none() {
            self.timeout.clone_from(&defaults.timeout);
        }
    }

    /// Whether none of `name`, `pattern`, `when` and `on_failure` is set:
    /// the listener is named after its function and runs unconditionally,
    /// so the short expansions of `events::__private::listener!` fit it.
    pub fn is_plain(&self) -> bool {
        self.name.is_none()
            && self.pattern.is_none()
            && self.when.is_none()
            && self.on_failure.is_none()
    }

    /// The keys that need `queue` and are set, with their spans.
    pub fn queue_only_keys(&self) -> Vec<(&'static str, Span)> {
        let mut keys = Vec::new();
        if let Some(v) = &self.tries {
            keys.push((TRIES, v.span));
        }
        if let Some(v) = &self.backoff {
            keys.push((BACKOFF, v.span));
        }
        if let Some(v) = &self.delay {
            keys.push((DELAY, v.span));
        }
        if let Some(v) = &self.timeout {
            keys.push((TIMEOUT, v.span));
        }
        if let Some(v) = &self.on_failure {
            keys.push((ON_FAILURE, v.span));
        }
        keys
    }
}

/// The arguments of `#[event(..)]`.
#[derive(Default)]
pub struct EventArgs {
    pub name: Option<Spanned<String>>,
    /// `store`: the event goes into the event log.
    pub store: Option<Spanned<bool>>,
    /// `entity = "type:{field}"`: the template, as written.
    pub entity: Option<Spanned<LitStr>>,
    /// `version = N`.
    pub version: Option<Spanned<u32>>,
    /// `broadcast = ["channel", "private-x.{field}"]`: the templates.
    pub broadcast: Option<Spanned<Vec<LitStr>>>,
    /// `broadcast_as = "name"`.
    pub broadcast_as: Option<Spanned<LitStr>>,
    /// `broadcast_on = path`: `fn(&E) -> Vec<Channel>`.
    pub broadcast_on: Option<Spanned<Path>>,
    /// `broadcast_when = path`: `fn(&E) -> bool`.
    pub broadcast_when: Option<Spanned<Path>>,
    /// `broadcast_with = path`: `fn(&E) -> serde_json::Value`.
    pub broadcast_with: Option<Spanned<Path>>,
    /// `broadcast_now`: inside dispatch, not through the queue.
    pub broadcast_now: Option<Spanned<bool>>,
    /// `broadcast_queue = "name"`.
    pub broadcast_queue: Option<Spanned<LitStr>>,
    pub krate: Option<Path>,
}

impl EventArgs {
    /// Whether any key of the event log is set: the expansion then needs
    /// the item's fields, and the log's description.
    pub fn logs(&self) -> bool {
        self.store.is_some() || self.entity.is_some() || self.version.is_some()
    }

    /// Whether the event is broadcast: it has templates or `broadcast_on`.
    pub fn broadcasts(&self) -> bool {
        self.broadcast.is_some() || self.broadcast_on.is_some()
    }

    /// The span of the first broadcast key set.
    pub fn broadcast_span(&self) -> Option<Span> {
        [
            self.broadcast.as_ref().map(|s| s.span),
            self.broadcast_on.as_ref().map(|s| s.span),
            self.broadcast_as.as_ref().map(|s| s.span),
            self.broadcast_when.as_ref().map(|s| s.span),
            self.broadcast_with.as_ref().map(|s| s.span),
            self.broadcast_now.as_ref().map(|s| s.span),
            self.broadcast_queue.as_ref().map(|s| s.span),
        ]
        .into_iter()
        .flatten()
        .next()
    }
}

/// Parses `#[listener(..)]` (`keys` = the keys the attribute takes).
pub fn parse_listener(
    cx: &Ctxt,
    attr: &'static str,
    keys: &[&'static str],
    tokens: TokenStream,
) -> ListenerArgs {
    let mut queue = Slot::new(cx, QUEUE);
    let mut tries = Slot::new(cx, TRIES);
    let mut backoff = Slot::new(cx, BACKOFF);
    let mut delay = Slot::new(cx, DELAY);
    let mut timeout = Slot::new(cx, TIMEOUT);
    let mut priority = Slot::new(cx, PRIORITY);
    let mut name = Slot::new(cx, NAME);
    let mut pattern = Slot::new(cx, PATTERN);
    let mut when = Slot::new(cx, WHEN);
    let mut on_failure = Slot::new(cx, ON_FAILURE);
    let mut krate = Slot::new(cx, CRATE);

    let parser = syn::meta::parser(|meta| {
        let key = key_of(&meta.path);
        let span = meta.path.span();
        let known = keys.iter().find(|k| **k == key).copied();
        let Some(key) = known else {
            unknown_key(cx, attr, keys, &key, span);
            return skip_value(&meta);
        };
        if key == AFTER_COMMIT {
            cx.error_at(
                span,
                "`after_commit` is reserved for the transactional outbox, which is not built yet; remove it",
            );
            return skip_value(&meta);
        }
        let value: Expr = ungroup(meta.value()?.parse()?);
        match key {
            QUEUE => {
                if let Some(s) = string(cx, QUEUE, &value) {
                    if s.value().trim().is_empty() {
                        cx.error_spanned_by(&value, "`queue` needs a queue name, such as \"default\"");
                    }
                    queue.set(span, s.value());
                }
            }
            TRIES => {
                if let Some(n) = integer::<u32>(cx, TRIES, &value) {
                    if n == 0 {
                        cx.error_spanned_by(&value, "`tries` must be at least 1: a job is tried once before it can fail");
                    }
                    tries.set(span, n);
                }
            }
            BACKOFF => {
                if let Some(list) = durations(cx, &value) {
                    backoff.set(span, list);
                }
            }
            DELAY => {
                if let Some(d) = duration(cx, DELAY, &value) {
                    delay.set(span, d);
                }
            }
            TIMEOUT => {
                if let Some(d) = duration(cx, TIMEOUT, &value) {
                    if d.is_zero() {
                        cx.error_spanned_by(&value, "`timeout` must be longer than zero");
                    }
                    timeout.set(span, d);
                }
            }
            PRIORITY => {
                if let Some(p) = integer::<i32>(cx, PRIORITY, &value) {
                    priority.set(span, p);
                }
            }
            NAME => {
                if let Some(s) = string(cx, NAME, &value) {
                    if let Err(why) = check_name(&s.value()) {
                        cx.error_spanned_by(&s, format!("invalid listener name: {why}"));
                    }
                    name.set(span, s.value());
                }
            }
            PATTERN => {
                if let Some(s) = string(cx, PATTERN, &value) {
                    if let Err(why) = check_pattern(&s.value()) {
                        cx.error_spanned_by(&s, why);
                    }
                    pattern.set(span, s.value());
                }
            }
            WHEN => match value {
                Expr::Path(p) if p.qself.is_none() => when.set(span, p.path),
                other => cx.error_spanned_by(
                    &other,
                    "`when` takes the path of a function `fn(&E) -> bool`, such as `when = is_high_value`",
                ),
            },
            ON_FAILURE => match value {
                Expr::Path(p) if p.qself.is_none() => on_failure.set(span, p.path),
                other => cx.error_spanned_by(
                    &other,
                    "`on_failure` takes the path of a function `fn(&FailedJob)`, such as `on_failure = report_failure`",
                ),
            },
            CRATE => {
                if let Some(path) = crate_path(cx, &value) {
                    krate.set(span, path);
                }
            }
            _ => unreachable!("key listed in `keys` without a parser"),
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(tokens) {
        cx.push(e);
    }
    ListenerArgs {
        queue: queue.get(),
        tries: tries.get(),
        backoff: backoff.get(),
        delay: delay.get(),
        timeout: timeout.get(),
        priority: priority.get(),
        name: name.get(),
        pattern: pattern.get(),
        when: when.get().map(|s| s.value),
        on_failure: on_failure.get(),
        krate: krate.get().map(|s| s.value),
    }
}

/// Parses `#[event(..)]`.
pub fn parse_event(cx: &Ctxt, tokens: TokenStream) -> EventArgs {
    let mut name = Slot::new(cx, NAME);
    let mut store = Slot::new(cx, STORE);
    let mut entity = Slot::new(cx, ENTITY);
    let mut version = Slot::new(cx, VERSION);
    let mut broadcast = Slot::new(cx, BROADCAST);
    let mut broadcast_as = Slot::new(cx, BROADCAST_AS);
    let mut broadcast_on = Slot::new(cx, BROADCAST_ON);
    let mut broadcast_when = Slot::new(cx, BROADCAST_WHEN);
    let mut broadcast_with = Slot::new(cx, BROADCAST_WITH);
    let mut broadcast_now = Slot::new(cx, BROADCAST_NOW);
    let mut broadcast_queue = Slot::new(cx, BROADCAST_QUEUE);
    let mut krate = Slot::new(cx, CRATE);
    let parser = syn::meta::parser(|meta| {
        let key = key_of(&meta.path);
        let span = meta.path.span();
        match key.as_str() {
            BROADCAST => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                let items: Vec<&Expr> = match &value {
                    Expr::Array(array) => array.elems.iter().collect(),
                    single @ Expr::Lit(_) => vec![single],
                    other => {
                        cx.error_spanned_by(
                            other,
                            "`broadcast` takes a list of channel names, such as `broadcast = [\"messages\", \"private-session.{session_id}\"]`",
                        );
                        return Ok(());
                    }
                };
                if items.is_empty() {
                    cx.error_spanned_by(
                        &value,
                        "`broadcast` needs at least one channel, such as `[\"messages\"]` (or use `broadcast_on = path`)",
                    );
                    return Ok(());
                }
                let list: Vec<LitStr> = items
                    .into_iter()
                    .filter_map(|e| string(cx, BROADCAST, e))
                    .collect();
                broadcast.set(span, list);
            }
            BROADCAST_AS | BROADCAST_QUEUE => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                if let Some(s) = string(cx, &key, &value) {
                    let text = s.value();
                    if text.trim().is_empty() || text.chars().any(char::is_whitespace) {
                        cx.error_spanned_by(
                            &s,
                            format!(
                                "`{key}` needs a name without whitespace, such as `{key} = \"{}\"`",
                                if key == BROADCAST_AS {
                                    "message_post"
                                } else {
                                    "broadcasts"
                                }
                            ),
                        );
                    }
                    if key == BROADCAST_AS {
                        broadcast_as.set(span, s);
                    } else {
                        broadcast_queue.set(span, s);
                    }
                }
            }
            BROADCAST_ON | BROADCAST_WHEN | BROADCAST_WITH => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                let shape = match key.as_str() {
                    BROADCAST_ON => "fn(&E) -> Vec<Channel>",
                    BROADCAST_WHEN => "fn(&E) -> bool",
                    _ => "fn(&E) -> serde_json::Value",
                };
                match value {
                    Expr::Path(p) if p.qself.is_none() => {
                        let slot = match key.as_str() {
                            BROADCAST_ON => &mut broadcast_on,
                            BROADCAST_WHEN => &mut broadcast_when,
                            _ => &mut broadcast_with,
                        };
                        slot.set(span, p.path);
                    }
                    other => cx.error_spanned_by(
                        &other,
                        format!("`{key}` takes the path of a function `{shape}`, such as `{key} = my_fn`"),
                    ),
                }
            }
            BROADCAST_NOW => {
                if meta.input.peek(syn::Token![=]) {
                    let value: Expr = ungroup(meta.value()?.parse()?);
                    match &value {
                        Expr::Lit(ExprLit {
                            lit: Lit::Bool(b), ..
                        }) => broadcast_now.set(span, b.value),
                        other => cx.error_spanned_by(
                            other,
                            "`broadcast_now` is a flag: write `broadcast_now` (or `broadcast_now = true` / `false`)",
                        ),
                    }
                } else {
                    broadcast_now.set(span, true);
                }
            }
            STORE => {
                if meta.input.peek(syn::Token![=]) {
                    let value: Expr = ungroup(meta.value()?.parse()?);
                    match &value {
                        Expr::Lit(ExprLit {
                            lit: Lit::Bool(b), ..
                        }) => store.set(span, b.value),
                        other => cx.error_spanned_by(
                            other,
                            "`store` is a flag: write `store` (or `store = true` / `store = false`)",
                        ),
                    }
                } else {
                    store.set(span, true);
                }
            }
            ENTITY => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                if let Some(s) = string(cx, ENTITY, &value) {
                    entity.set(span, s);
                }
            }
            VERSION => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                if let Some(n) = integer::<u32>(cx, VERSION, &value) {
                    if n == 0 {
                        cx.error_spanned_by(&value, "`version` starts at 1");
                    }
                    version.set(span, n);
                }
            }
            NAME => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                if let Some(s) = string(cx, NAME, &value) {
                    if let Err(why) = check_name(&s.value()) {
                        cx.error_spanned_by(&s, format!("invalid event name: {why}"));
                    }
                    name.set(span, s.value());
                }
            }
            CRATE => {
                let value: Expr = ungroup(meta.value()?.parse()?);
                if let Some(path) = crate_path(cx, &value) {
                    krate.set(span, path);
                }
            }
            _ => {
                unknown_key(cx, "event", EVENT_KEYS, &key, span);
                return skip_value(&meta);
            }
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(tokens) {
        cx.push(e);
    }
    EventArgs {
        name: name.get(),
        store: store.get(),
        entity: entity.get(),
        version: version.get(),
        broadcast: broadcast.get(),
        broadcast_as: broadcast_as.get(),
        broadcast_on: broadcast_on.get(),
        broadcast_when: broadcast_when.get(),
        broadcast_with: broadcast_with.get(),
        broadcast_now: broadcast_now.get(),
        broadcast_queue: broadcast_queue.get(),
        krate: krate.get().map(|s| s.value),
    }
}

/// Parses `#[subscriber(..)]`: only `crate = ..`.
pub fn parse_subscriber(cx: &Ctxt, tokens: TokenStream) -> ListenerArgs {
    parse_listener(cx, "subscriber", SUBSCRIBER_KEYS, tokens)
}

/// A value that came through a `macro_rules!` fragment (`$pattern:literal`,
/// `$n:expr`) arrives wrapped in an invisible group: look through it.
fn ungroup(value: Expr) -> Expr {
    match value {
        Expr::Group(group) => ungroup(*group.expr),
        Expr::Array(mut array) => {
            array.elems = array.elems.into_iter().map(ungroup).collect();
            Expr::Array(array)
        }
        other => other,
    }
}

fn key_of(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Consumes `= value` or `(..)` after a key that is reported already.
fn skip_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

fn unknown_key(cx: &Ctxt, attr: &str, keys: &[&str], key: &str, span: Span) {
    let mut message = format!("unknown key `{key}` in `#[{attr}]`");
    match suggest(key, keys) {
        Some(near) => message.push_str(&format!("; did you mean `{near}`?")),
        None => message.push_str(&format!(
            "; expected one of: {}",
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    cx.error_at(span, message);
}

/// The known key nearest to a misspelled one, if any is near.
pub fn suggest<'k>(key: &str, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn string(cx: &Ctxt, key: &str, value: &Expr) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        other => {
            cx.error_spanned_by(
                other,
                format!("`{key}` takes a string, such as `{key} = \"..\"`"),
            );
            None
        }
    }
}

fn integer<N>(cx: &Ctxt, key: &str, value: &Expr) -> Option<N>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    let (negative, lit) = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => (false, i.clone()),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => match ungroup((**expr).clone()) {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => (true, i),
            _ => {
                cx.error_spanned_by(value, format!("`{key}` takes an integer"));
                return None;
            }
        },
        other => {
            cx.error_spanned_by(other, format!("`{key}` takes an integer"));
            return None;
        }
    };
    if !lit.suffix().is_empty() {
        cx.error_spanned_by(
            value,
            format!("`{key}` takes a plain integer, without a suffix"),
        );
        return None;
    }
    let digits = format!("{}{}", if negative { "-" } else { "" }, lit.base10_digits());
    match digits.parse::<N>() {
        Ok(n) => Some(n),
        Err(e) => {
            cx.error_spanned_by(value, format!("invalid `{key}`: {e}"));
            None
        }
    }
}

/// A duration: integer seconds, or a string such as `"250ms"`, `"5s"`, `"2m"`.
fn duration(cx: &Ctxt, key: &str, value: &Expr) -> Option<Duration> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) if !i.suffix().is_empty() => {
            cx.error_spanned_by(
                i,
                format!(
                    "`{i}` reads as {} seconds: a duration's unit goes inside quotes, such as \"{i}\"",
                    i.base10_digits()
                ),
            );
            None
        }
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(e) => {
                cx.error_spanned_by(i, format!("invalid `{key}`: {e}"));
                None
            }
        },
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match parse_duration(&s.value()) {
            Ok(d) => Some(d),
            Err(why) => {
                cx.error_spanned_by(s, format!("invalid duration for `{key}`: {why}"));
                None
            }
        },
        other => {
            cx.error_spanned_by(
                other,
                format!("`{key}` takes a duration: integer seconds or a string such as \"250ms\", \"5s\", \"2m\""),
            );
            None
        }
    }
}

/// `backoff`: one duration or a list of them.
fn durations(cx: &Ctxt, value: &Expr) -> Option<Vec<Duration>> {
    match value {
        Expr::Array(array) => {
            if array.elems.is_empty() {
                cx.error_spanned_by(
                    array,
                    "`backoff` needs at least one duration, such as [\"1s\", \"5s\"]",
                );
                return None;
            }
            let list: Vec<Option<Duration>> = array
                .elems
                .iter()
                .map(|e| duration(cx, BACKOFF, e))
                .collect();
            list.into_iter().collect()
        }
        single => duration(cx, BACKOFF, single).map(|d| vec![d]),
    }
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h 30m"`: a number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the string is empty; write a number and a unit, such as \"5s\"".into());
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write a number and a unit, such as \"250ms\", \"5s\", \"2m\"")
    })
}

fn crate_path(cx: &Ctxt, value: &Expr) -> Option<Path> {
    match value {
        Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match s.parse::<Path>() {
            Ok(path) => Some(path),
            Err(_) => {
                cx.error_spanned_by(s, "`crate` takes a path, such as `crate = ::my_events`");
                None
            }
        },
        other => {
            cx.error_spanned_by(other, "`crate` takes a path, such as `crate = ::my_events`");
            None
        }
    }
}

/// Event and listener names: non-empty, no whitespace, no `*` (which would
/// read as a wildcard).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("the name is empty".into())
    } else if name.chars().any(char::is_whitespace) {
        Err(format!("`{name}` contains whitespace"))
    } else if name.contains('*') {
        Err(format!(
            "`{name}` contains `*`, which patterns use as a wildcard"
        ))
    } else {
        Ok(())
    }
}

/// A wildcard pattern must be able to match some event name.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        Err("this pattern is empty and matches no event; use \"*\" for every event".into())
    } else if pattern.chars().any(char::is_whitespace) {
        Err(format!(
            "pattern `{pattern}` cannot match: event names contain no whitespace"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn listener(tokens: TokenStream) -> (ListenerArgs, Option<String>) {
        let cx = Ctxt::new();
        let args = parse_listener(&cx, "listener", LISTENER_KEYS, tokens);
        let err = cx.check().err().map(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        });
        (args, err)
    }

    #[test]
    fn durations_in_every_form() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn full_queued_listener() {
        let (args, err) = listener(quote! {
            queue = "sync", tries = 3, backoff = ["1s", 5, "15s"], delay = "5s", timeout = 30, priority = -2,
            name = "calendar.sync", when = crate::is_big
        });
        assert_eq!(err, None);
        assert_eq!(args.queue.unwrap().value, "sync");
        assert_eq!(args.tries.unwrap().value, 3);
        assert_eq!(
            args.backoff.unwrap().value,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(15)
            ]
        );
        assert_eq!(args.delay.unwrap().value, Duration::from_secs(5));
        assert_eq!(args.timeout.unwrap().value, Duration::from_secs(30));
        assert_eq!(args.priority.unwrap().value, -2);
        assert_eq!(args.name.unwrap().value, "calendar.sync");
        let when = args.when.unwrap();
        assert_eq!(quote!(#when).to_string(), quote!(crate::is_big).to_string());
    }

    #[test]
    fn single_backoff_and_crate_path() {
        let (args, err) = listener(quote!(queue = "q", backoff = "2s", crate = ::my_events));
        assert_eq!(err, None);
        assert_eq!(args.backoff.unwrap().value, vec![Duration::from_secs(2)]);
        assert!(args.krate.is_some());
        let (args, err) = listener(quote!(crate = "::my_events"));
        assert_eq!(err, None);
        assert!(args.krate.is_some());
    }

    #[test]
    fn every_mistake_is_reported_in_one_pass() {
        let (_, err) = listener(quote!(
            prority = 1,
            tries = 0,
            tries = 2,
            delay = "soon",
            pattern = ""
        ));
        let err = err.unwrap();
        assert!(
            err.contains("unknown key `prority` in `#[listener]`; did you mean `priority`?"),
            "{err}"
        );
        assert!(err.contains("`tries` must be at least 1"), "{err}");
        assert!(err.contains("duplicate key `tries`"), "{err}");
        assert!(err.contains("invalid duration for `delay`"), "{err}");
        assert!(err.contains("pattern is empty"), "{err}");
    }

    #[test]
    fn values_from_macro_rules_fragments() {
        // What `$pattern:literal` and `$n:expr` look like after expansion.
        let pattern = proc_macro2::Group::new(proc_macro2::Delimiter::None, quote!("order.*"));
        let tries = proc_macro2::Group::new(proc_macro2::Delimiter::None, quote!(3));
        let (args, err) = listener(quote!(pattern = #pattern, queue = "q", tries = #tries));
        assert_eq!(err, None);
        assert_eq!(args.pattern.unwrap().value, "order.*");
        assert_eq!(args.tries.unwrap().value, 3);
    }

    #[test]
    fn units_must_be_quoted() {
        let (_, err) = listener(quote!(queue = "q", timeout = 250ms, tries = 3u8));
        let err = err.unwrap();
        assert!(err.contains("`250ms` reads as 250 seconds"), "{err}");
        assert!(err.contains("`tries` takes a plain integer"), "{err}");
    }

    #[test]
    fn reserved_and_unknown_keys() {
        let (_, err) = listener(quote!(after_commit = true));
        assert!(
            err.unwrap()
                .contains("reserved for the transactional outbox")
        );
        let (_, err) = listener(quote!(zzz = 1));
        assert!(err.unwrap().contains("expected one of: `queue`"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("queu", LISTENER_KEYS), Some("queue"));
        assert_eq!(suggest("tires", LISTENER_KEYS), Some("tries"));
        assert_eq!(suggest("timout", LISTENER_KEYS), Some("timeout"));
        assert_eq!(suggest("xyzzy", LISTENER_KEYS), None);
    }

    #[test]
    fn names_and_patterns() {
        assert!(check_name("appointment.created").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("a.*").is_err());
        assert!(check_pattern("appointment.*").is_ok());
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("").is_err());
        assert!(check_pattern("a *").is_err());
    }

    #[test]
    fn event_args() {
        let cx = Ctxt::new();
        let args = parse_event(&cx, quote!(name = "a.b", nmae = "x"));
        let err = cx.check().unwrap_err().to_string();
        assert!(err.contains("did you mean `name`?"), "{err}");
        assert_eq!(args.name.unwrap().value, "a.b");
    }
}
