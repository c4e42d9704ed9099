//! Which processes belong to which session, read from `/proc` for the local connector. One
//! read of `/proc` costs a file read per process on the host; stopping a run of 1,000
//! instances used to read it thousands of times (once per instance, then every 100 ms per
//! instance while waiting for them to go). Now every caller shares the latest snapshot if it
//! is younger than [`FRESH`]: the scans per second are bounded whatever the number of
//! instances.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old a snapshot may be and still be used.
pub(crate) const FRESH: Duration = Duration::from_millis(50);

/// When `/proc` was read, and each session's processes then.
type Snapshot = (Instant, HashMap<i32, Vec<i32>>);

#[derive(Default)]
pub(crate) struct Sessions {
    // Held while scanning: concurrent callers wait for that scan instead of doing their own.
    snapshot: Mutex<Option<Snapshot>>,
}

impl Sessions {
    /// The processes of session `sid`, from a snapshot at most [`FRESH`] old.
    pub fn members(&self, sid: i32) -> Vec<i32> {
        let mut snap = self.snapshot.lock().expect("not poisoned");
        if snap.as_ref().is_none_or(|(at, _)| at.elapsed() >= FRESH) {
            *snap = Some((Instant::now(), scan()));
        }
        snap.as_ref().and_then(|(_, by_session)| by_session.get(&sid).cloned()).unwrap_or_default()
    }

    /// Whether the instance still runs: its leader, found by its pid, or any process of its
    /// session. The leader is asked directly because the agent makes its session itself, just
    /// after it starts: until then, and in a snapshot taken before, the session is empty.
    pub fn alive(&self, h: Handle) -> bool {
        h.leader_runs() || !self.members(h.sid).is_empty()
    }

    /// Sends `signal` to the instance's leader (see [`Sessions::alive`]) and to every process
    /// of its session.
    pub fn signal(&self, h: Handle, signal: i32) {
        if h.leader_runs() {
            // SAFETY: the process is the instance's agent (same pid, same start time).
            unsafe { libc::kill(h.sid, signal) };
        }
        for pid in self.members(h.sid).into_iter().filter(|pid| *pid != h.sid) {
            // SAFETY: signals only processes of the instance's own session.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// A local instance's handle: its session id and, to tell that session from a later one
/// with the same number, the start time of the session leader (`/proc/<pid>/stat` field 22,
/// clock ticks since boot). Written `SID@START`; a bare `SID` (from before) is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handle {
    pub sid: i32,
    pub started: Option<u64>,
}

impl Handle {
    pub fn parse(text: &str) -> Option<Self> {
        let (sid, started) = match text.split_once('@') {
            Some((sid, start)) => (sid, Some(start.parse().ok()?)),
            None => (text, None),
        };
        let sid: i32 = sid.parse().ok()?;
        (sid > 1).then_some(Self { sid, started })
    }

    /// The handle of a process just started (its pid will be its session id).
    pub fn of(pid: u32) -> Self {
        Self { sid: pid as i32, started: start_time(pid as i32) }
    }

    /// Whether the session this handle names may still be the one it was given for: the
    /// leader is the same process (same start time), or it has exited — then the number
    /// cannot have been given to another process while any member still has it as session.
    pub fn is_current(&self) -> bool {
        match (self.started, start_time(self.sid)) {
            (Some(recorded), Some(now)) => recorded == now,
            _ => true,
        }
    }

    /// Whether the leader itself still runs (not a zombie): known only for a handle that
    /// recorded its start time.
    pub fn leader_runs(&self) -> bool {
        match (self.started, stat_of(self.sid)) {
            (Some(recorded), Some((state, started))) => recorded == started && state != 'Z',
            _ => false,
        }
    }
}

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.started {
            Some(s) => write!(f, "{}@{s}", self.sid),
            None => write!(f, "{}", self.sid),
        }
    }
}

