//! Reads the attribute's arguments and the function, and checks both.

use std::collections::HashSet;
use std::mem;
use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, FnArg, Ident, Item, ItemFn, Lit, LitStr, Meta, Pat, Path, Signature, Token, Type};

use crate::common::{listed, parse_duration, parse_recovering, Errors};

/// The attribute's arguments, each keeping the span of what the user wrote.
pub(crate) struct Config {
    /// The env name, already checked.
    pub env: LitStr,
    pub timeout: Option<Duration>,
    /// `shared`: one env for every test of the binary that names it.
    pub shared: bool,
    /// `crate = "path"`: where the e2e crate is, when the dependency is renamed.
    pub krate: Option<syn::Path>,
}

/// A parameter of the test function.
#[allow(clippy::large_enum_variant)] // one per macro call: size doesn't matter
pub(crate) enum Param {
    /// `&e2e::Env`.
    Env,
    /// A workload type, declared in the env under the parameter's name.
    Workload { name: Ident, ty: Type },
}

/// A valid `#[e2e::test]` function.
pub(crate) struct TestFn {
    pub config: Config,
    /// The user's function, without the attributes that move to the generated test.
    pub func: ItemFn,
    /// `#[ignore]` and `#[should_panic]`, which belong on the generated test.
    pub test_attrs: Vec<Attribute>,
    /// `#[cfg]`s of the function, which the generated module needs too.
    pub cfg_attrs: Vec<Attribute>,
    pub params: Vec<Param>,
}

#[allow(clippy::large_enum_variant)] // one per macro call: size doesn't matter
pub(crate) enum Parsed {
    Test(TestFn),
    /// The errors, and the user's item to emit anyway so that the rest of the code still
    /// resolves (and IDEs keep working).
    Invalid {
        item: TokenStream,
        errors: syn::Error,
    },
}

const ARGS: &[(&str, &str)] = &[
    ("env", "env = \"e2e_example\""),
    ("timeout", "timeout = \"120s\""),
    ("shared", "shared"),
    ("crate", "crate = \"my_e2e\""),
];

const UNSUPPORTED_TYPE: &str =
    "unsupported parameter type: #[e2e::test] takes `&e2e::Env` and workload types declared with `e2e::workload!`";

pub(crate) fn parse(args: TokenStream, item: TokenStream) -> Parsed {
    let mut errors = Errors::default();
    let config = parse_config(args, &mut errors);
    let mut func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => func,
        _ => {
            errors.at(item_head(&item), "#[e2e::test] applies to an `async fn`");
            return Parsed::Invalid { item, errors: errors.into_error().expect("an error was just pushed") };
        }
    };
    let (test_attrs, cfg_attrs) = sort_attrs(&mut func, &mut errors);
    check_signature(&func.sig, &mut errors);
    let params = parse_params(&func.sig, &mut errors);
    match (config, errors.into_error()) {
        (Some(config), None) => Parsed::Test(TestFn { config, func, test_attrs, cfg_attrs, params }),
        (_, errors) => Parsed::Invalid {
            item: func.into_token_stream(),
            errors: errors.expect("a config is missing only after an error"),
        },
    }
}

