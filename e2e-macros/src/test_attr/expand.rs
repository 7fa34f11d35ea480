//! Emits the user's function untouched, and beside it a module of the same name holding the
//! test, named after the env, which hands the function to the runtime.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::ReturnType;

use super::parse::{Param, Parsed, TestFn};
use crate::common::duration_tokens;

pub(crate) fn expand(parsed: Parsed) -> TokenStream {
    match parsed {
        Parsed::Test(test) => expand_test(test),
        Parsed::Invalid { item, errors } => {
            let errors = errors.to_compile_error();
            quote!(#item #errors)
        }
    }
}

fn expand_test(test: TestFn) -> TokenStream {
    let TestFn { config, func, test_attrs, cfg_attrs, params } = test;
    let name = &func.sig.ident;
    let env_name = &config.env;
    let test_name = Ident::new(&env_name.value(), env_name.span());
    let timeout = match config.timeout {
        Some(d) => {
            let d = duration_tokens(d);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    };
    let shared = config.shared;
    // Mixed-site: a user parameter named `env` can't shadow the env the workloads join.
    let env = Ident::new("env", Span::mixed_site());

    let workloads: Vec<_> = params
        .iter()
        .filter_map(|p| match p {
            Param::Workload { name, ty } => Some((name, ty)),
            Param::Env => None,
        })
        .collect();
    let declares = workloads.iter().map(|(name, ty)| {
        // `_redis` is a parameter the body does not use; its runnable is still "redis".
        let declared_as = name.unraw().to_string().trim_start_matches('_').to_string();
        quote_spanned!(ty.span()=> let #name = <#ty as ::e2e::Workload>::declare(&#env, #declared_as);)
    });
    // A shared test lists its workloads for the keeper of its env (across processes).
    let shared_declaration = shared.then(|| {
        let declares = workloads.iter().map(|(name, ty)| {
            let declared_as = name.unraw().to_string().trim_start_matches('_').to_string();
            quote_spanned!(ty.span()=> let #name = <#ty as ::e2e::Workload>::declare(#env, #declared_as);)
        });
        let runnables = workloads.iter().map(|(name, ty)| {
            let name = respanned(name, ty.span());
            quote_spanned!(ty.span()=> ::core::clone::Clone::clone(::e2e::Workload::runnable(&#name)))
        });
        quote! {
            #[allow(dead_code)]
            fn __e2e_declare(#env: &::e2e::Env) -> ::std::vec::Vec<::e2e::Runnable> {
                #(#declares)*
                ::std::vec![#(#runnables),*]
            }

            #[::e2e::__private::linkme::distributed_slice(::e2e::__private::SHARED_DECLARATIONS)]
            #[linkme(crate = ::e2e::__private::linkme)]
            static __E2E_DECLARATION: ::e2e::__private::SharedDeclaration = ::e2e::__private::SharedDeclaration {
                env: #env_name,
                test: ::core::module_path!(),
                declare: __e2e_declare,
            };
        }
    });
    let start = (!workloads.is_empty()).then(|| {
        // On the type too, so that a type that isn't a workload is reported once, there.
        let runnables = workloads.iter().map(|(name, ty)| {
            let name = respanned(name, ty.span());
            quote_spanned!(ty.span()=> ::e2e::Workload::runnable(&#name))
        });
        quote!(::e2e::__private::start_workloads(&[#(#runnables),*]).await?;)
    });
    // Errors about the return type (not `()` nor a `Result` with a `Debug` error) land on it,
    // not on the whole signature: every token of the call is located there.
    let return_span = match &func.sig.output {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let args = params.iter().map(|p| match p {
        Param::Env => {
            let env = respanned(&env, return_span);
            quote_spanned!(return_span=> &#env)
        }
        Param::Workload { name, .. } => respanned(name, return_span).into_token_stream(),
    });
    let function = respanned(name, return_span);
    let call = quote_spanned!(return_span=>
        ::e2e::__private::TestReturn::into_outcome(super::#function(#(#args),*).await)
    );

    quote! {
        #func

        #(#cfg_attrs)*
        #[doc(hidden)]
        #[allow(non_snake_case)]
        mod #name {
            #[allow(unused_imports)]
            use super::*;

            // Outside the `#[test]` fn, so that it is type-checked in every build, not only
            // under `--test` (and so that it keeps the user's function in use).
            #[allow(dead_code)]
            fn __e2e_body(
                #env: ::e2e::Env,
            ) -> ::std::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ::core::result::Result<(), ::std::string::String>>>> {
                ::std::boxed::Box::pin(async move {
                    #(#declares)*
                    #start
                    #call
                })
            }

            #shared_declaration

            // Listed for the binary's other tests of the same env (shared or not must agree).
            #[::e2e::__private::linkme::distributed_slice(::e2e::__private::TESTS)]
            #[linkme(crate = ::e2e::__private::linkme)]
            static __E2E_SPEC: ::e2e::__private::TestSpec = ::e2e::__private::TestSpec {
                env: #env_name,
                test: ::core::module_path!(),
                timeout: #timeout,
                shared: #shared,
            };

            #[::core::prelude::v1::test]
            #(#test_attrs)*
            fn #test_name() {
                ::e2e::__private::run_test(__E2E_SPEC, __e2e_body)
            }
        }
    }
}

/// `ident`, resolved as before but shown at `location`.
fn respanned(ident: &Ident, location: Span) -> Ident {
    let mut ident = ident.clone();
    ident.set_span(ident.span().located_at(location));
    ident
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::squash;
    use crate::test_attr::parse;

    fn expanded(args: TokenStream, item: TokenStream) -> String {
        squash(expand(parse(args, item)))
    }

    #[test]
    fn emits_the_function_and_a_test_named_after_the_env() {
        let out = expanded(
            quote!(env = "e2e_example", timeout = "120s"),
            quote! {
                /// Docs.
                #[ignore]
                async fn scrapes_itself(env: &e2e::Env, prom: Prometheus) -> e2e::Result<()> { Ok(()) }
            },
        );
        let want = squash(quote! {
            #[doc = r" Docs."]
            async fn scrapes_itself(env: &e2e::Env, prom: Prometheus) -> e2e::Result<()> { Ok(()) }

            #[doc(hidden)]
            #[allow(non_snake_case)]
            mod scrapes_itself {
                #[allow(unused_imports)]
                use super::*;

                #[allow(dead_code)]
                fn __e2e_body(
                    env: ::e2e::Env,
                ) -> ::std::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = ::core::result::Result<(), ::std::string::String>>>> {
                    ::std::boxed::Box::pin(async move {
                        let prom = <Prometheus as ::e2e::Workload>::declare(&env, "prom");
                        ::e2e::__private::start_workloads(&[::e2e::Workload::runnable(&prom)]).await?;
                        ::e2e::__private::TestReturn::into_outcome(super::scrapes_itself(&env, prom).await)
                    })
                }

                #[::e2e::__private::linkme::distributed_slice(::e2e::__private::TESTS)]
                #[linkme(crate = ::e2e::__private::linkme)]
                static __E2E_SPEC: ::e2e::__private::TestSpec = ::e2e::__private::TestSpec {
                    env: "e2e_example",
                    test: ::core::module_path!(),
                    timeout: ::core::option::Option::Some(::core::time::Duration::from_millis(120000u64)),
                    shared: false,
                };

                #[::core::prelude::v1::test]
                #[ignore]
                fn e2e_example() {
                    ::e2e::__private::run_test(__E2E_SPEC, __e2e_body)
                }
            }
        });
        assert_eq!(out, want);
    }

    #[test]
    fn without_workloads_nothing_is_started() {
        let out = expanded(
            quote!(env = "plain"),
            quote!(
                async fn t() {}
            ),
        );
        assert!(out.contains("timeout:::core::option::Option::None"), "{out}");
        assert!(!out.contains("start_workloads"), "{out}");
        assert!(out.contains("into_outcome(super::t().await)"), "{out}");
    }

    #[test]
    fn workloads_are_declared_in_order_under_their_names() {
        let out = expanded(
            quote!(env = "e"),
            quote!(
                async fn t(r#type: db::Redis, env: &Env, b: B) {}
            ),
        );
        let want = squash(quote! {
            let r#type = <db::Redis as ::e2e::Workload>::declare(&env, "type");
            let b = <B as ::e2e::Workload>::declare(&env, "b");
            ::e2e::__private::start_workloads(&[::e2e::Workload::runnable(&r#type), ::e2e::Workload::runnable(&b)]).await?;
            ::e2e::__private::TestReturn::into_outcome(super::t(r#type, &env, b).await)
        });
        assert!(out.contains(&want), "{out}");
    }

    #[test]
    fn cfg_applies_to_the_module_too() {
        let out = expanded(
            quote!(env = "e"),
            quote!(
                #[cfg(feature = "docker")]
                async fn t() {}
            ),
        );
        assert!(
            out.contains(&squash(quote!(#[cfg(feature = "docker")] #[doc(hidden)] #[allow(non_snake_case)] mod t))),
            "{out}"
        );
    }

    #[test]
    fn errors_keep_the_function() {
        let out = expanded(
            quote!(env = "bad-name"),
            quote!(
                async fn t() {}
            ),
        );
        assert!(
            out.starts_with(&squash(quote!(
                async fn t() {}
            ))),
            "{out}"
        );
        assert!(out.contains("::core::compile_error!"), "{out}");
        assert!(!out.contains("modt"), "{out}");
    }
}
