//! The connector kinds, and building a server's configured connectors from its settings.
//!
//! - [`local`]: instances are processes on the server's own host
//! - [`docker`]: instances are containers on a Docker Engine (or Podman's compatible service)
//! - [`ssh`]: instances are processes on existing machines reached over SSH
//! - [`mock`] (feature `mock-connector`): a scripted connector for driver tests without processes

pub mod agent_files;
pub mod confine;
pub mod docker;
pub mod local;
mod local_exec;
#[cfg(any(test, feature = "mock-connector"))]
pub mod mock;
mod reaper_task;
mod sessions;
mod spread;
pub mod ssh;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::connector::{Connector, ConnectorConfig};

/// What every connector may need from the server.
pub struct Context {
    pub data_dir: PathBuf,
    pub agent_bin: Option<PathBuf>,
    /// Where in the local connector's address space to start (random per server).
    pub first_address: u64,
    /// Labels every resource this server makes, so it can find them again.
    pub server_id: String,
}

/// The configured connectors by name; with none configured, one `local` connector.
pub fn build(configs: &[ConnectorConfig], cx: &Context) -> Result<BTreeMap<String, Arc<dyn Connector>>, String> {
    let defaults = [ConnectorConfig { name: "local".into(), kind: "local".into(), ..Default::default() }];
    let configs = if configs.is_empty() { &defaults[..] } else { configs };
    let mut out: BTreeMap<String, Arc<dyn Connector>> = BTreeMap::new();
    for c in configs {
        model::validate::check_connector_name(&c.name).map_err(|e| format!("connector `{}`: {e}", c.name))?;
        let built: Arc<dyn Connector> = match c.kind.as_str() {
            "local" => {
                let confine = confine::Confinement::from_options(&c.options).map_err(|e| format!("connector `{}`: {e}", c.name))?;
                Arc::new(
                    local::Local::new(&c.name, cx.data_dir.clone(), cx.agent_bin.clone(), cx.first_address)
                        .confined(confine, &cx.server_id),
                )
            }
            "docker" => Arc::new(docker::Docker::new(c, cx).map_err(|e| format!("connector `{}`: {e}", c.name))?),
            "ssh" => Arc::new(ssh::Ssh::new(c, cx).map_err(|e| format!("connector `{}`: {e}", c.name))?),
            #[cfg(any(test, feature = "mock-connector"))]
            "mock" => Arc::new(mock::Mock::new(c)),
            other => return Err(format!("connector `{}`: unknown kind `{other}` (local, docker or ssh)", c.name)),
        };
        if out.insert(c.name.clone(), built).is_some() {
            return Err(format!("connector `{}` is configured twice", c.name));
        }
    }
    Ok(out)
}

/// One value for every endpoint, or one per endpoint (empty for none), from a comma-separated
/// option.
pub(crate) fn per_endpoint(config: &ConnectorConfig, option: &str, endpoints: usize) -> std::result::Result<Vec<Option<String>>, String> {
    let Some(v) = config.options.get(option) else { return Ok(vec![None; endpoints]) };
    let values: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    match values.len() {
        1 => Ok(vec![Some(values[0].clone()); endpoints]),
        // An empty value: that endpoint has none (`,10.0.0.2`).
        n if n == endpoints => Ok(values.into_iter().map(|v| Some(v).filter(|v| !v.is_empty())).collect()),
        n => Err(format!("option `{option}` has {n} values for {endpoints} endpoints (give one, or one per endpoint)")),
    }
}
