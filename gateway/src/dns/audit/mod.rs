//! The DNS audit (placeholder module filled in by the next commit).
pub mod cli;
