//! What both macros share: error collection, recovery, durations.

use std::fmt::Display;
use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::parse::ParseStream;
use syn::{LitStr, Token};

/// Every error found in one macro call, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// The error spans all of `tokens` (for example a whole argument).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.0
    }
}

/// `compile_error!`s for `errors`, or nothing.
pub(crate) fn compile_errors(errors: Option<&syn::Error>) -> TokenStream {
    errors.map(syn::Error::to_compile_error).unwrap_or_default()
}

/// Parses a comma-separated list with `parse_one`, recording an error and skipping to the next
/// top-level comma whenever an element fails, so that every faulty element is reported.
pub(crate) fn parse_recovering(
    input: ParseStream,
    errors: &mut Errors,
    mut parse_one: impl FnMut(ParseStream, &mut Errors) -> syn::Result<()>,
) {
    while !input.is_empty() {
        if let Err(e) = parse_one(input, errors) {
            errors.push(e);
            skip_to_comma(input);
        } else if !input.is_empty() && !input.peek(Token![,]) {
            errors.push(input.error("expected `,`"));
            skip_to_comma(input);
        }
        if input.peek(Token![,]) {
            let _ = input.parse::<Token![,]>();
        }
    }
}

fn skip_to_comma(input: ParseStream) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

/// Parses a humantime duration (`"120s"`, `"2m"`, `"1m 30s"`) that must be more than zero.
pub(crate) fn parse_duration(lit: &LitStr, what: &str) -> syn::Result<Duration> {
    let value = lit.value();
    let duration = humantime::parse_duration(&value).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("invalid {what} {value:?}: {e}; write a duration such as \"120s\", \"2m\" or \"1m 30s\""),
        )
    })?;
    if duration.is_zero() {
        return Err(syn::Error::new(lit.span(), format!("the {what} must be more than zero, e.g. \"120s\"")));
    }
    Ok(duration)
}

/// A `::core::time::Duration` expression equal to `d`.
pub(crate) fn duration_tokens(d: Duration) -> TokenStream {
    if d.subsec_nanos().is_multiple_of(1_000_000) && u64::try_from(d.as_millis()).is_ok() {
        let millis = d.as_millis() as u64;
        quote!(::core::time::Duration::from_millis(#millis))
    } else {
        let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
        quote!(::core::time::Duration::new(#secs, #nanos))
    }
}

/// "`a`, `b`, `c`", for error messages listing what is known.
pub(crate) fn listed<S: Display>(names: impl IntoIterator<Item = S>) -> String {
    names.into_iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Token text without whitespace (nor the trailing commas rustfmt adds to expected code), to
/// compare expansions regardless of spacing.
#[cfg(test)]
pub(crate) fn squash(tokens: impl ToString) -> String {
    let text: String = tokens.to_string().split_whitespace().collect();
    text.replace(",)", ")").replace(",]", "]").replace(",}", "}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_exact() {
        assert_eq!(
            duration_tokens(Duration::from_secs(120)).to_string(),
            quote!(::core::time::Duration::from_millis(120000u64)).to_string()
        );
        assert_eq!(
            duration_tokens(Duration::from_micros(1500)).to_string(),
            quote!(::core::time::Duration::new(0u64, 1500000u32)).to_string()
        );
    }

    #[test]
    fn bad_and_zero_durations_are_explained() {
        let bad = parse_duration(&LitStr::new("12x", Span::call_site()), "timeout").unwrap_err().to_string();
        assert!(bad.starts_with("invalid timeout \"12x\": ") && bad.contains("\"120s\""), "{bad}");
        let zero = parse_duration(&LitStr::new("0s", Span::call_site()), "timeout").unwrap_err().to_string();
        assert_eq!(zero, "the timeout must be more than zero, e.g. \"120s\"");
        assert_eq!(
            parse_duration(&LitStr::new("1m 30s", Span::call_site()), "timeout").unwrap(),
            Duration::from_secs(90)
        );
    }
}

/// The `crate = "path"` argument of both macros: the path under which the e2e crate is
/// reachable when the dependency is renamed (`my_e2e = { package = "e2e-framework", .. }`).
pub(crate) fn crate_path(lit: &LitStr) -> syn::Result<syn::Path> {
    lit.parse::<syn::Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`crate` takes a path to the e2e crate, as `crate = \"my_e2e\"`; got {:?}", lit.value()),
        )
    })
}

/// Replaces every `::e2e` path start of the expansion with `path`: the expansion names the
/// framework as `::e2e::...`, which a renamed dependency does not provide.
pub(crate) fn with_crate_path(tokens: TokenStream, path: Option<&syn::Path>) -> TokenStream {
    let Some(path) = path else { return tokens };
    rewrite(tokens, &path.to_token_stream())
}

/// Keywords a path may follow.
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static", "struct", "trait", "type",
    "unsafe", "use", "where", "while", "async", "await", "yield",
];

fn rewrite(tokens: TokenStream, path: &TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let starts_e2e = matches!(
            (&trees[i], trees.get(i + 1), trees.get(i + 2)),
            (TokenTree::Punct(a), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(id)))
                if a.as_char() == ':' && a.spacing() == proc_macro2::Spacing::Joint && b.as_char() == ':' && id == "e2e"
        );
        // Not the tail of a longer path (`a::e2e`): only a path that starts there (after a
        // keyword, as in `impl ::e2e::Workload`, a path starts too).
        let after_path =
            i > 0 && matches!(&trees[i - 1], TokenTree::Ident(id) if !KEYWORDS.contains(&id.to_string().as_str()));
        if starts_e2e && !after_path {
            out.extend(path.clone());
            i += 3;
            continue;
        }
        match &trees[i] {
            TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), rewrite(g.stream(), path));
                group.set_span(g.span());
                out.push(TokenTree::Group(group));
            }
            other => out.push(other.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod crate_path_tests {
    use super::*;

    #[test]
    fn only_paths_that_start_with_e2e_are_rewritten() {
        let path: syn::Path = syn::parse_quote!(::my_e2e);
        let out = with_crate_path(
            quote!(::e2e::Env; fn f(x: &::e2e::Env) { other::e2e::X; (::e2e::a) } impl ::e2e::W for S {}),
            Some(&path),
        );
        assert_eq!(
            out.to_string(),
            quote!(::my_e2e::Env; fn f(x: &::my_e2e::Env) { other::e2e::X; (::my_e2e::a) } impl ::my_e2e::W for S {})
                .to_string()
        );
        let untouched = quote!(::e2e::Env);
        assert_eq!(with_crate_path(untouched.clone(), None).to_string(), untouched.to_string());
        let Err(bad) = crate_path(&LitStr::new("not a path!", Span::call_site())) else { panic!("a bad path parsed") };
        let bad = bad.to_string();
        assert!(bad.contains("my_e2e") && bad.contains("not a path!"), "{bad}");
    }
}
