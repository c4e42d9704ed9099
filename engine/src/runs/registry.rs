//! What the engine holds in memory for live runs: one lock per run (decisions about a run are
//! taken one at a time), the agent token of runs whose instances have not all started yet
//! (the database keeps only its hash) and the run's plan (fixed at launch, read by each
//! instance). All are forgotten when the run ends, so a long-lived
//! server does not grow with every run it ever had.
//!
//! It also keeps, per live run, which instances completed the current state, so that a
//! completion costs the same in a run of 1,000 instances as in a run of one. It is read from
//! the database when missing and dropped whenever the set of instances or the state changes;
//! it is only touched under the run's lock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct RunRegistry {
    // std Mutex: held only for a map lookup, never across an .await.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tokens: Mutex<HashMap<String, String>>,
    barriers: Mutex<HashMap<String, Barrier>>,
    plans: Mutex<HashMap<String, Arc<Plan>>>,
}

/// A run's plan: node → what it runs.
pub(crate) type Plan = std::collections::BTreeMap<String, crate::runs::plan::PlannedNode>;

/// Of the instances that hold back the barrier of `state`: which, and which completed it.
/// Sets, not counts: a completion is counted once however often it comes, whether or not its
/// row was written yet.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Barrier {
    pub state: model::RunState,
    pub instances: HashSet<String>,
    pub done: HashSet<String>,
}

/// How a completion counted towards the barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    /// The barrier of that state is not kept: load it first.
    Unknown,
    /// The instance holds back no barrier (not started, removed by a scaling, not of the run).
    NotHeld,
    /// It had completed the state already.
    Again,
    /// Counted; `met`: it was the last one.
    New { met: bool },
}

impl RunRegistry {
    /// The run's decision lock (created on first use).
    pub fn lock(&self, run: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("not poisoned").entry(run.to_string()).or_default().clone()
    }

    pub fn keep_token(&self, run: &str, token: String) {
        self.tokens.lock().expect("not poisoned").insert(run.to_string(), token);
    }

    pub fn token(&self, run: &str) -> Option<String> {
        self.tokens.lock().expect("not poisoned").get(run).cloned()
    }

    /// (instances, done) of the barrier of `state`, if it is kept.
    pub fn barrier_counts(&self, run: &str, state: model::RunState) -> Option<(usize, usize)> {
        self.barriers.lock().expect("not poisoned").get(run).filter(|b| b.state == state).map(|b| (b.instances.len(), b.done.len()))
    }

    pub fn keep_barrier(&self, run: &str, b: Barrier) {
        self.barriers.lock().expect("not poisoned").insert(run.to_string(), b);
    }

    /// `instance` completed `state`.
    pub fn count_completion(&self, run: &str, state: model::RunState, instance: &str) -> Counted {
        let mut barriers = self.barriers.lock().expect("not poisoned");
        let Some(b) = barriers.get_mut(run).filter(|b| b.state == state) else { return Counted::Unknown };
        if !b.instances.contains(instance) {
            Counted::NotHeld
        } else if b.done.insert(instance.to_string()) {
            Counted::New { met: b.done.len() >= b.instances.len() }
        } else {
            Counted::Again
        }
    }

    pub fn plan(&self, run: &str) -> Option<Arc<Plan>> {
        self.plans.lock().expect("not poisoned").get(run).cloned()
    }

    pub fn keep_plan(&self, run: &str, plan: &Arc<Plan>) {
        self.plans.lock().expect("not poisoned").insert(run.to_string(), plan.clone());
    }

    /// The state or the instances changed: count again on next use.
    pub fn forget_barrier(&self, run: &str) {
        self.barriers.lock().expect("not poisoned").remove(run);
    }

    /// Forgets an ended run's lock, token, count and plan.
    pub fn forget(&self, run: &str) {
        self.forget_barrier(run);
        self.tokens.lock().expect("not poisoned").remove(run);
        self.plans.lock().expect("not poisoned").remove(run);
        self.locks.lock().expect("not poisoned").remove(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_has_one_lock_until_it_is_forgotten() {
        let r = RunRegistry::default();
        assert!(Arc::ptr_eq(&r.lock("a"), &r.lock("a")));
        assert!(!Arc::ptr_eq(&r.lock("a"), &r.lock("b")));
        r.keep_token("a", "ssr_x".into());
        assert_eq!(r.token("a").as_deref(), Some("ssr_x"));
        r.forget("a");
        assert_eq!(r.token("a"), None);
        assert_eq!(r.locks.lock().unwrap().len(), 1, "only b's lock is left");
    }

    #[test]
    fn a_completion_counts_once_for_its_state_and_only_from_an_instance_that_holds_the_barrier() {
        use model::RunState::{Executing, Provisioning};
        let r = RunRegistry::default();
        assert_eq!(r.count_completion("a", Provisioning, "n.1"), Counted::Unknown);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<HashSet<String>>();
        r.keep_barrier("a", Barrier { state: Provisioning, instances: names(&["n.1", "n.2"]), done: names(&["n.2"]) });
        assert_eq!(r.count_completion("a", Executing, "n.1"), Counted::Unknown, "another state's barrier is not kept");
        assert_eq!(r.count_completion("a", Provisioning, "x.9"), Counted::NotHeld);
        assert_eq!(r.count_completion("a", Provisioning, "n.2"), Counted::Again);
        assert_eq!(r.barrier_counts("a", Provisioning), Some((2, 1)));
        assert_eq!(r.count_completion("a", Provisioning, "n.1"), Counted::New { met: true });
        assert_eq!(r.count_completion("a", Provisioning, "n.1"), Counted::Again);
        assert_eq!(r.barrier_counts("a", Provisioning), Some((2, 2)));
        r.forget_barrier("a");
        assert_eq!(r.barrier_counts("a", Provisioning), None);
    }
}
