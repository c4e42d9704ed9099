//! Following a run live: each state change and each instance's `statecustom` as one line
//! (with the time since the command started), and on a terminal a status line that is
//! rewritten in place; plain lines when the output is not a terminal (CI logs). The state is
//! read with the server's long poll, so the end is seen the moment it happens.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use model::run::RunDetail;
use model::RunState;
use reqwest::Method;

use super::http::{Client, Failure, Result};

/// Seconds one long poll waits for a state change (the `statecustom` lines come at least this
/// often).
const POLL_SECONDS: f64 = 1.0;
const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// Whether the run has a verdict: it ended, or it is Ready with its instances kept (it stays
/// there until terminated).
pub fn settled(d: &RunDetail) -> bool {
    let s = &d.summary;
    s.state.is_terminal() || (s.state == RunState::Ready && s.keep_running.keeps(s.abort.is_some()))
}

/// Follows `run` until it is settled; past `deadline`, a timeout failure (the caller decides
/// what becomes of the run).
pub async fn follow(c: &Client, run: &str, deadline: Option<Instant>) -> Result<RunDetail> {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut shown_state: Option<RunState> = None;
    let mut shown_custom: BTreeMap<String, String> = BTreeMap::new();
    let mut tick = 0usize;
    loop {
        let d: RunDetail = c.get(&format!("/runs/{run}")).await?;
        let at = started.elapsed().as_secs_f64();
        let mut lines = Vec::new();
        if shown_state != Some(d.summary.state) {
            shown_state = Some(d.summary.state);
            lines.push(format!("[{at:7.1}s] {}", d.summary.state.as_str()));
        }
        for i in &d.instances {
            if let Some(custom) = &i.statecustom {
                if shown_custom.get(&i.name) != Some(custom) {
                    shown_custom.insert(i.name.clone(), custom.clone());
                    lines.push(format!("[{at:7.1}s] {}: {custom}", i.name));
                }
            }
        }
        if tty {
            // Clear the status line before lines that stay.
            eprint!("\r\x1b[K");
        }
        for l in &lines {
            println!("{l}");
        }
        if settled(&d) {
            return Ok(d);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Failure::timeout(format!("run {run} did not end in time (it was {})", d.summary.state.as_str())));
        }
        if tty {
            let done = d.instances.iter().filter(|i| i.completed == Some(d.summary.state)).count();
            tick += 1;
            eprint!("{} {}  {at:.0} s  {done}/{} instances done with it", SPINNER[tick % 4], d.summary.state.as_str(), d.instances.len());
            let _ = std::io::stderr().flush();
        }
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64().min(POLL_SECONDS)).unwrap_or(POLL_SECONDS);
        let poll = c
            .request(Method::GET, &format!("/runs/{run}/state"))
            .query(&[("from", d.summary.state.as_str()), ("wait", &format!("{wait:.2}"))]);
        c.text(poll.timeout(Duration::from_secs_f64(wait + 30.0))).await?;
    }
}
