//! How the agent gets into containers and how it reaches the server: the directory that holds
//! it under every command name (bind-mounted read-only on this host's engines, uploaded as an
//! archive to engines elsewhere), and the addresses of this host on which the server listens
//! for the agents.

use std::net::IpAddr;

use bollard::query_parameters::InspectNetworkOptions;

use super::endpoint::Endpoint;
use super::{failed, Docker, AGENT_COMMANDS, AGENT_DIR};
use crate::connector::Account;
use crate::{Error, Result};

impl Docker {
    /// Where the server should listen for this connector's agents, one address per engine
    /// (engines may share one): the `agent_address` option, else the gateway of the engine's
    /// default bridge network (an address of this host that containers on any of its networks
    /// reach through their default route). Engines with an `agent_url` need none.
    pub(super) async fn find_agent_addresses(&self) -> Result<Vec<IpAddr>> {
        let mut out = Vec::new();
        for e in self.endpoints.iter().filter(|e| e.agent_url.get().is_none()) {
            let address = match e.configured_address() {
                Some(a) => a,
                None => {
                    let found = self.bridge_gateway(e).await?;
                    let _ = e.found_address.set(found);
                    found
                }
            };
            if !out.contains(&address) {
                out.push(address);
            }
        }
        Ok(out)
    }

    async fn bridge_gateway(&self, e: &Endpoint) -> Result<IpAddr> {
        let c = e.client(&self.name, &Account::default())?;
        let bridge = c
            .inspect_network("bridge", None::<InspectNetworkOptions>)
            .await
            .map_err(|err| failed(&format!("inspecting the bridge network at {}", e.url), err))?;
        let gateway = bridge.ipam.and_then(|i| i.config).unwrap_or_default().into_iter().find_map(|c| c.gateway).ok_or_else(|| {
            Error::Unavailable(format!(
                "connector `{}`: the bridge network at {} has no gateway; set the agent_address option",
                self.name, e.url
            ))
        })?;
        gateway.parse().map_err(|_| Error::Internal(format!("bridge gateway `{gateway}` is not an address")))
    }

    /// Puts the agent into a created container on an engine elsewhere (it cannot mount this
    /// host's files): an archive of the agent under every command name, made once.
    pub(super) async fn upload_agent(&self, c: &bollard::Docker, container: &str) -> Result<()> {
        let archive = match self.agent_archive.get() {
            Some(a) => a.clone(),
            None => {
                let made = bytes::Bytes::from(self.make_agent_archive()?);
                self.agent_archive.get_or_init(|| made).clone()
            }
        };
        let options = bollard::query_parameters::UploadToContainerOptions { path: "/".into(), ..Default::default() };
        c.upload_to_container(container, Some(options), bollard::body_full(archive))
            .await
            .map_err(|e| failed(&format!("uploading the agent into container {container}"), e))
    }

    fn make_agent_archive(&self) -> Result<Vec<u8>> {
        let agent = self.agent_bin()?;
        let bytes = std::fs::read(agent).map_err(|e| Error::Internal(format!("reading the agent {}: {e}", agent.display())))?;
        let io = |e: std::io::Error| Error::Internal(format!("packing the agent: {e}"));
        let mut tar = tar::Builder::new(Vec::with_capacity(bytes.len() + 64 * 1024));
        let dir = AGENT_DIR.trim_start_matches('/');
        let mut path = String::new();
        for part in dir.split('/') {
            path = if path.is_empty() { part.to_string() } else { format!("{path}/{part}") };
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, format!("{path}/"), std::io::empty()).map_err(io)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, format!("{dir}/slipstream-agent"), &bytes[..]).map_err(io)?;
        for name in AGENT_COMMANDS.iter().filter(|n| **n != "slipstream-agent") {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            tar.append_link(&mut h, format!("{dir}/{name}"), "slipstream-agent").map_err(io)?;
        }
        tar.into_inner().map_err(io)
    }

    fn agent_bin(&self) -> Result<&std::path::Path> {
        self.agent_bin
            .as_deref()
            .ok_or_else(|| Error::Internal("no agent binary is configured (SLIPSTREAM_AGENT_BIN or --agent-bin)".into()))
    }

    /// The directory mounted into every container: the agent under each of its command names.
    pub(super) fn agent_dir(&self) -> Result<String> {
        let mut placed = self.agent_placed.lock().expect("not poisoned");
        if !*placed {
            crate::connectors::agent_files::place_agent(self.agent_bin()?, &self.agent_dir)?;
            *placed = true;
        }
        Ok(self.agent_dir.display().to_string())
    }
}
