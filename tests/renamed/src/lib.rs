//! Nothing here: the test is tests/renamed.rs.
