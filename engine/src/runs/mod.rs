//! Runs: what a deployment becomes. Creating a run resolves the module once (exact versions,
//! scripts, initial parameter values, links) and stores that plan; from then on every event —
//! creation, an instance completing a state, an abort, a terminate, a timeout — goes through
//! [`Engine::drive`]: load the run's view, ask [`crate::orchestrator::next`], carry out the
//! actions. Decisions about one run are serialised by a per-run lock. Nothing polls: barriers
//! advance on the completion that meets them, timeouts are one sleeping task per state.
//!
//! One concern per file:
//! - [`plan`]: the module tree → nodes, instances, parameters, links, scripts (pure, table-tested)
//! - [`create`]: launching a run (reads the modules, plans, checks quotas, writes it in one transaction)
//! - [`builds`]: image builds: a build run, keeping its result, finding built images for a deploy
//! - [`driver`]: carrying out the orchestrator's decisions, barriers, terminate
//! - [`timeouts`]: one sleeping task per transitional state
//! - [`recovery`]: re-attaching to live runs after a restart
//! - [`reaper`]: stopping instances no live run wants (after crashes, failed stops)
//! - [`journal`]: the run's events and script output
//! - [`reports`]: report bundles on disk; [`report_masking`]: secrets out of them
//! - [`queries`]: summaries, details, states, parameters, who may see a run
//! - [`launch`]: what the launch form offers and the run page's node graph
//! - [`debug`]: a terminal in an instance, and re-running one target with the current scripts
//! - [`registry`]: per-run locks and agent tokens held in memory
//! - [`rows`]: decoding database rows

pub mod plan;

mod builds;
mod create;
mod debug;
mod driver;
mod journal;
mod launch;
mod masking;
mod queries;
mod reaper;
mod recovery;
pub(crate) mod registry;
mod report_masking;
mod reports;
mod retention;
mod rows;
mod scaling;
mod timeouts;

use std::sync::atomic::{AtomicI64, Ordering};

use model::User;
use sha2::{Digest, Sha256};

use crate::{now_ms, Engine, Error, Result};

pub use debug::{Rerun, RERUN_TARGETS};
pub use masking::{mask, MASK};
pub use model::run::LiveEvent;
pub use reaper::Reaped;

/// Parameters every instance has, written by the platform or the agent.
pub const RESERVED_INSTANCE_PARAMS: [&str; 7] = ["hostname", "instanceid", "statecustom", "abort", "complete", "url.service", "url.ssh"];

/// Who calls a run endpoint: a user, or an agent with its run token.
#[derive(Clone, Debug)]
pub enum RunCaller<'a> {
    User(Option<&'a User>),
    Agent(&'a str),
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Unique, increasing sequence numbers for events and log lines (seeded from the clock, so a
/// restarted server continues above what it wrote before).
fn next_seq() -> i64 {
    static SEQ: AtomicI64 = AtomicI64::new(0);
    let floor = now_ms() * 1000;
    let mut cur = SEQ.load(Ordering::SeqCst);
    loop {
        let next = (cur + 1).max(floor);
        match SEQ.compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(actual) => cur = actual,
        }
    }
}

impl Engine {
    fn service_url(&self) -> Result<String> {
        self.rt.service_url.get().cloned().ok_or_else(|| Error::Internal("the service URL is not known yet".into()))
    }

    pub(crate) fn publish(&self, e: LiveEvent) {
        let _ = self.rt.live.send(e);
    }

    /// Live events of every run (filter by owner before showing them to a user).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.rt.live.subscribe()
    }
}
