//! Procedural macros of the e2e framework (see the `e2e` crate).
