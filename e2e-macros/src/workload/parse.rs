//! Reads `workload! { ... }` and checks it: keys, port names, probes, durations.
//!
//! Parsing recovers at every comma, so that all mistakes are reported at once; what parsed is
//! still emitted, so that code using the workload keeps resolving while the user fixes it.

use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{
    braced, parenthesized, token, Attribute, Expr, ExprLit, Ident, Lit, LitInt, LitStr, Token, Type, Visibility,
};

use crate::common::{listed, parse_duration, parse_recovering, Errors};

pub(crate) struct Parsed {
    pub workloads: Vec<Workload>,
    pub errors: Option<syn::Error>,
    /// A leading `crate = "path";`: where the e2e crate is, when the dependency is renamed.
    pub krate: Option<syn::Path>,
}

/// One workload, each value keeping the span of what the user wrote.
pub(crate) struct Workload {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub params: Vec<Param>,
    pub image: Option<LitStr>,
    pub ports: Vec<Port>,
    pub metrics: Option<Ident>,
    pub metrics_path: Option<Expr>,
    pub readiness: Option<Probe>,
    pub readiness_timeout: Option<Duration>,
    pub command: Option<Vec<Expr>>,
    pub entrypoint: Option<Entrypoint>,
    /// Environment variables, in order.
    pub env: Vec<(String, Expr)>,
    pub user: Option<Expr>,
}

pub(crate) struct Param {
    pub name: Ident,
    pub ty: Type,
    pub default: Option<Expr>,
}

pub(crate) struct Port {
    pub name: Ident,
    pub number: u16,
}

pub(crate) enum Entrypoint {
    Args(Vec<Expr>),
    /// `entrypoint: none`: run the command without the image's entrypoint.
    None,
}

#[allow(clippy::large_enum_variant)] // one per macro call: size doesn't matter
pub(crate) enum Probe {
    Http { tls: bool, port: Ident, path: Expr, status: Option<Expr>, body_contains: Option<Expr> },
    Tcp { port: Ident },
    Cmd(Vec<Expr>),
    Log { regex: Expr, times: Option<Expr> },
    Healthy,
    ExitCode(Expr),
    AllOf(Vec<Probe>),
}

const KEYS: &[&str] = &[
    "image",
    "ports",
    "metrics",
    "metrics_path",
    "readiness",
    "readiness_timeout",
    "command",
    "entrypoint",
    "env",
    "user",
];

const PROBES: &str = "`http(port, \"/path\")`, `https(port, \"/path\")`, `tcp(port)`, `cmd([\"arg\", ...])`, \
                      `log(\"regex\")`, `log(\"regex\", times)`, `healthy()`, `exit_code(0)` or `all_of([probe, ...])`";

pub(crate) fn parse(input: TokenStream) -> Parsed {
    let mut errors = Errors::default();
    let mut workloads = Vec::new();
    let mut krate = None;
    let parser = |input: ParseStream| {
        if input.peek(Token![crate]) && input.peek2(Token![=]) {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            match input.parse::<LitStr>().and_then(|lit| crate::common::crate_path(&lit)) {
                Ok(path) => krate = Some(path),
                Err(e) => errors.push(e),
            }
            if let Err(e) = input.parse::<Token![;]>() {
                errors.push(syn::Error::new(e.span(), "expected `;` after `crate = \"my_e2e\"`"));
            }
        }
        if input.is_empty() {
            errors.at(Span::call_site(), "expected a workload: `Name { image: \"repo/name:tag\", ... }`");
        }
        while !input.is_empty() {
            match parse_workload(input, &mut errors) {
                Ok(w) => workloads.push(w),
                Err(e) => {
                    // Past a broken header there is no telling where the next workload starts.
                    errors.push(e);
                    input.parse::<TokenStream>()?;
                }
            }
        }
        Ok(())
    };
    parser.parse2(input).expect("the parser consumes all of its input");
    Parsed { workloads, errors: errors.into_error(), krate }
}

fn parse_workload(input: ParseStream, errors: &mut Errors) -> syn::Result<Workload> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    let name: Ident = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "expected a workload: `Name { image: \"repo/name:tag\", ... }`"))?;
    let params = if input.peek(token::Paren) {
        let content;
        parenthesized!(content in input);
        parse_params(&content, errors)
    } else {
        Vec::new()
    };
    if !input.peek(token::Brace) {
        return Err(input
            .error(format!("expected `{{` and the keys of `{name}`: `{name} {{ image: \"repo/name:tag\", ... }}`")));
    }
    let content;
    braced!(content in input);
    let mut w = Workload::new(attrs, vis, name, params);
    let mut seen = Seen::default();
    parse_recovering(&content, errors, |input, errors| parse_key(input, &mut w, &mut seen, errors));
    check(&mut w, &seen, errors);
    Ok(w)
}

