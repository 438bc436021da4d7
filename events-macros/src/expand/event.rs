//! `#[event]` on a struct or an enum.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt as _;
use syn::{Item, Path};

use crate::attr::EventArgs;
use crate::expand::line_of;

/// The item as written (its tokens, untouched) and its `Event` impl: for a
/// non-generic type, an invocation of `events::__private::event!`, which
/// adds the type's static.
pub fn expand(
    krate: &Path,
    args: &EventArgs,
    item: &Item,
    input: &TokenStream,
) -> syn::Result<TokenStream> {
    let (ident, generics) = match item {
        Item::Struct(s) => (&s.ident, &s.generics),
        Item::Enum(e) => (&e.ident, &e.generics),
        other => return Err(not_a_type(other)),
    };
    if let Some(lifetime) = generics.lifetimes().next() {
        return Err(syn::Error::new_spanned(
            lifetime,
            "an event cannot borrow: listeners and queued jobs see it after the code that made it, \
             so it must own its data (`String` rather than `&str`)",
        ));
    }
    let name = match &args.name {
        Some(name) => name.value.clone(),
        None => ident.unraw().to_string(),
    };
    if generics.params.is_empty() {
        // A non-generic type gets its `static`: the description the registry
        // learns through the type's listeners, with the JSON support found
        // by one autoref probe, and the slot caching its listener table.
        let broadcast = match args.broadcast_span() {
            Some(_) => expand_broadcast(krate, args, item, ident)?,
            None => TokenStream::new(),
        };
        let event = if args.logs() {
            expand_logged(krate, args, item, ident, input.clone())?
        } else {
            expand_plain(krate, args, ident, input.clone())
        };
        return Ok(quote!(#event #broadcast));
    }
    if let Some(span) = args.broadcast_span() {
        return Err(syn::Error::new(
            span,
            "a generic event cannot be broadcast: its broadcast is registered once, by name, and one name would stand for every instantiation",
        ));
    }
    if let Some(span) = log_key_span(args) {
        return Err(syn::Error::new(
            span,
            "a generic event cannot go into the event log: the log reads events back by name, and one name would stand for every instantiation",
        ));
    }
    // Like serde's derives: each type parameter gets the bounds an event
    // needs, so `Wrapper<T>` is an event exactly when `T` can be in one.
    let mut bounded = generics.clone();
    for param in generics.type_params() {
        let param = &param.ident;
        bounded
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(#param: ::core::marker::Send + ::core::marker::Sync + 'static));
    }
    let (impl_generics, ty_generics, where_clause) = bounded.split_for_impl();
    // A generic type has no single `TypeId` to describe: dispatch finds its
    // listeners by `TypeId` on first use instead, and it has no JSON.
    Ok(quote! {
        #input

        impl #impl_generics #krate::__private::Event for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
        }
    })
}

/// The expansion for a non-generic struct or enum, named `ident`: the item
/// as written, and `events::__private::event!`, which adds the `Event` impl
/// and the type's static.
pub fn expand_plain(
    krate: &Path,
    args: &EventArgs,
    ident: &proc_macro2::Ident,
    input: TokenStream,
) -> TokenStream {
    let name = match &args.name {
        Some(name) => name.value.clone(),
        None => ident.unraw().to_string(),
    };
    let line = line_of(ident.span());
    quote! {
        #input
        #krate::__private::event!(#ident, #name, #line);
    }
}

/// The span of the first event-log key set (`store`, `entity`, `version`).
fn log_key_span(args: &EventArgs) -> Option<proc_macro2::Span> {
    args.store
        .as_ref()
        .map(|s| s.span)
        .or_else(|| args.entity.as_ref().map(|s| s.span))
        .or_else(|| args.version.as_ref().map(|s| s.span))
}

/// The expansion of a non-generic event with event-log keys: the plain
/// items plus its log description (stored or not, version, entity), and
/// a check, spanned on the first log key, that the type is `Serialize`.
fn expand_logged(
    krate: &Path,
    args: &EventArgs,
    item: &Item,
    ident: &proc_macro2::Ident,
    input: TokenStream,
) -> syn::Result<TokenStream> {
    let name = match &args.name {
        Some(name) => name.value.clone(),
        None => ident.unraw().to_string(),
    };
    let line = line_of(ident.span());
    let store = args.store.as_ref().is_some_and(|s| s.value);
    let version = args.version.as_ref().map_or(1, |v| v.value);
    let entity = match &args.entity {
        Some(template) => {
            let (kind, format, fields) = entity_template(&template.value, item, ident)?;
            let accesses = accesses(&fields, template.value.span());
            quote! {
                entity {
                    fn __events_entity(
                        e: &dyn #krate::__private::Any,
                    ) -> #krate::__private::Option<#krate::__private::Entity> {
                        let e = e.downcast_ref::<#ident>()?;
                        #krate::__private::Some(#krate::__private::Entity::new(
                            #kind,
                            #krate::__private::format!(#format #(, #accesses)*),
                        ))
                    }
                }
            }
        }
        None => quote!(),
    };
    let span = log_key_span(args).unwrap_or_else(proc_macro2::Span::call_site);
    let check = quote::quote_spanned! {span=>
        const _: () = #krate::__private::assert_storable::<#ident>();
    };
    Ok(quote! {
        #input
        #krate::__private::event!(#ident, #name, #line, log(#store, #version) #entity);
        #check
    })
}

