//! Who a session cookie or an API token belongs to, remembered for a few seconds so a client
//! that makes thousands of requests (a script polling parameters, a benchmark) costs no
//! database round trip — and no write of "last used" — per request. Entries are keyed by the
//! secret's hash, dropped all at once whenever this server revokes a session or token or
//! changes an account, and expire after [`TTL`] so a change made by another process
//! (`slipstream admin create` on the same database) is seen within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use model::User;

/// How long an answer is trusted; also how often an API token's `last_used_at` is written.
pub const TTL: Duration = Duration::from_secs(10);
/// A bound on memory: past it the cache starts again empty.
const MAX_ENTRIES: usize = 10_000;

/// The user, when they were looked up, and (sessions) when the session expires.
type Entry = (User, Instant, Option<i64>);

#[derive(Default)]
pub(crate) struct AuthCache {
    // std Mutex: held only for a map lookup, never across an .await.
    entries: Mutex<HashMap<String, Entry>>,
}

impl AuthCache {
    /// The user of `hash` if known and fresh; `now_ms` checks a session's own expiry.
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<User> {
        let entries = self.entries.lock().expect("not poisoned");
        let (user, at, expires_at) = entries.get(hash)?;
        (at.elapsed() < TTL && expires_at.is_none_or(|e| e > now_ms)).then(|| user.clone())
    }

    pub fn keep(&self, hash: String, user: User, expires_at: Option<i64>) {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (user, Instant::now(), expires_at));
    }

    /// Something about accounts, sessions or tokens changed: ask the database again.
    pub fn clear(&self) {
        self.entries.lock().expect("not poisoned").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_until_cleared_or_the_session_expires() {
        let c = AuthCache::default();
        let ann = User { name: "ann".into(), is_admin: false };
        c.keep("t".into(), ann.clone(), None);
        c.keep("s".into(), ann.clone(), Some(1_000));
        assert_eq!(c.get("t", 5_000), Some(ann.clone()));
        assert_eq!(c.get("s", 999), Some(ann.clone()));
        assert_eq!(c.get("s", 1_000), None, "an expired session is not trusted");
        assert_eq!(c.get("x", 0), None);
        c.clear();
        assert_eq!(c.get("t", 5_000), None);
    }
}
