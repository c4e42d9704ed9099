//! Connector implementations.

pub mod local;
