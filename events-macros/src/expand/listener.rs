//! `#[listener]` on a function, and the registration every listener shares
//! with `#[listen]` methods.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::{Ident, Path, Type};

use crate::ast::{EventParam, Extra, FnHead, Handler};
use crate::attr::ListenerArgs;
use crate::checks;
use crate::expand::duration;

/// How the generated body reaches the user's function.
pub enum Callee<'a> {
    /// A free function.
    Free(&'a Ident),
    /// A `&self` method of a subscriber, called on a fresh `Default` value.
    Method { self_ty: &'a Type, ident: &'a Ident },
    /// A subscriber's associated function without `self`: no instance, so
    /// the type need not be `Default`.
    Assoc { self_ty: &'a Type, ident: &'a Ident },
}

impl Callee<'_> {
    /// The subscriber's type, for a method or associated function.
    fn self_ty(&self) -> Option<&Type> {
        match self {
            Callee::Free(_) => None,
            Callee::Method { self_ty, .. } | Callee::Assoc { self_ty, .. } => Some(self_ty),
        }
    }
}

/// Everything needed to register one listener.
pub struct Registration<'a> {
    pub args: &'a ListenerArgs,
    pub handler: &'a Handler<'a>,
    pub event: EventParam<'a>,
    pub callee: Callee<'a>,
    /// A `&'static str` expression: the listener's name.
    pub name: TokenStream,
    /// The source line.
    pub line: u32,
}

