//! The SSH connector: instances run on existing machines reached over SSH (lab servers, VMs
//! made by other tools). An administrator declares the pool — each host's address and port,
//! the login user, the host key the connector pins, and how many instances the host takes at
//! once (`slots`); users give their private key as their credential for the connector (or the
//! administrator gives a pool key, `key_file`).
//!
//! - Starting an instance books a free slot (the least-loaded host first; when every host is
//!   full the start is refused and the run aborts, naming the connector and its slots), puts
//!   the static agent on the host over SFTP (once per host and agent build, under
//!   `<work_dir>/<server id>/`), writes the instance's environment to a file only the login user
//!   can read (the run token never appears on a command line), and starts the agent detached in
//!   `<work_dir>/<server id>/runs/<run>/<instance>`. The agent makes its own session: every
//!   process the instance starts stays in it.
//! - The handle (`host:port#session#directory`) finds the instance again after a restart;
//!   stopping signals every process of that session on the host (SIGTERM, then SIGKILL after
//!   3 s) and removes the directory.
//! - One SSH connection per host and key is kept and reused.

mod session;
mod slots;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use russh::keys::{PrivateKey, PublicKey};
use sha2::Digest;

use super::local::AGENT_COMMANDS;
use super::{per_endpoint, Context};
use crate::connector::{Account, BoxFuture, Capabilities, Connector, ConnectorConfig, Exec, ExecSpec, Found, Health, StartSpec, Started};
use crate::{Error, Result};
pub use session::{parse_host_key, quote, Connection, HostAddr, Output};
use slots::Slots;

/// The options an SSH connector accepts.
const OPTIONS: [&str; 8] = ["user", "host_key", "slots", "key_file", "work_dir", "authorized_keys", "agent_address", "agent_url"];
/// Sessions opened at once on one connection (OpenSSH's `MaxSessions` is 10 by default).
const CHANNELS_PER_CONNECTION: usize = 8;
/// The image id of an SSH host: the machine as it is.
pub const HOST_IMAGE: &str = "host";

struct Host {
    addr: HostAddr,
    key: PublicKey,
    /// Where instance directories go on the host (relative: to the login user's home).
    work_dir: String,
    /// The login user's `authorized_keys` file, where the run owner's profile keys go while
    /// an instance runs (relative: to the home).
    authorized_keys: String,
}

/// One kept connection per (host, key), opened on first use and again when it dropped.
type Pooled = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

pub struct Ssh {
    name: String,
    server_id: String,
    agent_bin: Option<PathBuf>,
    hosts: Vec<Host>,
    pool_key: Option<Arc<PrivateKey>>,
    slots: Mutex<Slots>,
    connections: Mutex<HashMap<(usize, [u8; 32]), Pooled>>,
    /// Bounds the sessions open at once per host.
    channels: Vec<tokio::sync::Semaphore>,
    /// The agent's bytes and the name of its copy on the hosts (by content).
    agent: OnceLock<(bytes::Bytes, String)>,
    /// Hosts where this agent build was placed.
    placed: tokio::sync::Mutex<Vec<bool>>,
    agent_address: Option<IpAddr>,
    agent_url: OnceLock<String>,
}

/// A parsed handle: which host, the agent's session, the instance's directory.
struct Handle<'a> {
    host: usize,
    session: i32,
    dir: &'a str,
}