/// When process `pid` started (clock ticks since boot), if it exists.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat_of(pid).map(|(_, started)| started)
}

/// Process `pid`'s state letter and start time, if it exists.
fn stat_of(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the `(comm)` field: state is field 3, so field 22 is the 20th after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// The variable that marks every process of a local instance with the directory its
/// connector keeps instances in (one per server): the reaper finds them by it.
pub(crate) const ROOT_ENV: &str = "SLIPSTREAM_INSTANCES_ROOT";

/// The sessions whose processes carry `root` as [`ROOT_ENV`]: (run, instance, session id),
/// one per session. Processes whose environment cannot be read (another user's, for a server
/// that is not root) are not this server's instances anyway.
pub(crate) fn instances_of(root: &str) -> Vec<(String, String, i32)> {
    let mut out: HashMap<i32, (String, String)> = HashMap::new();
    for (sid, members) in scan() {
        for pid in members {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
            let var = |name: &str| {
                environ
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            if var(ROOT_ENV).as_deref() != Some(root) {
                continue;
            }
            if let (Some(run), Some(instance)) = (var("SLIPSTREAM_DIID"), var("SLIPSTREAM_NODE_INSTANCE_NAME")) {
                out.insert(sid, (run, instance));
                break;
            }
        }
    }
    out.into_iter().map(|(sid, (run, instance))| (run, instance, sid)).collect()
}

/// Every process's session (from `/proc/<pid>/stat`: pid (comm) state ppid pgrp session …).
fn scan() -> HashMap<i32, Vec<i32>> {
    let mut out: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let sid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(3)?.parse::<i32>().ok()));
        if let Some(sid) = sid {
            out.entry(sid).or_default().push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_of_this_process_is_found() {
        // SAFETY: getsid(0) only reads the calling process's session id.
        let sid = unsafe { libc::getsid(0) };
        let s = Sessions::default();
        assert!(s.members(sid).contains(&(std::process::id() as i32)));
        assert!(s.alive(Handle { sid, started: None }));
    }

    #[test]
    fn handles_name_their_session_and_its_leaders_start() {
        let table = [
            ("1234", Some(Handle { sid: 1234, started: None })),
            ("1234@99", Some(Handle { sid: 1234, started: Some(99) })),
            ("1", None),
            ("0@5", None),
            ("x", None),
            ("12@", None),
            ("-5", None),
        ];
        for (text, want) in table {
            assert_eq!(Handle::parse(text), want, "{text}");
            if let Some(h) = want {
                assert_eq!(h.to_string(), text);
            }
        }
        // A live process: its own handle is current; one recorded with another start is not.
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let h = Handle::of(child.id());
        assert!(h.started.is_some() && h.is_current());
        let reused = Handle { started: h.started.map(|s| s + 1), ..h };
        assert!(!reused.is_current(), "a later process with the same number is not ours");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(h.is_current(), "the leader gone: members, if any, still hold the number");
        assert!(!h.leader_runs());
    }

    #[test]
    fn an_agent_that_has_not_made_its_session_yet_is_alive_and_is_stopped() {
        // A child still in this process's session, as an agent is before its setsid.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let (h, s) = (Handle::of(child.id()), Sessions::default());
        assert!(s.members(h.sid).is_empty(), "no session of its own yet");
        assert!(h.leader_runs() && s.alive(h));
        s.signal(h, libc::SIGTERM);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        assert!(!s.alive(h));
    }

    #[test]
    fn callers_share_a_snapshot_until_it_is_old() {
        let s = Sessions::default();
        s.members(1);
        let first = s.snapshot.lock().unwrap().as_ref().unwrap().0;
        s.members(1);
        assert_eq!(s.snapshot.lock().unwrap().as_ref().unwrap().0, first, "shared within FRESH");
        std::thread::sleep(FRESH);
        s.members(1);
        assert!(s.snapshot.lock().unwrap().as_ref().unwrap().0 > first, "scanned again once older");
    }
}
