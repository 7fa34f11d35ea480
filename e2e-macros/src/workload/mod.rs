//! `e2e::workload! { ... }`: declares workload types and registers them in the catalog.

mod expand;
mod parse;

pub(crate) use expand::expand;
pub(crate) use parse::parse;