impl Ssh {
    pub fn new(config: &ConnectorConfig, cx: &Context) -> std::result::Result<Self, String> {
        if let Some(bad) = config.options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(format!("the ssh connector has no option `{bad}` (it has {OPTIONS:?})"));
        }
        let endpoints = config.all_endpoints();
        if endpoints.is_empty() {
            return Err("the ssh connector needs its hosts as endpoints (`address[:port]`, one per host)".into());
        }
        let n = endpoints.len();
        let (users, keys, slots, dirs) = (
            per_endpoint(config, "user", n)?,
            per_endpoint(config, "host_key", n)?,
            per_endpoint(config, "slots", n)?,
            per_endpoint(config, "work_dir", n)?,
        );
        let key_files = per_endpoint(config, "authorized_keys", n)?;
        let mut hosts = Vec::with_capacity(n);
        let mut capacity = Vec::with_capacity(n);
        for (i, endpoint) in endpoints.iter().enumerate() {
            let (address, port) = match endpoint.rsplit_once(':') {
                Some((a, p)) => (a.to_string(), p.parse::<u16>().map_err(|_| format!("host `{endpoint}`: `{p}` is not a port"))?),
                None => (endpoint.clone(), 22),
            };
            let user = users[i].clone().ok_or_else(|| format!("host `{endpoint}` has no login `user` (option user)"))?;
            let key = keys[i].as_deref().ok_or_else(|| {
                format!(
                    "host `{endpoint}` has no `host_key`: pin the public key it presents (e.g. from `ssh-keyscan -t ed25519 {address}`)"
                )
            })?;
            let key = parse_host_key(key).map_err(|e| format!("host `{endpoint}`: host_key {e}"))?;
            let slot_count = match &slots[i] {
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("host `{endpoint}`: slots `{s}` is not a positive number"))?,
                None => 1,
            };
            capacity.push(slot_count);
            let work_dir = dirs[i].clone().unwrap_or_else(|| ".slipstream".into());
            let authorized_keys = key_files[i].clone().unwrap_or_else(|| ".ssh/authorized_keys".into());
            hosts.push(Host { addr: HostAddr { address, port, user }, key, work_dir, authorized_keys });
        }
        if endpoints.iter().enumerate().any(|(i, e)| endpoints[..i].contains(e)) {
            return Err("a host is listed twice".into());
        }
        let pool_key = match config.options.get("key_file") {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("key_file `{path}`: {e}"))?;
                Some(Arc::new(session::parse_private_key(&text).map_err(|e| format!("key_file `{path}`: {e}"))?))
            }
            None => None,
        };
        let agent_address = match config.options.get("agent_address") {
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| format!("agent_address `{a}` is not an IP address"))?),
            None => None,
        };
        let agent_url = OnceLock::new();
        if let Some(u) = config.options.get("agent_url") {
            let _ = agent_url.set(u.trim_end_matches('/').to_string());
        }
        Ok(Self {
            name: config.name.clone(),
            server_id: cx.server_id.clone(),
            agent_bin: cx.agent_bin.clone(),
            channels: hosts.iter().map(|_| tokio::sync::Semaphore::new(CHANNELS_PER_CONNECTION)).collect(),
            placed: tokio::sync::Mutex::new(vec![false; hosts.len()]),
            hosts,
            pool_key,
            slots: Mutex::new(Slots::new(capacity)),
            connections: Mutex::new(HashMap::new()),
            agent: OnceLock::new(),
            agent_address,
            agent_url,
        })
    }

    /// The key that logs in for `account`: the user's own, else the pool's.
    fn key_for(&self, account: &Account) -> Result<Arc<PrivateKey>> {
        match (&account.credential, &self.pool_key) {
            (Some(text), _) => session::parse_private_key(text)
                .map(Arc::new)
                .map_err(|e| Error::Forbidden(format!("your credential for connector `{}` is {e}", self.name))),
            (None, Some(k)) => Ok(k.clone()),
            (None, None) => Err(Error::Forbidden(format!(
                "connector `{}` needs your SSH private key: set it as your credential for `{}` on your profile",
                self.name, self.name
            ))),
        }
    }

    /// The kept connection to `host` for `key`, opened (again) if needed.
    async fn connection(&self, host: usize, key: &Arc<PrivateKey>) -> Result<Arc<Connection>> {
        let fingerprint: [u8; 32] = sha2::Sha256::digest(key.public_key().to_bytes().unwrap_or_default()).into();
        let pooled = self.connections.lock().expect("not poisoned").entry((host, fingerprint)).or_default().clone();
        let mut slot = pooled.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let h = &self.hosts[host];
        let c = Arc::new(Connection::open(&h.addr, &h.key, key).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs a shell command on `host` (bounded sessions per host), with a named error if the
    /// connection cannot be had.
    async fn run_on(&self, host: usize, account: &Account, command: &str, stdin: &[u8]) -> Result<Output> {
        let key = self.key_for(account)?;
        let _permit = self.channels[host].acquire().await.map_err(|_| Error::Internal("closed".into()))?;
        let c = self.connection(host, &key).await?;
        match c.run(command, stdin).await {
            Ok(out) => Ok(out),
            // A kept connection the host dropped meanwhile: once more on a fresh one.
            Err(_) if c.is_closed() => self.connection(host, &key).await?.run(command, stdin).await,
            Err(e) => Err(e),
        }
    }

    fn base_dir(&self, host: usize) -> String {
        format!("{}/{}", self.hosts[host].work_dir.trim_end_matches('/'), self.server_id)
    }

    /// The agent's bytes and its file name on hosts (by its content, so a new build is a new file).
    fn agent(&self) -> Result<&(bytes::Bytes, String)> {
        if let Some(a) = self.agent.get() {
            return Ok(a);
        }
        let path = self
            .agent_bin
            .as_ref()
            .ok_or_else(|| Error::Internal("no agent binary is configured (SLIPSTREAM_AGENT_BIN or --agent-bin)".into()))?;
        let bytes = std::fs::read(path).map_err(|e| Error::Internal(format!("reading the agent {}: {e}", path.display())))?;
        let hash = sha2::Sha256::digest(&bytes);
        let name = format!("agent-{}", hash.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>());
        Ok(self.agent.get_or_init(|| (bytes.into(), name)))
    }

    /// Puts the agent on `host` unless this build is there already; returns its path there.
    async fn place_agent(&self, host: usize, account: &Account) -> Result<String> {
        let (bytes, name) = self.agent()?;
        let base = self.base_dir(host);
        let path = format!("{base}/{name}");
        let mut placed = self.placed.lock().await;
        if placed[host] {
            return Ok(path);
        }
        let check = format!("umask 077; mkdir -p {b} && chmod 711 {b} && test -x {p} && wc -c < {p}", b = quote(&base), p = quote(&path));
        let out = self.run_on(host, account, &check, b"").await?;
        let present = out.ok() && String::from_utf8_lossy(&out.stdout).trim() == bytes.len().to_string();
        if !present {
            let key = self.key_for(account)?;
            let c = self.connection(host, &key).await?;
            let t = std::time::Instant::now();
            c.upload(&path, bytes).await?;
            tracing::info!(connector = %self.name, host = %self.hosts[host].addr, ms = t.elapsed().as_millis() as u64, "agent uploaded");
        }
        placed[host] = true;
        Ok(path)
    }

    fn parse_handle<'h>(&self, handle: &'h str) -> Result<Handle<'h>> {
        let bad = || Error::Internal(format!("connector `{}`: `{handle}` is not an SSH instance handle", self.name));
        let mut parts = handle.splitn(3, '#');
        let (host, session, dir) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
        let host = self.hosts.iter().position(|h| format!("{}:{}", h.addr.address, h.addr.port) == host).ok_or_else(|| {
            Error::Unavailable(format!("connector `{}` no longer lists host {host}, where instance {dir} runs", self.name))
        })?;
        let session = session.parse::<i32>().ok().filter(|s| *s > 1).ok_or_else(bad)?;
        Ok(Handle { host, session, dir })
    }

    fn agent_url_for(&self, spec: &StartSpec) -> String {
        self.agent_url.get().cloned().unwrap_or_else(|| spec.env.service_url.clone())
    }

    async fn start_on(&self, host: usize, spec: &StartSpec) -> Result<Started> {
        if spec.image != HOST_IMAGE {
            return Err(Error::NotFound(format!(
                "image `{}` is not on connector `{}` (SSH hosts run image `{HOST_IMAGE}`: the machine as it is)",
                spec.image, self.name
            )));
        }
        if self.agent_address.is_some() && self.agent_url.get().is_none() {
            return Err(Error::Unavailable(format!("connector `{}`: the server does not listen for its agents yet", self.name)));
        }
        let agent = self.place_agent(host, &spec.account).await?;
        let h = &self.hosts[host];
        let address = h.addr.address.clone();
        let instance_id = format!("ssh-{}-{}-{}", address, &spec.run[..8.min(spec.run.len())], spec.instance);
        let mut env: Vec<(String, String)> = spec
            .env
            .vars()
            .into_iter()
            .map(|(k, v)| (k.to_string(), if k == "SLIPSTREAM_SERVICEURL" { self.agent_url_for(spec) } else { v }))
            .collect();
        env.push(("SLIPSTREAM_HOSTNAME".into(), address.clone()));
        env.push(("SLIPSTREAM_INSTANCEID".into(), instance_id.clone()));
        let env_file: String = env.iter().map(|(k, v)| format!("{k}={}\n", quote(v))).collect();
        let keys = install_keys(&spec.authorized_keys, &h.authorized_keys, &key_tag(&spec.run, &spec.instance));
        let links: String = AGENT_COMMANDS.iter().map(|n| format!("ln -sf {} \"$d/.slipstream/bin/{n}\"; ", quote(&agent))).collect();
        // The environment comes on stdin into a file only the login user reads; the agent is
        // started detached (all of its descriptors away from this session), and prints its pid,
        // which is its session id once it made its own session.
        let script = format!(
            "set -e; umask 077; d={dir}; mkdir -p \"$d/.slipstream/bin\"; {keys}{links}cat > \"$d/.slipstream/env\"; cd \"$d\"; \
             ( set -a; . ./.slipstream/env; set +a; PATH=\"$PWD/.slipstream/bin:$PATH\"; export PATH; \
               exec ./.slipstream/bin/slipstream-agent run ) </dev/null >.slipstream/agent.log 2>&1 & \
             s=$!; echo \"$s\" > .slipstream/session; echo \"$s\"; pwd",
            dir = quote(&format!("{}/runs/{}/{}", self.base_dir(host), spec.run, spec.instance)),
        );
        let out = self.run_on(host, &spec.account, &script, env_file.as_bytes()).await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(pid), Some(dir)) = (lines.next().and_then(|p| p.trim().parse::<i32>().ok()), lines.next()) else {
            return Err(Error::Unavailable(format!("SSH host {}: the agent did not start: {}", h.addr, out.reason())));
        };
        if !out.ok() {
            return Err(Error::Unavailable(format!("SSH host {}: the agent did not start: {}", h.addr, out.reason())));
        }
        let ssh = Some(format!("ssh -p {} {}@{}", h.addr.port, h.addr.user, h.addr.address));
        Ok(Started {
            handle: format!("{}:{}#{pid}#{}", h.addr.address, h.addr.port, dir.trim()),
            address,
            instance_id,
            identity_given: true,
            ssh,
        })
    }

    fn release_slot(&self, host: usize, key: &str) {
        self.slots.lock().expect("not poisoned").release(host, key);
    }
}

