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
        if args.logs() {
            return expand_logged(krate, args, item, ident, input.clone());
        }
        return Ok(expand_plain(krate, args, ident, input.clone()));
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
            let span = template.value.span();
            let accesses = fields.iter().map(|f| {
                let f = syn::parse_str::<syn::Ident>(f)
                    .map(|i| syn::Ident::new(&i.to_string(), span))
                    .unwrap_or_else(|_| syn::Ident::new_raw(f, span));
                quote::quote_spanned!(span=> e.#f)
            });
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
    let mut format = String::new();
    let mut fields = Vec::new();
    let mut rest = id;
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
    if fields.is_empty() && format.is_empty() {
        return Err(err(format!(
            "the entity template `{text}` has no id after `:`: name a field, such as `{kind}:{{id}}`"
        )));
    }
    let known: Vec<String> = match item {
        Item::Struct(s) => match &s.fields {
            syn::Fields::Named(named) => named
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref().map(|i| i.unraw().to_string()))
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    if !fields.is_empty()
        && !matches!(item, Item::Struct(s) if matches!(s.fields, syn::Fields::Named(_)))
    {
        return Err(err(format!(
            "the entity template names fields, and `{ident}` has no named fields: templates work on a struct with named fields"
        )));
    }
    for field in &fields {
        if !known.contains(field) {
            return Err(err(format!(
                "the entity template names `{{{field}}}`, but `{ident}` has no field `{field}` (its fields: {})",
                known.join(", ")
            )));
        }
    }
    Ok((kind.to_owned(), format, fields))
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
