//! Connectors: where node instances run. A server has **configured connectors** — each a name
//! (what modules and launch requests say: `local`, `lab`, …), a kind (`local`, `docker`) and the
//! kind's options — built from [`ConnectorConfig`]s by [`crate::connectors::build`]. Each
//! implements [`Connector`]; `engine/src/connectors/README.md` is the checklist for adding one.
//!
//! Every call can fail with an error that says why: a connector that cannot be reached answers
//! `Error::Unavailable`, which is not the same as an instance that is gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::Result;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A configured connector, from the server's settings (`--connector NAME=KIND[:ENDPOINT]` or
/// the `connectors:` section of the settings file).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    #[serde(default)]
    pub name: String,
    pub kind: String,
    /// Where the connector's engine is (`unix:///run/docker.sock`); the kind's default if absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Several engines of one connector (a run's instances are spread over them); with
    /// `endpoint`, that one comes first.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Kind-specific options (`memory = 512m`, `cpus = 1.5`, `pids = 512`, …).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl ConnectorConfig {
    /// Parses `NAME=KIND[:ENDPOINT[,ENDPOINT…]]`, e.g. `lab=docker:unix:///run/slipstream-docker.sock`.
    pub fn parse(spec: &str) -> std::result::Result<Self, String> {
        let (name, rest) = spec.split_once('=').ok_or_else(|| format!("`{spec}` is not NAME=KIND[:ENDPOINT]"))?;
        let name = name.trim();
        model::validate::check_connector_name(name)?;
        let (kind, endpoint) = match rest.split_once(':') {
            Some((k, e)) if !e.is_empty() => (k.trim(), Some(e.trim().to_string())),
            Some((k, _)) => (k.trim(), None),
            None => (rest.trim(), None),
        };
        if kind.is_empty() {
            return Err(format!("`{spec}` names no connector kind (local or docker)"));
        }
        let endpoints: Vec<String> =
            endpoint.iter().flat_map(|e| e.split(',')).map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
        Ok(Self { name: name.into(), kind: kind.into(), endpoint: None, endpoints, options: BTreeMap::new() })
    }

    /// Every endpoint configured, `endpoint` first.
    pub fn all_endpoints(&self) -> Vec<String> {
        self.endpoint.iter().chain(&self.endpoints).cloned().collect()
    }
}

/// The environment the engine builds once for every instance, whatever its connector; the
/// connector adds what only it knows (the instance's address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEnv {
    /// Where the agent reaches the server: the server's own URL; a connector whose instances
    /// cannot reach it replaces it with its agent URL.
    pub service_url: String,
    pub run: String,
    pub instance: String,
    /// The run's agent token (a secret: never logged).
    pub token: String,
}

impl AgentEnv {
    /// The variables the agent reads, in a fixed order.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLIPSTREAM_SERVICEURL", self.service_url.clone()),
            ("SLIPSTREAM_DIID", self.run.clone()),
            ("SLIPSTREAM_NODE_INSTANCE_NAME", self.instance.clone()),
            ("SLIPSTREAM_RUN_TOKEN", self.token.clone()),
        ]
    }
}

/// The user's account on a connector: settings and the write-only credential from the profile.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub settings: BTreeMap<String, String>,
    pub credential: Option<String>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential never reaches a log line.
        f.debug_struct("Account").field("settings", &self.settings).field("credential", &self.credential.as_ref().map(|_| "…")).finish()
    }
}

/// What a connector needs to start one instance with the agent.
#[derive(Clone, Debug)]
pub struct StartSpec {
    pub run: String,
    pub instance: String,
    /// The image id on this connector (`host` for the local connector).
    pub image: String,
    pub env: AgentEnv,
    pub account: Account,
    /// The run owner's SSH public keys from their profile (one per line; may be empty), for
    /// connectors that install them for the instance's user.
    pub authorized_keys: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// Opaque to the engine; given back to `inspect`, `stop`, `destroy`, `recover`.
    pub handle: String,
    /// The instance's `hostname`.
    pub address: String,
    pub instance_id: String,
    /// The agent was given `address` and `instance_id` (`SLIPSTREAM_HOSTNAME`,
    /// `SLIPSTREAM_INSTANCEID`): the engine publishes them as `hostname` and `instanceid` when
    /// it records the start, and the agent, seeing them in its environment, does not — two
    /// calls fewer per instance. Where it is `false` the agent learns and publishes its own.
    pub identity_given: bool,
    /// A command that logs a user into the instance (`ssh -p 22 root@10.0.0.5`): the
    /// instance's `url.ssh`; none where the connector offers no SSH login.
    pub ssh: Option<String>,
}