impl Connector for Ssh {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "ssh"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { build_images: false, own_address: true }
    }

    fn agent_urls(&self) -> Vec<String> {
        self.agent_url.get().cloned().into_iter().collect()
    }

    fn agent_addresses<'a>(&'a self) -> BoxFuture<'a, Result<Vec<IpAddr>>> {
        Box::pin(async move { Ok(self.agent_address.filter(|_| self.agent_url.get().is_none()).into_iter().collect()) })
    }

    fn set_agent_url(&self, address: IpAddr, url: &str) {
        if self.agent_address == Some(address) {
            let _ = self.agent_url.set(url.trim_end_matches('/').to_string());
        }
    }

    /// The user needs a key (their own or the pool's) before anything starts.
    fn prepare_run<'a>(&'a self, _run: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.key_for(account).map(|_| ()) })
    }

    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>> {
        Box::pin(async move {
            let key = format!("{}/{}", spec.run, spec.instance);
            let booked = self.slots.lock().expect("not poisoned").book(&key);
            let Some(host) = booked else {
                let total = self.slots.lock().expect("not poisoned").total();
                return Err(Error::Unavailable(format!(
                    "connector `{}`: every host is full ({} hosts, {total} instance slots in all); instance {} cannot start",
                    self.name,
                    self.hosts.len(),
                    spec.instance
                )));
            };
            let started = self.start_on(host, spec).await;
            match started {
                Ok(s) => {
                    // From now on the booking is known by the instance's directory.
                    let mut slots = self.slots.lock().expect("not poisoned");
                    slots.release(host, &key);
                    if let Ok(h) = self.parse_handle(&s.handle) {
                        slots.rebook(host, h.dir);
                    }
                    Ok(s)
                }
                Err(e) => {
                    self.release_slot(host, &key);
                    Err(e)
                }
            }
        })
    }

    fn inspect<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<Health>> {
        Box::pin(async move {
            let h = self.parse_handle(handle)?;
            let out = self
                .run_on(h.host, account, &format!("if pgrep -s {} >/dev/null; then echo running; else echo gone; fi", h.session), b"")
                .await?;
            match String::from_utf8_lossy(&out.stdout).trim() {
                "running" => Ok(Health::Running),
                "gone" => Ok(Health::Gone),
                _ => Err(Error::Unavailable(format!(
                    "SSH host {}: cannot tell whether the instance runs: {}",
                    self.hosts[h.host].addr,
                    out.reason()
                ))),
            }
        })
    }

    fn stop<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let h = self.parse_handle(handle)?;
            let s = h.session;
            let script = format!(
                "pkill -TERM -s {s}; i=0; while pgrep -s {s} >/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; \
                 pkill -KILL -s {s}; true"
            );
            let out = self.run_on(h.host, account, &script, b"").await?;
            if !out.ok() {
                return Err(Error::Unavailable(format!(
                    "SSH host {}: stopping instance {}: {}",
                    self.hosts[h.host].addr,
                    h.dir,
                    out.reason()
                )));
            }
            Ok(())
        })
    }

    /// Removes the instance's directory (and the run's, once empty), and frees its slot.
    fn destroy<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let h = self.parse_handle(handle)?;
            let dir = quote(h.dir);
            let keys = remove_keys(&self.hosts[h.host].authorized_keys, h.dir);
            let out =
                self.run_on(h.host, account, &format!("{keys}rm -rf {dir}; rmdir \"$(dirname {dir})\" 2>/dev/null; true"), b"").await?;
            if !out.ok() {
                return Err(Error::Unavailable(format!("SSH host {}: removing {}: {}", self.hosts[h.host].addr, h.dir, out.reason())));
            }
            self.release_slot(h.host, h.dir);
            Ok(())
        })
    }

    /// A process in the instance's directory on its host, as the login user (a PTY channel
    /// for a terminal).
    fn exec<'a>(&'a self, handle: &'a str, account: &'a Account, spec: &'a ExecSpec) -> BoxFuture<'a, Result<Exec>> {
        Box::pin(async move {
            let h = self.parse_handle(handle)?;
            let key = self.key_for(account)?;
            let c = self.connection(h.host, &key).await?;
            c.exec(&spec.script(h.dir), &spec.stdin, spec.tty).await
        })
    }

    /// With a pool key: the instance directories of this server's on every host (each holds
    /// its agent's session id). Without one, the hosts are reached only with the run owners'
    /// keys, and the reaper goes by the records.
    fn instances<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Found>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            if self.pool_key.is_none() {
                return Ok(out);
            }
            for (host, h) in self.hosts.iter().enumerate() {
                // The runs directory as an absolute path first (handles name it so), then
                // `SESSION RUN/INSTANCE` per instance directory.
                let script = format!(
                    "cd && cd {} 2>/dev/null || exit 0; pwd; for d in */*; do [ -f \"$d/.slipstream/session\" ] && \
                     printf '%s %s\\n' \"$(cat \"$d/.slipstream/session\")\" \"$d\"; done; true",
                    quote(&format!("{}/runs", self.base_dir(host)))
                );
                let listed = self.run_on(host, &Account::default(), &script, b"").await?;
                if !listed.ok() {
                    return Err(Error::Unavailable(format!("SSH host {}: listing instances: {}", h.addr, listed.reason())));
                }
                let text = String::from_utf8_lossy(&listed.stdout).into_owned();
                let mut lines = text.lines();
                let Some(runs_dir) = lines.next() else { continue };
                for line in lines {
                    let Some((session, rel)) = line.split_once(' ') else { continue };
                    let (Some((run, instance)), Ok(session)) = (rel.split_once('/'), session.trim().parse::<i32>()) else { continue };
                    let handle = format!("{}:{}#{session}#{}/{rel}", h.addr.address, h.addr.port, runs_dir.trim());
                    out.push(Found { run: run.into(), instance: instance.into(), handle });
                }
            }
            Ok(out)
        })
    }

    /// Re-attaches after a restart: the instance holds its slot again while it runs.
    fn recover<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let h = self.parse_handle(handle)?;
            self.slots.lock().expect("not poisoned").rebook(h.host, h.dir);
            Ok(self.inspect(handle, account).await? == Health::Running)
        })
    }
}

