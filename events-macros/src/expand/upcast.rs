//! `#[upcast(Event, from = N)]` on a `fn(serde_json::Value) -> serde_json::Value`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, Path, Token, Type};

use crate::expand::line_of;

/// The arguments: the event type, then `from = N`.
pub struct UpcastArgs {
    pub event: Type,
    pub from: u32,
    pub krate: Option<Path>,
}

impl Parse for UpcastArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(
                "`#[upcast]` needs the event and the version it reads: `#[upcast(AppointmentCreated, from = 1)]`",
            ));
        }
        let event: Type = input.parse()?;
        let mut from = None;
        let mut krate = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = if input.peek(Token![crate]) {
                let token: Token![crate] = input.parse()?;
                Ident::new("crate", token.span)
            } else {
                input.parse()?
            };
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "from" => {
                    let n: LitInt = input.parse()?;
                    let value: u32 = n.base10_parse()?;
                    if value == 0 {
                        return Err(syn::Error::new(
                            n.span(),
                            "versions start at 1: `from = 1` reads the first",
                        ));
                    }
                    if from.replace(value).is_some() {
                        return Err(syn::Error::new(key.span(), "duplicate key `from`"));
                    }
                }
                "crate" => krate = Some(input.parse()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown key `{other}` in `#[upcast]`: it takes the event, `from = N` and `crate`"
                        ),
                    ));
                }
            }
        }
        let Some(from) = from else {
            return Err(syn::Error::new_spanned(
                &event,
                "say which version this upcaster reads: `#[upcast(.., from = 1)]`",
            ));
        };
        Ok(UpcastArgs { event, from, krate })
    }
}

/// The function as written, and its registration.
pub fn expand(krate: &Path, args: &UpcastArgs, item: &syn::ItemFn) -> TokenStream {
    let ident = &item.sig.ident;
    let event = &args.event;
    let from = args.from;
    let line = line_of(ident.span());
    let private = quote!(#krate::__private);
    quote! {
        #item

        #private::inventory::submit! {
            #private::UpcastDef {
                event: <#event as #private::Event>::NAME,
                log: #private::event_log_def::<#event>,
                from: #from,
                run: #ident,
                file: #private::file!(),
                line: #line,
            }
        }
    }
}
