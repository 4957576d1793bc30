//! mailward: a milter that watches SMTP behavior and intercepts spam with a
//! keyword-indexed string library.

pub mod library;
pub mod message;
