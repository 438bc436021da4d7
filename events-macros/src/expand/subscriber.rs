//! `#[subscriber]` on an inherent `impl`: its `#[listen]` methods become
//! listeners named `Type::method`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt as _;
use syn::visit_mut::VisitMut;
use syn::{Attribute, ImplItem, ItemImpl, Path, Type};

use crate::ast::{self, Kind};
use crate::attr::{self, ListenerArgs};
use crate::ctxt::Ctxt;
use crate::expand::line_of;
use crate::expand::listener::{self, Callee, Registration};
use crate::symbol::LISTEN_KEYS;
use crate::valid;

/// Whether an attribute is `#[listen]` (or `#[events::listen]`).
fn is_listen(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "listen")
}

/// The impl with its `#[listen]` markers removed, plus one registration per
/// marked method. After any error, only the cleaned impl and the errors.
pub fn expand(cx: &Ctxt, krate: &Path, defaults: &ListenerArgs, mut item: ItemImpl) -> TokenStream {
    if let Some((_, trait_path, _)) = &item.trait_ {
        cx.error_spanned_by(
            trait_path,
            "`#[subscriber]` goes on an inherent `impl Type { .. }`, not on a trait implementation",
        );
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            "a subscriber cannot be generic: the registry needs one concrete type",
        );
    }
    let type_name = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.to_string())
        }
        _ => None,
    };
    if type_name.is_none() {
        cx.error_spanned_by(
            &item.self_ty,
            "`#[subscriber]` needs a named type, such as `impl MySubscriber`",
        );
    }

    let use_private = super::use_private(krate);

    // Take the markers off first, so the impl is emitted clean either way.
    let mut marked = Vec::new();
    for (index, impl_item) in item.items.iter_mut().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let mut listens: Vec<Attribute> = Vec::new();
        method.attrs.retain(|a| {
            if is_listen(a) {
                listens.push(a.clone());
                false
            } else {
                true
            }
        });
        if let Some(extra) = listens.get(1) {
            cx.error_spanned_by(
                extra,
                "this method is already marked `#[listen]`; merge the two into one",
            );
        }
        if let Some(first) = listens.into_iter().next() {
            marked.push((index, first));
        }
    }
    if marked.is_empty() {
        cx.error_spanned_by(
            &item.self_ty,
            "this `#[subscriber]` has no listener: mark its listener methods with `#[listen]`",
        );
    }

    // The names of the impl's functions: a hook or predicate named by one
    // of them alone cannot reach it from outside the impl.
    let functions: Vec<String> = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f.sig.ident.unraw().to_string()),
            _ => None,
        })
        .collect();

    let mut registrations = Vec::new();
    let mut any_queued = false;
    for (index, marker) in &marked {
        let ImplItem::Fn(method) = &item.items[*index] else {
            continue;
        };
        let tokens = match &marker.meta {
            syn::Meta::Path(_) => TokenStream::new(),
            syn::Meta::List(list) => list.tokens.clone(),
            syn::Meta::NameValue(nv) => {
                cx.error_spanned_by(nv, "write `#[listen]` or `#[listen(key = value, ..)]`");
                continue;
            }
        };
        let mut args = attr::parse_listener(cx, "listen", LISTEN_KEYS, tokens);
        args.inherit(defaults);
        let paths = [
            ("on_failure", args.on_failure.as_ref().map(|h| &h.value)),
            ("when", args.when.as_ref()),
        ];
        for (key, path) in paths {
            if let Some(path) = path {
                check_own_function(cx, key, path, &functions);
            }
        }
        any_queued |= args.queue.is_some();
        // The registration lives outside the impl: `Self` must be spelled out.
        let mut sig = method.sig.clone();
        ReplaceSelf(&item.self_ty).visit_signature_mut(&mut sig);
        let handler = ast::handler(cx, &sig, Kind::Method);
        valid::listener(cx, &args, &handler);
        let (Some(event), Some(type_name)) = (handler.event, &type_name) else {
            continue;
        };
        if cx.has_errors() {
            continue;
        }
        let ident = &method.sig.ident;
        let cfgs: Vec<Attribute> = method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect();
        let registration = Registration {
            args: &args,
            handler: &handler,
            event,
            callee: if handler.receiver {
                Callee::Method {
                    self_ty: &item.self_ty,
                    ident,
                }
            } else {
                Callee::Assoc {
                    self_ty: &item.self_ty,
                    ident,
                }
            },
            name: listener::name_expr(
                &super::private(),
                &args,
                &format!("{type_name}::{}", ident.unraw()),
            ),
            line: line_of(ident.span()),
        };
        let items = listener::registration(&registration);
        // The registration exists only where the method does.
        registrations.push(quote! {
            #(#cfgs)*
            #[allow(non_snake_case, deprecated, clippy::all)]
            const _: () = {
                #use_private
                #items
            };
        });
    }
    if !any_queued && !marked.is_empty() {
        for (key, span) in defaults.queue_only_keys() {
            cx.error_at(
                span,
                format!(
                    "`{key}` on `#[subscriber]` applies to its queued methods, and none is queued: add `queue = \"..\"` here or to a `#[listen]`"
                ),
            );
        }
    }
    if cx.has_errors() {
        registrations.clear();
    }
    quote! {
        #item
        #(#registrations)*
    }
}

/// `on_failure = failed` where `failed` is a function of the subscriber's
/// `impl`: inside an `impl`, as in any Rust code, its own functions are
/// reached through `Self::`, and a bare name means a free function.
fn check_own_function(cx: &Ctxt, key: &str, path: &Path, functions: &[String]) {
    let Some(ident) = path.get_ident() else {
        return;
    };
    let name = ident.unraw().to_string();
    if functions.contains(&name) {
        cx.error_spanned_by(
            path,
            format!(
                "`{name}` is a function of this `impl`: write `{key} = Self::{name}` (a free function of the same name: `{key} = self::{name}`)"
            ),
        );
    }
}

/// Replaces `Self` in types with the subscriber's type.
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    /// `&self` stays as written: it is checked, not used, by the expansion.
    fn visit_receiver_mut(&mut self, _: &mut syn::Receiver) {}

    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty
            && path.qself.is_none()
            && path.path.is_ident("Self")
        {
            *ty = self.0.clone();
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}
