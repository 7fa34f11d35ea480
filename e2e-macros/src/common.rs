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