impl Workload {
    fn new(attrs: Vec<Attribute>, vis: Visibility, name: Ident, params: Vec<Param>) -> Self {
        Workload {
            attrs,
            vis,
            name,
            params,
            image: None,
            ports: Vec::new(),
            metrics: None,
            metrics_path: None,
            readiness: None,
            readiness_timeout: None,
            command: None,
            entrypoint: None,
            env: Vec::new(),
            user: None,
        }
    }
}

fn parse_params(input: ParseStream, errors: &mut Errors) -> Vec<Param> {
    let mut params: Vec<Param> = Vec::new();
    parse_recovering(input, errors, |input, _| {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse()?;
        let default = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        if params.iter().any(|p| p.name == name) {
            return Err(syn::Error::new(name.span(), format!("duplicate parameter `{name}`")));
        }
        params.push(Param { name, ty, default });
        Ok(())
    });
    params
}

/// The keys given so far, with where, for duplicates and cross-key checks.
#[derive(Default)]
struct Seen(Vec<Ident>);

impl Seen {
    fn get(&self, key: &str) -> Option<&Ident> {
        self.0.iter().find(|k| *k == key)
    }
}

fn parse_key(input: ParseStream, w: &mut Workload, seen: &mut Seen, errors: &mut Errors) -> syn::Result<()> {
    let key = input.call(Ident::parse_any)?;
    let name = key.to_string();
    if !KEYS.contains(&name.as_str()) {
        return Err(syn::Error::new(key.span(), format!("unknown key `{name}`; known keys: {}", listed(KEYS))));
    }
    input.parse::<Token![:]>()?;
    let first = seen.get(&name).is_none();
    if first {
        seen.0.push(key.clone());
    } else {
        errors.at(key.span(), format!("duplicate key `{name}`"));
    }
    // The value of a duplicate key is parsed too, so that its own mistakes show, then dropped.
    let mut dropped;
    let w = if first {
        w
    } else {
        dropped = Workload::new(Vec::new(), Visibility::Inherited, w.name.clone(), Vec::new());
        &mut dropped
    };
    match name.as_str() {
        "image" => {
            let image = string_literal(input, "image", "image: \"redis:7.2\"")?;
            if image.value().trim().is_empty() {
                return Err(syn::Error::new(image.span(), "`image` can't be empty"));
            }
            w.image = Some(image);
        }
        "ports" => {
            let ports = parse_ports(input, errors)?;
            w.ports = ports;
        }
        "metrics" => {
            let port = port_name(&input.parse()?, "`metrics` takes the name of a port: `metrics: http`")?;
            w.metrics = Some(port);
        }
        "metrics_path" => {
            let path: Expr = input.parse()?;
            w.metrics_path = Some(path);
        }
        "readiness" => {
            let probe = probe(&input.parse()?)?;
            w.readiness = Some(probe);
        }
        "readiness_timeout" => {
            let lit = string_literal(input, "readiness_timeout", "readiness_timeout: \"30s\"")?;
            let timeout = parse_duration(&lit, "readiness_timeout")?;
            w.readiness_timeout = Some(timeout);
        }
        "command" => {
            let args = list(&input.parse()?, "`command` takes a list: `command: [\"--flag\", format!(\"--n={n}\")]`")?;
            w.command = Some(args);
        }
        "entrypoint" => {
            let expr: Expr = input.parse()?;
            let entrypoint = match &expr {
                Expr::Path(p) if p.path.is_ident("none") => Entrypoint::None,
                _ => Entrypoint::Args(list(
                    &expr,
                    "`entrypoint` takes a list, `entrypoint: [\"/bin/sh\", \"-c\"]`, or `none` to run the command \
                     without the image's entrypoint",
                )?),
            };
            w.entrypoint = Some(entrypoint);
        }
        "env" => {
            let vars = parse_env(input, errors)?;
            w.env = vars;
        }
        _ => {
            let user: Expr = input.parse()?;
            w.user = Some(user);
        }
    }
    Ok(())
}

fn string_literal(input: ParseStream, key: &str, example: &str) -> syn::Result<LitStr> {
    match input.parse()? {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Ok(lit),
        other => Err(syn::Error::new_spanned(other, format!("`{key}` takes a string literal: `{example}`"))),
    }
}