/// An instance a connector found of this server's, by what marks it there (a container's
/// labels, a process's environment, a directory), whether or not a run records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub run: String,
    pub instance: String,
    /// What `stop` and `destroy` take.
    pub handle: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Running,
    Gone,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Can build images (run recipes once and keep the result).
    pub build_images: bool,
    /// Instances get their own network address.
    pub own_address: bool,
}

/// A process to open inside a running instance: a shell for a terminal, or a target re-run.
/// It runs as the instance's processes run (its user, its confinement), after `slipstream.setup`
/// was sourced, so it starts in the instance's directory with the run's environment.
#[derive(Clone, Debug)]
pub struct ExecSpec {
    pub run: String,
    pub instance: String,
    /// A shell command line, run by `sh -c` after `. ./slipstream.setup`.
    pub command: String,
    /// Bytes for its stdin, then end of input (without a terminal).
    pub stdin: Vec<u8>,
    /// A terminal of (columns, rows): an interactive session; output is the terminal's.
    pub tty: Option<(u16, u16)>,
}

impl ExecSpec {
    /// The interactive shell of a terminal (bash if the instance has it).
    pub fn shell(run: &str, instance: &str, columns: u16, rows: u16) -> Self {
        Self {
            run: run.into(),
            instance: instance.into(),
            command: "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi".into(),
            stdin: Vec::new(),
            tty: Some((columns, rows)),
        }
    }

    /// The whole command line for `sh -c` in the instance whose directory is `dir`.
    pub fn script(&self, dir: &str) -> String {
        let dir = format!("'{}'", dir.replace('\'', r"'\''"));
        format!("cd {dir} && . ./slipstream.setup && export TERM=xterm-256color && {}", self.command)
    }
}

/// What goes into an opened process.
#[derive(Debug)]
pub enum ExecInput {
    Data(bytes::Bytes),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
}

/// What comes out of it: output (stdout and stderr, or the terminal), then its exit code
/// (`None`: ended by a signal, or unknown) as the last message.
#[derive(Debug)]
pub enum ExecOutput {
    Data(bytes::Bytes),
    Exit(Option<i32>),
}

/// An opened process. Dropping `input` closes its terminal (a shell then ends: hang-up).
pub struct Exec {
    pub input: tokio::sync::mpsc::Sender<ExecInput>,
    pub output: tokio::sync::mpsc::Receiver<ExecOutput>,
}

impl Exec {
    /// A pair of channels for a connector to serve: (the `Exec` for the caller, the connector's ends).
    pub fn channels() -> (Exec, tokio::sync::mpsc::Receiver<ExecInput>, tokio::sync::mpsc::Sender<ExecOutput>) {
        let (in_tx, in_rx) = tokio::sync::mpsc::channel(64);
        let (out_tx, out_rx) = tokio::sync::mpsc::channel(64);
        (Exec { input: in_tx, output: out_rx }, in_rx, out_tx)
    }

    /// Waits for the end; what it printed and its exit code.
    pub async fn finish(mut self) -> (Vec<u8>, Option<i32>) {
        drop(self.input);
        let mut out = Vec::new();
        while let Some(m) = self.output.recv().await {
            match m {
                ExecOutput::Data(d) => out.extend_from_slice(&d),
                ExecOutput::Exit(code) => return (out, code),
            }
        }
        (out, None)
    }
}

