//! What the engine holds in memory for live runs: one lock per run (decisions about a run are
//! taken one at a time) and the agent token of runs whose instances have not all started yet
//! (the database keeps only its hash). Both are forgotten when the run ends, so a long-lived
//! server does not grow with every run it ever had.
//!
//! It also counts, per live run, how many instances completed the current state, so that a
//! completion costs the same in a run of 1,000 instances as in a run of one. The count is
//! read from the database when missing and dropped whenever the set of instances or the state
//! changes; it is only touched under the run's lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct RunRegistry {
    // std Mutex: held only for a map lookup, never across an .await.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tokens: Mutex<HashMap<String, String>>,
    barriers: Mutex<HashMap<String, Barrier>>,
}

/// Of the instances that hold back the barrier of `state`: how many, how many completed it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Barrier {
    pub state: model::RunState,
    pub instances: usize,
    pub done: usize,
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

    pub fn barrier(&self, run: &str) -> Option<Barrier> {
        self.barriers.lock().expect("not poisoned").get(run).copied()
    }

    pub fn keep_barrier(&self, run: &str, b: Barrier) {
        self.barriers.lock().expect("not poisoned").insert(run.to_string(), b);
    }

    /// One more instance completed `state`; the count if it is known for that state.
    pub fn count_completion(&self, run: &str, state: model::RunState) -> Option<Barrier> {
        let mut barriers = self.barriers.lock().expect("not poisoned");
        let b = barriers.get_mut(run).filter(|b| b.state == state)?;
        b.done += 1;
        Some(*b)
    }

    /// The state or the instances changed: count again on next use.
    pub fn forget_barrier(&self, run: &str) {
        self.barriers.lock().expect("not poisoned").remove(run);
    }

    /// Forgets an ended run's lock, token and count.
    pub fn forget(&self, run: &str) {
        self.forget_barrier(run);
        self.tokens.lock().expect("not poisoned").remove(run);
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
}