/// What marks the owner's keys installed for one instance (the comment of each line).
fn key_tag(run: &str, instance: &str) -> String {
    format!("slipstream-instance:{run}/{instance}")
}

/// Shell commands appending the owner's public keys (each re-written from its parsed form:
/// no options slip in) to `file`, marked with `tag`; nothing for no (valid) key.
fn install_keys(keys: &str, file: &str, tag: &str) -> String {
    let lines: Vec<String> = keys
        .lines()
        .filter_map(|l| parse_host_key(l).ok())
        .filter_map(|k| k.to_openssh().ok())
        .map(|k| {
            let mut parts = k.split_whitespace();
            format!("{} {} {tag}", parts.next().unwrap_or(""), parts.next().unwrap_or(""))
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let f = quote(file);
    let appends: String = lines.iter().map(|l| format!("printf '%s\\n' {} >> {f}; ", quote(l))).collect();
    format!("mkdir -p \"$(dirname {f})\"; chmod 700 \"$(dirname {f})\"; {appends}")
}

/// Shell commands removing the keys installed for the instance in `dir` (`…/runs/<run>/<instance>`).
fn remove_keys(file: &str, dir: &str) -> String {
    let mut parts = dir.rsplit('/');
    let (Some(instance), Some(run)) = (parts.next(), parts.next()) else { return String::new() };
    let tag = key_tag(run, instance);
    let f = quote(file);
    // Lines ending with the tag go; the file keeps its owner and mode.
    format!(
        "if [ -f {f} ]; then grep -v -F -e {} {f} > {f}.slipstream; cat {f}.slipstream > {f}; rm -f {f}.slipstream; fi; ",
        quote(&format!(" {tag}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn config(endpoints: &[&str], options: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: "lab".into(),
            kind: "ssh".into(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn context() -> Context {
        Context { data_dir: std::env::temp_dir(), agent_bin: None, first_address: 0, server_id: "srv".into() }
    }

    #[test]
    fn hosts_and_their_options_are_checked() {
        let two_keys = format!("{KEY},{KEY}");
        /// (endpoints, options, a part of the error; none: accepted)
        type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Option<&'a str>);
        let table: Vec<Case> = vec![
            (vec!["10.0.0.1", "10.0.0.2:2222"], vec![("user", "root"), ("host_key", KEY)], None),
            (vec!["10.0.0.1", "10.0.0.2"], vec![("user", "root"), ("host_key", &two_keys), ("slots", "4,2")], None),
            (vec![], vec![("user", "root")], Some("needs its hosts")),
            (vec!["10.0.0.1"], vec![("host_key", KEY)], Some("no login `user`")),
            (vec!["10.0.0.1"], vec![("user", "root")], Some("no `host_key`")),
            (vec!["10.0.0.1"], vec![("user", "root"), ("host_key", "ssh-ed25519 nope")], Some("not an OpenSSH public key")),
            (vec!["10.0.0.1:ssh"], vec![("user", "root"), ("host_key", KEY)], Some("is not a port")),
            (vec!["10.0.0.1"], vec![("user", "root"), ("host_key", KEY), ("slots", "0")], Some("not a positive number")),
            (vec!["10.0.0.1", "10.0.0.1"], vec![("user", "root"), ("host_key", KEY)], Some("listed twice")),
            (vec!["10.0.0.1"], vec![("user", "root"), ("host_key", KEY), ("colour", "blue")], Some("no option `colour`")),
            (vec!["10.0.0.1"], vec![("user", "root"), ("host_key", KEY), ("key_file", "/nonexistent")], Some("key_file")),
        ];
        for (endpoints, options, want) in table {
            let got = Ssh::new(&config(&endpoints, &options), &context()).err();
            match want {
                None => assert!(got.is_none(), "{endpoints:?} {options:?}: {got:?}"),
                Some(part) => assert!(got.as_deref().unwrap_or("").contains(part), "{endpoints:?} {options:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn only_well_formed_keys_are_installed_each_marked_for_its_instance() {
        let keys = format!("{KEY} alice@laptop\ncommand=\"rm -rf /\" {KEY}\nnot a key\n");
        let cmd = install_keys(&keys, ".ssh/authorized_keys", &key_tag("r1", "web.1"));
        assert_eq!(cmd.matches(">> '.ssh/authorized_keys'").count(), 1, "one valid line: {cmd}");
        assert!(cmd.contains("slipstream-instance:r1/web.1") && !cmd.contains("alice@laptop") && !cmd.contains("rm -rf"), "{cmd}");
        assert_eq!(install_keys("", "f", "t"), "");
        let rm = remove_keys(".ssh/authorized_keys", "/w/srv/runs/r1/web.1");
        assert!(rm.contains("' slipstream-instance:r1/web.1'"), "{rm}");
    }

    #[test]
    fn handles_name_the_host_the_session_and_the_directory() {
        let ssh = Ssh::new(&config(&["10.0.0.1", "10.0.0.2:2222"], &[("user", "root"), ("host_key", KEY)]), &context()).unwrap();
        let h = ssh.parse_handle("10.0.0.2:2222#4711#/root/.slipstream/srv/runs/r/a.1").unwrap();
        assert_eq!((h.host, h.session, h.dir), (1, 4711, "/root/.slipstream/srv/runs/r/a.1"));
        assert!(ssh.parse_handle("10.0.0.9:22#4711#/x").is_err(), "a host no longer listed");
        assert!(ssh.parse_handle("10.0.0.1:22#1#/x").is_err(), "never session 1");
        assert!(ssh.parse_handle("4711").is_err());
    }

    #[test]
    fn without_a_key_the_run_is_refused_naming_the_connector() {
        let ssh = Ssh::new(&config(&["10.0.0.1"], &[("user", "root"), ("host_key", KEY)]), &context()).unwrap();
        let e = ssh.key_for(&Account::default()).unwrap_err().to_string();
        assert!(e.contains("connector `lab` needs your SSH private key"), "{e}");
        let bad = Account { credential: Some("not a key".into()), ..Default::default() };
        assert!(ssh.key_for(&bad).unwrap_err().to_string().contains("credential for connector `lab`"));
    }
}
