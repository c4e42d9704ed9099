//! One module per page.

pub mod auth;
pub mod catalog;
pub mod chooser;
pub mod dashboard;
pub mod editor;
pub mod home;
pub mod launch;
pub mod modules;
pub mod profile;
pub mod runs;
pub mod sweeps;
