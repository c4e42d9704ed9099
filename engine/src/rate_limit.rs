//! Attempts per key in a sliding window: sign-in failures per account and per client
//! address, sign-ups per address. Kept in memory (a restart forgets them, which only gives
//! an attacker one more window), bounded in size, and decided by a pure function of the
//! recorded times and the clock so the rules are table-tested.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// At most `max` attempts in any `window_ms`.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub max: usize,
    pub window_ms: i64,
}

/// Keys remembered at once per limiter; past it, the keys whose windows are over are
/// dropped, and if all are live the oldest-touched half goes (an attacker rotating
/// addresses then gains little: each still gets at most `max` in a window).
const MAX_KEYS: usize = 100_000;

pub struct Limiter {
    rule: Rule,
    seen: Mutex<HashMap<String, VecDeque<i64>>>,
}

/// How long until `times` (oldest first) allows one more attempt at `now`; `None`: now.
pub fn wait_ms(rule: Rule, times: &VecDeque<i64>, now: i64) -> Option<i64> {
    let live = times.iter().filter(|t| now - **t < rule.window_ms).count();
    if live < rule.max {
        return None;
    }
    // The attempt that leaves the window first frees the place: the `live - max + 1`-th oldest.
    let oldest_live: Vec<i64> = times.iter().copied().filter(|t| now - *t < rule.window_ms).collect();
    let frees = oldest_live[live - rule.max];
    Some((frees + rule.window_ms - now).max(1))
}

impl Limiter {
    pub fn new(rule: Rule) -> Self {
        Self { rule, seen: Mutex::new(HashMap::new()) }
    }

    /// Milliseconds `key` must wait before another attempt, if any.
    pub fn check(&self, key: &str, now: i64) -> Option<i64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(key).and_then(|t| wait_ms(self.rule, t, now))
    }

    /// Records an attempt by `key` at `now`.
    pub fn record(&self, key: &str, now: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_KEYS && !seen.contains_key(key) {
            let window = self.rule.window_ms;
            seen.retain(|_, t| t.back().is_some_and(|last| now - last < window));
            if seen.len() >= MAX_KEYS {
                let mut lasts: Vec<i64> = seen.values().filter_map(|t| t.back().copied()).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                seen.retain(|_, t| t.back().is_some_and(|last| *last > cut));
            }
        }
        let times = seen.entry(key.to_string()).or_default();
        times.push_back(now);
        while times.front().is_some_and(|t| now - t >= self.rule.window_ms) || times.len() > self.rule.max {
            times.pop_front();
        }
    }

    /// Forgets `key` (a successful sign-in clears the account's failures).
    pub fn clear(&self, key: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The limits of sign-in and sign-up.
pub struct AccountLimits {
    /// Wrong passwords per account name (whoever tries them).
    pub login_per_account: Limiter,
    /// Wrong passwords per client address (whatever the names).
    pub login_per_address: Limiter,
    /// Accounts created per client address.
    pub register_per_address: Limiter,
}

impl Default for AccountLimits {
    fn default() -> Self {
        const MINUTE: i64 = 60_000;
        Self {
            login_per_account: Limiter::new(Rule { max: 10, window_ms: 15 * MINUTE }),
            login_per_address: Limiter::new(Rule { max: 50, window_ms: 15 * MINUTE }),
            register_per_address: Limiter::new(Rule { max: 30, window_ms: 60 * MINUTE }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_past_the_rule_wait_for_the_oldest_to_leave_the_window() {
        let rule = Rule { max: 3, window_ms: 1000 };
        let t = |v: &[i64]| v.iter().copied().collect::<VecDeque<i64>>();
        // (recorded, now, expected wait)
        let table: &[(&[i64], i64, Option<i64>)] = &[
            (&[], 0, None),
            (&[0, 10], 20, None),
            (&[0, 10, 20], 30, Some(970)),
            (&[0, 10, 20], 999, Some(1)),
            (&[0, 10, 20], 1000, None),
            (&[0, 10, 20, 30], 1005, Some(5)),
            (&[0, 10, 20, 30], 40, Some(970)),
            (&[-5000, 10, 20], 30, None),
        ];
        for (recorded, now, want) in table {
            assert_eq!(wait_ms(rule, &t(recorded), *now), *want, "{recorded:?} at {now}");
        }
    }

    #[test]
    fn a_limiter_counts_per_key_forgets_on_clear_and_stays_bounded() {
        let l = Limiter::new(Rule { max: 2, window_ms: 1000 });
        l.record("a", 0);
        l.record("a", 1);
        l.record("b", 1);
        assert_eq!(l.check("a", 2), Some(998));
        assert_eq!(l.check("b", 2), None);
        l.clear("a");
        assert_eq!(l.check("a", 2), None);
        // Many keys: the map never holds more than MAX_KEYS, and a key just recorded counts.
        for i in 0..(MAX_KEYS + 10) {
            l.record(&format!("k{i}"), 10_000 + i as i64);
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_KEYS);
        l.record("last", 1_000_000);
        l.record("last", 1_000_000);
        assert!(l.check("last", 1_000_001).is_some());
    }
}
