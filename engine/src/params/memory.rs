//! The parameter store of live runs held in memory, so that reads, blocked reads and the
//! checks of a write cost no database round trip. The database stays the source of truth: a
//! run is loaded from it on first use, every write commits there before it is applied here
//! (see [`super::commit`]), and a run that ends is forgotten (reloaded on demand, not kept).
//!
//! Loading races with writes: a write whose run is not loaded yet bumps `epoch`; a load that
//! saw the epoch move while it read the database answers its caller but is not kept (the next
//! call loads again), so a stale copy can never be cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One live run: who owns it, its agent token's hash, whether it ended, its parameters.
pub(crate) struct LiveRun {
    pub owner: String,
    pub token_hash: String,
    pub ended: bool,
    /// key → (value, the commit sequence number that wrote it): a late apply of an older
    /// write never overwrites a newer one.
    values: Mutex<HashMap<String, (Option<String>, u64)>>,
    /// source key → the keys its value is copied to.
    links: HashMap<String, Vec<String>>,
}

/// What a key holds: not a parameter of the run, declared but unset, or set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Slot {
    Missing,
    Unset,
    Set(String),
}

impl LiveRun {
    pub fn new(
        owner: String,
        token_hash: String,
        ended: bool,
        values: Vec<(String, Option<String>)>,
        links: Vec<(String, String)>,
    ) -> Self {
        let mut by_source: HashMap<String, Vec<String>> = HashMap::new();
        for (source, target) in links {
            by_source.entry(source).or_default().push(target);
        }
        Self { owner, token_hash, ended, values: Mutex::new(values.into_iter().map(|(k, v)| (k, (v, 0))).collect()), links: by_source }
    }

    pub fn slot(&self, key: &str) -> Slot {
        slot_of(&self.values.lock().expect("not poisoned"), key)
    }

    /// The key and the run's abort flag, read together.
    pub fn slot_and_abort(&self, key: &str) -> (Slot, Option<String>) {
        let values = self.values.lock().expect("not poisoned");
        (slot_of(&values, key), values.get("ss:abort").and_then(|(v, _)| v.clone()))
    }

    pub fn abort(&self) -> Option<String> {
        self.values.lock().expect("not poisoned").get("ss:abort").and_then(|(v, _)| v.clone())
    }

    pub fn links_of(&self, key: &str) -> &[String] {
        self.links.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// Applies a committed write unless a newer one was applied already.
    fn apply(&self, key: &str, value: Option<&str>, seq: u64) {
        let mut values = self.values.lock().expect("not poisoned");
        if let Some(slot) = values.get_mut(key) {
            if seq >= slot.1 {
                *slot = (value.map(str::to_string), seq);
            }
        }
    }
}

fn slot_of(values: &HashMap<String, (Option<String>, u64)>, key: &str) -> Slot {
    match values.get(key) {
        None => Slot::Missing,
        Some((None, _)) => Slot::Unset,
        Some((Some(v), _)) => Slot::Set(v.clone()),
    }
}

#[derive(Default)]
pub(crate) struct LiveParams {
    // std Mutex: held only for a map lookup, never across an .await.
    runs: Mutex<HashMap<String, Arc<LiveRun>>>,
    epoch: std::sync::atomic::AtomicU64,
    seq: std::sync::atomic::AtomicU64,
    /// Live runs' secret parameter keys (from the plan and the instances), dropped with the run.
    pub secret_keys: Mutex<HashMap<String, Arc<std::collections::BTreeSet<String>>>>,
}

impl LiveParams {
    pub fn get(&self, run: &str) -> Option<Arc<LiveRun>> {
        self.runs.lock().expect("not poisoned").get(run).cloned()
    }

    /// Where a load starts: pass it back to [`LiveParams::keep`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keeps a loaded run unless a write may have passed the load, or it has ended.
    pub fn keep(&self, run: &str, loaded: LiveRun, epoch: u64) -> Arc<LiveRun> {
        let loaded = Arc::new(loaded);
        let mut runs = self.runs.lock().expect("not poisoned");
        if let Some(kept) = runs.get(run) {
            return kept.clone();
        }
        if !loaded.ended && self.epoch() == epoch {
            runs.insert(run.to_string(), loaded.clone());
        }
        loaded
    }

    /// A number above every write applied so far (commit order of one writer task).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// Applies a write that the database committed (call it after the commit).
    pub fn apply(&self, run: &str, key: &str, value: Option<&str>, seq: u64) {
        let runs = self.runs.lock().expect("not poisoned");
        match runs.get(run) {
            Some(r) => r.apply(key, value, seq),
            None => {
                self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Drops a run: it ended, or something changed that is simpler to reload (scaling).
    pub fn forget(&self, run: &str) {
        let mut runs = self.runs.lock().expect("not poisoned");
        runs.remove(run);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.secret_keys.lock().expect("not poisoned").remove(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> LiveRun {
        LiveRun::new(
            "ann".into(),
            "h".into(),
            false,
            vec![("a.1:x".into(), None), ("b.1:y".into(), Some("1".into())), ("ss:abort".into(), None)],
            vec![("a.1:x".into(), "b.1:y".into())],
        )
    }

    #[test]
    fn slots_tell_missing_unset_and_set_apart() {
        let r = run();
        assert_eq!(r.slot("nope"), Slot::Missing);
        assert_eq!(r.slot("a.1:x"), Slot::Unset);
        assert_eq!(r.slot("b.1:y"), Slot::Set("1".into()));
        assert_eq!(r.links_of("a.1:x"), ["b.1:y".to_string()]);
        assert!(r.links_of("b.1:y").is_empty());
    }

    #[test]
    fn an_older_write_applied_late_does_not_win() {
        let p = LiveParams::default();
        p.keep("r", run(), p.epoch());
        let (first, second) = (p.next_seq(), p.next_seq());
        p.apply("r", "a.1:x", Some("new"), second);
        p.apply("r", "a.1:x", Some("old"), first);
        assert_eq!(p.get("r").unwrap().slot("a.1:x"), Slot::Set("new".into()));
    }

    #[test]
    fn a_load_passed_by_a_write_is_not_kept() {
        let p = LiveParams::default();
        let epoch = p.epoch();
        // A write lands while the run is being read from the database.
        p.apply("r", "a.1:x", Some("v"), p.next_seq());
        let loaded = p.keep("r", run(), epoch);
        assert_eq!(loaded.slot("a.1:x"), Slot::Unset, "the caller gets what it read");
        assert!(p.get("r").is_none(), "but the copy is not kept");
        let again = p.keep("r", run(), p.epoch());
        assert!(Arc::ptr_eq(&again, &p.get("r").unwrap()));
    }

    #[test]
    fn ended_runs_are_not_kept() {
        let p = LiveParams::default();
        let mut r = run();
        r.ended = true;
        p.keep("r", r, p.epoch());
        assert!(p.get("r").is_none());
    }
}
