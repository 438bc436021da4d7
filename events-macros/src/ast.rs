//! Typed views of the items the attributes annotate.

use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Pat, ReturnType, Signature, Type, Visibility};

use crate::ctxt::Ctxt;

/// A function as `#[listener]` needs it: everything but the body, which is
/// never parsed, nor even handed to syn. The item itself is emitted as
/// written, so a syntax error in the body is rustc's to report.
pub struct FnHead {
    /// Whether the function is `#[deprecated]`: code that names it then
    /// needs `#[allow(deprecated)]`.
    pub deprecated: bool,
    pub vis: Visibility,
    pub sig: Signature,
}

impl FnHead {
    /// Parses the tokens of a function item up to its body. Only the
    /// top-level tokens are walked to find the body, so a long body costs
    /// nothing.
    pub fn parse_item(input: &TokenStream) -> syn::Result<FnHead> {
        let mut head: Vec<TokenTree> = input.clone().into_iter().collect();
        match head.pop() {
            Some(TokenTree::Group(body)) if body.delimiter() == Delimiter::Brace => {}
            _ => {
                return Err(syn::Error::new(
                    Span::call_site(),
                    "expected a function body",
                ));
            }
        }
        syn::parse2(head.into_iter().collect())
    }
}

impl Parse for FnHead {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = Attribute::parse_outer(input)?;
        let deprecated = attrs.iter().any(|a| a.path().is_ident("deprecated"));
        let vis = input.parse()?;
        let sig = input.parse()?;
        Ok(FnHead {
            deprecated,
            vis,
            sig,
        })
    }
}

/// The name of a non-generic struct or enum, found among the item's
/// top-level tokens without handing them to syn: outer attributes, a
/// visibility, `struct` or `enum`, the name, then its body or `;`. `None`
/// for anything else (generics, other items), which takes the full parse.
pub fn plain_type_name(input: &TokenStream) -> Option<Ident> {
    let mut trees = input.clone().into_iter().peekable();
    loop {
        match trees.peek()? {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                trees.next();
                match trees.next()? {
                    TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => {}
                    _ => return None,
                }
            }
            TokenTree::Ident(i) if i == "pub" => {
                trees.next();
                if let Some(TokenTree::Group(g)) = trees.peek()
                    && g.delimiter() == Delimiter::Parenthesis
                {
                    trees.next();
                }
            }
            _ => break,
        }
    }
    match trees.next()? {
        TokenTree::Ident(keyword) if keyword == "struct" || keyword == "enum" => {}
        _ => return None,
    }
    let TokenTree::Ident(name) = trees.next()? else {
        return None;
    };
    match trees.next()? {
        TokenTree::Group(g) if g.delimiter() != Delimiter::None => Some(name),
        TokenTree::Punct(p) if p.as_char() == ';' => Some(name),
        _ => None,
    }
}

/// What a listener takes.
#[derive(Clone, Copy)]
pub enum EventParam<'a> {
    /// `&E`: one event type.
    Typed(&'a Type),
    /// `&AnyEvent`: a wildcard listener.
    Any(&'a Type),
}

/// Whether the function is free (`#[listener]`) or a method (`#[listen]`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Free,
    Method,
}

/// A parameter after the event: an extractor.
#[derive(Clone, Copy)]
pub struct Extra<'a> {
    /// The type: `T` for a parameter `T`, and for `&T` the `T` it borrows.
    pub ty: &'a Type,
    /// Whether it is borrowed (`&Context`).
    pub by_ref: bool,
}

/// A listener function's signature, as the expansion needs it.
pub struct Handler<'a> {
    pub is_async: bool,
    /// `None` when the signature is wrong (the error is recorded).
    pub event: Option<EventParam<'a>>,
    /// The parameters after the event, in order.
    pub extras: Vec<Extra<'a>>,
    /// Whether a method takes `&self` (a subscriber's method may take no
    /// receiver: then its type need not be `Default`).
    pub receiver: bool,
    /// The declared return type; `None` for `()`.
    pub output: Option<&'a Type>,
}

