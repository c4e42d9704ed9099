//! Connectors: where node instances run. Each implements [`Connector`]: required `start`,
//! `inspect`, `stop`, `recover`; optional features are announced by [`Capabilities`]
//! (all off by default). After a server restart the engine calls `recover` for every live
//! instance and re-attaches instead of starting it again.
//!
//! Adding a connector: implement the trait in `connectors/<name>.rs`, register it in
//! [`crate::Engine::connector`], give the example base image an image id for it, and add its
//! test bed to `cargo xtask test`.

use std::future::Future;
use std::pin::Pin;

use crate::Result;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a connector needs to start one instance with the agent.
#[derive(Clone, Debug)]
pub struct StartSpec {
    pub run: String,
    pub instance: String,
    /// The image id on this connector (`host` for the local connector).
    pub image: String,
    /// Where the agent reaches the server.
    pub service_url: String,
    /// The agent's token, valid for this run only.
    pub token: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// Opaque to the engine; given back to `inspect`, `stop`, `recover`.
    pub handle: String,
    /// The instance's `hostname`.
    pub address: String,
    pub instance_id: String,
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

pub trait Connector: Send + Sync {
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>>;
    fn inspect<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Health>;
    /// Stops the instance and everything it started. Returns at once; stragglers are killed
    /// in the background.
    fn stop<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, ()>;
    /// Re-attaches to an instance after a server restart; `false` if it is gone.
    fn recover<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.inspect(handle).await == Health::Running })
    }
}
