//! Code generation: one file per attribute.

pub mod event;
pub mod listener;
pub mod subscriber;

use proc_macro2::TokenStream;
use quote::quote;

/// The path generated code names the runtime by: `::events` unless
/// `crate = ..` overrides it.
pub fn crate_path(overridden: Option<syn::Path>) -> syn::Path {
    overridden.unwrap_or_else(|| syn::parse_quote!(::events))
}

/// The source line of a span (0 where the compiler does not say).
pub fn line_of(span: proc_macro2::Span) -> u32 {
    u32::try_from(span.start().line).unwrap_or(0)
}

/// A `Duration` as a const expression.
pub fn duration(krate: &syn::Path, d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(#krate::__private::Duration::new(#secs, #nanos))
}
