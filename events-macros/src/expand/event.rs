//! `#[event]` on a struct or an enum.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt as _;
use syn::{Item, Path};

use crate::attr::EventArgs;
use crate::expand::line_of;

/// The item as written (its tokens, untouched), its `Event` impl and, for a non-generic type, its
/// link-time registration.
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
    let private = super::private();
    let use_private = super::use_private(krate);
    let name = match &args.name {
        Some(name) => name.value.clone(),
        None => ident.unraw().to_string(),
    };
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
    // A non-generic type gets its `static`: the description the registry
    // learns through the type's listeners, with the JSON support found by
    // one autoref probe, and the slot caching its listener table. (A
    // generic type has no single `TypeId` to describe: dispatch finds its
    // listeners by `TypeId` on first use instead.)
    let (static_fn, static_items) = if generics.params.is_empty() {
        let line = line_of(ident.span());
        let type_name = ident.unraw().to_string();
        (
            quote! {
                fn __static() -> #private::Option<&'static #private::EventStatic<Self>> {
                    #private::Some(&__EVENTS_STATIC)
                }
            },
            quote! {
                static __EVENTS_STATIC: #private::EventStatic<#ident> = #private::EventStatic::new(#private::EventDef {
                    name: #name,
                    type_name: #private::concat!(#private::module_path!(), "::", #type_name),
                    type_id: #private::TypeId::of::<#ident>,
                    json: __events_json,
                    file: #private::file!(),
                    line: #line,
                });
                fn __events_json() -> #private::Json {
                    #[allow(unused_imports)]
                    use #private::spec::JsonProbe as _;
                    (&&&&#private::spec::Probe::<#ident>(#private::PhantomData)).__events_json()
                }
            },
        )
    } else {
        (quote!(), quote!())
    };
    Ok(quote! {
        #input

        #[allow(non_snake_case, clippy::all)]
        const _: () = {
            #use_private

            impl #impl_generics #private::Event for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                #static_fn
            }

            #static_items
        };
    })
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
