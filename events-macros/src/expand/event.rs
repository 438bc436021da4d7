//! `#[event]` on a struct or an enum.

use proc_macro2::TokenStream;
use quote::ToTokens as _;
use quote::quote;
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::{Attribute, Item, Path, Token};

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
    let (ident, generics, attrs) = match item {
        Item::Struct(s) => (&s.ident, &s.generics, &s.attrs),
        Item::Enum(e) => (&e.ident, &e.generics, &e.attrs),
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
    // Whether the event is JSON is found by autoref probes, which work
    // whatever implements serde's traits but cost the compiler a method
    // resolution each. Where a non-generic item derives `serde::Serialize`
    // in plain sight, the generated code calls serde directly instead. (A
    // generic type's derives hold only under bounds on its parameters, which
    // the probes resolve as they always have.)
    let serialize_derived = generics.params.is_empty() && derives_serde_serialize(attrs);
    let to_json = if serialize_derived {
        quote!(#private::to_json(self))
    } else {
        quote! {
            #[allow(unused_imports)]
            use #private::spec::{NoSerialize as _, ViaSerialize as _};
            (&&#private::spec::Probe::<Self>(#private::PhantomData)).__events_to_json(self)
        }
    };
    let registration = if generics.params.is_empty() {
        let line = line_of(ident.span());
        let type_name = ident.unraw().to_string();
        // Always the probe: a derived `Deserialize` of a type with
        // `&'static str` fields is not `DeserializeOwned`.
        quote! {
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
        }
    } else {
        // A generic type has no single `TypeId` to register; dispatch builds
        // its listener table on first use instead.
        quote!()
    };
    Ok(quote! {
        #input

        #[allow(non_snake_case, clippy::all)]
        const _: () = {
            #use_private

            impl #impl_generics #private::Event for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;

                fn __to_json(&self) -> #private::Option<#private::Result<#private::String, #private::serde_json::Error>> {
                    #to_json
                }

                #table_slot
            }

            #registration
        };
    })
}

/// Whether the item itself, below `#[event]`, derives `serde::Serialize`
/// spelled with its crate (`serde::Serialize` or `::serde::Serialize`): a
/// bare `Serialize` may be another crate's derive (rkyv's, miniserde's).
/// Never under `#[serde(remote = ..)]`, which derives for another type, nor
/// when any attribute so much as mentions `remote` (a `cfg_attr` might hide
/// one): those, and everything else, are left to the probes.
fn derives_serde_serialize(attrs: &[Attribute]) -> bool {
    let mentions_remote = |attr: &Attribute| {
        (attr.path().is_ident("serde") || attr.path().is_ident("cfg_attr"))
            && attr.meta.to_token_stream().to_string().contains("remote")
    };
    if attrs.iter().any(mentions_remote) {
        return false;
    }
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .any(|attr| {
            attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
                .is_ok_and(|paths| paths.iter().any(is_serde_serialize))
        })
}

fn is_serde_serialize(path: &Path) -> bool {
    let mut segments = path.segments.iter().map(|s| &s.ident);
    matches!(
        (segments.next(), segments.next(), segments.next()),
        (Some(krate), Some(name), None) if krate == "serde" && name == "Serialize"
    )
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
