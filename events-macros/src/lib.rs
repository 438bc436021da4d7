//! Attribute macros of the `events` framework. Use them through the `events`
//! crate: `use events::prelude::*;`.
//!
//! Each entry point parses, validates and expands; every mistake found
//! becomes a `compile_error!` at the user's token, emitted next to the
//! original item so one mistake reads as one error.

mod ast;
mod attr;
mod checks;
mod ctxt;
mod expand;
mod symbol;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::ext::IdentExt as _;

use ast::Kind;
use ctxt::Ctxt;
use expand::listener::{Callee, Registration};
use symbol::LISTENER_KEYS;

/// Makes a struct or an enum an event: implements `Event` with `NAME` (the
/// type's name, or `name = "a.b"`) and registers the type at link time.
///
/// Event-log keys: `store` (every dispatch of it is stored by a dispatcher
/// with a store), `entity = "type:{field}"` (the entity it concerns, a
/// template checked against the fields), `version = N` (default 1).
///
/// Broadcasting (see `events::broadcast`): `broadcast = ["channel",
/// "private-session.{field}"]` (templates checked against the fields),
/// `broadcast_as = "name"`, `broadcast_on = path`, `broadcast_when = path`,
/// `broadcast_with = path`, `broadcast_now`, `broadcast_queue = "name"`
/// (default `broadcasts`).
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let input = TokenStream2::from(input);
    let cx = Ctxt::new();
    let args = attr::parse_event(&cx, args.into());
    let krate = expand::crate_path(args.krate.clone());
    if !cx.has_errors()
        && !args.logs()
        && args.broadcast_span().is_none()
        && let Some(ident) = ast::plain_type_name(&input)
    {
        let expanded = expand::event::expand_plain(&krate, &args, &ident, input);
        return with_errors(cx, expanded);
    }
    let expanded = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(item) => expand::event::expand(&krate, &args, &item, &input).unwrap_or_else(|e| {
            cx.push(e);
            input
        }),
        Err(e) => {
            cx.push(e);
            input
        }
    };
    with_errors(cx, expanded)
}

