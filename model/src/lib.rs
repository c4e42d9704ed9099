//! Shared vocabulary of Slipstream: the types the API, the YAML files, the UI, the engine and
//! the node agent all speak. No I/O, no clock, so it builds for wasm32 as well.
//!
//! # Layout
//! - [`path`]: module paths (`examples/images/busybox`) and references (`…/apache@7`)
//! - [`module`]: the module document (project, image, deployment), one schema for JSON and YAML
//! - [`validate`]: checks of one module on its own; checks across modules live in the engine
//! - [`key`]: runtime-parameter keys (`worker.2:hostname`, `apache:port`, `ss:abort`)
//! - [`run`]: runs, instances, events, logs and reports as the API returns them
//! - [`state`]: run states and their order
//! - [`account`]: users, profiles and API tokens as the API returns them
//! - [`time`]: calendar fields of Unix times (no clock needed)
//! - [`diff`]: differences between two module versions (changed fields, script line diffs)
//! - [`error`]: [`FieldError`], the error that names the module, the field and the reason

pub mod account;
pub mod confine;
pub mod diff;
pub mod error;
pub mod key;
pub mod module;
pub mod path;
pub mod run;
pub mod state;
pub mod sweep;
pub mod time;
pub mod validate;

pub use account::{ApiToken, ConnectorAccount, ConnectorAccountUpdate, Profile, User};
pub use error::FieldError;
pub use key::{KeyOwner, ParamKey};
pub use module::{
    CatalogEntry, Category, Module, ModuleKind, ModuleSummary, Node, ParamType, Parameter, PublicRights, Targets, VersionInfo,
};
pub use path::{ModulePath, ModuleRef};
pub use state::RunState;

/// Longest value a runtime parameter, a default or a literal node value may have.
pub const MAX_VALUE_LEN: usize = 4096;
