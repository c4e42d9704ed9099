//! Settings: command-line flags, each also read from a `SLIPSTREAM_*` environment variable.

use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    /// `host:port`; port 0 picks a free port (tests).
    pub listen: String,
    /// SQLite file (unless `database_url` says otherwise), reports and logs live here.
    pub data_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; default `sqlite:<data_dir>/slipstream.db`.
    pub database_url: Option<String>,
    /// The built site (`pkg/site.js`, `pkg/site.wasm`, `pkg/site.css`).
    pub site_root: PathBuf,
    pub load_examples: bool,
    /// The static node agent the connectors install (default: found next to this binary).
    pub agent_bin: Option<PathBuf>,
}

impl Settings {
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("slipstream.db").display()))
    }

    /// Where `cargo xtask build` puts the agent: beside the server binary, or in the
    /// static target's directory of the same profile.
    pub fn default_agent_bin() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        let profile = dir.file_name()?.to_owned();
        [dir.join("slipstream-agent"), dir.parent()?.join("x86_64-unknown-linux-gnu").join(profile).join("slipstream-agent")]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// Where `cargo xtask build` puts the site: `target/site`, beside `target/<profile>/`.
    pub fn default_site_root() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().and_then(|p| p.parent()).map(|t| t.join("site")))
            .filter(|p| p.join("pkg").is_dir())
            .unwrap_or_else(|| PathBuf::from("target/site"))
    }
}