/// Makes a function a listener of the event it takes as `&E` (or of every
/// event whose name matches `pattern`, taking `&AnyEvent`).
///
/// Keys: `queue`, `tries`, `backoff`, `delay`, `timeout`, `priority`,
/// `name`, `pattern`, `when`, `crate`. See the `events` crate's docs.
#[proc_macro_attribute]
pub fn listener(args: TokenStream, input: TokenStream) -> TokenStream {
    let input = TokenStream2::from(input);
    let cx = Ctxt::new();
    let args = attr::parse_listener(&cx, "listener", LISTENER_KEYS, args.into());
    let krate = expand::crate_path(args.krate.clone());
    let item = match ast::FnHead::parse_item(&input) {
        Ok(item) => item,
        Err(_) => {
            let parsed = syn::parse2::<syn::Item>(input.clone());
            let message = match &parsed {
                Ok(syn::Item::Impl(_)) => {
                    "`#[listener]` goes on a function; for the methods of an `impl` block, put `#[subscriber]` on the `impl` and `#[listen]` on each listener method"
                }
                _ => "`#[listener]` goes on a `fn` or an `async fn` that takes the event as `&E`",
            };
            let anchor = parsed
                .map(|item| quote!(#item).into_iter().take(2).collect::<TokenStream2>())
                .unwrap_or_else(|_| input.clone());
            cx.error_spanned_by(anchor, message);
            return with_errors(cx, input);
        }
    };
    let handler = ast::handler(&cx, &item.sig, Kind::Free);
    if item.sig.receiver().is_some() {
        // A method: a type declared next to it would not compile in an impl.
        return with_errors(cx, input);
    }
    valid::listener(&cx, &args, &handler);
    if let Some(event) = handler.event
        && !cx.has_errors()
        && let Some(expanded) =
            expand::listener::expand_short(&krate, &input, &item, &args, &handler, event)
    {
        return with_errors(cx, expanded);
    }
    let ident = &item.sig.ident;
    let name = expand::listener::name_expr(
        &quote!(#krate::__private),
        &args,
        &ident.unraw().to_string(),
    );
    let private = expand::private();
    let registration = match handler.event {
        Some(event) if !cx.has_errors() => Some(expand::listener::registration(&Registration {
            args: &args,
            handler: &handler,
            event,
            callee: Callee::Free(ident),
            name: quote!(<#ident as #private::Listener>::NAME),
            line: expand::line_of(ident.span()),
        })),
        _ => None,
    };
    let expanded = expand::listener::expand(
        &krate,
        input,
        &item,
        &args,
        handler.event,
        &name,
        registration,
    );
    with_errors(cx, expanded)
}

/// Turns the `#[listen]` methods of an inherent `impl` into listeners named
/// `Type::method`. A method taking `&self` needs the type to implement
/// `Default` (each event gets a fresh value); one without `self` does not.
///
/// Keys `queue`, `tries`, `backoff`, `delay`, `timeout` set defaults for
/// every `#[listen]` in the impl (a method's own keys win); `crate`.
#[proc_macro_attribute]
pub fn subscriber(args: TokenStream, input: TokenStream) -> TokenStream {
    let input = TokenStream2::from(input);
    let cx = Ctxt::new();
    let defaults = attr::parse_subscriber(&cx, args.into());
    let krate = expand::crate_path(defaults.krate.clone());
    let expanded = match syn::parse2::<syn::ItemImpl>(input.clone()) {
        Ok(item) => expand::subscriber::expand(&cx, &krate, &defaults, item),
        Err(_) => {
            cx.error_spanned_by(
                input.clone().into_iter().take(2).collect::<TokenStream2>(),
                "`#[subscriber]` goes on an `impl` block whose methods are marked `#[listen]`",
            );
            input
        }
    };
    with_errors(cx, expanded)
}

/// Registers an upcaster of a versioned event: a
/// `fn(serde_json::Value) -> serde_json::Value` that turns a stored payload
/// of version `from` into version `from + 1`, run when an older record is
/// read (replay). `#[upcast(AppointmentCreated, from = 1)]`; an event at
/// `#[event(version = N)]` needs one from every version below `N`, or a
/// dispatcher with a store refuses to start.
#[proc_macro_attribute]
pub fn upcast(args: TokenStream, input: TokenStream) -> TokenStream {
    let input = TokenStream2::from(input);
    let args = match syn::parse::<expand::upcast::UpcastArgs>(args) {
        Ok(args) => args,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#e #input).into();
        }
    };
    let krate = expand::crate_path(args.krate.clone());
    match syn::parse2::<syn::ItemFn>(input.clone()) {
        Ok(item) => expand::upcast::expand(&krate, &args, &item).into(),
        Err(_) => {
            let anchor: TokenStream2 = input.clone().into_iter().take(2).collect();
            let e = syn::Error::new_spanned(
                anchor,
                "`#[upcast]` goes on a `fn(serde_json::Value) -> serde_json::Value`",
            )
            .to_compile_error();
            quote!(#e #input).into()
        }
    }
}

/// Marks a method of a `#[subscriber]` impl as a listener. Takes the keys of
/// `#[listener]`. Anywhere else it is an error.
#[proc_macro_attribute]
pub fn listen(_args: TokenStream, input: TokenStream) -> TokenStream {
    let input = TokenStream2::from(input);
    let anchor: TokenStream2 = input.clone().into_iter().take(3).collect();
    let error = syn::Error::new_spanned(
        anchor,
        "`#[listen]` marks a method of an `impl` with `#[subscriber]`; on a free function, use `#[listener]`",
    )
    .to_compile_error();
    quote!(#error #input).into()
}

/// Authorizes the broadcast channels a pattern matches:
/// `#[channel("private-session.{id}")] fn session(user: &User, id: u64) -> bool`,
/// or for a presence channel `-> Option<Member>` (the member others see).
/// Each `{placeholder}` is parsed into the parameter of its name (any
/// `FromStr` type); the function may be `async`. Registered at link time;
/// the broadcast server's `Channels` picks it up. Keys: the pattern, then
/// `crate = path`.
#[proc_macro_attribute]
pub fn channel(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = expand::channel::parse_args(&cx, args.into());
    let expanded = expand::channel::expand(&cx, &args, input.into());
    with_errors(cx, expanded)
}

fn with_errors(cx: Ctxt, expanded: TokenStream2) -> TokenStream {
    let errors = cx.check().err().map(|e| e.to_compile_error());
    quote!(#errors #expanded).into()
}
