//! Code generation: one file per attribute.

pub mod channel;
pub mod event;
pub mod listener;
pub mod subscriber;
pub mod upcast;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// The path generated code names the runtime by: `::events` unless
/// `crate = ..` overrides it.
pub fn crate_path(overridden: Option<syn::Path>) -> syn::Path {
    overridden.unwrap_or_else(|| syn::Path {
        leading_colon: Some(Default::default()),
        segments: std::iter::once(syn::PathSegment::from(Ident::new(
            "events",
            Span::call_site(),
        )))
        .collect(),
    })
}

/// The source line of a span (0 where the compiler does not say).
pub fn line_of(span: proc_macro2::Span) -> u32 {
    u32::try_from(span.start().line).unwrap_or(0)
}

/// A local variable of generated code, spanned `Span::mixed_site()`: it
/// never captures a name of the user's (a listener named `__typed`), nor is
/// captured by one.
pub fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The name generated code gives `#krate::__private` inside its `const _`
/// blocks (`use #krate::__private as __events_private;`): one token per use
/// instead of a path, for rustc to read and the macro to build.
pub fn private() -> Ident {
    Ident::new("__events_private", Span::call_site())
}

/// The `use` that brings [`private`] into a generated `const _` block.
pub fn use_private(krate: &syn::Path) -> TokenStream {
    let private = private();
    quote!(use #krate::__private as #private;)
}

/// A `Duration` as a const expression.
pub fn duration(private: &impl quote::ToTokens, d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(#private::Duration::new(#secs, #nanos))
}