/// What `#[event(broadcast ..)]` adds for a non-generic type: its
/// `Broadcastable` impl (name, channels from the templates and
/// `broadcast_on`, data) and its listener, inside dispatch
/// (`broadcast_now`) or queued.
fn expand_broadcast(
    krate: &Path,
    args: &EventArgs,
    item: &Item,
    ident: &proc_macro2::Ident,
) -> syn::Result<TokenStream> {
    let private = quote!(#krate::__private);
    let span = args
        .broadcast_span()
        .unwrap_or_else(proc_macro2::Span::call_site);
    if !args.broadcasts() {
        return Err(syn::Error::new(
            span,
            format!(
                "this says how `{ident}` is broadcast, but not where: add `broadcast = [\"channel\"]` or `broadcast_on = path`"
            ),
        ));
    }
    let now = args.broadcast_now.as_ref().is_some_and(|n| n.value);
    if now && let Some(queue) = &args.broadcast_queue {
        return Err(syn::Error::new(
            queue.span,
            "`broadcast_queue` names the queue of a queued broadcast, and `broadcast_now` publishes inside dispatch: keep one",
        ));
    }
    let event_name = match &args.name {
        Some(name) => name.value.clone(),
        None => ident.unraw().to_string(),
    };
    let name = args
        .broadcast_as
        .as_ref()
        .map_or(event_name, |n| n.value.value());
    let mut pushes = Vec::new();
    for template in args.broadcast.iter().flat_map(|b| b.value.iter()) {
        let text = template.value();
        let err = |message: String| syn::Error::new(template.span(), message);
        let (format, fields) = placeholders(&text, &text, &err)?;
        let literal = format.replace("{}", "");
        if let Some(bad) = literal
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_-=@,.;".contains(*c)))
        {
            return Err(err(format!(
                "`{text}` cannot be a channel name: `{bad}` is not allowed (channel names hold letters, digits and `_ - = @ , . ;`)"
            )));
        }
        if fields.is_empty() && (text.is_empty() || text.len() > 164) {
            return Err(err(format!(
                "`{text}` cannot be a channel name: it must hold 1 to 164 characters"
            )));
        }
        check_fields("channel template", &fields, item, ident, &err)?;
        let accesses = accesses(&fields, template.span());
        pushes.push(quote::quote_spanned! {template.span()=>
            channels.push(#private::BroadcastChannel::new(#private::format!(#format #(, #accesses)*)));
        });
    }
    let on = args.broadcast_on.as_ref().map(|on| {
        let path = &on.value;
        let path_span = syn::spanned::Spanned::span(path);
        quote::quote_spanned! {path_span=>
            let __events_on: fn(&#ident) -> #private::Vec<#private::BroadcastChannel> = #path;
            channels.extend(__events_on(e));
        }
    });
    let key_span = args.broadcast.as_ref().map(|b| b.span).unwrap_or(span);
    let (job, data_default) = if now {
        (
            quote!(),
            quote::quote_spanned!(key_span=> #private::broadcast_json_data::<#ident>),
        )
    } else {
        (
            quote::quote_spanned! {key_span=>
                const __EVENTS_BROADCAST_JOB: #private::BroadcastJob<#ident> =
                    #private::broadcast_job::<#ident>();
            },
            quote!(__EVENTS_BROADCAST_JOB.data),
        )
    };
    let data = match &args.broadcast_with {
        Some(with) => {
            let path = &with.value;
            let path_span = syn::spanned::Spanned::span(path);
            quote::quote_spanned! {path_span=> {
                fn __events_data(
                    e: &#ident,
                ) -> #private::Result<#private::serde_json::Value, #private::serde_json::Error> {
                    let __events_with: fn(&#ident) -> #private::serde_json::Value = #path;
                    #private::broadcast_given_data(__events_with(e))
                }
                __events_data
            }}
        }
        None => data_default,
    };
    let when = match &args.broadcast_when {
        Some(when) => {
            let path = &when.value;
            let path_span = syn::spanned::Spanned::span(path);
            quote::quote_spanned! {path_span=> #private::Some({
                fn __events_when(e: &#private::AnyEvent) -> bool {
                    let __events_when: fn(&#ident) -> bool = #path;
                    match #private::downcast::<#ident>(e) {
                        #private::Some(e) => __events_when(e),
                        #private::None => false,
                    }
                }
                __events_when
            })}
        }
        None => quote!(#private::None),
    };
    let type_name = ident.unraw().to_string();
    let line = crate::expand::line_of(ident.span());
    let mode = if now {
        quote!(now)
    } else {
        let queue = args
            .broadcast_queue
            .as_ref()
            .map_or_else(|| "broadcasts".to_owned(), |q| q.value.value());
        quote!(queued(#queue, __EVENTS_BROADCAST_JOB))
    };
    Ok(quote! {
        const _: () = {
            #job
            fn __events_channels(e: &#ident) -> #private::Vec<#private::BroadcastChannel> {
                let _ = e;
                let mut channels = #private::Vec::new();
                #(#pushes)*
                #on
                channels
            }
            impl #private::Broadcastable for #ident {
                const BROADCAST: #private::BroadcastSpec<Self> = #private::BroadcastSpec {
                    name: #name,
                    channels: __events_channels,
                    data: #data,
                };
            }
            #private::broadcast!(#ident, #type_name, #line, #mode, #when);
        };
    })
}

/// Splits `type:{field}..` into the entity type, the format string of the
/// id (placeholders as `{}`), and the fields it names, checked against the
/// struct's named fields.
fn entity_template(
    template: &syn::LitStr,
    item: &Item,
    ident: &proc_macro2::Ident,
) -> syn::Result<(String, String, Vec<String>)> {
    let text = template.value();
    let err = |message: String| syn::Error::new(template.span(), message);
    let Some((kind, id)) = text.split_once(':') else {
        return Err(err(format!(
            "an entity template is `type:id`, such as `\"appointment:{{appointment_id}}\"`; `{text}` has no `:`"
        )));
    };
    if kind.is_empty() || kind.contains(['{', '}']) {
        return Err(err(
            "the entity's type, before the first `:`, must be written out (`appointment:{appointment_id}`), not empty or a placeholder".into(),
        ));
    }
    let (format, fields) = placeholders(&text, id, &err)?;
    if fields.is_empty() && format.is_empty() {
        return Err(err(format!(
            "the entity template `{text}` has no id after `:`: name a field, such as `{kind}:{{id}}`"
        )));
    }
    check_fields("entity template", &fields, item, ident, &err)?;
    Ok((kind.to_owned(), format, fields))
}

/// The format string of `rest` (a part of the template `text`) with its
/// `{field}` placeholders as `{}`, and the fields they name.
fn placeholders(
    text: &str,
    rest: &str,
    err: &impl Fn(String) -> syn::Error,
) -> syn::Result<(String, Vec<String>)> {
    let mut format = String::new();
    let mut fields = Vec::new();
    let mut rest = rest;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(err(format!("`}}` without an opening `{{` in `{text}`")));
        }
        format.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(err(format!("`{{` without a closing `}}` in `{text}`")));
        };
        let field = after[..close].trim();
        let field = field.strip_prefix("r#").unwrap_or(field);
        if field.is_empty() || !field.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(err(format!(
                "`{{{field}}}` is not a field name: placeholders name a field of the event, such as `{{appointment_id}}`"
            )));
        }
        fields.push(field.to_owned());
        format.push_str("{}");
        rest = &after[close + 1..];
    }
    format.push_str(rest);
    Ok((format, fields))
}

