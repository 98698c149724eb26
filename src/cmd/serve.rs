//! `serve`: see [`crate::serve`].

pub use crate::serve::run;
