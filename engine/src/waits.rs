//! Blocking reads without polling: a reader registers interest (creates and enables a
//! `Notify::notified()` future) *before* reading the store, then waits; a writer notifies
//! after its commit. A wake-up between the read and the wait is therefore never lost.
//! One `Notify` per (run, key) so a write wakes only that key's readers, plus one per run for
//! what concerns every reader of the run (abort).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Waits {
    // std Mutex: held only for a map lookup, never across an .await.
    keys: Mutex<HashMap<(String, String), Weak<Notify>>>,
    runs: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waits {
    /// The notifier of one key; readers hold the `Arc` while they wait.
    pub fn key(&self, run: &str, key: &str) -> Arc<Notify> {
        let mut keys = self.keys.lock().expect("not poisoned");
        let k = (run.to_string(), key.to_string());
        if let Some(n) = keys.get(&k).and_then(Weak::upgrade) {
            return n;
        }
        if keys.len() > 4096 {
            keys.retain(|_, w| w.strong_count() > 0); // forget keys nobody waits for
        }
        let n = Arc::new(Notify::new());
        keys.insert(k, Arc::downgrade(&n));
        n
    }

    pub fn run(&self, run: &str) -> Arc<Notify> {
        self.runs.lock().expect("not poisoned").entry(run.to_string()).or_default().clone()
    }

    /// Wakes the readers of one key (after the write committed).
    pub fn wake_key(&self, run: &str, key: &str) {
        let n = self.keys.lock().expect("not poisoned").get(&(run.to_string(), key.to_string())).and_then(Weak::upgrade);
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Wakes every reader of the run (abort).
    pub fn wake_run(&self, run: &str) {
        let n = self.runs.lock().expect("not poisoned").get(run).cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Forgets a finished run.
    pub fn forget_run(&self, run: &str) {
        self.runs.lock().expect("not poisoned").remove(run);
    }
}
