//! How the agent gets into containers and how it reaches the server: the directory that holds
//! it under every command name (bind-mounted read-only), and the address of this host on which
//! the server listens for the agents.

use std::net::IpAddr;

use bollard::query_parameters::InspectNetworkOptions;

use super::{failed, Docker, AGENT_COMMANDS};
use crate::{Error, Result};

impl Docker {
    /// Where the server should listen for this connector's agents: the `agent_address` option,
    /// else the gateway of the engine's default bridge network (an address of this host that
    /// containers on any of its networks reach through their default route). `None` when
    /// `agent_url` is set (the agents go there).
    pub(super) async fn find_agent_address(&self) -> Result<Option<IpAddr>> {
        if self.agent_url.get().is_some() {
            return Ok(None);
        }
        if let Some(a) = self.agent_address {
            return Ok(Some(a));
        }
        let c = self.client()?;
        let bridge =
            c.inspect_network("bridge", None::<InspectNetworkOptions>).await.map_err(|e| failed("inspecting the bridge network", e))?;
        let gateway = bridge.ipam.and_then(|i| i.config).unwrap_or_default().into_iter().find_map(|c| c.gateway).ok_or_else(|| {
            Error::Unavailable(format!("connector `{}`: the bridge network has no gateway; set the agent_address option", self.name))
        })?;
        gateway.parse().map(Some).map_err(|_| Error::Internal(format!("bridge gateway `{gateway}` is not an address")))
    }

    /// The directory mounted into every container: the agent under each of its command names.
    pub(super) fn agent_dir(&self) -> Result<String> {
        let agent = self
            .agent_bin
            .as_ref()
            .ok_or_else(|| Error::Internal("no agent binary is configured (SLIPSTREAM_AGENT_BIN or --agent-bin)".into()))?;
        let dir = &self.agent_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
        let target = dir.join("slipstream-agent");
        // A copy, not a link: the mount must not point outside the directory.
        let fresh = std::fs::metadata(&target)
            .ok()
            .zip(std::fs::metadata(agent).ok())
            .is_some_and(|(t, a)| t.len() == a.len() && t.modified().ok() >= a.modified().ok());
        if !fresh {
            let tmp = dir.join(".slipstream-agent.part");
            std::fs::copy(agent, &tmp).map_err(|e| Error::Internal(format!("copying the agent: {e}")))?;
            std::fs::rename(&tmp, &target).map_err(|e| Error::Internal(format!("placing the agent: {e}")))?;
        }
        for name in AGENT_COMMANDS.iter().filter(|n| **n != "slipstream-agent") {
            let link = dir.join(name);
            if std::fs::read_link(&link).is_err() {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink("slipstream-agent", &link).map_err(|e| Error::Internal(format!("{}: {e}", link.display())))?;
            }
        }
        Ok(dir.display().to_string())
    }
}
