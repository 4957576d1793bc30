//! Helpers shared by integration tests. Each test file includes this module
//! with `mod support;` and uses only the parts it needs.

pub mod postfix;
