//! `#[e2e::test(env = "name", timeout = "120s")]` on an `async fn`.

mod expand;
mod parse;

pub(crate) use expand::expand;
pub(crate) use parse::{parse, Parsed};
