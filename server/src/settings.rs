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
    /// The configured connectors (none: one `local` connector).
    pub connectors: Vec<engine::connector::ConnectorConfig>,
    /// The largest report bundle accepted, in MiB (`--report-limit-mb`, default 256).
    pub report_limit_mb: u64,
    /// Session cookies only over HTTPS (`--secure-cookies`: the server is reached through a
    /// TLS proxy).
    pub secure_cookies: bool,
    /// Who may create an account (`--registration open|invite|closed`).
    pub registration: engine::users::Registration,
    /// Clients come through a proxy that appends their address to `X-Forwarded-For`.
    pub behind_proxy: bool,
    /// Finished runs (logs, events, reports) are deleted this many days after they end; 0 keeps them.
    pub keep_finished_runs_days: u32,
    /// Seconds between two passes of the reaper (which also runs at start).
    pub reap_every_secs: u64,
}

/// The settings file (`--config FILE`, YAML): today its `connectors` section.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    connectors: std::collections::BTreeMap<String, engine::connector::ConnectorConfig>,
}

/// The connectors of the settings file (if any), then those given as `NAME=KIND[:ENDPOINT]`.
pub fn connectors(file: Option<&std::path::Path>, specs: &[String]) -> Result<Vec<engine::connector::ConnectorConfig>, String> {
    let mut out = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("settings file {}: {e}", path.display()))?;
        let parsed: SettingsFile = serde_yaml::from_str(&text).map_err(|e| format!("settings file {}: {e}", path.display()))?;
        for (name, mut c) in parsed.connectors {
            c.name = name;
            out.push(c);
        }
    }
    for spec in rejoin_endpoints(specs) {
        out.push(engine::connector::ConnectorConfig::parse(&spec).map_err(|e| format!("--connector: {e}"))?);
    }
    Ok(out)
}

/// `--connector` values are split at commas (`SLIPSTREAM_CONNECTORS=a=local,b=docker`), and so
/// is the endpoint list of one connector (`lab=docker:unix:///a,unix:///b`): a piece without
/// `=` is another endpoint of the connector before it.
fn rejoin_endpoints(specs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for spec in specs {
        match out.last_mut() {
            Some(last) if !spec.contains('=') => {
                last.push(',');
                last.push_str(spec);
            }
            _ => out.push(spec.clone()),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_lists_survive_the_comma_split() {
        let split: Vec<String> =
            "local=local,lab=docker:unix:///a,unix:///b,far=docker:tcp://h:2376".split(',').map(String::from).collect();
        assert_eq!(super::rejoin_endpoints(&split), ["local=local", "lab=docker:unix:///a,unix:///b", "far=docker:tcp://h:2376"]);
    }

    #[test]
    fn connectors_come_from_the_file_then_the_command_line() {
        let dir = std::env::temp_dir().join(format!("slipstream-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("slipstream.yaml");
        std::fs::write(&file, "connectors:\n  lab:\n    kind: docker\n    endpoint: unix:///run/d.sock\n    options: {memory: 512m}\n")
            .unwrap();
        let got = super::connectors(Some(&file), &["local=local".to_string()]).unwrap();
        assert_eq!(got.iter().map(|c| (c.name.as_str(), c.kind.as_str())).collect::<Vec<_>>(), [("lab", "docker"), ("local", "local")]);
        assert_eq!(got[0].options["memory"], "512m");
        std::fs::write(&file, "connectors:\n  lab:\n    kind: docker\n    colour: blue\n").unwrap();
        assert!(super::connectors(Some(&file), &[]).unwrap_err().contains("colour"));
        assert!(super::connectors(None, &["nonsense".to_string()]).unwrap_err().contains("--connector"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
