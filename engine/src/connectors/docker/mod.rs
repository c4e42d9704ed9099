//! The Docker connector: each instance is a container on a Docker Engine (or Podman's
//! Docker-compatible service), driven through its API with bollard.
//!
//! - A run gets a **network of its own** on each Docker connector it uses (`slipstream-<run>`);
//!   its instances reach each other by address, and an instance's `hostname` is its address
//!   there. The network is removed with the run's last container.
//! - The static agent is put into the container by a **read-only bind mount** of a directory
//!   holding it under every command name (`ss-get`, …) at `/opt/slipstream/bin`, and is the
//!   container's entry point; the working directory is `/slipstream`.
//! - Containers cannot reach the server's loopback address, so the server listens for agents
//!   on the engine's bridge gateway too (an extra listener that serves only the agent
//!   endpoints; see `find_agent_address`). `agent_url` overrides where agents go (for an
//!   engine on another host).
//! - Resource limits come from the options `memory` (bytes, or with k/m/g), `cpus` (a
//!   fraction of CPUs) and `pids`.
//! - Every container and network carries labels naming the server, the run and the instance,
//!   so they are found again after a restart and can be listed by tests.
//! - Nothing is pulled from a registry: an image the engine does not have is an error that
//!   says so.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, InspectNetworkOptions, ListContainersOptions, ListNetworksOptions,
    RemoveContainerOptions, StopContainerOptions,
};

mod agent;
mod commit;
mod endpoint;
mod exec;
pub(crate) mod limits;

pub use limits::Limits;

use super::local::AGENT_COMMANDS;
use super::{per_endpoint, Context};
use crate::connector::{Account, BoxFuture, Capabilities, Connector, ConnectorConfig, Exec, ExecSpec, Found, Health, StartSpec, Started};
use crate::{Error, Result};
use endpoint::Endpoint;

/// Label keys on everything the connector makes.
pub const LABEL_SERVER: &str = "io.slipstream.server";
pub const LABEL_RUN: &str = "io.slipstream.run";
pub const LABEL_INSTANCE: &str = "io.slipstream.instance";
/// Where the agent's directory is mounted, and where scripts run.
const AGENT_DIR: &str = "/opt/slipstream/bin";
const WORK_DIR: &str = "/slipstream";
const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";
/// Seconds a container gets between SIGTERM and SIGKILL when stopped.
const STOP_GRACE_SECONDS: i32 = 3;

/// The options a Docker connector accepts.
const OPTIONS: [&str; 6] = ["memory", "cpus", "pids", "agent_url", "agent_address", "tls_ca"];

pub struct Docker {
    name: String,
    server_id: String,
    agent_bin: Option<PathBuf>,
    /// `<data-dir>/connectors/<name>/agent`: the agent under every command name, bind-mounted.
    agent_dir: PathBuf,
    limits: Limits,
    /// The engines, in the configured order; a run's instances go round them in turn.
    endpoints: Vec<Endpoint>,
    /// Per run, how many instances were placed (which endpoint is next).
    placed: Mutex<HashMap<String, usize>>,
    /// The agent as an archive, for engines on other hosts (made on first use).
    agent_archive: OnceLock<bytes::Bytes>,
    /// Whether the mounted agent directory was made (once: concurrent starts must not write
    /// the same copy at once).
    agent_placed: Mutex<bool>,
}

/// Why a Docker call failed, for the user: a daemon that cannot be reached is `Unavailable`.
fn failed(what: &str, e: DockerError) -> Error {
    match e {
        DockerError::DockerResponseServerError { status_code, message } => Error::Internal(format!("{what}: {message} ({status_code})")),
        other => Error::Unavailable(format!("{what}: the Docker engine cannot be reached: {other}")),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code: 404, .. })
}

/// Podman answers a transient state `stopped` that Docker's schema does not know; bollard
/// then fails to decode the answer. The state lasts about one request.
fn is_transient_stopped(e: &DockerError) -> bool {
    e.to_string().contains("`stopped`")
}

/// Container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]`: run ids and instance names fit.
fn container_name(run: &str, instance: &str) -> String {
    format!("slipstream-{run}-{instance}")
}