fn parse_config(args: TokenStream, errors: &mut Errors) -> Option<Config> {
    let mut seen = HashSet::new();
    // An argument without a key may have been meant as the env: no "missing env" then.
    let mut keyless = false;
    let (mut env, mut timeout, mut shared, mut krate) = (None, None, false, None);
    let parser = |input: ParseStream| {
        parse_recovering(input, errors, |input, _| {
            let key = input.call(Ident::parse_any).map_err(|e| {
                keyless = true;
                syn::Error::new(e.span(), "expected `key = \"value\"`: `env = \"e2e_example\"` or `timeout = \"120s\"`")
            })?;
            let name = key.to_string();
            let Some(&(_, example)) = ARGS.iter().find(|(k, _)| *k == name) else {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{name}`; known arguments: {}", listed(ARGS.iter().map(|(k, _)| k))),
                ));
            };
            let first = seen.insert(name.clone());
            if name == "shared" {
                if !first {
                    return Err(syn::Error::new(key.span(), "duplicate argument `shared`"));
                }
                if input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`shared` takes no value: `#[e2e::test(env = \"pg\", shared)]`",
                    ));
                }
                shared = true;
                return Ok(());
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(key.span(), format!("expected `{example}`")));
            }
            input.parse::<Token![=]>()?;
            let mut value: Expr = input.parse()?;
            // A literal passed through a `macro_rules!` fragment (`$env:literal`) arrives
            // wrapped in an invisible group.
            while let Expr::Group(group) = value {
                value = *group.expr;
            }
            if !first {
                return Err(syn::Error::new(key.span(), format!("duplicate argument `{name}`")));
            }
            let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = value else {
                return Err(syn::Error::new_spanned(value, format!("`{name}` takes a string literal: `{example}`")));
            };
            match name.as_str() {
                "env" => {
                    check_env_name(&lit.value()).map_err(|e| syn::Error::new(lit.span(), e))?;
                    env = Some(lit);
                }
                "crate" => krate = Some(crate::common::crate_path(&lit)?),
                _ => timeout = Some(parse_duration(&lit, "timeout")?),
            }
            Ok(())
        });
        Ok(())
    };
    parser.parse2(args).expect("recovering parser reports into `errors`");
    if !seen.contains("env") && !keyless {
        errors.at(
            Span::call_site(),
            "#[e2e::test] needs an env name: `#[e2e::test(env = \"name\")]`; tests of one env never run at the same time",
        );
    }
    Some(Config { env: env?, timeout, shared, krate })
}

/// Why `name` can't be an env name, if it can't: the rule `Env::docker` applies too.
fn check_env_name(name: &str) -> Result<(), String> {
    match e2e_names::env_name_problem(name) {
        Some(problem) => Err(format!("invalid env name {name:?}: {problem}")),
        None => Ok(()),
    }
}

/// Where an item that isn't a function starts, past its attributes.
fn item_head(item: &TokenStream) -> Span {
    let mut tokens = item.clone().into_iter().peekable();
    while matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == '#') {
        tokens.next();
        tokens.next();
    }
    tokens.next().map_or_else(Span::call_site, |t| t.span())
}

/// Takes the attributes that belong on the generated test off the function, and rejects
/// other test attributes.
fn sort_attrs(func: &mut ItemFn, errors: &mut Errors) -> (Vec<Attribute>, Vec<Attribute>) {
    let (mut test_attrs, mut cfg_attrs) = (Vec::new(), Vec::new());
    for attr in mem::take(&mut func.attrs) {
        let path = attr.path();
        if is_test_only(path) {
            test_attrs.push(attr);
        } else if is_test_generator(path) {
            errors.spanned(&attr, format!("remove #[{}]: #[e2e::test] already generates the test", path_text(path)));
        } else if path.is_ident("cfg_attr") {
            let (for_test, for_fn) = split_cfg_attr(attr);
            test_attrs.extend(for_test);
            func.attrs.extend(for_fn);
        } else {
            if path.is_ident("cfg") {
                cfg_attrs.push(attr.clone());
            }
            func.attrs.push(attr);
        }
    }
    (test_attrs, cfg_attrs)
}

fn is_test_only(path: &Path) -> bool {
    path.is_ident("ignore") || path.is_ident("should_panic")
}

/// `#[test]`, `#[tokio::test]`, `#[e2e::test]`, `#[rstest]`, `#[test_case(..)]`...
fn is_test_generator(path: &Path) -> bool {
    path.segments.last().is_some_and(|s| s.ident == "test" || s.ident == "rstest" || s.ident == "test_case")
}

