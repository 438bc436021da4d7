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
        return Ok(expand_plain(krate, args, ident, input.clone()));
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