/// Reads a listener's signature, recording every way it is wrong.
pub fn handler<'a>(cx: &Ctxt, sig: &'a Signature, kind: Kind) -> Handler<'a> {
    if sig.generics.type_params().next().is_some() || sig.generics.const_params().next().is_some() {
        cx.error_spanned_by(
            &sig.generics,
            "a listener cannot be generic: the registry needs one concrete function per event",
        );
    }
    if sig.ident.unraw().to_string().starts_with("__events") {
        cx.error_spanned_by(
            &sig.ident,
            "names starting with `__events` are reserved for the code `events` generates; rename this function",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "a listener cannot be an `unsafe fn`: dispatch calls it safely",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a listener cannot have an `extern` ABI");
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(constness, "a listener cannot be a `const fn`");
    }

    let mut inputs = sig.inputs.iter();
    let receiver = sig.receiver().is_some();
    match (kind, sig.receiver()) {
        (Kind::Free, Some(receiver)) => {
            cx.error_spanned_by(
                receiver,
                "`#[listener]` goes on a free function; for a method, put `#[subscriber]` on the `impl` and `#[listen]` on the method",
            );
            inputs.next();
        }
        (Kind::Method, Some(receiver)) => {
            if receiver.reference.is_none()
                || receiver.mutability.is_some()
                || receiver.colon_token.is_some()
            {
                cx.error_spanned_by(
                    receiver,
                    "a `#[listen]` method takes `&self`: `fn on_event(&self, event: &MyEvent)`",
                );
            }
            inputs.next();
        }
        (Kind::Method, None) | (Kind::Free, None) => {}
    }

    let params: Vec<&FnArg> = inputs.collect();
    let (event, extras) = match params.as_slice() {
        [] => {
            cx.error_at(
                sig.paren_token.span.join(),
                "a listener takes the event it handles as its first parameter: `fn on_event(event: &MyEvent)`",
            );
            (None, Vec::new())
        }
        [first, rest @ ..] => (
            event_param(cx, first),
            rest.iter().filter_map(|arg| extra_param(cx, arg)).collect(),
        ),
    };

    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    if let (Some(Type::ImplTrait(ty)), None) = (output, &sig.asyncness) {
        cx.error_spanned_by(
            ty,
            "write `async fn` instead of returning `impl Future`: a listener returns `()`, `Flow`, `Result<(), E>` or `Result<Flow, E>`",
        );
    }

    if let Some(ty) = output {
        check_not_bool(cx, ty);
    }

    Handler {
        is_async: sig.asyncness.is_some(),
        event,
        extras,
        receiver,
        output,
    }
}

/// `-> bool` (or `Result<bool, E>`): Laravel's `return false` is `Flow::Stop`
/// here, so say so rather than let the compiler list the return types.
fn check_not_bool(cx: &Ctxt, ty: &Type) {
    if is_bool(ty) {
        cx.error_spanned_by(
            ty,
            "a listener does not return `bool`: return `Flow` instead, `Flow::Stop` to stop the remaining listeners (Laravel's `return false`) and `Flow::Continue` to go on",
        );
        return;
    }
    let Type::Path(path) = ty else {
        return;
    };
    let Some(last) = path.path.segments.last() else {
        return;
    };
    if last.ident != "Result" {
        return;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return;
    };
    if let Some(syn::GenericArgument::Type(ok)) = args.args.first()
        && is_bool(ok)
    {
        cx.error_spanned_by(
            ok,
            "a listener does not return `Result<bool, E>`: return `Result<Flow, E>` instead, `Ok(Flow::Stop)` to stop the remaining listeners (Laravel's `return false`) and `Ok(Flow::Continue)` to go on",
        );
    }
}

fn is_bool(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path.qself.is_none() && path.path.is_ident("bool"),
        Type::Paren(paren) => is_bool(&paren.elem),
        Type::Group(group) => is_bool(&group.elem),
        _ => false,
    }
}

/// A parameter after the event: `&T` (only `&Context` will do) or `T` (an
/// extractor). Whether the type qualifies is the compiler's to say, on the
/// type, through the traits' own words.
fn extra_param<'a>(cx: &Ctxt, arg: &'a FnArg) -> Option<Extra<'a>> {
    let FnArg::Typed(typed) = arg else {
        return None;
    };
    match &*typed.ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            cx.error_spanned_by(
                reference,
                "a listener cannot take `&mut` parameters: after the event it takes `&Context`, or extractors by value such as `State<T>`",
            );
            None
        }
        Type::Reference(reference) => Some(Extra {
            ty: &reference.elem,
            by_ref: true,
        }),
        Type::ImplTrait(ty) => {
            cx.error_spanned_by(
                ty,
                "a listener's parameter cannot be `impl Trait`: name the extractor's type, such as `State<Pool>`",
            );
            None
        }
        ty => Some(Extra { ty, by_ref: false }),
    }
}