fn path_text(path: &Path) -> String {
    let segments: Vec<_> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    format!("{}{}", if path.leading_colon.is_some() { "::" } else { "" }, segments.join("::"))
}

/// Splits `#[cfg_attr(pred, ignore, allow(x))]` into `#[cfg_attr(pred, ignore)]` for the test
/// and `#[cfg_attr(pred, allow(x))]` for the function.
fn split_cfg_attr(attr: Attribute) -> (Option<Attribute>, Option<Attribute>) {
    let Ok(list) = attr.meta.require_list() else {
        return (None, Some(attr));
    };
    let Ok(metas) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else {
        return (None, Some(attr));
    };
    let mut metas = metas.into_iter();
    let Some(predicate) = metas.next() else {
        return (None, Some(attr));
    };
    let (for_test, for_fn): (Vec<_>, Vec<_>) = metas.partition(|m| is_test_only(m.path()));
    let rebuilt = |metas: Vec<Meta>| {
        (!metas.is_empty()).then(|| {
            let mut attr = attr.clone();
            attr.meta = syn::parse_quote!(cfg_attr(#predicate, #(#metas),*));
            attr
        })
    };
    (rebuilt(for_test), rebuilt(for_fn))
}

fn check_signature(sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.at(sig.fn_token.span, "#[e2e::test] needs an `async fn`");
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        errors.at(unsafety.span, "#[e2e::test] can't call an `unsafe fn`: remove `unsafe`");
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(&sig.generics, "#[e2e::test] can't call a generic function: remove the generic parameters");
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(where_clause, "#[e2e::test] can't call a generic function: remove the `where` clause");
    }
}

fn parse_params(sig: &Signature, errors: &mut Errors) -> Vec<Param> {
    let mut params = Vec::new();
    let mut env_param: Option<&Pat> = None;
    for input in &sig.inputs {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.spanned(receiver, "unsupported parameter `self`: #[e2e::test] takes `&e2e::Env` and workload types declared with `e2e::workload!`");
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let ty = ungroup(&typed.ty);
        match ty {
            Type::Reference(r) if is_env(&r.elem) => {
                if r.mutability.is_some() {
                    errors.spanned(ty, format!("{UNSUPPORTED_TYPE}; take the env by shared reference: `&e2e::Env`"));
                } else if let Some(first) = env_param {
                    errors.spanned(
                        typed,
                        format!(
                            "a second env parameter: the test has one env, already passed as `{}`",
                            first.to_token_stream()
                        ),
                    );
                } else {
                    env_param = Some(&typed.pat);
                    params.push(Param::Env);
                }
            }
            Type::Path(_) if is_env(ty) => {
                errors.spanned(ty, format!("{UNSUPPORTED_TYPE}; take the env by reference: `&e2e::Env`"));
            }
            Type::Path(p) if p.qself.is_none() => match &*typed.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    params.push(Param::Workload { name: pat.ident.clone(), ty: ty.clone() });
                }
                pat => errors.spanned(
                    pat,
                    format!(
                        "unsupported parameter pattern: the workload is declared in the env under its parameter's \
                         name, so write a plain name, as in `name: {}`",
                        quote!(#ty)
                    ),
                ),
            },
            _ => errors.spanned(ty, UNSUPPORTED_TYPE),
        }
    }
    params
}

/// Types that came through a `macro_rules!` `$t:ty` are wrapped in an invisible group.
fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => ungroup(&g.elem),
        Type::Paren(p) => ungroup(&p.elem),
        ty => ty,
    }
}

