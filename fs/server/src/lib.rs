//! 9P server core (being written).
#![warn(missing_docs, unreachable_pub)]
pub mod error;
pub mod tree;
pub use error::{Error, Result};
pub use tree::*;