fn network_name(run: &str) -> String {
    format!("slipstream-{run}")
}

/// A handle names the endpoint and the container: `<endpoint>#<container id>`. (Handles from
/// before several endpoints are a bare id, on the first endpoint.)
fn handle_of(endpoint: &str, id: &str) -> String {
    format!("{endpoint}#{id}")
}

impl Docker {
    pub fn new(config: &ConnectorConfig, cx: &Context) -> std::result::Result<Self, String> {
        if let Some(bad) = config.options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(format!("the docker connector has no option `{bad}` (it has {OPTIONS:?})"));
        }
        let mut urls = config.all_endpoints();
        if urls.is_empty() {
            urls.push(DEFAULT_ENDPOINT.into());
        }
        let connector_dir = cx.data_dir.join("connectors").join(&config.name);
        let tls_ca = config.options.get("tls_ca").map(PathBuf::from);
        let addresses = per_endpoint(config, "agent_address", urls.len())?;
        let agent_urls = per_endpoint(config, "agent_url", urls.len())?;
        let mut endpoints = Vec::with_capacity(urls.len());
        for ((url, address), agent_url) in urls.iter().zip(addresses).zip(agent_urls) {
            let address = match address {
                Some(a) => Some(a.parse::<IpAddr>().map_err(|_| format!("agent_address `{a}` is not an IP address"))?),
                None => None,
            };
            let ca = tls_ca.clone().filter(|_| url.starts_with("tcp://"));
            let e = Endpoint::new(url, ca, connector_dir.join("tls"), address)?;
            if e.tls() && address.is_none() && agent_url.is_none() {
                // Finding the engine's bridge gateway takes a user's key; the administrator says it.
                return Err(format!("endpoint `{url}` uses TLS: set the agent_address (or agent_url) option for it"));
            }
            if let Some(u) = agent_url {
                let _ = e.agent_url.set(u.trim_end_matches('/').to_string());
            }
            endpoints.push(e);
        }
        if urls.iter().enumerate().any(|(i, u)| urls[..i].contains(u)) {
            return Err("an endpoint is listed twice".into());
        }
        Ok(Self {
            name: config.name.clone(),
            server_id: cx.server_id.clone(),
            agent_bin: cx.agent_bin.clone(),
            agent_dir: connector_dir.join("agent"),
            limits: Limits::parse(&config.options)?,
            endpoints,
            placed: Mutex::new(HashMap::new()),
            agent_archive: OnceLock::new(),
            agent_placed: Mutex::new(false),
        })
    }

    /// The endpoint a handle names, its client for `account`, and the container id.
    fn locate<'h>(&self, handle: &'h str, account: &Account) -> Result<(&Endpoint, bollard::Docker, &'h str)> {
        let (endpoint, id) = self.endpoint_of(handle)?;
        Ok((endpoint, endpoint.client(&self.name, account)?, id))
    }

    fn endpoint_of<'h>(&self, handle: &'h str) -> Result<(&Endpoint, &'h str)> {
        Ok(match handle.rsplit_once('#') {
            Some((url, id)) => {
                let e = self.endpoints.iter().find(|e| e.url == url).ok_or_else(|| {
                    Error::Unavailable(format!("connector `{}` no longer lists endpoint {url}, where container {id} is", self.name))
                })?;
                (e, id)
            }
            None => (&self.endpoints[0], handle),
        })
    }

    /// The endpoint for a run's next instance: round the endpoints in turn.
    fn place(&self, run: &str) -> &Endpoint {
        let mut placed = self.placed.lock().expect("not poisoned");
        let n = placed.entry(run.to_string()).or_default();
        let e = &self.endpoints[*n % self.endpoints.len()];
        *n += 1;
        e
    }

    fn labels(&self, run: &str, instance: Option<&str>) -> HashMap<String, String> {
        let mut l = HashMap::from([(LABEL_SERVER.to_string(), self.server_id.clone()), (LABEL_RUN.to_string(), run.to_string())]);
        if let Some(i) = instance {
            l.insert(LABEL_INSTANCE.to_string(), i.to_string());
        }
        l
    }

    fn run_filter(&self, run: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![format!("{LABEL_SERVER}={}", self.server_id), format!("{LABEL_RUN}={run}")])])
    }

    async fn start_now(&self, spec: &StartSpec) -> Result<Started> {
        let e = self.place(&spec.run);
        let c = e.client(&self.name, &spec.account)?;
        let agent_url = e.agent_url.get().ok_or_else(|| self.not_listening(e))?;
        let network = network_name(&spec.run);
        let mut env: Vec<String> = spec
            .env
            .vars()
            .into_iter()
            .map(|(k, v)| if k == "SLIPSTREAM_SERVICEURL" { format!("{k}={agent_url}") } else { format!("{k}={v}") })
            .collect();
        env.push(format!("PATH={AGENT_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        // On this host the agent is mounted; an engine elsewhere gets it uploaded (below).
        let binds = if e.remote { None } else { Some(vec![format!("{}:{AGENT_DIR}:ro", self.agent_dir()?)]) };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![format!("{AGENT_DIR}/slipstream-agent"), "run".into()]),
            cmd: Some(vec![]),
            working_dir: Some(WORK_DIR.into()),
            env: Some(env),
            labels: Some(self.labels(&spec.run, Some(&spec.instance))),
            host_config: Some(HostConfig {
                binds,
                // The engine's init as PID 1: it passes SIGTERM on to the agent (a PID 1
                // without a handler ignores it, so every stop would wait for the SIGKILL)
                // and reaps what scripts leave behind.
                init: Some(true),
                network_mode: Some(network),
                memory: self.limits.memory,
                nano_cpus: self.limits.nano_cpus,
                pids_limit: self.limits.pids,
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = container_name(&spec.run, &spec.instance);
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = c.create_container(Some(options), body).await.map_err(|err| match &err {
            DockerError::DockerResponseServerError { status_code: 404, .. } => Error::Internal(format!(
                "image `{}` is not on connector `{}` at {} (nothing is pulled from a registry: build or import it there)",
                spec.image, self.name, e.url
            )),
            _ => failed(&format!("creating container {name} at {}", e.url), err),
        })?;
        let started = async {
            if e.remote {
                self.upload_agent(&c, &created.id).await?;
            }
            c.start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|err| failed(&format!("starting container {name} at {}", e.url), err))
        };
        if let Err(err) = started.await {
            let _ = destroy_container(&c, &created.id).await;
            return Err(err);
        }
        let address = address_of(&c, &created.id, &spec.run).await?;
        // No sshd in containers: the run page's terminal (a Docker exec) is the way in.
        Ok(Started {
            handle: handle_of(&e.url, &created.id),
            address,
            instance_id: created.id.chars().take(12).collect(),
            identity_given: false,
            ssh: None,
        })
    }

    fn not_listening(&self, e: &Endpoint) -> Error {
        Error::Unavailable(format!(
            "connector `{}`: the server does not listen for the agents of {} (was the engine reachable when the server started?)",
            self.name, e.url
        ))
    }
}

/// The container's address on the run's network (read while it runs: Docker clears it at exit).
async fn address_of(c: &bollard::Docker, id: &str, run: &str) -> Result<String> {
    let inspected = inspect_raw(c, id).await?.ok_or_else(|| Error::Internal(format!("container {id} vanished right after it started")))?;
    if let Some(state) = inspected.state.as_ref().filter(|s| s.running == Some(false)) {
        // Most often the agent cannot run in the image (a wrong binary, no /opt).
        let why = state.error.clone().filter(|e| !e.is_empty()).unwrap_or_else(|| "see the engine's container log".into());
        return Err(Error::Internal(format!("container {id} exited at once (exit code {}: {why})", state.exit_code.unwrap_or_default())));
    }
    let networks = inspected.network_settings.and_then(|n| n.networks).unwrap_or_default();
    networks
        .get(&network_name(run))
        .and_then(|e| e.ip_address.clone())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::Internal(format!("container {id} has no address on {}", network_name(run))))
}

