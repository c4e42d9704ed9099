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

    /// Forgets a run that has ended (its readers were woken; later reads of an ended run do
    /// not wait for an abort, so they need no run notifier).
    pub fn forget_run(&self, run: &str) {
        self.runs.lock().expect("not poisoned").remove(run);
    }

    /// The keys of a run that readers are blocked on right now, with how many readers each.
    pub fn waiting(&self, run: &str) -> Vec<(String, usize)> {
        let keys = self.keys.lock().expect("not poisoned");
        let mut out: Vec<(String, usize)> = keys
            .iter()
            .filter(|((r, _), _)| r == run)
            .filter_map(|((_, k), w)| {
                // The map holds a weak reference; every blocked reader holds a strong one.
                let readers = w.strong_count();
                (readers > 0 && k != "ss:state" && k != "ss:abort").then(|| (k.clone(), readers))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_counts_the_readers_holding_a_key() {
        let w = Waits::default();
        let a1 = w.key("r", "web.1:port");
        let _a2 = w.key("r", "web.1:port");
        let _b = w.key("r", "db.1:ready");
        let _other = w.key("s", "x.1:y");
        assert_eq!(w.waiting("r"), [("db.1:ready".to_string(), 1), ("web.1:port".to_string(), 2)]);
        drop(a1);
        assert_eq!(w.waiting("r")[1], ("web.1:port".to_string(), 1));
    }
}
