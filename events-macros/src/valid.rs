//! Rules that need both the attribute's keys and the function's signature.

use crate::ast::{EventParam, Handler};
use crate::attr::ListenerArgs;
use crate::ctxt::Ctxt;

/// Checks the keys against each other and against the signature.
pub fn listener(cx: &Ctxt, args: &ListenerArgs, handler: &Handler) {
    if args.queue.is_none() {
        for (key, span) in args.queue_only_keys() {
            cx.error_at(
                span,
                format!("`{key}` only applies to queued listeners; add `queue = \"default\"` or remove `{key}`"),
            );
        }
    }
    match (&args.pattern, handler.event) {
        (Some(pattern), Some(EventParam::Typed(ty))) => cx.error_at(
            pattern.span,
            format!(
                "`pattern` makes a wildcard listener, which takes `&AnyEvent`, but this one takes `&{}`; \
                 remove `pattern` or take `&AnyEvent`",
                quote::ToTokens::to_token_stream(ty).to_string().replace(' ', "")
            ),
        ),
        (None, Some(EventParam::Any(ty))) => cx.error_spanned_by(
            ty,
            "a listener taking `&AnyEvent` needs `pattern = \"..\"` to say which events it hears (`\"*\"` for all)",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Kind, handler};
    use crate::attr::parse_listener;
    use crate::symbol::LISTENER_KEYS;
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::{Signature, parse_quote};

    fn errors(args: TokenStream, sig: Signature) -> String {
        let cx = Ctxt::new();
        let args = parse_listener(&cx, "listener", LISTENER_KEYS, args);
        let h = handler(&cx, &sig, Kind::Free);
        listener(&cx, &args, &h);
        cx.check().err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn queue_only_keys_need_queue() {
        let err = errors(quote!(tries = 3), parse_quote!(fn a(e: &A)));
        assert!(
            err.contains("`tries` only applies to queued listeners"),
            "{err}"
        );
        assert_eq!(
            errors(quote!(queue = "q", tries = 3), parse_quote!(fn a(e: &A))),
            ""
        );
    }

    #[test]
    fn pattern_and_any_event_go_together() {
        let err = errors(quote!(pattern = "a.*"), parse_quote!(fn a(e: &A)));
        assert!(err.contains("takes `&A`"), "{err}");
        let err = errors(quote!(), parse_quote!(fn a(e: &AnyEvent)));
        assert!(err.contains("needs `pattern"), "{err}");
        assert_eq!(
            errors(quote!(pattern = "a.*"), parse_quote!(fn a(e: &AnyEvent))),
            ""
        );
    }
}
