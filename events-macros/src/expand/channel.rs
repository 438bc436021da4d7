//! `#[channel("private-session.{id}")]` on a function: parse the pattern and
//! the function, check that every placeholder has a parameter and every
//! parameter a placeholder, and register the function at link time as the
//! authorization of the channels the pattern matches.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, Pat, Path, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::expand::{line_of, local, private, use_private};

/// The attribute's arguments: the pattern, and `crate = path`.
pub struct ChannelArgs {
    pub pattern: Option<LitStr>,
    pub krate: Option<Path>,
}

/// Parses `"pattern"` and an optional `, crate = path`.
pub fn parse_args(cx: &Ctxt, args: TokenStream) -> ChannelArgs {
    let parser = |input: ParseStream| {
        let mut out = ChannelArgs {
            pattern: None,
            krate: None,
        };
        if input.is_empty() {
            return Ok(out);
        }
        out.pattern = Some(input.parse()?);
        while !input.is_empty() {
            input.parse::<syn::Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: syn::Ident = input.call(syn::Ident::parse_any)?;
            if key != "crate" {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown key `{key}`: `#[channel]` takes the pattern and `crate = path`"
                    ),
                ));
            }
            if out.krate.is_some() {
                return Err(syn::Error::new(key.span(), "`crate` is given twice"));
            }
            input.parse::<syn::Token![=]>()?;
            out.krate = Some(input.parse()?);
        }
        Ok(out)
    };
    match parser.parse2(args.clone()) {
        Ok(parsed) => {
            if parsed.pattern.is_none() {
                cx.error_at(
                    Span::call_site(),
                    "`#[channel]` needs the channel pattern: `#[channel(\"private-session.{id}\")]`",
                );
            }
            parsed
        }
        Err(e) => {
            cx.push(e);
            ChannelArgs {
                pattern: None,
                krate: None,
            }
        }
    }
}

/// The kind of channel a pattern is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Private,
    Presence,
}

/// The placeholders of `pattern`, in order, or why it cannot work.
pub fn placeholders(pattern: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    let mut last_was_placeholder = false;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("`{pattern}` has a `}}` with no `{{`"));
        }
        if open == 0 && last_was_placeholder {
            return Err(format!(
                "`{pattern}`: two placeholders must be apart, such as `{{a}}.{{b}}`"
            ));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("`{pattern}` has a `{{` with no `}}`"));
        };
        let name = &after[..close];
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(format!(
                "`{pattern}`: the placeholder `{{{name}}}` must be a parameter's name, such as `{{id}}`"
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(format!("`{pattern}` names `{{{name}}}` twice"));
        }
        names.push(name.to_owned());
        rest = &after[close + 1..];
        last_was_placeholder = true;
        if rest.starts_with('{') {
            return Err(format!(
                "`{pattern}`: two placeholders must be apart, such as `{{a}}.{{b}}`"
            ));
        }
    }
    let literal: String = {
        let mut text = String::new();
        let mut inside = false;
        for c in pattern.chars() {
            match c {
                '{' => {
                    inside = true;
                    text.push('x');
                }
                '}' => inside = false,
                c if !inside => text.push(c),
                _ => {}
            }
        }
        text
    };
    if literal.len() > 164
        || !literal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
    {
        return Err(format!(
            "`{pattern}` can match no channel: channel names hold only letters, digits and `_ - = @ , . ;`, at most 164 of them"
        ));
    }
    Ok(names)
}