/// `Env`, `e2e::Env`, `::e2e::Env`...
fn is_env(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Env" && s.arguments.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(args: TokenStream, item: TokenStream) -> Vec<String> {
        match parse(args, item) {
            Parsed::Test(_) => vec![],
            Parsed::Invalid { errors, .. } => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn item() -> TokenStream {
        quote!(
            async fn t(env: &e2e::Env) {}
        )
    }

    #[test]
    fn accepts_env_timeout_and_workloads() {
        let Parsed::Test(t) = parse(
            quote!(env = "e2e_example", timeout = "2m"),
            quote!(
                #[ignore]
                #[doc = "x"]
                async fn t(p: Prometheus, env: &::e2e::Env, mut r: db::Redis) -> e2e::Result<()> {
                    Ok(())
                }
            ),
        ) else {
            panic!("valid");
        };
        assert_eq!(t.config.env.value(), "e2e_example");
        assert_eq!(t.config.timeout, Some(Duration::from_secs(120)));
        assert_eq!(t.test_attrs.len(), 1);
        assert_eq!(t.func.attrs.len(), 1, "doc stays on the function");
        let kinds: Vec<_> = t
            .params
            .iter()
            .map(|p| match p {
                Param::Env => "env".to_string(),
                Param::Workload { name, ty } => format!("{name}:{}", quote!(#ty)),
            })
            .collect();
        assert_eq!(kinds, ["p:Prometheus", "env", "r:db :: Redis"]);
    }

    #[test]
    fn argument_errors_point_at_each_argument() {
        let errors = errors_of(quote!(env = "ok", nme = "x", env = "again", timeout = 5, timeout("1s")), item());
        assert_eq!(
            errors,
            [
                "unknown argument `nme`; known arguments: `env`, `timeout`, `shared`, `crate`",
                "duplicate argument `env`",
                "`timeout` takes a string literal: `timeout = \"120s\"`",
                "expected `timeout = \"120s\"`",
            ]
        );
        let errors = errors_of(quote!("e2e_example"), item());
        assert_eq!(errors[0], "expected `key = \"value\"`: `env = \"e2e_example\"` or `timeout = \"120s\"`");
        assert_eq!(errors.len(), 1, "a keyless argument may have been the env");
        let errors = errors_of(quote!(timeout = "1s"), item());
        assert_eq!(errors, ["#[e2e::test] needs an env name: `#[e2e::test(env = \"name\")]`; tests of one env never run at the same time"]);
        assert_eq!(errors_of(quote!(timeout("1s"), env = "a"), item()), ["expected `timeout = \"120s\"`"]);
        assert_eq!(errors_of(quote!(env("a")), item()), ["expected `env = \"e2e_example\"`"], "no missing env on top");
        assert_eq!(errors_of(quote!(env = "a" timeout = "1s"), item()), ["expected `,`"]);
    }

    #[test]
    fn env_names_follow_the_shared_rule() {
        // The same list the runtime's `Env::docker` is tested on.
        for (name, why) in e2e_names::cases::BAD {
            let e = errors_of(quote!(env = #name), item());
            assert_eq!(e.len(), 1, "{name:?}: {e:?}");
            assert!(
                e[0].starts_with(&format!("invalid env name {name:?}: {why}; an env name names the test")),
                "{e:?}"
            );
        }
        for name in e2e_names::cases::GOOD {
            assert_eq!(errors_of(quote!(env = #name), item()), Vec::<String>::new(), "{name:?}");
        }
    }

    #[test]
    fn shared_is_a_flag() {
        let Parsed::Test(t) = parse(quote!(env = "pg", shared, timeout = "5s"), item()) else { panic!("valid") };
        assert!(t.config.shared);
        let Parsed::Test(t) = parse(quote!(env = "pg"), item()) else { panic!("valid") };
        assert!(!t.config.shared);
        assert_eq!(
            errors_of(quote!(env = "pg", shared = "yes"), item()),
            ["`shared` takes no value: `#[e2e::test(env = \"pg\", shared)]`"]
        );
        assert_eq!(errors_of(quote!(env = "pg", shared, shared), item()), ["duplicate argument `shared`"]);
    }

    #[test]
    fn timeouts_are_checked() {
        let e = errors_of(quote!(env = "a", timeout = "2 parsecs"), item());
        assert!(e[0].starts_with("invalid timeout \"2 parsecs\": unknown time unit \"parsecs\""), "{e:?}");
        assert_eq!(
            errors_of(quote!(env = "a", timeout = "0ms"), item()),
            ["the timeout must be more than zero, e.g. \"120s\""]
        );
    }

    #[test]
    fn function_errors_come_all_at_once() {
        let errors = errors_of(
            quote!(env = "a"),
            quote!(
                #[tokio::test]
                #[test]
                unsafe fn t<T>(
                    self,
                    x: &str,
                    (a, b): (u8, u8),
                    env: &Env,
                    e2: &e2e::Env,
                    e3: &mut Env,
                    e4: Env,
                    w: impl Workload,
                    ref r: R,
                ) where
                    T: Copy,
                {
                }
            ),
        );
        let want = [
            "remove #[tokio::test]: #[e2e::test] already generates the test",
            "remove #[test]: #[e2e::test] already generates the test",
            "#[e2e::test] needs an `async fn`",
            "#[e2e::test] can't call an `unsafe fn`: remove `unsafe`",
            "#[e2e::test] can't call a generic function: remove the generic parameters",
            "#[e2e::test] can't call a generic function: remove the `where` clause",
            "unsupported parameter `self`: #[e2e::test] takes `&e2e::Env` and workload types declared with `e2e::workload!`",
            UNSUPPORTED_TYPE,
            UNSUPPORTED_TYPE,
            "a second env parameter: the test has one env, already passed as `env`",
            &format!("{UNSUPPORTED_TYPE}; take the env by shared reference: `&e2e::Env`"),
            &format!("{UNSUPPORTED_TYPE}; take the env by reference: `&e2e::Env`"),
            UNSUPPORTED_TYPE,
            "unsupported parameter pattern: the workload is declared in the env under its parameter's name, so write a plain name, as in `name: R`",
        ];
        assert_eq!(errors, want);
    }

    #[test]
    fn invalid_functions_are_still_emitted_without_test_attributes() {
        let Parsed::Invalid { item, .. } = parse(
            quote!(env = "a"),
            quote!(
                #[test]
                #[ignore]
                #[inline]
                fn t() {}
            ),
        ) else {
            panic!("not async");
        };
        assert_eq!(
            item.to_string(),
            quote!(
                #[inline]
                fn t() {}
            )
            .to_string()
        );
    }

    #[test]
    fn non_functions_are_rejected_at_their_head() {
        let e = errors_of(
            quote!(env = "a"),
            quote!(
                #[derive(Debug)]
                pub struct S;
            ),
        );
        assert_eq!(e, ["#[e2e::test] applies to an `async fn`"]);
        let Parsed::Invalid { item, .. } = parse(
            quote!(),
            quote!(
                struct S;
            ),
        ) else {
            panic!()
        };
        assert_eq!(item.to_string(), "struct S ;");
    }

    #[test]
    fn cfg_attr_ignore_moves_to_the_test() {
        let Parsed::Test(t) = parse(
            quote!(env = "a"),
            quote!(
                #[cfg(unix)]
                #[cfg_attr(not(ci), ignore, allow(unused))]
                #[should_panic(expected = "x")]
                async fn t() {}
            ),
        ) else {
            panic!("valid");
        };
        let test: Vec<_> = t.test_attrs.iter().map(|a| a.to_token_stream().to_string()).collect();
        assert_eq!(
            test,
            [quote!(#[cfg_attr(not(ci), ignore)]).to_string(), quote!(#[should_panic(expected = "x")]).to_string()]
        );
        let func: Vec<_> = t.func.attrs.iter().map(|a| a.to_token_stream().to_string()).collect();
        assert_eq!(func, [quote!(#[cfg(unix)]).to_string(), quote!(#[cfg_attr(not(ci), allow(unused))]).to_string()]);
        assert_eq!(t.cfg_attrs.len(), 1);
    }
}
