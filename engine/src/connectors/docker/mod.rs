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
mod limits;

pub use limits::Limits;

use super::local::AGENT_COMMANDS;
use super::Context;
use crate::connector::{BoxFuture, Capabilities, Connector, ConnectorConfig, Health, StartSpec, Started};
use crate::{Error, Result};

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
const OPTIONS: [&str; 5] = ["memory", "cpus", "pids", "agent_url", "agent_address"];

pub struct Docker {
    name: String,
    endpoint: String,
    server_id: String,
    agent_bin: Option<PathBuf>,
    /// `<data-dir>/connectors/<name>/agent`: the agent under every command name, bind-mounted.
    agent_dir: PathBuf,
    limits: Limits,
    /// Where agents reach the server: the `agent_url` option, or set once the server listens
    /// on the bridge gateway.
    agent_url: OnceLock<String>,
    agent_address: Option<IpAddr>,
    client: Mutex<Option<bollard::Docker>>,
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

impl Docker {
    pub fn new(config: &ConnectorConfig, cx: &Context) -> std::result::Result<Self, String> {
        if let Some(bad) = config.options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
            return Err(format!("the docker connector has no option `{bad}` (it has {OPTIONS:?})"));
        }
        let endpoint = config.endpoint.clone().unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        if !(endpoint.starts_with("unix://") || endpoint.starts_with("tcp://") || endpoint.starts_with("http://")) {
            return Err(format!("endpoint `{endpoint}` is not unix://PATH or tcp://HOST:PORT"));
        }
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
            endpoint,
            server_id: cx.server_id.clone(),
            agent_bin: cx.agent_bin.clone(),
            agent_dir: cx.data_dir.join("connectors").join(&config.name).join("agent"),
            limits: Limits::parse(&config.options)?,
            agent_url,
            agent_address,
            client: Mutex::new(None),
        })
    }

    /// The API client, connected on first use (the engine may start after the server).
    fn client(&self) -> Result<bollard::Docker> {
        let mut held = self.client.lock().expect("not poisoned");
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = if self.endpoint.starts_with("unix://") {
            bollard::Docker::connect_with_unix(&self.endpoint, 120, bollard::API_DEFAULT_VERSION)
        } else {
            bollard::Docker::connect_with_http(&self.endpoint.replacen("tcp://", "http://", 1), 120, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| Error::Unavailable(format!("connector `{}`: cannot connect to {}: {e}", self.name, self.endpoint)))?;
        *held = Some(c.clone());
        Ok(c)
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
        let c = self.client()?;
        let agent_dir = self.agent_dir()?;
        let network = network_name(&spec.run);
        let mut env: Vec<String> = spec.env.vars().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("PATH={AGENT_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![format!("{AGENT_DIR}/slipstream-agent"), "run".into()]),
            cmd: Some(vec![]),
            working_dir: Some(WORK_DIR.into()),
            env: Some(env),
            labels: Some(self.labels(&spec.run, Some(&spec.instance))),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{agent_dir}:{AGENT_DIR}:ro")]),
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
        let created = c.create_container(Some(options), body).await.map_err(|e| match &e {
            DockerError::DockerResponseServerError { status_code: 404, .. } => Error::Internal(format!(
                "image `{}` is not on connector `{}` (nothing is pulled from a registry: build or import it there)",
                spec.image, self.name
            )),
            _ => failed(&format!("creating container {name}"), e),
        })?;
        if let Err(e) = c.start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>).await {
            let _ = self.destroy_now(&created.id).await;
            return Err(failed(&format!("starting container {name}"), e));
        }
        let address = self.address_of(&created.id, &spec.run).await?;
        Ok(Started { handle: created.id.clone(), address, instance_id: created.id.chars().take(12).collect() })
    }

    /// The container's address on the run's network (read while it runs: Docker clears it at exit).
    async fn address_of(&self, id: &str, run: &str) -> Result<String> {
        let inspected =
            self.inspect_raw(id).await?.ok_or_else(|| Error::Internal(format!("container {id} vanished right after it started")))?;
        let networks = inspected.network_settings.and_then(|n| n.networks).unwrap_or_default();
        networks
            .get(&network_name(run))
            .and_then(|e| e.ip_address.clone())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::Internal(format!("container {id} has no address on {}", network_name(run))))
    }

    async fn inspect_raw(&self, id: &str) -> Result<Option<bollard::models::ContainerInspectResponse>> {
        let c = self.client()?;
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

    async fn destroy_now(&self, id: &str) -> Result<()> {
        let c = self.client()?;
        match c.remove_container(id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() })).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Removal already under way (two stops racing): the container goes anyway.
            Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(failed(&format!("removing container {id}"), e)),
        }
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

    fn agent_url(&self) -> Option<String> {
        self.agent_url.get().cloned()
    }

    fn agent_address<'a>(&'a self) -> BoxFuture<'a, Result<Option<IpAddr>>> {
        Box::pin(self.find_agent_address())
    }

    fn set_agent_url(&self, url: &str) {
        let _ = self.agent_url.set(url.trim_end_matches('/').to_string());
    }

    fn prepare_run<'a>(&'a self, run: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.agent_url.get().is_none() {
                return Err(Error::Unavailable(format!(
                    "connector `{}`: the server does not listen for its agents (was the engine reachable when the server started?)",
                    self.name
                )));
            }
            let c = self.client()?;
            let name = network_name(run);
            match c.inspect_network(&name, None::<InspectNetworkOptions>).await {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(failed(&format!("inspecting network {name}"), e)),
            }
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(self.labels(run, None)),
                ..Default::default()
            };
            match c.create_network(request).await {
                Ok(_) => Ok(()),
                // Created meanwhile by a concurrent start of the same run.
                Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
                Err(e) => Err(failed(&format!("creating network {name}"), e)),
            }
        })
    }

    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>> {
        Box::pin(self.start_now(spec))
    }

    fn inspect<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<Health>> {
        Box::pin(async move {
            let running = self.inspect_raw(handle).await?.and_then(|r| r.state).and_then(|s| s.running).unwrap_or(false);
            Ok(if running { Health::Running } else { Health::Gone })
        })
    }

    fn stop<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let c = self.client()?;
            match c.stop_container(handle, Some(StopContainerOptions { t: Some(STOP_GRACE_SECONDS), ..Default::default() })).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                // 304: already stopped.
                Err(DockerError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
                Err(e) => Err(failed(&format!("stopping container {handle}"), e)),
            }
        })
    }

    fn destroy<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.destroy_now(handle))
    }

    fn commit<'a>(&'a self, handle: &'a str, image: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.commit_now(handle, image))
    }

    fn release_run<'a>(&'a self, run: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let c = self.client()?;
            let left = c
                .list_containers(Some(ListContainersOptions { all: true, filters: Some(self.run_filter(run)), ..Default::default() }))
                .await
                .map_err(|e| failed("listing the run's containers", e))?;
            for container in left.iter().filter_map(|s| s.id.as_deref()) {
                self.destroy_now(container).await?;
            }
            let networks = c
                .list_networks(Some(ListNetworksOptions { filters: Some(self.run_filter(run)) }))
                .await
                .map_err(|e| failed("listing the run's networks", e))?;
            for network in networks.iter().filter_map(|n| n.id.as_deref()) {
                match c.remove_network(network).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(failed(&format!("removing network {network}"), e)),
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
}