pub trait Connector: Send + Sync {
    /// The configured name (`local`, `lab`).
    fn name(&self) -> &str;
    /// The kind (`local`, `docker`).
    fn kind(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    /// Whether only administrators and the users they allow may use it (its instances are not
    /// isolated from the server).
    fn restricted(&self) -> bool {
        false
    }
    /// Where this connector's instances reach the server, when not at the server's own URL
    /// (containers cannot reach the host's loopback); for the server's start-up message.
    fn agent_urls(&self) -> Vec<String> {
        Vec::new()
    }
    /// Addresses of this host on which the server must listen for this connector's agents
    /// (only the agent endpoints are served there); none: they reach the server's own URL.
    fn agent_addresses<'a>(&'a self) -> BoxFuture<'a, Result<Vec<std::net::IpAddr>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Tells the connector where the server listens for its agents on `address` (one of
    /// `agent_addresses`).
    fn set_agent_url(&self, _address: std::net::IpAddr, _url: &str) {}
    /// Makes what a run's instances share on this connector (a network) and checks the
    /// owner's account there; called once per run before its instances start here. A missing
    /// or refused credential fails here, naming the connector and what is missing.
    fn prepare_run<'a>(&'a self, _run: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>>;
    // Every call after `start` gets the run owner's account again: the connector may need
    // the user's credential to reach the instance (a remote engine with TLS client keys).
    fn inspect<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<Health>>;
    /// Stops the instance and everything it started (what ignores the request is killed).
    fn stop<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>>;
    /// Removes what is left of a stopped instance (a container); idempotent.
    fn destroy<'a>(&'a self, _handle: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Removes what `prepare_run` made, once the run's instances here are destroyed.
    fn release_run<'a>(&'a self, _run: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Keeps a (stopped or running) instance's file system as an image named `image` (a build);
    /// returns the image id. Connectors without `build_images` refuse.
    fn commit<'a>(&'a self, _handle: &'a str, _image: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move { Err(crate::Error::Unavailable(format!("connector `{}` cannot build images", self.name()))) })
    }
    /// Opens a process inside a running instance (see [`ExecSpec`]).
    fn exec<'a>(&'a self, _handle: &'a str, _account: &'a Account, _spec: &'a ExecSpec) -> BoxFuture<'a, Result<Exec>> {
        Box::pin(
            async move { Err(crate::Error::Unavailable(format!("connector `{}` cannot open processes in its instances", self.name()))) },
        )
    }
    /// Every instance of this server's the connector can find without a user's credential
    /// (for the reaper). A connector that can only reach its instances with the run owner's
    /// key finds none here; the reaper then goes by the database's records alone.
    fn instances<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Found>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Re-attaches to an instance after a server restart; `false` if it is gone.
    fn recover<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.inspect(handle, account).await? == Health::Running) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_specs_are_parsed() {
        /// (name, kind, endpoint) of a parsed spec.
        type Parsed = std::result::Result<(String, String, Option<String>), ()>;
        let ok = |s: &str| ConnectorConfig::parse(s).map(|c| (c.name, c.kind, c.endpoints.first().cloned()));
        let table: [(&str, Parsed); 6] = [
            ("local=local", Ok(("local".into(), "local".into(), None))),
            ("lab=docker", Ok(("lab".into(), "docker".into(), None))),
            ("lab=docker:unix:///run/d.sock", Ok(("lab".into(), "docker".into(), Some("unix:///run/d.sock".into())))),
            ("far=docker:tcp://10.0.0.5:2376", Ok(("far".into(), "docker".into(), Some("tcp://10.0.0.5:2376".into())))),
            ("Lab=docker", Err(())),
            ("docker", Err(())),
        ];
        for (spec, want) in table {
            assert_eq!(ok(spec).map_err(|_| ()), want, "{spec}");
        }
        let two = ConnectorConfig::parse("lab=docker:unix:///a.sock, unix:///b.sock").unwrap();
        assert_eq!(two.all_endpoints(), ["unix:///a.sock", "unix:///b.sock"]);
    }

    #[test]
    fn an_account_never_shows_its_credential() {
        let a = Account { settings: BTreeMap::new(), credential: Some("s3cret".into()) };
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
