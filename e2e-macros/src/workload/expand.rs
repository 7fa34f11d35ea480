//! Emits, for each workload, its type (a `Runnable` with typed constructors and port
//! accessors), its `Workload` impl when it can be a test parameter, and its catalog entry.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Meta};

use super::parse::{Entrypoint, Parsed, Probe, Workload};
use crate::common::{compile_errors, duration_tokens};

pub(crate) fn expand(parsed: Parsed) -> TokenStream {
    let workloads = parsed.workloads.iter().map(expand_workload);
    let errors = compile_errors(parsed.errors.as_ref());
    quote!(#(#workloads)* #errors)
}

fn expand_workload(w: &Workload) -> TokenStream {
    let name = &w.name;
    let type_name = name.unraw().to_string();
    let vis = &w.vis;
    let image = w.image.clone().unwrap_or_else(|| LitStr::new("", name.span()));
    let cfgs: Vec<&Attribute> = w.attrs.iter().filter(|a| a.path().is_ident("cfg")).collect();
    let attrs = w.attrs.iter().filter(|a| !a.path().is_ident("cfg"));
    let doc = doc_text(&w.attrs);
    let default_doc = doc.is_empty().then(|| {
        let doc = format!("The `{type_name}` workload, image `{}`.", image.value());
        quote!(#[doc = #doc])
    });

    // Mixed-site: parameters named `env` or `name` stay apart from these.
    let env = Ident::new("env", Span::mixed_site());
    let runnable_name = Ident::new("name", Span::mixed_site());
    let params: Vec<_> = w
        .params
        .iter()
        .map(|p| {
            let (name, ty) = (&p.name, &p.ty);
            quote!(#name: #ty)
        })
        .collect();
    let param_names: Vec<_> = w.params.iter().map(|p| &p.name).collect();
    let defaults: Option<Vec<_>> = w.params.iter().map(|p| p.default.as_ref()).collect();

    let options_doc = if params.is_empty() {
        "Its start options.".to_string()
    } else {
        let names: Vec<_> = w.params.iter().map(|p| format!("`{}`", p.name.unraw())).collect();
        format!("Its start options for these parameters ({}).", names.join(", "))
    };
    let options = start_options(w);
    let ports = w.ports.iter().map(|p| {
        let (port, number) = (p.name.unraw().to_string(), p.number);
        quote!((#port, #number))
    });
    let with_ports = (!w.ports.is_empty()).then(|| quote!(.with_ports([#(#ports),*])));
    let new = defaults.as_ref().map(|defaults| {
        quote! {
            /// Declares it in `env` as `name`, with the default parameters.
            pub fn new(#env: &::e2e::Env, #runnable_name: &str) -> Self {
                Self::with(#env, #runnable_name #(, #defaults)*)
            }
        }
    });
    let with_doc = if params.is_empty() {
        "Declares it in `env` as `name` (the same as `new`)."
    } else {
        "Declares it in `env` as `name`, with these parameters."
    };
    let endpoints = w.ports.iter().map(|p| {
        let (port, number) = (p.name.unraw().to_string(), p.number);
        let endpoint = format_ident!("{}_endpoint", port, span = p.name.span());
        let internal = format_ident!("{}_internal_endpoint", port, span = p.name.span());
        let endpoint_doc = format!(
            "The address of port `{port}` ({number}) for the test process, as `127.0.0.1:<host port>`; an error until it is started."
        );
        let internal_doc = format!("The address of port `{port}` inside the env network: `<env>-<name>:{number}`; always `Ok` (the `Result` as every address accessor has).");
        quote! {
            #[doc = #endpoint_doc]
            pub fn #endpoint(&self) -> ::e2e::Result<::e2e::Endpoint> {
                self.runnable.endpoint(#port)
            }

            #[doc = #internal_doc]
            pub fn #internal(&self) -> ::e2e::Result<::e2e::Endpoint> {
                self.runnable.internal_endpoint(#port)
            }
        }
    });
    // The deferred form: declared with its addresses known, configured later.
    let future_name = format_ident!("{}Future", type_name, span = name.span());
    let future_doc = format!(
        "`{type_name}` declared ahead (from `{type_name}::ahead`): its internal addresses are known before it \
         is configured, so they can go into other workloads' options (a cluster's members); `init` makes it a \
         `{type_name}`."
    );
    let future_endpoints = w.ports.iter().map(|p| {
        let (port, number) = (p.name.unraw().to_string(), p.number);
        let internal = format_ident!("{}_internal_endpoint", port, span = p.name.span());
        let internal_doc = format!("The address of port `{port}` inside the env network: `<env>-<name>:{number}`; always `Ok` (the `Result` as every address accessor has).");
        quote! {
            #[doc = #internal_doc]
            pub fn #internal(&self) -> ::e2e::Result<::e2e::Endpoint> {
                self.runnable.internal_endpoint(#port)
            }
        }
    });
    let replicas = defaults.as_ref().map(|_| {
        quote! {
            /// Declares `n` of it in `env`, with the default parameters, named `<name>0`,
            /// `<name>1`... (a vector that `e2e::start_and_wait_ready` and `e2e::composite` take
            /// as it is).
            pub fn replicas(#env: &::e2e::Env, #runnable_name: &str, n: usize) -> ::std::vec::Vec<Self> {
                (0..n).map(|i| Self::new(#env, &::std::format!("{}{}", #runnable_name, i))).collect()
            }
        }
    });
    let init_default = defaults.as_ref().map(|defaults| {
        quote! {
            /// Configures it with the default parameters.
            pub fn init_default(self) -> #name {
                self.init(#(#defaults),*)
            }
        }
    });
    let workload_impl = new.is_some().then(|| {
        quote! {
            #(#cfgs)*
            impl ::e2e::Workload for #name {
                fn declare(#env: &::e2e::Env, #runnable_name: &str) -> Self {
                    Self::new(#env, #runnable_name)
                }

                fn runnable(&self) -> &::e2e::Runnable {
                    &self.runnable
                }
            }
        }
    });

    let static_name = format_ident!("__E2E_WORKLOAD_{}", type_name.to_uppercase());
    let catalog_ports = w.ports.iter().map(|p| {
        let (port, number) = (p.name.unraw().to_string(), p.number);
        quote!((#port, #number))
    });
    let metrics_port = match &w.metrics {
        Some(port) => {
            let port = port.unraw().to_string();
            quote!(::core::option::Option::Some(#port))
        }
        None => quote!(::core::option::Option::None),
    };

    // Located at the name, so that notes about the type point there, not at the whole macro.
    let struct_decl = quote_spanned! {name.span()=>
        #vis struct #name {
            runnable: ::e2e::Runnable,
        }
    };

    quote! {
        #(#attrs)*
        #default_doc
        #(#cfgs)*
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #[allow(dead_code)]
        #struct_decl

        #(#cfgs)*
        #[allow(dead_code)]
        impl #name {
            /// Its image.
            pub const IMAGE: &'static str = #image;

            #[doc = #options_doc]
            pub fn options(#(#params),*) -> ::e2e::StartOptions {
                #options
            }

            #new

            #[doc = #with_doc]
            pub fn with(#env: &::e2e::Env, #runnable_name: &str #(, #params)*) -> Self {
                Self {
                    runnable: #env.runnable(#runnable_name)#with_ports.init(Self::options(#(#param_names),*)),
                }
            }

            #(#endpoints)*

            /// Its runnable: start, stop, exec, logs, metrics...
            pub fn runnable(&self) -> &::e2e::Runnable {
                &self.runnable
            }

            #replicas

            /// Declares it in `env` as `name` without configuring it yet: its addresses are
            /// known at once (see the deferred form's `init`).
            pub fn ahead(#env: &::e2e::Env, #runnable_name: &str) -> #future_name {
                #future_name { runnable: #env.runnable(#runnable_name)#with_ports.future() }
            }
        }

        #[doc = #future_doc]
        #(#cfgs)*
        #[derive(::core::fmt::Debug)]
        #[allow(dead_code)]
        #vis struct #future_name {
            runnable: ::e2e::FutureRunnable,
        }

        #(#cfgs)*
        #[allow(dead_code)]
        impl #future_name {
            #(#future_endpoints)*

            /// Configures it with these parameters.
            pub fn init(self #(, #params)*) -> #name {
                self.init_options(#name::options(#(#param_names),*))
            }

            #init_default

            /// Configures it with `options` (its own, `options(..)`, changed: a member's flags).
            pub fn init_options(self, options: ::e2e::StartOptions) -> #name {
                #name { runnable: self.runnable.init(options) }
            }
        }

        #(#cfgs)*
        impl ::core::convert::AsRef<::e2e::Runnable> for #name {
            fn as_ref(&self) -> &::e2e::Runnable {
                &self.runnable
            }
        }

        #(#cfgs)*
        impl ::core::ops::Deref for #name {
            type Target = ::e2e::Runnable;

            fn deref(&self) -> &::e2e::Runnable {
                &self.runnable
            }
        }

        #workload_impl

        #(#cfgs)*
        #[::e2e::__private::linkme::distributed_slice(::e2e::__private::CATALOG)]
        #[linkme(crate = ::e2e::__private::linkme)]
        #[doc(hidden)]
        static #static_name: ::e2e::catalog::WorkloadInfo = ::e2e::catalog::WorkloadInfo {
            name: #type_name,
            image: #image,
            ports: &[#(#catalog_ports),*],
            metrics_port: #metrics_port,
            doc: #doc,
            module: ::core::module_path!(),
        };
    }
}

/// The `StartOptions` expression, with the user's expressions in scope of the parameters.
fn start_options(w: &Workload) -> TokenStream {
    let mut options = quote!(::e2e::StartOptions::new(Self::IMAGE));
    if let Some(args) = &w.command {
        let args = arg_list(args);
        options = quote!(#options.command(#args));
    }
    match &w.entrypoint {
        Some(Entrypoint::Args(args)) => {
            let args = arg_list(args);
            options = quote!(#options.entrypoint(#args));
        }
        Some(Entrypoint::None) => options = quote!(#options.no_entrypoint()),
        None => {}
    }
    for (key, value) in &w.env {
        let value = to_string(value);
        options = quote!(#options.env_var(#key, #value));
    }
    if let Some(user) = &w.user {
        let user = to_string(user);
        options = quote!(#options.user(#user));
    }
    if let Some(port) = &w.metrics {
        let port = port.unraw().to_string();
        options = quote!(#options.metrics(#port));
    }
    if let Some(path) = &w.metrics_path {
        let path = to_string(path);
        options = quote!(#options.metrics_path(#path));
    }
    if let Some(probe) = &w.readiness {
        let probe = probe_tokens(probe);
        options = quote!(#options.readiness(#probe));
    }
    if let Some(timeout) = w.readiness_timeout {
        let timeout = duration_tokens(timeout);
        options = quote!(#options.readiness_timeout(#timeout));
    }
    options
}

/// `&str`, `String`, `format!(...)`, numbers: anything `Display`; an error lands on the value.
/// A `command` or `entrypoint` list as a `Vec<String>`: each element through `ToString`, and an
/// element written `..expr` spliced in (every item of `expr`, a parameter's `&[&str]` say).
fn arg_list(args: &[Expr]) -> TokenStream {
    let spread = |e: &Expr| match e {
        Expr::Range(r) if r.start.is_none() && matches!(r.limits, syn::RangeLimits::HalfOpen(_)) => r.end.clone(),
        _ => None,
    };
    if !args.iter().any(|e| spread(e).is_some()) {
        let args = args.iter().map(to_string);
        return quote!(::std::vec![#(#args),*]);
    }
    let pushes = args.iter().map(|e| match spread(e) {
        Some(items) => quote_spanned!(items.span()=>
            __args.extend(::std::iter::IntoIterator::into_iter(#items).map(|a| ::std::string::ToString::to_string(&a)));),
        None => {
            let arg = to_string(e);
            quote!(__args.push(#arg);)
        }
    });
    quote!({
        let mut __args: ::std::vec::Vec<::std::string::String> = ::std::vec::Vec::new();
        #(#pushes)*
        __args
    })
}

fn to_string(expr: &Expr) -> TokenStream {
    quote_spanned!(expr.span()=> ::std::string::ToString::to_string(&(#expr)))
}

fn probe_tokens(probe: &Probe) -> TokenStream {
    match probe {
        Probe::Http { tls, port, path, status, body_contains } => {
            let port = port.unraw().to_string();
            let path = to_string(path);
            let mut probe =
                if *tls { quote!(::e2e::Probe::https(#port, #path)) } else { quote!(::e2e::Probe::http(#port, #path)) };
            if let Some(status) = status {
                let status = match status {
                    // `status(200)` means exactly 200.
                    Expr::Lit(ExprLit { lit: Lit::Int(code), .. }) => quote!(#code..=#code),
                    range => range.to_token_stream(),
                };
                probe = quote!(#probe.status(#status));
            }
            if let Some(text) = body_contains {
                let text = to_string(text);
                probe = quote!(#probe.body_contains(#text));
            }
            probe
        }
        Probe::Tcp { port } => {
            let port = port.unraw().to_string();
            quote!(::e2e::Probe::tcp(#port))
        }
        Probe::Cmd(args) => {
            let args = args.iter().map(to_string);
            quote!(::e2e::Probe::cmd(::std::vec![#(#args),*]))
        }
        Probe::Log { regex, times } => {
            let regex = to_string(regex);
            let probe = quote!(::e2e::Probe::log(&#regex));
            match times {
                Some(times) => quote!(#probe.times(#times)),
                None => probe,
            }
        }
        Probe::Healthy => quote!(::e2e::Probe::healthy()),
        Probe::ExitCode(code) => quote_spanned!(code.span()=> ::e2e::Probe::exit_code(#code)),
        Probe::AllOf(probes) => {
            let probes = probes.iter().map(probe_tokens);
            quote!(::e2e::Probe::all_of(::std::vec![#(#probes),*]))
        }
    }
}

/// The doc comment's text: its lines, without the space after `///`, joined and trimmed.
fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| line.strip_prefix(' ').unwrap_or(&line).trim_end().to_string())
        .collect();
    lines.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::squash;
    use crate::workload::parse;

    fn expanded(input: TokenStream) -> String {
        squash(expand(parse(input)))
    }

    #[test]
    fn emits_type_impls_and_catalog_entry() {
        let out = expanded(quote! {
            /// Prometheus scraping itself.
            ///
            /// Second paragraph.
            pub Prometheus {
                image: "quay.io/prometheus/prometheus:v2.42.0",
                ports: { http: 9090, grpc: 10901 },
                metrics: http,
                readiness: http(http, "/-/ready"),
                command: ["--config.file=/etc/prometheus/prometheus.yml"],
            }
        });
        for piece in [
            quote!(
                #[doc = r" Prometheus scraping itself."]
                #[doc = r""]
                #[doc = r" Second paragraph."]
                #[derive(::core::clone::Clone, ::core::fmt::Debug)]
                #[allow(dead_code)]
                pub struct Prometheus {
                    runnable: ::e2e::Runnable,
                }
            ),
            quote!(
                pub const IMAGE: &'static str = "quay.io/prometheus/prometheus:v2.42.0";
            ),
            quote!(
                pub fn options() -> ::e2e::StartOptions {
                    ::e2e::StartOptions::new(Self::IMAGE)
                        .command(::std::vec![::std::string::ToString::to_string(
                            &("--config.file=/etc/prometheus/prometheus.yml")
                        )])
                        .metrics("http")
                        .readiness(::e2e::Probe::http("http", ::std::string::ToString::to_string(&("/-/ready"))))
                }
            ),
            quote!(
                pub fn new(env: &::e2e::Env, name: &str) -> Self {
                    Self::with(env, name)
                }
            ),
            quote!(
                pub fn with(env: &::e2e::Env, name: &str) -> Self {
                    Self {
                        runnable: env
                            .runnable(name)
                            .with_ports([("http", 9090u16), ("grpc", 10901u16)])
                            .init(Self::options()),
                    }
                }
            ),
            quote!(
                pub fn http_endpoint(&self) -> ::e2e::Result<::e2e::Endpoint> {
                    self.runnable.endpoint("http")
                }
            ),
            quote!(
                pub fn grpc_internal_endpoint(&self) -> ::e2e::Result<::e2e::Endpoint> {
                    self.runnable.internal_endpoint("grpc")
                }
            ),
            quote!(impl ::core::ops::Deref for Prometheus { type Target = ::e2e::Runnable;
                fn deref(&self) -> &::e2e::Runnable { &self.runnable } }),
            quote!(impl ::e2e::Workload for Prometheus {
                fn declare(env: &::e2e::Env, name: &str) -> Self { Self::new(env, name) }
                fn runnable(&self) -> &::e2e::Runnable { &self.runnable }
            }),
            quote!(
                #[::e2e::__private::linkme::distributed_slice(::e2e::__private::CATALOG)]
                #[linkme(crate = ::e2e::__private::linkme)]
                #[doc(hidden)]
                static __E2E_WORKLOAD_PROMETHEUS: ::e2e::catalog::WorkloadInfo = ::e2e::catalog::WorkloadInfo {
                    name: "Prometheus",
                    image: "quay.io/prometheus/prometheus:v2.42.0",
                    ports: &[("http", 9090u16), ("grpc", 10901u16)],
                    metrics_port: ::core::option::Option::Some("http"),
                    doc: "Prometheus scraping itself.\n\nSecond paragraph.",
                    module: ::core::module_path!(),
                };
            ),
        ] {
            assert!(out.contains(&squash(&piece)), "missing {piece}\nin {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn every_option_in_order() {
        let out = expanded(quote! {
            W {
                user: "nobody",
                env: { A: "1", B: n + 1 },
                entrypoint: none,
                readiness_timeout: "1m",
                metrics_path: "/m",
                readiness: all_of([https(p, "/").status(200).body_contains("ok"), tcp(p), cmd(["true"]), log("up"), log("up", 2)]),
                metrics: p,
                ports: { p: 1 },
                image: "w",
            }
        });
        let to_string = |e: TokenStream| quote!(::std::string::ToString::to_string(&(#e)));
        let (nobody, one, n1, m, slash, ok, tru, up) = (
            to_string(quote!("nobody")),
            to_string(quote!("1")),
            to_string(quote!(n + 1)),
            to_string(quote!("/m")),
            to_string(quote!("/")),
            to_string(quote!("ok")),
            to_string(quote!("true")),
            to_string(quote!("up")),
        );
        let want = quote! {
            ::e2e::StartOptions::new(Self::IMAGE)
                .no_entrypoint()
                .env_var("A", #one)
                .env_var("B", #n1)
                .user(#nobody)
                .metrics("p")
                .metrics_path(#m)
                .readiness(::e2e::Probe::all_of(::std::vec![
                    ::e2e::Probe::https("p", #slash).status(200..=200).body_contains(#ok),
                    ::e2e::Probe::tcp("p"),
                    ::e2e::Probe::cmd(::std::vec![#tru]),
                    ::e2e::Probe::log(&#up),
                    ::e2e::Probe::log(&#up).times(2)
                ]))
                .readiness_timeout(::core::time::Duration::from_millis(60000u64))
        };
        assert!(out.contains(&squash(&want)), "{out}");
    }

    #[test]
    fn parameters_and_defaults() {
        let out = expanded(quote! {
            pub(crate) Fixture(ready_after: &str = "0s", code: i32 = 0) {
                image: "e2e-fixture:latest",
                command: [format!("--ready-after={ready_after}"), format!("--exit-code={code}")],
            }
        });
        for piece in [
            quote!(pub(crate) struct Fixture),
            quote!(#[doc = "Its start options for these parameters (`ready_after`, `code`)."]
                pub fn options(ready_after: &str, code: i32) -> ::e2e::StartOptions),
            quote!(
                pub fn new(env: &::e2e::Env, name: &str) -> Self {
                    Self::with(env, name, "0s", 0)
                }
            ),
            quote!(
                pub fn with(env: &::e2e::Env, name: &str, ready_after: &str, code: i32) -> Self {
                    Self { runnable: env.runnable(name).init(Self::options(ready_after, code)) }
                }
            ),
            quote!(impl ::e2e::Workload for Fixture),
            quote!(#[doc = "The `Fixture` workload, image `e2e-fixture:latest`."]),
            quote!(ports: &[], metrics_port: ::core::option::Option::None, doc: "",),
        ] {
            assert!(out.contains(&squash(&piece)), "missing {piece}\nin {out}");
        }
    }

    #[test]
    fn a_list_splices_what_is_written_with_dots() {
        let out = expanded(quote! {
            Cache(args: &[&str] = &[]) {
                image: "redis:7",
                command: ["redis-server", ..args],
                entrypoint: ["/bin/sh", "-c", "exec \"$@\""],
            }
        });
        let want = quote!(.command({
            let mut __args: ::std::vec::Vec<::std::string::String> = ::std::vec::Vec::new();
            __args.push(::std::string::ToString::to_string(&("redis-server")));
            __args.extend(::std::iter::IntoIterator::into_iter(args).map(|a| ::std::string::ToString::to_string(&a)));
            __args
        }));
        assert!(out.contains(&squash(&want)), "{out}");
        // Without a splice the list stays a plain vec!.
        assert!(out.contains(".entrypoint(::std::vec!["), "{out}");
    }

    #[test]
    fn without_defaults_there_is_no_new_nor_workload_impl() {
        let out = expanded(quote!(Db(version: u32) { image: "db" }));
        assert!(
            out.contains(&squash(quote!(pub fn with(env: &::e2e::Env, name: &str, version: u32) -> Self))),
            "{out}"
        );
        assert!(!out.contains("pubfnnew"), "{out}");
        assert!(!out.contains("::e2e::WorkloadforDb"), "{out}");
    }

    #[test]
    fn cfg_applies_to_every_item() {
        let out = expanded(quote!(
            #[cfg(unix)]
            W { image: "w" }
        ));
        // The type, its impl, the deferred type and its impl, AsRef, Deref, Workload, the
        // catalog entry.
        assert_eq!(out.matches("#[cfg(unix)]").count(), 8, "{out}");
    }

    #[test]
    fn a_deferred_form_with_addresses_and_replicas() {
        let out = expanded(quote!(
            pub W(v: u32 = 1) { image: "w", ports: { peer: 2380 } }
        ));
        for piece in [
            quote!(
                pub fn ahead(env: &::e2e::Env, name: &str) -> WFuture {
                    WFuture { runnable: env.runnable(name).with_ports([("peer", 2380u16)]).future() }
                }
            ),
            quote!(
                pub struct WFuture {
                    runnable: ::e2e::FutureRunnable,
                }
            ),
            quote!(pub fn peer_internal_endpoint(&self) -> ::e2e::Result<::e2e::Endpoint>),
            quote!(
                pub fn init(self, v: u32) -> W {
                    self.init_options(W::options(v))
                }
            ),
            quote!(
                pub fn init_default(self) -> W {
                    self.init(1)
                }
            ),
            quote!(pub fn replicas(env: &::e2e::Env, name: &str, n: usize) -> ::std::vec::Vec<Self>),
        ] {
            assert!(out.contains(&squash(&piece)), "missing {piece}\nin {out}");
        }
    }

    #[test]
    fn errors_come_with_what_could_be_emitted() {
        let out = expanded(quote!(W { ports: { http: 80 }, readiness: tcp(htp) } X { image: "x" }));
        assert!(out.contains("pubconstIMAGE:&'staticstr=\"\";"), "{out}");
        assert!(!out.contains(".readiness("), "the faulty probe is dropped: {out}");
        assert!(out.contains("structX"), "{out}");
        assert_eq!(out.matches("::core::compile_error!").count(), 2, "{out}");
    }
}