async fn inspect_raw(c: &bollard::Docker, id: &str) -> Result<Option<bollard::models::ContainerInspectResponse>> {
    for attempt in 0..3 {
        match c.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(r) => return Ok(Some(r)),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) if is_transient_stopped(&e) && attempt < 2 => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) if is_transient_stopped(&e) => return Ok(None),
            Err(e) => return Err(failed(&format!("inspecting container {id}"), e)),
        }
    }
    Ok(None)
}

async fn destroy_container(c: &bollard::Docker, id: &str) -> Result<()> {
    match c.remove_container(id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() })).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // Removal already under way (two stops racing): the container goes anyway.
        Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
        Err(e) => Err(failed(&format!("removing container {id}"), e)),
    }
}

impl Connector for Docker {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "docker"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { build_images: true, own_address: true }
    }

    fn agent_urls(&self) -> Vec<String> {
        self.endpoints.iter().filter_map(|e| e.agent_url.get().cloned()).collect()
    }

    fn agent_addresses<'a>(&'a self) -> BoxFuture<'a, Result<Vec<IpAddr>>> {
        Box::pin(self.find_agent_addresses())
    }

    fn set_agent_url(&self, address: IpAddr, url: &str) {
        for e in self.endpoints.iter().filter(|e| e.agent_address() == Some(address)) {
            let _ = e.agent_url.set(url.trim_end_matches('/').to_string());
        }
    }

    fn prepare_run<'a>(&'a self, run: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for e in &self.endpoints {
                if e.agent_url.get().is_none() {
                    return Err(self.not_listening(e));
                }
                let c = e.client(&self.name, account)?;
                let name = network_name(run);
                match c.inspect_network(&name, None::<InspectNetworkOptions>).await {
                    Ok(_) => continue,
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => return Err(e.refused(&self.name, &format!("inspecting network {name}"), err)),
                }
                let request = NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(self.labels(run, None)),
                    ..Default::default()
                };
                match c.create_network(request).await {
                    Ok(_) => {}
                    // Created meanwhile by a concurrent start of the same run.
                    Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => {}
                    Err(err) => return Err(failed(&format!("creating network {name} at {}", e.url), err)),
                }
            }
            Ok(())
        })
    }

    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>> {
        Box::pin(self.start_now(spec))
    }

    fn inspect<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<Health>> {
        Box::pin(async move {
            let (_, c, id) = self.locate(handle, account)?;
            let running = inspect_raw(&c, id).await?.and_then(|r| r.state).and_then(|s| s.running).unwrap_or(false);
            Ok(if running { Health::Running } else { Health::Gone })
        })
    }

    fn stop<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_, c, id) = self.locate(handle, account)?;
            match c.stop_container(id, Some(StopContainerOptions { t: Some(STOP_GRACE_SECONDS), ..Default::default() })).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                // 304: already stopped.
                Err(DockerError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
                Err(e) => Err(failed(&format!("stopping container {id}"), e)),
            }
        })
    }

    fn destroy<'a>(&'a self, handle: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_, c, id) = self.locate(handle, account)?;
            destroy_container(&c, id).await
        })
    }

    /// A Docker exec in the container (with a TTY for a terminal), in `/slipstream`.
    fn exec<'a>(&'a self, handle: &'a str, account: &'a Account, spec: &'a ExecSpec) -> BoxFuture<'a, Result<Exec>> {
        Box::pin(self.exec_in(handle, account, spec))
    }

    fn commit<'a>(&'a self, handle: &'a str, image: &'a str, account: &'a Account) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.commit_now(handle, image, account))
    }

    /// Containers labelled with this server's id, on every endpoint reached without a user's
    /// key (a TLS endpoint takes the run owner's certificate: the records cover those).
    fn instances<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Found>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let filter = HashMap::from([("label".to_string(), vec![format!("{LABEL_SERVER}={}", self.server_id)])]);
            for e in self.endpoints.iter().filter(|e| !e.tls()) {
                let c = e.client(&self.name, &Account::default())?;
                let listed = c
                    .list_containers(Some(ListContainersOptions { all: true, filters: Some(filter.clone()), ..Default::default() }))
                    .await
                    .map_err(|err| failed(&format!("listing this server's containers at {}", e.url), err))?;
                for container in listed {
                    let labels = container.labels.unwrap_or_default();
                    if let (Some(id), Some(run), Some(instance)) = (container.id, labels.get(LABEL_RUN), labels.get(LABEL_INSTANCE)) {
                        out.push(Found { run: run.clone(), instance: instance.clone(), handle: handle_of(&e.url, &id) });
                    }
                }
            }
            Ok(out)
        })
    }

    fn release_run<'a>(&'a self, run: &'a str, account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.placed.lock().expect("not poisoned").remove(run);
            for e in &self.endpoints {
                let c = e.client(&self.name, account)?;
                let left = c
                    .list_containers(Some(ListContainersOptions { all: true, filters: Some(self.run_filter(run)), ..Default::default() }))
                    .await
                    .map_err(|err| failed(&format!("listing the run's containers at {}", e.url), err))?;
                for container in left.iter().filter_map(|s| s.id.as_deref()) {
                    destroy_container(&c, container).await?;
                }
                let networks = c
                    .list_networks(Some(ListNetworksOptions { filters: Some(self.run_filter(run)) }))
                    .await
                    .map_err(|err| failed(&format!("listing the run's networks at {}", e.url), err))?;
                for network in networks.iter().filter_map(|n| n.id.as_deref()) {
                    match c.remove_network(network).await {
                        Ok(()) => {}
                        Err(err) if is_not_found(&err) => {}
                        Err(err) => return Err(failed(&format!("removing network {network} at {}", e.url), err)),
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_docker_rules() {
        let name = container_name("0f1e2d3c-aaaa-bbbb-cccc-123456789abc", "testclient1.12");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{name}");
        assert_eq!(network_name("r1"), "slipstream-r1");
    }

    fn config(endpoints: &[&str], options: &[(&str, &str)]) -> ConnectorConfig {
        ConnectorConfig {
            name: "lab".into(),
            kind: "docker".into(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn context() -> Context {
        Context { data_dir: "/nonexistent".into(), agent_bin: None, first_address: 0, server_id: "s".into() }
    }

    /// Endpoints, options, and a part of the error they make (`None`: accepted).
    type Row<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], Option<&'a str>);

    #[test]
    fn endpoints_and_their_options_are_checked() {
        let table: [Row; 6] = [
            (&[], &[], None),
            (&["unix:///a", "unix:///b"], &[("agent_address", "10.0.0.1")], None),
            (&["unix:///a", "unix:///b"], &[("agent_address", ",10.0.0.2")], None),
            (&["unix:///a", "unix:///b"], &[("agent_address", "10.0.0.1,10.0.0.2,10.0.0.3")], Some("3 values for 2 endpoints")),
            (&["unix:///a", "tcp://h:2376"], &[("tls_ca", "/ca.pem")], Some("set the agent_address")),
            (&["unix:///a", "unix:///a"], &[], Some("listed twice")),
        ];
        for (endpoints, options, want) in table {
            let got = Docker::new(&config(endpoints, options), &context()).err();
            match (want, got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!(g.contains(w), "{endpoints:?} {options:?}: {g}"),
                (w, g) => panic!("{endpoints:?} {options:?}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn a_run_goes_round_its_endpoints_and_handles_name_them() {
        let d = Docker::new(&config(&["unix:///a", "unix:///b", "unix:///c"], &[]), &context()).unwrap();
        let first: Vec<&str> = (0..4).map(|_| d.place("r1").url.as_str()).collect();
        assert_eq!(first, ["unix:///a", "unix:///b", "unix:///c", "unix:///a"]);
        assert_eq!(d.place("r2").url, "unix:///a", "each run starts at the first endpoint");
        let at = |h: &str| d.endpoint_of(h).map(|(e, id)| (e.url.clone(), id.to_string())).ok();
        assert_eq!(at(&handle_of("unix:///b", "abc")), Some(("unix:///b".into(), "abc".into())));
        assert_eq!(at("abc"), Some(("unix:///a".into(), "abc".into())), "a bare id is on the first endpoint");
        assert_eq!(at("unix:///gone#abc"), None);
    }
}
