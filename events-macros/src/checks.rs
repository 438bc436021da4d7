//! Spanned type assertions: each places the bound on the user's own token, so
//! rustc prints the trait's `on_unimplemented` message under it.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::{Path, Type};

/// The listener's target, which requires `ty: Event`: the one place the
/// generated code names that bound.
pub fn event_target(krate: &Path, ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> #krate::__private::event_target::<#ty>())
}

/// Rebuilds a queued listener's event from JSON, which requires
/// `ty: Serialize + DeserializeOwned`: the one place that names that bound.
pub fn from_json(krate: &Path, ty: &Type, json: &syn::Ident) -> TokenStream {
    quote_spanned!(ty.span()=> #krate::__private::from_json::<#ty>(#json))
}

/// Converts the listener's return value, which requires a listener return
/// type; spanned on the declared return type.
pub fn outcome(krate: &Path, output: Option<&Type>, value: TokenStream) -> TokenStream {
    match output {
        Some(ty) => quote_spanned!(ty.span()=> #krate::__private::outcome::<#ty>(#value)),
        None => quote::quote!(#krate::__private::outcome::<()>(#value)),
    }
}

/// A fresh instance of a subscriber, which requires `Default`; spanned on
/// the `impl`'s self type.
pub fn subscriber(krate: &Path, self_ty: &Type) -> TokenStream {
    quote_spanned!(self_ty.span()=> #krate::__private::subscriber::<#self_ty>())
}

/// The `when = ..` predicate as a fn pointer of the right shape; spanned on
/// the user's path so a wrong signature is reported there.
pub fn predicate(krate: &Path, when: &Path, event: Option<&Type>) -> TokenStream {
    match event {
        Some(ty) => quote_spanned!(when.span()=> {
            let __predicate: fn(&#ty) -> bool = #when;
            __predicate
        }),
        None => quote_spanned!(when.span()=> {
            let __predicate: fn(&#krate::__private::AnyEvent) -> bool = #when;
            __predicate
        }),
    }
}

/// The `on_failure = ..` hook as a `fn(&FailedJob)`, spanned on the user's
/// path. In a subscriber, a path starting with `Self` names the subscriber.
pub fn failure_hook(krate: &Path, hook: &Path, self_ty: Option<&Type>) -> TokenStream {
    let hook = match (self_ty, hook.segments.first()) {
        (Some(self_ty), Some(first)) if first.ident == "Self" && hook.segments.len() > 1 => {
            let rest = hook.segments.iter().skip(1);
            quote_spanned!(hook.span()=> <#self_ty>::#(#rest)::*)
        }
        _ => quote::quote!(#hook),
    };
    quote_spanned!(hook.span()=> {
        let __hook: fn(&#krate::__private::FailedJob) = #hook;
        __hook
    })
}