fn event_param<'a>(cx: &Ctxt, arg: &'a FnArg) -> Option<EventParam<'a>> {
    let FnArg::Typed(typed) = arg else {
        return None;
    };
    if !matches!(&*typed.pat, Pat::Ident(_) | Pat::Wild(_)) {
        cx.error_spanned_by(
            &typed.pat,
            "name the event parameter, such as `event: &MyEvent`",
        );
    }
    match &*typed.ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            cx.error_spanned_by(
                reference,
                "a listener borrows its event immutably: write `&` instead of `&mut`",
            );
            None
        }
        Type::Reference(reference) => {
            let inner = &*reference.elem;
            if is_unsized(inner) {
                cx.error_spanned_by(
                    inner,
                    format!(
                        "`{}` is not an event: a listener's parameter must be `&E` where `E` has `#[event]`",
                        quote::ToTokens::to_token_stream(inner).to_string().replace(' ', "")
                    ),
                );
                return None;
            }
            if is_any_event(inner) {
                Some(EventParam::Any(inner))
            } else {
                Some(EventParam::Typed(inner))
            }
        }
        other => {
            cx.error_at(
                other.span(),
                format!(
                    "a listener borrows its event: write `&{}`",
                    quote::ToTokens::to_token_stream(other)
                        .to_string()
                        .replace(' ', "")
                ),
            );
            None
        }
    }
}

/// `str`, slices and trait objects: never events (an event is a sized
/// struct or enum), and rustc's own errors about them would be about size.
fn is_unsized(ty: &Type) -> bool {
    match ty {
        Type::Slice(_) | Type::TraitObject(_) => true,
        Type::Path(path) => path.qself.is_none() && path.path.is_ident("str"),
        Type::Paren(paren) => is_unsized(&paren.elem),
        Type::Group(group) => is_unsized(&group.elem),
        _ => false,
    }
}

/// Whether the type is `AnyEvent` (by its last path segment).
fn is_any_event(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "AnyEvent" && s.arguments.is_empty()),
        Type::Paren(paren) => is_any_event(&paren.elem),
        Type::Group(group) => is_any_event(&group.elem),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn check(sig: Signature, kind: Kind) -> (Option<&'static str>, Option<String>) {
        let sig = Box::leak(Box::new(sig));
        let cx = Ctxt::new();
        let h = handler(&cx, sig, kind);
        let event = h.event.map(|e| match e {
            EventParam::Typed(_) => "typed",
            EventParam::Any(_) => "any",
        });
        (event, cx.check().err().map(|e| e.to_string()))
    }

    #[test]
    fn typed_and_wildcard() {
        assert_eq!(
            check(parse_quote!(fn a(e: &Created)), Kind::Free),
            (Some("typed"), None)
        );
        assert_eq!(
            check(parse_quote!(async fn a(_: &events::AnyEvent)), Kind::Free),
            (Some("any"), None)
        );
        assert_eq!(
            check(parse_quote!(fn a(&self, e: &Created)), Kind::Method),
            (Some("typed"), None)
        );
    }

    #[test]
    fn wrong_signatures() {
        let (_, err) = check(parse_quote!(fn a()), Kind::Free);
        assert!(err.unwrap().contains("takes the event it handles"));
        assert_eq!(
            check(
                parse_quote!(fn a(e: &A, c: &Context, State(p): State<P>)),
                Kind::Free
            ),
            (Some("typed"), None)
        );
        let (_, err) = check(parse_quote!(fn a(e: &A, f: &mut B)), Kind::Free);
        assert!(err.unwrap().contains("cannot take `&mut` parameters"));
        let (_, err) = check(parse_quote!(fn a(e: &A, f: impl Sized)), Kind::Free);
        assert!(err.unwrap().contains("cannot be `impl Trait`"));
        let (_, err) = check(parse_quote!(fn a(e: A)), Kind::Free);
        assert!(err.unwrap().contains("write `&A`"));
        let (_, err) = check(parse_quote!(fn a(e: &mut A)), Kind::Free);
        assert!(err.unwrap().contains("instead of `&mut`"));
        let (_, err) = check(parse_quote!(fn a<T>(e: &T)), Kind::Free);
        assert!(err.unwrap().contains("cannot be generic"));
        assert_eq!(
            check(parse_quote!(fn a<'x>(e: &'x A)), Kind::Free),
            (Some("typed"), None)
        );
        let (_, err) = check(parse_quote!(fn a(e: &str)), Kind::Free);
        assert!(err.unwrap().contains("`str` is not an event"));
        let (_, err) = check(parse_quote!(fn __events_call(e: &A)), Kind::Free);
        assert!(err.unwrap().contains("reserved"));
        let (_, err) = check(parse_quote!(fn a(&self, e: &A)), Kind::Free);
        assert!(err.unwrap().contains("goes on a free function"));
        assert_eq!(
            check(parse_quote!(fn a(e: &A)), Kind::Method),
            (Some("typed"), None)
        );
        let (_, err) = check(parse_quote!(fn a(self, e: &A)), Kind::Method);
        assert!(err.unwrap().contains("takes `&self`"));
        let (_, err) = check(parse_quote!(fn a(e: &A) -> bool), Kind::Free);
        assert!(err.unwrap().contains("`Flow::Stop`"));
        let (_, err) = check(parse_quote!(fn a(e: &A) -> Result<bool, E>), Kind::Free);
        assert!(err.unwrap().contains("`Ok(Flow::Stop)`"));
    }
}