/// `{ http: 9090, grpc: 10901 }`
fn parse_ports(input: ParseStream, errors: &mut Errors) -> syn::Result<Vec<Port>> {
    if !input.peek(token::Brace) {
        let value: TokenTree = input.parse()?;
        return Err(syn::Error::new_spanned(
            value,
            "`ports` takes names and numbers: `ports: { http: 8080, grpc: 9090 }`",
        ));
    }
    let content;
    braced!(content in input);
    let mut ports: Vec<Port> = Vec::new();
    parse_recovering(&content, errors, |input, _| {
        let name = input.call(Ident::parse_any)?;
        input.parse::<Token![:]>()?;
        if !input.peek(LitInt) {
            return Err(input.error(format!("expected a port number: `{name}: 8080`")));
        }
        let lit: LitInt = input.parse()?;
        if !matches!(lit.suffix(), "" | "u16") {
            return Err(syn::Error::new(lit.span(), "a port number is a `u16`: remove the suffix"));
        }
        let number = match lit.base10_parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(syn::Error::new(lit.span(), "a port number is from 1 to 65535")),
        };
        if ports.iter().any(|p| p.name == name) {
            return Err(syn::Error::new(name.span(), format!("duplicate port `{name}`")));
        }
        ports.push(Port { name, number });
        Ok(())
    });
    Ok(ports)
}

/// `{ KEY: value, "OTHER-KEY": value }`
fn parse_env(input: ParseStream, errors: &mut Errors) -> syn::Result<Vec<(String, Expr)>> {
    if !input.peek(token::Brace) {
        let value: TokenTree = input.parse()?;
        return Err(syn::Error::new_spanned(
            value,
            "`env` takes names and values: `env: { RUST_LOG: \"debug\", PORT: port }`",
        ));
    }
    let content;
    braced!(content in input);
    let mut vars: Vec<(String, Expr)> = Vec::new();
    parse_recovering(&content, errors, |input, _| {
        let (name, span) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.span())
        } else {
            let ident = input.call(Ident::parse_any)?;
            (ident.unraw().to_string(), ident.span())
        };
        input.parse::<Token![:]>()?;
        let value: Expr = input.parse()?;
        if vars.iter().any(|(n, _)| *n == name) {
            return Err(syn::Error::new(span, format!("duplicate variable `{name}`")));
        }
        vars.push((name, value));
        Ok(())
    });
    Ok(vars)
}

/// A port name, as in `metrics: http` or `tcp(http)`.
fn port_name(expr: &Expr, message: &str) -> syn::Result<Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
            p.path.get_ident().cloned().ok_or_else(|| syn::Error::new_spanned(expr, message))
        }
        _ => Err(syn::Error::new_spanned(expr, message)),
    }
}

/// `[a, b, ...]`
fn list(expr: &Expr, message: &str) -> syn::Result<Vec<Expr>> {
    match expr {
        Expr::Array(array) => Ok(array.elems.iter().cloned().collect()),
        _ => Err(syn::Error::new_spanned(expr, message)),
    }
}

