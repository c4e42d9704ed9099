//! A scripted connector for testing the run driver without processes (compiled for the
//! engine's tests and with the `mock-connector` feature; never in a release). Its options
//! script it:
//!
//! - `fail = web.2,db.1`: starting these instances fails;
//! - `delay_ms = 200`: every start takes that long;
//! - `vanish = web.1`: these instances are reported gone once started.
//!
//! It counts how many starts run at once, and remembers what was stopped and destroyed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::connector::{Account, BoxFuture, Connector, ConnectorConfig, Found, Health, StartSpec, Started};
use crate::{Error, Result};

pub struct Mock {
    name: String,
    fail: BTreeSet<String>,
    vanish: BTreeSet<String>,
    delay_ms: u64,
    in_flight: AtomicUsize,
    pub most_in_flight: AtomicUsize,
    pub started: Mutex<Vec<String>>,
    pub stopped: Mutex<Vec<String>>,
    pub destroyed: Mutex<Vec<String>>,
    pub released: Mutex<Vec<String>>,
    /// What `instances` finds: what it started and did not destroy (a test adds strays).
    pub found: Mutex<Vec<Found>>,
}

fn list(config: &ConnectorConfig, key: &str) -> BTreeSet<String> {
    config.options.get(key).map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

impl Mock {
    pub fn new(config: &ConnectorConfig) -> Self {
        Self {
            name: config.name.clone(),
            fail: list(config, "fail"),
            vanish: list(config, "vanish"),
            delay_ms: config.options.get("delay_ms").and_then(|d| d.parse().ok()).unwrap_or(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            started: Mutex::default(),
            stopped: Mutex::default(),
            destroyed: Mutex::default(),
            released: Mutex::default(),
            found: Mutex::default(),
        }
    }

    /// The instance a handle names (handles are `mock:<instance>@<run>`).
    fn instance(handle: &str) -> &str {
        let h = handle.strip_prefix("mock:").unwrap_or(handle);
        h.split_once('@').map_or(h, |(instance, _)| instance)
    }
}

impl Connector for Mock {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mock"
    }

    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(self.delay_ms)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail.contains(&spec.instance) {
                return Err(Error::Unavailable(format!("scripted failure of {}", spec.instance)));
            }
            self.started.lock().expect("not poisoned").push(spec.instance.clone());
            let handle = format!("mock:{}@{}", spec.instance, spec.run);
            self.found.lock().expect("not poisoned").push(Found {
                run: spec.run.clone(),
                instance: spec.instance.clone(),
                handle: handle.clone(),
            });
            Ok(Started {
                handle,
                address: format!("mock-{}", spec.instance),
                instance_id: spec.instance.clone(),
                identity_given: false,
                ssh: None,
            })
        })
    }

    fn inspect<'a>(&'a self, handle: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<Health>> {
        Box::pin(async move {
            let instance = Self::instance(handle).to_string();
            let gone = self.vanish.contains(&instance) || self.destroyed.lock().expect("not poisoned").contains(&instance);
            Ok(if gone { Health::Gone } else { Health::Running })
        })
    }

    fn stop<'a>(&'a self, handle: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.stopped.lock().expect("not poisoned").push(Self::instance(handle).to_string());
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, handle: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.destroyed.lock().expect("not poisoned").push(Self::instance(handle).to_string());
            self.found.lock().expect("not poisoned").retain(|f| f.handle != handle);
            Ok(())
        })
    }

    /// What it started and has not destroyed.
    fn instances<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Found>>> {
        Box::pin(async move { Ok(self.found.lock().expect("not poisoned").clone()) })
    }

    fn release_run<'a>(&'a self, run: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.released.lock().expect("not poisoned").push(run.to_string());
            Ok(())
        })
    }
}