/// The expansion of `#[listener]` on a free function: the function as
/// written (its tokens, untouched), a same-named type implementing `Listener`
/// (and `Listens<E>`), and the registration. `registration` is `None` after a
/// configuration error, so only the item and its type are emitted and the
/// error stands alone.
pub fn expand(
    krate: &Path,
    input: TokenStream,
    item: &FnHead,
    args: &ListenerArgs,
    event: Option<EventParam>,
    name: &TokenStream,
    registration: Option<TokenStream>,
) -> TokenStream {
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let listens = match (event, &args.pattern) {
        (Some(EventParam::Typed(ty)), _) => quote!(, #ty),
        (Some(EventParam::Any(_)), Some(pattern)) => {
            let pattern = &pattern.value;
            quote!(, pattern = #pattern)
        }
        _ => quote!(),
    };
    let registration = registration.map(|items| {
        let use_private = super::use_private(krate);
        quote! {
            #[allow(non_snake_case, deprecated, clippy::all)]
            const _: () = {
                #use_private
                #items
            };
        }
    });
    quote! {
        #input
        #krate::__private::listener!(@type #vis #ident: #name #listens);
        #registration
    }
}

/// What both fast paths of `events::__private::listener!` start with, for a
/// free function of a typed event that is not deprecated (a deprecated one
/// takes the general path, whose registration sits under
/// `#[allow(deprecated)]`): the event type, the runtime's path, and the
/// arguments `vis name: Event, "path", target, priority, line`.
fn free_typed_head<'a>(
    krate: &Path,
    item: &FnHead,
    args: &ListenerArgs,
    event: EventParam<'a>,
) -> Option<(&'a Type, TokenStream, TokenStream)> {
    let EventParam::Typed(ty) = event else {
        return None;
    };
    if item.deprecated {
        return None;
    }
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let path = ident.unraw().to_string();
    let private = quote!(#krate::__private);
    let target = checks::event_target(&private, ty);
    let priority = args.priority.as_ref().map_or(0, |p| p.value);
    let line = super::line_of(ident.span());
    let head = quote!(#vis #ident: #ty, #path, #target, #priority, #line);
    Some((ty, private, head))
}

/// The short expansions of `events::__private::listener!` for a free
/// function of a typed event, not deprecated, with no `name`, `pattern`,
/// `when` or `on_failure`: `unit` for a `fn(&E)` returning nothing with no
/// option but `priority`, `queued` for one with `queue` (and its keys).
/// `None` for any other listener, which takes the general path.
pub fn expand_short(
    krate: &Path,
    input: &TokenStream,
    item: &FnHead,
    args: &ListenerArgs,
    handler: &Handler,
    event: EventParam,
) -> Option<TokenStream> {
    if !args.is_plain() || !handler.extras.is_empty() {
        return None;
    }
    let queue = match &args.queue {
        None if handler.is_async
            || !returns_unit(handler)
            || !args.queue_only_keys().is_empty() =>
        {
            return None;
        }
        queue => queue,
    };
    let (ty, private, head) = free_typed_head(krate, item, args, event)?;
    let Some(queue) = queue else {
        return Some(quote! {
            #input
            #private::listener!(unit #head);
        });
    };
    let ident = &item.sig.ident;
    let codec = checks::codec(&private, ty);
    let (backoff, options) = queue_options(&private, args, &queue.value);
    let owned = super::local("__owned");
    let registration = Registration {
        args,
        handler,
        event,
        callee: Callee::Free(ident),
        name: TokenStream::new(),
        line: super::line_of(ident.span()),
    };
    let call = call_with(&private, &registration, quote!(&#owned));
    let is_async = handler.is_async;
    Some(quote! {
        #input
        #private::listener!(
            queued #head,
            #codec [#(#backoff),*] #options, async: #is_async, |#owned| #call
        );
    })
}

/// The listener's name: `name = ".."`, else module path and `path`.
pub fn name_expr(private: &impl ToTokens, args: &ListenerArgs, path: &str) -> TokenStream {
    match &args.name {
        Some(name) => {
            let name = &name.value;
            quote!(#name)
        }
        None => quote!(#private::concat!(#private::module_path!(), "::", #path)),
    }
}

/// The body functions and the `inventory` submission of one listener: items
/// for a `const _` block that has [`super::use_private`], so nothing leaks
/// into the user's module.
pub fn registration(r: &Registration) -> TokenStream {
    let event = super::local("__event");
    let typed = super::local("__typed");
    let job = super::local("__job");
    let private = &super::private();
    let name = &r.name;
    let priority = r.args.priority.as_ref().map_or(0, |p| p.value);
    let line = r.line;
    let event_ty = match r.event {
        EventParam::Typed(ty) => Some(ty),
        EventParam::Any(_) => None,
    };
    let target = match r.event {
        EventParam::Typed(ty) => checks::event_target(private, ty),
        EventParam::Any(_) => {
            let pattern = &r
                .args
                .pattern
                .as_ref()
                .expect("validated: wildcard has a pattern")
                .value;
            quote!(#private::Target::Pattern(#pattern))
        }
    };

    let (when_fn, when) = match &r.args.when {
        Some(path) => {
            let self_ty = r.callee.self_ty();
            let predicate = checks::predicate(private, path, self_ty, event_ty);
            let body = match event_ty {
                Some(ty) => quote! {
                    match #private::downcast::<#ty>(#event) {
                        #private::Some(#typed) => (#predicate)(#typed),
                        #private::None => false,
                    }
                },
                None => quote!((#predicate)(#event)),
            };
            (
                quote! {
                    fn __events_when(#event: &#private::AnyEvent) -> bool { #body }
                },
                quote!(#private::Some(__events_when)),
            )
        }
        None => (quote!(), quote!(#private::None)),
    };

    let (hook_fn, on_failure) = match &r.args.on_failure {
        Some(hook) => {
            let self_ty = r.callee.self_ty();
            let hook = checks::failure_hook(private, &hook.value, self_ty);
            (
                quote! {
                    fn __events_on_failure(#job: &#private::FailedJob) { (#hook)(#job) }
                },
                quote!(#private::Some(__events_on_failure)),
            )
        }
        None => (quote!(), quote!(#private::None)),
    };

    let (body_fn, run) = match &r.args.queue {
        None => inline_body(r),
        Some(queue) => queued_body(r, &queue.value),
    };
    let (extractors, needs) = extractor_items(private, &r.handler.extras);

    quote! {
        #when_fn
        #hook_fn
        #extractors
        #body_fn
        #private::listener! {
            @submit
            name: #name,
            target: #target,
            priority: #priority,
            when: #when,
            run: #run,
            on_failure: #on_failure,
            needs: #needs,
            line: #line,
        }
    }
}

/// One `const __EVENTS_X{i}` per parameter after the event, each spanned on
/// the parameter's type (so a type that is no extractor is reported there,
/// once), and the listener's `needs` list made of them.
fn extractor_items(private: &impl ToTokens, extras: &[Extra]) -> (TokenStream, TokenStream) {
    let items = extras.iter().enumerate().map(|(i, extra)| {
        let name = format_ident!("__EVENTS_X{}", i);
        checks::extractor(private, &name, extra.ty, extra.by_ref)
    });
    let needs = (0..extras.len()).map(|i| format_ident!("__EVENTS_X{}", i));
    (quote!(#(#items)*), quote!(&[#(#needs.need),*]))
}

/// The statements binding each parameter after the event from `__cx` (a
/// `&Context` in scope), returning the extractor's refusal as the outcome;
/// and the arguments that name them.
fn extractor_lets(private: &impl ToTokens, extras: &[Extra]) -> (TokenStream, Vec<Ident>) {
    let cx = super::local("__cx");
    let value = super::local("__value");
    let refused = super::local("__refused");
    let args: Vec<Ident> = (0..extras.len())
        .map(|i| format_ident!("__events_x{}", i, span = proc_macro2::Span::mixed_site()))
        .collect();
    let lets = extras
        .iter()
        .zip(&args)
        .enumerate()
        .map(|(i, (extra, arg))| {
            let item = format_ident!("__EVENTS_X{}", i);
            if extra.by_ref {
                quote!(let #arg = (#item.from)(#cx);)
            } else {
                quote! {
                    let #arg = match (#item.from)(#cx) {
                        #private::Ok(#value) => #value,
                        #private::Err(#refused) => return #private::extract_failed(#refused),
                    };
                }
            }
        });
    (quote!(#(#lets)*), args)
}

/// The expression calling the user's function with `arg` (a `&E` or
/// `&AnyEvent`) and its extractors (taken from a `__cx: &Context` in
/// scope), awaited when it is async.
fn call(r: &Registration, arg: TokenStream) -> TokenStream {
    call_with(&super::private(), r, arg)
}

/// [`call`], naming the runtime through `private`.
fn call_with(private: &impl ToTokens, r: &Registration, arg: TokenStream) -> TokenStream {
    let (lets, extras) = extractor_lets(private, &r.handler.extras);
    let call = match &r.callee {
        Callee::Free(ident) => quote!(#ident(#arg #(, #extras)*)),
        Callee::Method { self_ty, ident } => {
            let instance = checks::subscriber(private, self_ty);
            quote!(#instance.#ident(#arg #(, #extras)*))
        }
        Callee::Assoc { self_ty, ident } => quote!(<#self_ty>::#ident(#arg #(, #extras)*)),
    };
    let call = if r.handler.is_async {
        quote!(#call.await)
    } else {
        call
    };
    let outcome = checks::outcome(private, r.handler.output, call);
    if r.handler.extras.is_empty() {
        outcome
    } else {
        quote!({ #lets #outcome })
    }
}

/// Whether the listener declares no return type, or `()`.
fn returns_unit(handler: &Handler) -> bool {
    match handler.output {
        None => true,
        Some(Type::Tuple(tuple)) => tuple.elems.is_empty(),
        Some(_) => false,
    }
}

/// A sync or async listener: called inside dispatch.
fn inline_body(r: &Registration) -> (TokenStream, TokenStream) {
    let typed = super::local("__typed");
    let event = super::local("__event");
    let private = &super::private();
    let name = &r.name;
    if !r.handler.extras.is_empty() {
        return inline_body_with_context(r);
    }
    match (r.event, r.handler.is_async) {
        // The hot path: a plain fn taking its own event type is registered
        // typed, and dispatch calls it as `fn(&E)` with no downcast.
        // A free fn returning nothing is registered as itself: no wrapper.
        (EventParam::Typed(ty), false) if returns_unit(r.handler) => match &r.callee {
            Callee::Free(ident) => (
                quote!(),
                quote!(#private::Run::Typed(#private::TypedCall::unit::<#ty>(#ident))),
            ),
            Callee::Method { self_ty, ident } => {
                let instance = checks::subscriber(private, self_ty);
                (
                    quote! {
                        fn __events_call(#typed: &#ty) { #instance.#ident(#typed) }
                    },
                    quote!(#private::Run::Typed(#private::TypedCall::unit::<#ty>(__events_call))),
                )
            }
            Callee::Assoc { self_ty, ident } => (
                quote!(),
                quote!(#private::Run::Typed(#private::TypedCall::unit::<#ty>(<#self_ty>::#ident))),
            ),
        },
        (EventParam::Typed(ty), false) => {
            let call = call(r, quote!(#typed));
            (
                quote! {
                    fn __events_call(#typed: &#ty) -> #private::Outcome { #call }
                },
                quote!(#private::Run::Typed(#private::TypedCall::new::<#ty>(__events_call))),
            )
        }
        (EventParam::Typed(ty), true) => {
            let call = call(r, quote!(#typed));
            (
                quote! {
                    fn __events_call<'__a>(#event: &'__a #private::AnyEvent)
                        -> #private::BoxFuture<'__a, #private::Outcome>
                    {
                        #private::Box::pin(async move {
                            match #private::downcast::<#ty>(#event) {
                                #private::Some(#typed) => #call,
                                #private::None => #private::wrong_event(#name, #private::type_name::<#ty>(), #event),
                            }
                        })
                    }
                },
                quote!(#private::Run::Async(__events_call)),
            )
        }
        (EventParam::Any(_), true) => {
            let call = call(r, quote!(#event));
            (
                quote! {
                    fn __events_call<'__a>(#event: &'__a #private::AnyEvent)
                        -> #private::BoxFuture<'__a, #private::Outcome>
                    {
                        #private::Box::pin(async move { #call })
                    }
                },
                quote!(#private::Run::Async(__events_call)),
            )
        }
        (EventParam::Any(_), false) => {
            let call = call(r, quote!(#event));
            (
                quote! {
                    fn __events_call(#event: &#private::AnyEvent) -> #private::Outcome { #call }
                },
                quote!(#private::Run::Sync(__events_call)),
            )
        }
    }
}

/// A listener run inside dispatch that takes extractors: called with the
/// dispatch's context (`Run::SyncCx` / `Run::AsyncCx`).
fn inline_body_with_context(r: &Registration) -> (TokenStream, TokenStream) {
    let typed = super::local("__typed");
    let event = super::local("__event");
    let cx = super::local("__cx");
    let private = &super::private();
    let name = &r.name;
    let body = match r.event {
        EventParam::Typed(ty) => {
            let call = call(r, quote!(#typed));
            quote! {
                match #private::downcast::<#ty>(#event) {
                    #private::Some(#typed) => #call,
                    #private::None => #private::wrong_event(#name, #private::type_name::<#ty>(), #event),
                }
            }
        }
        EventParam::Any(_) => call(r, quote!(#event)),
    };
    if r.handler.is_async {
        (
            quote! {
                fn __events_call<'__a>(
                    #event: &'__a #private::AnyEvent,
                    #cx: &'__a #private::Context,
                ) -> #private::BoxFuture<'__a, #private::Outcome> {
                    #private::Box::pin(async move { #body })
                }
            },
            quote!(#private::Run::AsyncCx(__events_call)),
        )
    } else {
        (
            quote! {
                fn __events_call(
                    #event: &#private::AnyEvent,
                    #cx: &#private::Context,
                ) -> #private::Outcome {
                    #body
                }
            },
            quote!(#private::Run::SyncCx(__events_call)),
        )
    }
}

/// A queued listener: enqueued at dispatch; its job body rebuilds the event
/// from JSON and runs the function, its extractors taken from the job's
/// context.
fn queued_body(r: &Registration, queue: &str) -> (TokenStream, TokenStream) {
    let owned = super::local("__owned");
    let cx = super::local("__cx");
    let cx_owned = super::local("__cx_owned");
    let job_name = super::local("__name");
    let private = &super::private();
    let json = super::local("__json");
    let bind = if r.handler.extras.is_empty() {
        quote!()
    } else {
        quote!(let #cx = &#cx_owned;)
    };
    let (codec, rebuild, encode) = match r.event {
        EventParam::Typed(ty) => {
            let call = call(r, quote!(&#owned));
            (
                checks::codec(private, ty),
                quote! {
                    let #owned: #ty = (__EVENTS_CODEC.decode)(#json)?;
                    #private::Ok(#private::Box::pin(async move { #bind #call }))
                },
                quote!(__EVENTS_CODEC.encode),
            )
        }
        EventParam::Any(_) => {
            let call = call(r, quote!(#private::as_any_event(&*#owned)));
            (
                quote!(),
                quote! {
                    let #owned = #private::rebuild_any(#job_name, #json)?;
                    #private::Ok(#private::Box::pin(async move { #bind #call }))
                },
                quote!(#private::encode_any),
            )
        }
    };
    let (backoff, options) = queue_options(private, r.args, queue);
    let is_async = r.handler.is_async;
    // The job's future is `'static`: it owns a clone of the context, and
    // the extractors borrow that.
    let context = if r.handler.extras.is_empty() {
        quote!(let _ = #cx;)
    } else {
        quote! {
            let #cx_owned = #private::Context::clone(#cx);
        }
    };
    (
        quote! {
            #codec
            const __EVENTS_BACKOFF: &[#private::Duration] = &[#(#backoff),*];
            fn __events_job(#job_name: &str, #json: &str, #cx: &#private::Context)
                -> #private::Result<#private::BoxFuture<'static, #private::Outcome>, #private::serde_json::Error>
            {
                let _ = #job_name;
                #context
                #rebuild
            }
        },
        quote!(#private::Run::Queued {
            options: #options,
            job: __events_job,
            encode: #encode,
            is_async: #is_async,
        }),
    )
}

/// A queued listener's backoff durations, and its `QueueOptions` expression
/// (naming a `__EVENTS_BACKOFF` const of them), spanned on `queue = ..`.
fn queue_options(
    private: &impl ToTokens,
    args: &ListenerArgs,
    queue: &str,
) -> (Vec<TokenStream>, TokenStream) {
    // 0: not declared (the attribute rejects `tries = 0`), so retry
    // defaults apply.
    let tries = args.tries.as_ref().map_or(0, |t| t.value);
    let backoff = args
        .backoff
        .iter()
        .flat_map(|b| b.value.iter())
        .map(|d| duration(private, *d))
        .collect();
    let delay = duration(
        private,
        args.delay.as_ref().map_or(Default::default(), |d| d.value),
    );
    let timeout = match &args.timeout {
        Some(t) => {
            let t = duration(private, t.value);
            quote!(#private::Some(#t))
        }
        None => quote!(#private::None),
    };
    let queue_span = args.queue.as_ref().map_or_else(Span::call_site, |q| q.span);
    let options = quote_spanned! {queue_span=>
        #private::QueueOptions::__new(#queue, #tries, __EVENTS_BACKOFF, #delay, #timeout)
    };
    (backoff, options)
}
