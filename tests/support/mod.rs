//! Helpers shared by integration tests. Each test file includes this module
//! with `mod support;` and uses only the parts it needs.
//!
//! `loadgen.rs` (the milter load generator) is not listed here: tests and
//! benches include it alone with `#[path]`, without the MTA helpers.

pub mod mailward;
pub mod postfix;
pub mod sendmail;
pub mod smtp;