fn probe(expr: &Expr) -> syn::Result<Probe> {
    match expr {
        Expr::MethodCall(call) => {
            let mut probe = probe(&call.receiver)?;
            let method = call.method.to_string();
            let (slot, example) = match (&mut probe, method.as_str()) {
                (Probe::Http { status, .. }, "status") => (status, "`.status(200..=299)`"),
                (Probe::Http { body_contains, .. }, "body_contains") => (body_contains, "`.body_contains(\"ok\")`"),
                (_, "status" | "body_contains") => {
                    return Err(syn::Error::new(
                        call.method.span(),
                        format!("`.{method}(...)` applies to `http` and `https` probes"),
                    ));
                }
                _ => {
                    return Err(syn::Error::new(
                        call.method.span(),
                        format!("unknown probe setting `.{method}(...)`; `http` and `https` probes take `.status(200..=299)` and `.body_contains(\"text\")`"),
                    ));
                }
            };
            let [arg] = args::<1>(&call.args).ok_or_else(|| {
                syn::Error::new_spanned(call, format!("`.{method}(...)` takes one argument: {example}"))
            })?;
            if slot.is_some() {
                return Err(syn::Error::new(call.method.span(), format!("duplicate `.{method}(...)`")));
            }
            *slot = Some(arg.clone());
            Ok(probe)
        }
        Expr::Call(call) => {
            let head = match &*call.func {
                Expr::Path(p) => p.path.get_ident().map(Ident::to_string).unwrap_or_default(),
                _ => String::new(),
            };
            let usage = |message: &str| syn::Error::new_spanned(call, message);
            let port = |e: &Expr| port_name(e, "expected the name of a port, as in `tcp(http)`");
            match head.as_str() {
                "http" | "https" => {
                    let [p, path] = args(&call.args).ok_or_else(|| {
                        usage(&format!("`{head}` takes a port name and a path: `{head}(http, \"/ready\")`"))
                    })?;
                    Ok(Probe::Http {
                        tls: head == "https",
                        port: port(p)?,
                        path: path.clone(),
                        status: None,
                        body_contains: None,
                    })
                }
                "tcp" => {
                    let [p] = args(&call.args).ok_or_else(|| usage("`tcp` takes a port name: `tcp(redis)`"))?;
                    Ok(Probe::Tcp { port: port(p)? })
                }
                "cmd" => {
                    let message = "`cmd` takes a list: `cmd([\"redis-cli\", \"ping\"])`";
                    let [command] = args(&call.args).ok_or_else(|| usage(message))?;
                    Ok(Probe::Cmd(list(command, message)?))
                }
                "log" => {
                    let message = "`log` takes a regex, and how many lines must match it if more than one: \
                                   `log(\"ready\")`, `log(\"ready\", 2)`";
                    match call.args.iter().collect::<Vec<_>>()[..] {
                        [regex] => Ok(Probe::Log { regex: regex.clone(), times: None }),
                        [regex, times] => Ok(Probe::Log { regex: regex.clone(), times: Some(times.clone()) }),
                        _ => Err(usage(message)),
                    }
                }
                "healthy" => {
                    if !call.args.is_empty() {
                        return Err(usage(
                            "`healthy` takes no argument: `healthy()` waits for the image's HEALTHCHECK",
                        ));
                    }
                    Ok(Probe::Healthy)
                }
                "exit_code" => {
                    let [code] = args(&call.args)
                        .ok_or_else(|| usage("`exit_code` takes the exit code awaited: `exit_code(0)`"))?;
                    Ok(Probe::ExitCode(code.clone()))
                }
                "all_of" => {
                    let message = "`all_of` takes a list of probes: `all_of([tcp(grpc), http(http, \"/ready\")])`";
                    let [probes] = args(&call.args).ok_or_else(|| usage(message))?;
                    Ok(Probe::AllOf(list(probes, message)?.iter().map(probe).collect::<syn::Result<_>>()?))
                }
                _ => Err(syn::Error::new_spanned(
                    &call.func,
                    format!(
                        "unknown readiness probe `{}`; expected {PROBES}",
                        quote::ToTokens::to_token_stream(&call.func)
                    ),
                )),
            }
        }
        _ => Err(syn::Error::new_spanned(expr, format!("expected a readiness probe: {PROBES}"))),
    }
}

fn args<const N: usize>(args: &Punctuated<Expr, Token![,]>) -> Option<[&Expr; N]> {
    args.iter().collect::<Vec<_>>().try_into().ok()
}

/// Rules across keys; a value at fault is dropped so that the rest can still be emitted.
fn check(w: &mut Workload, seen: &Seen, errors: &mut Errors) {
    if w.image.is_none() && seen.get("image").is_none() {
        errors.at(w.name.span(), format!("workload `{}` needs an image: `image: \"repo/name:tag\"`", w.name));
    }
    let ports: Vec<String> = w.ports.iter().map(|p| p.name.to_string()).collect();
    let unknown_port = |port: &Ident| -> Option<syn::Error> {
        if ports.contains(&port.to_string()) {
            return None;
        }
        let message = if ports.is_empty() {
            format!(
                "unknown port `{port}`: `{}` declares no ports; declare it with `ports: {{ {port}: 8080 }}`",
                w.name
            )
        } else {
            format!("unknown port `{port}`; declared ports: {}", listed(&ports))
        };
        Some(syn::Error::new(port.span(), message))
    };
    if let Some(e) = w.metrics.as_ref().and_then(unknown_port) {
        errors.push(e);
        w.metrics = None;
    }
    if let Some(probe) = &w.readiness {
        let mut probe_ports = Vec::new();
        probe.ports(&mut probe_ports);
        let mut bad = false;
        for e in probe_ports.into_iter().filter_map(unknown_port) {
            errors.push(e);
            bad = true;
        }
        if bad {
            w.readiness = None;
        }
    }
    if let (Some(key), None) = (seen.get("metrics_path"), seen.get("metrics")) {
        errors.at(key.span(), "`metrics_path` needs `metrics`, the port serving the metrics: `metrics: http`");
        w.metrics_path = None;
    }
    if w.params.iter().any(|p| p.default.is_some()) {
        for p in w.params.iter().filter(|p| p.default.is_none()) {
            errors.at(
                p.name.span(),
                format!(
                    "parameter `{}` needs a default too: defaults are used only when every parameter has one \
                     (by `{}::new` and for test parameters)",
                    p.name, w.name
                ),
            );
        }
    }
}