/// Checks that `fields`, named by a `what` (`entity template`, `channel
/// template`), are named fields of the struct `item`.
fn check_fields(
    what: &str,
    fields: &[String],
    item: &Item,
    ident: &proc_macro2::Ident,
    err: &impl Fn(String) -> syn::Error,
) -> syn::Result<()> {
    if fields.is_empty() {
        return Ok(());
    }
    let Item::Struct(syn::ItemStruct {
        fields: syn::Fields::Named(named),
        ..
    }) = item
    else {
        return Err(err(format!(
            "the {what} names fields, and `{ident}` has no named fields: templates work on a struct with named fields"
        )));
    };
    let known: Vec<String> = named
        .named
        .iter()
        .filter_map(|f| f.ident.as_ref().map(|i| i.unraw().to_string()))
        .collect();
    for field in fields {
        if !known.contains(field) {
            return Err(err(format!(
                "the {what} names `{{{field}}}`, but `{ident}` has no field `{field}` (its fields: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// `e.field` for each field, spanned on `span` (a raw identifier where the
/// name is a keyword).
fn accesses(fields: &[String], span: proc_macro2::Span) -> Vec<TokenStream> {
    fields
        .iter()
        .map(|f| {
            let f = syn::parse_str::<syn::Ident>(f)
                .map(|i| syn::Ident::new(&i.to_string(), span))
                .unwrap_or_else(|_| syn::Ident::new_raw(f, span));
            quote::quote_spanned!(span=> e.#f)
        })
        .collect()
}

fn not_a_type(item: &Item) -> syn::Error {
    let what = match item {
        Item::Fn(_) => "a function",
        Item::Union(_) => "a union",
        Item::Trait(_) => "a trait",
        Item::Impl(_) => "an impl block",
        Item::Mod(_) => "a module",
        Item::Type(_) => "a type alias",
        Item::Const(_) | Item::Static(_) => "a constant",
        _ => "this item",
    };
    let span_of = |tokens: &dyn quote::ToTokens| syn::Error::new_spanned(tokens, "");
    let anchor = match item {
        Item::Fn(f) => span_of(&f.sig.ident),
        Item::Union(u) => span_of(&u.ident),
        Item::Trait(t) => span_of(&t.ident),
        Item::Impl(i) => span_of(&i.self_ty),
        Item::Mod(m) => span_of(&m.ident),
        Item::Type(t) => span_of(&t.ident),
        other => span_of(other),
    };
    syn::Error::new(
        anchor.span(),
        format!("`#[event]` goes on a struct or an enum, not on {what}"),
    )
}
