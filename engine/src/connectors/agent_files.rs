//! The agent's files on this host: a directory holding a copy of the static agent under every
//! command name (`ss-get`, … as links to it). Docker bind-mounts it into containers; the local
//! connector puts it on the PATH of instances that run as another user (who may not be able to
//! reach the server's own copy).

use std::path::Path;

use super::local::AGENT_COMMANDS;
use crate::{Error, Result};

/// Makes `dir` hold the agent `agent` (copied when it changed) and its command links. Call it
/// once before the copy is executed, not beside starts that fork (see the local connector).
pub fn place_agent(agent: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
    let target = dir.join("slipstream-agent");
    // A copy, not a link: a mount must not point outside the directory, and another user
    // must be able to run it.
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
    Ok(())
}