impl Probe {
    fn ports<'a>(&'a self, out: &mut Vec<&'a Ident>) {
        match self {
            Probe::Http { port, .. } | Probe::Tcp { port } => out.push(port),
            Probe::AllOf(probes) => probes.iter().for_each(|p| p.ports(out)),
            Probe::Cmd(_) | Probe::Log { .. } | Probe::Healthy | Probe::ExitCode(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn errors(input: TokenStream) -> Vec<String> {
        parse(input).errors.into_iter().flatten().map(|e| e.to_string()).collect()
    }

    #[test]
    fn parses_every_key_in_any_order() {
        let parsed = parse(quote! {
            /// Prometheus.
            pub Prometheus {
                readiness: all_of([http(http, "/-/ready").status(200..=204).body_contains("ok"), tcp(grpc), log("up", 2), cmd(["true"])]),
                ports: { http: 9090, grpc: 10901u16 },
                image: "quay.io/prometheus/prometheus:v2.42.0",
                metrics: http,
                metrics_path: "/metrics",
                readiness_timeout: "30s",
                command: ["--a", format!("--b={}", 1)],
                entrypoint: none,
                env: { GOMAXPROCS: "1", "X-Y": 2 },
                user: "nobody",
            }
            pub(crate) Fixture(ready_after: &str = "0s", code: i32 = 0) { image: "f", entrypoint: ["/bin/sh", "-c"] }
        });
        assert!(parsed.errors.is_none(), "{:?}", parsed.errors.map(|e| e.to_string()));
        let [p, f] = &parsed.workloads[..] else { panic!("two workloads") };
        assert_eq!(p.name, "Prometheus");
        assert_eq!(p.image.as_ref().unwrap().value(), "quay.io/prometheus/prometheus:v2.42.0");
        let ports: Vec<_> = p.ports.iter().map(|p| (p.name.to_string(), p.number)).collect();
        assert_eq!(ports, [("http".to_string(), 9090), ("grpc".to_string(), 10901)]);
        assert_eq!(p.metrics.as_ref().unwrap(), "http");
        assert_eq!(p.readiness_timeout, Some(Duration::from_secs(30)));
        assert!(matches!(p.entrypoint, Some(Entrypoint::None)));
        let env: Vec<_> = p.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(env, ["GOMAXPROCS", "X-Y"]);
        let Some(Probe::AllOf(probes)) = &p.readiness else { panic!("all_of") };
        assert!(
            matches!(&probes[..], [Probe::Http { status: Some(_), body_contains: Some(_), tls: false, .. }, Probe::Tcp { .. }, Probe::Log { times: Some(_), .. }, Probe::Cmd(c)] if c.len() == 1)
        );
        assert_eq!(f.params.len(), 2);
        assert!(matches!(&f.entrypoint, Some(Entrypoint::Args(a)) if a.len() == 2));
    }

    #[test]
    fn key_errors_come_all_at_once() {
        let e = errors(quote! {
            W {
                image: "a",
                imag: "b",
                image: "c",
                ports: { http: 0, http: 80, big: 70000, s: 80u32, t: "80" },
                command: "--flag",
                user: "me" env: {},
            }
        });
        assert_eq!(
            e,
            [
                "unknown key `imag`; known keys: `image`, `ports`, `metrics`, `metrics_path`, `readiness`, `readiness_timeout`, `command`, `entrypoint`, `env`, `user`",
                "duplicate key `image`",
                "a port number is from 1 to 65535",
                "a port number is from 1 to 65535",
                "a port number is a `u16`: remove the suffix",
                "expected a port number: `t: 8080`",
                "`command` takes a list: `command: [\"--flag\", format!(\"--n={n}\")]`",
                "expected `,`",
            ]
        );
    }

    #[test]
    fn duplicate_port_names_are_errors() {
        assert_eq!(errors(quote!(W { image: "a", ports: { http: 80, http: 81 } })), ["duplicate port `http`"]);
    }

    #[test]
    fn cross_key_rules() {
        let e = errors(quote! {
            W { metrics_path: "/m", readiness: http(htp, "/"), ports: { http: 80, grpc: 90 }, metrics: grcp }
        });
        assert_eq!(
            e,
            [
                "workload `W` needs an image: `image: \"repo/name:tag\"`",
                "unknown port `grcp`; declared ports: `http`, `grpc`",
                "unknown port `htp`; declared ports: `http`, `grpc`",
            ]
        );
        let e = errors(quote!(W { image: "a", metrics_path: "/m", readiness: all_of([tcp(db)]) }));
        assert_eq!(
            e,
            [
                "unknown port `db`: `W` declares no ports; declare it with `ports: { db: 8080 }`",
                "`metrics_path` needs `metrics`, the port serving the metrics: `metrics: http`",
            ]
        );
    }

    #[test]
    fn readiness_forms_are_checked() {
        let case = |probe: TokenStream| {
            let e = errors(quote!(W { image: "a", ports: { http: 80 }, readiness: #probe }));
            assert_eq!(e.len(), 1, "{e:?}");
            e.into_iter().next().unwrap()
        };
        assert_eq!(case(quote!(grpc(http))), format!("unknown readiness probe `grpc`; expected {PROBES}"));
        assert_eq!(case(quote!("http")), format!("expected a readiness probe: {PROBES}"));
        assert_eq!(case(quote!(http(http))), "`http` takes a port name and a path: `http(http, \"/ready\")`");
        assert_eq!(case(quote!(https("http", "/"))), "expected the name of a port, as in `tcp(http)`");
        assert_eq!(case(quote!(tcp(http).status(200))), "`.status(...)` applies to `http` and `https` probes");
        assert_eq!(case(quote!(http(http, "/").status(200).status(201))), "duplicate `.status(...)`");
        assert_eq!(case(quote!(http(http, "/").status())), "`.status(...)` takes one argument: `.status(200..=299)`");
        assert!(case(quote!(http(http, "/").retries(3))).starts_with("unknown probe setting `.retries(...)`"));
        assert!(case(quote!(log())).starts_with("`log` takes a regex"));
        assert_eq!(case(quote!(cmd("true"))), "`cmd` takes a list: `cmd([\"redis-cli\", \"ping\"])`");
        assert!(case(quote!(all_of(tcp(http)))).starts_with("`all_of` takes a list of probes"));
        assert!(case(quote!(readiness_timeout)).starts_with("expected a readiness probe"));
    }

    #[test]
    fn value_errors() {
        let e = errors(quote!(W { image: 5, readiness_timeout: "soon", metrics: "http", entrypoint: "sh" }));
        assert_eq!(e[0], "`image` takes a string literal: `image: \"redis:7.2\"`");
        assert!(e[1].starts_with("invalid readiness_timeout \"soon\": "), "{}", e[1]);
        assert_eq!(e[2], "`metrics` takes the name of a port: `metrics: http`");
        assert!(e[3].starts_with("`entrypoint` takes a list"), "{}", e[3]);
        assert_eq!(e.len(), 4, "an invalid image is not also a missing one: {e:?}");
        assert_eq!(
            errors(quote!(W { image: "", readiness_timeout: "0s" }))[..],
            [
                "`image` can't be empty".to_string(),
                "the readiness_timeout must be more than zero, e.g. \"120s\"".to_string()
            ]
        );
    }

    #[test]
    fn parameter_errors() {
        let e = errors(quote!(W(a: u8 = 1, b: u8, c = 3, a: u8 = 2) { image: "x" }));
        assert_eq!(e[0], "expected `:`");
        assert_eq!(e[1], "duplicate parameter `a`");
        assert!(e[2].starts_with("parameter `b` needs a default too"), "{}", e[2]);
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn header_errors_stop_parsing_but_keep_what_parsed() {
        let parsed = parse(quote!(A { image: "a" } B image: "b"));
        assert_eq!(parsed.workloads.len(), 1);
        let e: Vec<_> = parsed.errors.into_iter().flatten().map(|e| e.to_string()).collect();
        assert_eq!(e, ["expected `{` and the keys of `B`: `B { image: \"repo/name:tag\", ... }`"]);
        assert_eq!(errors(quote!()), ["expected a workload: `Name { image: \"repo/name:tag\", ... }`"]);
        assert_eq!(errors(quote!({ image: "a" })), ["expected a workload: `Name { image: \"repo/name:tag\", ... }`"]);
    }
}
