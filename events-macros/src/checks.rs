//! Spanned type assertions: each places the bound on the user's own token, so
//! rustc prints the trait's `on_unimplemented` message under it.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote_spanned};
use syn::spanned::Spanned;
use syn::{Path, Type};

/// The listener's target, which requires `ty: Event`: the one place the
/// generated code names that bound.
pub fn event_target(private: &impl ToTokens, ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> #private::event_target::<#ty>())
}

/// The codec of a queued listener's event, which requires
/// `ty: Serialize + DeserializeOwned`: the one place that names that bound.
pub fn codec(private: &impl ToTokens, ty: &Type) -> TokenStream {
    quote_spanned! {ty.span()=>
        const __EVENTS_CODEC: #private::Codec<#ty> = #private::codec::<#ty>();
    }
}

/// The extractor of a parameter after the event, as a const named `name`,
/// which requires `ty: FromContext` (or `FromContextRef` when borrowed): the
/// one place that names that bound, spanned on the parameter's type.
pub fn extractor(
    private: &impl ToTokens,
    name: &syn::Ident,
    ty: &Type,
    by_ref: bool,
) -> TokenStream {
    if by_ref {
        quote_spanned! {ty.span()=>
            const #name: #private::ExtractRef<#ty> = #private::extract_ref::<#ty>();
        }
    } else {
        quote_spanned! {ty.span()=>
            const #name: #private::Extract<#ty> = #private::extract::<#ty>();
        }
    }
}

/// Converts the listener's return value, which requires a listener return
/// type; spanned on the declared return type.
pub fn outcome(private: &impl ToTokens, output: Option<&Type>, value: TokenStream) -> TokenStream {
    match output {
        // The value is bound to a local spanned on the return type, so a
        // wrong type is reported there; no turbofish, since naming the type
        // again would repeat any error in it.
        Some(ty) => quote_spanned! {ty.span()=> {
            let __events_value = #value;
            #private::outcome(__events_value)
        }},
        None => quote::quote!(#private::outcome::<()>(#value)),
    }
}

/// A fresh instance of a subscriber, which requires `Default`; spanned on
/// the `impl`'s self type.
pub fn subscriber(private: &impl ToTokens, self_ty: &Type) -> TokenStream {
    quote_spanned!(self_ty.span()=> #private::subscriber::<#self_ty>())
}

/// A path as written, or, in a subscriber, with a leading `Self` replaced by
/// the subscriber's type (the generated code lives outside the `impl`).
pub fn resolve_self(path: &Path, self_ty: Option<&Type>) -> TokenStream {
    match (self_ty, path.segments.first()) {
        (Some(self_ty), Some(first)) if first.ident == "Self" && path.segments.len() > 1 => {
            let rest = path.segments.iter().skip(1);
            quote_spanned!(path.span()=> <#self_ty>::#(#rest)::*)
        }
        _ => quote::quote!(#path),
    }
}

/// The `when = ..` predicate as a fn pointer of the right shape; spanned on
/// the user's path so a wrong signature is reported there.
pub fn predicate(
    private: &impl ToTokens,
    when: &Path,
    self_ty: Option<&Type>,
    event: Option<&Type>,
) -> TokenStream {
    let when_span = when.span();
    let when = resolve_self(when, self_ty);
    match event {
        Some(ty) => quote_spanned!(when_span=> {
            let __predicate: fn(&#ty) -> bool = #when;
            __predicate
        }),
        None => quote_spanned!(when_span=> {
            let __predicate: fn(&#private::AnyEvent) -> bool = #when;
            __predicate
        }),
    }
}

/// The `on_failure = ..` hook as a `fn(&FailedJob)`, spanned on the user's
/// path. In a subscriber, a path starting with `Self` names the subscriber.
pub fn failure_hook(private: &impl ToTokens, hook: &Path, self_ty: Option<&Type>) -> TokenStream {
    let span = hook.span();
    let hook = resolve_self(hook, self_ty);
    quote_spanned!(span=> {
        let __hook: fn(&#private::FailedJob) = #hook;
        __hook
    })
}
