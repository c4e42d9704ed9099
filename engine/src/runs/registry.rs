//! What the engine holds in memory for live runs: one lock per run (decisions about a run are
//! taken one at a time) and the agent token of runs whose instances have not all started yet
//! (the database keeps only its hash). Both are forgotten when the run ends, so a long-lived
//! server does not grow with every run it ever had.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct RunRegistry {
    // std Mutex: held only for a map lookup, never across an .await.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tokens: Mutex<HashMap<String, String>>,
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

    /// Forgets an ended run's lock and token.
    pub fn forget(&self, run: &str) {
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