/// The expansion: the function as written, and its registration. After an
/// error only the function is emitted, so the error stands alone.
pub fn expand(cx: &Ctxt, args: &ChannelArgs, input: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let anchor: TokenStream = input.clone().into_iter().take(2).collect();
            cx.error_spanned_by(
                anchor,
                "`#[channel(\"..\")]` goes on a function `fn(user: &User, ..placeholders) -> bool` (or `-> Option<Member>` for a presence channel)",
            );
            return input;
        }
    };
    let Some(pattern) = &args.pattern else {
        return input;
    };
    let text = pattern.value();
    let kind = if text.starts_with("presence-") {
        Kind::Presence
    } else if text.starts_with("private-") {
        Kind::Private
    } else {
        cx.error_spanned_by(
            pattern,
            format!(
                "`{text}` must start with `private-` or `presence-`: only those channels are authorized (public channels need no callback)"
            ),
        );
        return input;
    };
    let names = match placeholders(&text) {
        Ok(names) => names,
        Err(problem) => {
            cx.error_spanned_by(pattern, problem);
            return input;
        }
    };
    let sig = &item.sig;
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "a channel callback cannot be generic: name the user type it takes",
        );
    }
    let mut inputs = sig.inputs.iter();
    let user_ty = match inputs.next() {
        Some(FnArg::Typed(arg)) => match &*arg.ty {
            Type::Reference(reference) if reference.mutability.is_none() => {
                Some((*reference.elem).clone())
            }
            other => {
                cx.error_spanned_by(
                    other,
                    "a channel callback's first parameter is the user, taken by reference: `user: &User`",
                );
                None
            }
        },
        Some(FnArg::Receiver(receiver)) => {
            cx.error_spanned_by(
                receiver,
                "a channel callback is a free function, not a method",
            );
            None
        }
        None => {
            cx.error_spanned_by(
                &sig.ident,
                "a channel callback takes the user first: `fn(user: &User, ..) -> bool`",
            );
            None
        }
    };
    // The parameters after the user, in order.
    let mut params: Vec<Param> = Vec::new();
    for arg in inputs {
        let FnArg::Typed(arg) = arg else { continue };
        if is_state(&arg.ty) {
            params.push(Param::State((*arg.ty).clone()));
            continue;
        }
        let Pat::Ident(pat) = &*arg.pat else {
            cx.error_spanned_by(
                &arg.pat,
                "name each placeholder's parameter plainly, such as `id: u64`",
            );
            continue;
        };
        let name = pat.ident.unraw().to_string();
        if !names.contains(&name) {
            let list = names
                .iter()
                .map(|n| format!("`{{{n}}}`"))
                .collect::<Vec<_>>()
                .join(", ");
            cx.error_spanned_by(
                &pat.ident,
                if names.is_empty() {
                    format!("`{name}` is no placeholder of `{text}`, which has none: remove the parameter, or add `{{{name}}}` to the pattern")
                } else {
                    format!("`{name}` is no placeholder of `{text}` (it has {list}): rename the parameter, or add `{{{name}}}` to the pattern")
                },
            );
            continue;
        }
        params.push(Param::Placeholder(pat.ident.clone(), (*arg.ty).clone()));
    }
    for name in &names {
        let named =
            |param: &Param| matches!(param, Param::Placeholder(ident, _) if ident.unraw() == name);
        if !params.iter().any(named) {
            let suggestion = if name == "id" || name.ends_with("_id") {
                format!("{name}: u64")
            } else {
                format!("{name}: String")
            };
            cx.error_spanned_by(
                pattern,
                format!(
                    "the placeholder `{{{name}}}` names no parameter of `{}`: add one, such as `{suggestion}` (any type that implements `FromStr`)",
                    sig.ident
                ),
            );
        }
    }
    let Some(user_ty) = user_ty else {
        return input;
    };
    if cx.has_errors() {
        return input;
    }

    let krate = crate::expand::crate_path(args.krate.clone());
    let private = private();
    let use_private = use_private(&krate);
    let ident = &sig.ident;
    let fn_name = ident.unraw().to_string();
    let user = local("__events_user");
    let raw_params = local("__events_params");
    let authorize = local("__events_authorize");
    // Each value gets a local of its own: a parameter may share the
    // function's name (`fn room(user: &User, room: String)`).
    let state = local("__events_state");
    let values: Vec<syn::Ident> = (0..params.len())
        .map(|i| local(&format!("__events_param_{i}")))
        .collect();
    let bindings = params.iter().zip(&values).map(|(param, value)| {
        let (ty, taken) = match param {
            Param::Placeholder(ident, ty) => {
                let name = ident.unraw().to_string();
                let parse = quote_spanned!(ty.span()=> #private::channel_param::<#ty>);
                (ty, quote!(#parse(#raw_params, #name)))
            }
            Param::State(ty) => {
                let take = quote_spanned!(ty.span()=> <#ty as #private::ChannelStateParam>::take);
                (ty, quote!(#take(#state)))
            }
        };
        quote! {
            let #value: #ty = match #taken {
                #private::Ok(value) => value,
                #private::Err(answer) => return answer,
            };
        }
    });
    let needs = params.iter().filter_map(|param| match param {
        Param::State(ty) => Some(quote!(<#ty as #private::ChannelStateParam>::NEED)),
        Param::Placeholder(..) => None,
    });
    let args_passed = values.iter();
    let call = if sig.asyncness.is_some() {
        quote!(#ident(#user, #(#args_passed),*).await)
    } else {
        quote!(#ident(#user, #(#args_passed),*))
    };
    let answer_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    };
    // The answer goes through a local spanned on the return type, so a
    // wrong return type is reported there.
    let value = syn::Ident::new(
        "__events_answer",
        answer_span.resolved_at(Span::mixed_site()),
    );
    let answer = match kind {
        Kind::Private => quote_spanned!(answer_span=> #private::channel_private(#value)),
        Kind::Presence => quote_spanned!(answer_span=> #private::channel_presence(#value)),
    };
    let user_check = quote_spanned!(user_ty.span()=> #private::channel_user::<#user_ty>);
    let line = line_of(ident.span());
    let pattern_tokens = pattern.to_token_stream();
    quote! {
        #item

        const _: () = {
            #use_private

            fn #authorize<'a>(
                #user: &'a #private::ChannelUser,
                #raw_params: &'a #private::ChannelParams,
                #state: &'a #private::ChannelState,
            ) -> #private::BoxFuture<'a, #private::ChannelAnswer> {
                let _ = #state;
                #private::Box::pin(async move {
                    let #user = match #user_check(#user) {
                        #private::Some(user) => user,
                        #private::None => return #private::ChannelAnswer::WrongUser,
                    };
                    #(#bindings)*
                    let #value = #call;
                    #answer
                })
            }

            #private::inventory::submit! {
                #private::ChannelDef {
                    pattern: #pattern_tokens,
                    name: #private::concat!(#private::module_path!(), "::", #fn_name),
                    user_type: #private::TypeId::of::<#user_ty>,
                    user_type_name: #private::type_name::<#user_ty>,
                    needs: &[#(#needs),*],
                    authorize: #authorize,
                    file: #private::file!(),
                    line: #line,
                }
            }
        };
    }
}

/// A callback's parameter after the user.
enum Param {
    /// Parsed from the placeholder of its name.
    Placeholder(syn::Ident, Type),
    /// Taken from the server's state: `State<T>`.
    State(Type),
}

/// Whether a parameter's type is `State<..>` (the extractor of listeners):
/// taken from the server's state, not from a placeholder.
fn is_state(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().is_some_and(|last| {
            last.ident == "State" && matches!(last.arguments, syn::PathArguments::AngleBracketed(_))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_parameters_are_told_apart() {
        for (ty, state) in [
            ("State<Pool>", true),
            ("events::State<Pool>", true),
            ("u64", false),
            ("State", false),
            ("Stateful<Pool>", false),
        ] {
            let ty: Type = syn::parse_str(ty).expect("a type");
            assert_eq!(is_state(&ty), state, "{}", ty.to_token_stream());
        }
    }

    #[test]
    fn placeholders_in_order() {
        assert_eq!(
            placeholders("private-session.{id}").expect("parses"),
            vec!["id"]
        );
        assert_eq!(
            placeholders("presence-room.{room}-{part}").expect("parses"),
            vec!["room", "part"]
        );
        assert!(placeholders("private-admin").expect("parses").is_empty());
    }

    #[test]
    fn bad_patterns_say_why() {
        for (bad, words) in [
            ("private-{id", "no `}`"),
            ("private-id}", "no `{`"),
            ("private-{1d}", "parameter's name"),
            ("private-{a}{b}", "apart"),
            ("private-{a}.{a}", "twice"),
            ("private room.{id}", "can match no channel"),
        ] {
            let problem = placeholders(bad).expect_err(bad);
            assert!(problem.contains(words), "{bad}: {problem}");
        }
    }
}
