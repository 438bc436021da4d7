//! `#[event]` on a struct or an enum.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt as _;
use syn::{Item, Path};

use crate::attr::EventArgs;
use crate::expand::line_of;

/// The item as written, its `Event` impl and, for a non-generic type, its
/// link-time registration.
pub fn expand(krate: &Path, args: &EventArgs, item: &Item) -> syn::Result<TokenStream> {
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
    let private = quote!(#krate::__private);
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
    let table_slot = if generics.params.is_empty() {
        quote! {
            fn __table_slot() -> #private::Option<&'static #private::TableSlot<Self>> {
                static SLOT: #private::TableSlot<#ident> = #private::TableSlot::new();
                #private::Some(&SLOT)
            }
        }
    } else {
        quote!()
    };
    let registration = if generics.params.is_empty() {
        let line = line_of(ident.span());
        let type_name = ident.unraw().to_string();
        quote! {
            #[allow(non_snake_case, clippy::all)]
            const _: () = {
                fn __events_from_json() -> #private::Option<#private::FromJson> {
                    #[allow(unused_imports)]
                    use #private::spec::{NoDeserialize as _, ViaDeserialize as _};
                    (&&#private::spec::Probe::<#ident>(#private::PhantomData)).__events_from_json()
                }
                #private::inventory::submit! {
                    #private::EventDef {
                        name: <#ident as #private::Event>::NAME,
                        type_name: #private::concat!(#private::module_path!(), "::", #type_name),
                        type_id: #private::TypeId::of::<#ident>,
                        from_json: __events_from_json,
                        file: #private::file!(),
                        line: #line,
                    }
                }
            };
        }
    } else {
        // A generic type has no single `TypeId` to register; dispatch builds
        // its listener table on first use instead.
        quote!()
    };
    Ok(quote! {
        #item

        impl #impl_generics #private::Event for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;

            fn __to_json(&self) -> #private::Option<#private::Result<#private::String, #private::serde_json::Error>> {
                #[allow(unused_imports)]
                use #private::spec::{NoSerialize as _, ViaSerialize as _};
                (&&#private::spec::Probe::<Self>(#private::PhantomData)).__events_to_json(self)
            }

            #table_slot
        }

        #registration
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
