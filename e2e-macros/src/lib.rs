//! Procedural macros of the e2e framework (see the `e2e` crate, which documents and re-exports
//! them). They only parse, validate and emit: the code they generate calls into the runtime
//! through `::e2e::...` paths (`::e2e::__private` for the hidden ones), where all behaviour lives;
//! with a `crate = "path"` argument (a renamed dependency), through `path::...` instead.

mod common;
mod test_attr;
mod workload;

use proc_macro::TokenStream;

/// Runs an `async fn` as a test in its own env; see `e2e::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let parsed = test_attr::parse(args.into(), item.into());
    let krate = match &parsed {
        test_attr::Parsed::Test(t) => t.config.krate.clone(),
        test_attr::Parsed::Invalid { .. } => None,
    };
    common::with_crate_path(test_attr::expand(parsed), krate.as_ref()).into()
}

/// Declares workload types; see `e2e::workload!`.
#[proc_macro]
pub fn workload(input: TokenStream) -> TokenStream {
    let parsed = workload::parse(input.into());
    let krate = parsed.krate.clone();
    common::with_crate_path(workload::expand(parsed), krate.as_ref()).into()
}
