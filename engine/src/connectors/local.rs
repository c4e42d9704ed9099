//! The local connector (the embedded default): each instance is the agent in its own working
//! directory (`<data>/runs/<run>/<instance>`) and its own process group on the server's host,
//! with its own loopback address (127.x.y.z) as `hostname`, so several instances can listen on
//! the same port. The agent starts a new session; every process of the instance (the agent,
//! each script in its own process group, servers they left running) stays in it, so stopping
//! signals every process of that session. The agents survive a server restart and
//! simply retry their calls; `recover` checks that the group is still there.
//!
//! When the server runs as root, each instance runs as an unprivileged user of its own with
//! resource limits, in `<work_dir>/<server id>/runs/<run>/<instance>` (see [`super::confine`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::confine::Confinement;
use super::sessions::{Handle, Sessions};
use crate::connector::{Account, BoxFuture, Capabilities, Connector, Exec, ExecSpec, Found, Health, StartSpec, Started};
use crate::{Error, Result};

/// The names the agent answers to (multi-call by argv[0]).
pub const AGENT_COMMANDS: [&str; 7] = ["ss-get", "ss-set", "ss-abort", "ss-display", "ss-random", "ss-get-all", "slipstream-agent"];

/// Ended runs' directories being deleted are renamed with this prefix first (what a crash
/// left half-deleted is deleted when the connector starts).
const REMOVING: &str = ".removing-";

/// How many loopback addresses the connector cycles through (127.2.0.1 upwards).
pub const ADDRESS_SPACE: u32 = 1 << 22;

pub struct Local {
    // Shared with the blocking threads that start instances (several at once).
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    name: String,
    /// Where instance directories go (`runs/<run>/<instance>` under it).
    data_dir: PathBuf,
    agent: Option<PathBuf>,
    next_address: AtomicU64,
    confine: Option<Confinement>,
    /// How many instances were started (which uid the next one gets when confined).
    started: AtomicU64,
    /// Whether the agent was copied to `bin/` (once per server: copying while
    /// another start forks would leave a write descriptor in that child, and executing the
    /// copy would then fail with "Text file busy").
    agent_placed: std::sync::Mutex<bool>,
    /// Who is in which session, from a shared snapshot of `/proc`.
    sessions: std::sync::Arc<Sessions>,
    /// `runs/` is made at the first start (a server that starts nothing leaves nothing).
    runs_made: std::sync::Once,
}

impl Local {
    /// `first_address`: where in [`ADDRESS_SPACE`] to start handing out addresses.
    pub fn new(name: &str, data_dir: PathBuf, agent: Option<PathBuf>, first_address: u64) -> Self {
        Self {
            inner: std::sync::Arc::new(Inner {
                name: name.into(),
                data_dir,
                agent,
                next_address: AtomicU64::new(first_address),
                confine: None,
                // From the same random point: another server on this host likely starts elsewhere.
                started: AtomicU64::new(first_address),
                agent_placed: std::sync::Mutex::new(false),
                sessions: Default::default(),
                runs_made: std::sync::Once::new(),
            }),
        }
    }

    /// Instances run confined (as another user, with limits) in a directory of this server's
    /// under the confinement's `work_dir`.
    pub fn confined(mut self, confine: Option<Confinement>, server_id: &str) -> Self {
        let inner = std::sync::Arc::get_mut(&mut self.inner).expect("not shared before it is built");
        if let Some(c) = &confine {
            inner.data_dir = c.work_dir.join(server_id);
        }
        inner.confine = confine;
        inner.remove_leftovers();
        self
    }

    fn address(n: u64) -> String {
        // 127.2.0.1 upwards; all of 127/8 is routed to the loopback interface.
        let n = n % u64::from(ADDRESS_SPACE) + 1;
        format!("127.{}.{}.{}", 2 + (n >> 16) % 250, (n >> 8) & 255, n & 255)
    }
}

impl Inner {
    /// Deletes what a crash left of ended runs' directories (in the background).
    fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(self.data_dir.join("runs")) else { return };
        let doomed: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(REMOVING)).map(|e| e.path()).collect();
        if !doomed.is_empty() {
            std::thread::spawn(move || doomed.iter().for_each(|d| drop(std::fs::remove_dir_all(d))));
        }
    }

    /// Makes `runs/` (passable, not listable, when confined) with its subdirectories spread
    /// over the file system's block groups (see [`super::spread`]). Best effort: a directory
    /// that cannot be made here is reported by the start that follows.
    fn prepare_runs_dir(&self) {
        use std::os::unix::fs::DirBuilderExt;
        let runs = self.data_dir.join("runs");
        let mode = if self.confine.is_some() { 0o711 } else { 0o755 };
        if std::fs::DirBuilder::new().recursive(true).mode(mode).create(&runs).is_ok() {
            super::spread::spread_subdirectories(&runs);
        }
    }

    /// The instance's directory and the directory of the agent's commands, made for the user
    /// the instance runs as. The commands are one copy of the agent per server, under
    /// `<data>/bin`, placed at the first start: another user may not reach the server's own
    /// binary, and links made per instance cost a run of 1,000 instances 8,000 inodes.
    fn prepare_dirs(&self, agent: &std::path::Path, spec: &StartSpec, ids: (u32, u32)) -> Result<(PathBuf, PathBuf)> {
        self.runs_made.call_once(|| self.prepare_runs_dir());
        let dir = self.data_dir.join("runs").join(&spec.run).join(&spec.instance);
        let io = |p: &std::path::Path, e: std::io::Error| Error::Internal(format!("{}: {e}", p.display()));
        let bin = self.data_dir.join("bin");
        {
            let mut placed = self.agent_placed.lock().expect("not poisoned");
            if !*placed {
                super::agent_files::place_agent(agent, &bin)?;
                *placed = true;
            }
        }
        let own = dir.join(".slipstream");
        if self.confine.is_none() {
            std::fs::create_dir_all(&own).map_err(|e| io(&own, e))?;
            return Ok((dir, bin));
        };
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // Every level may be passed through (0711), not listed; the instance's own directory
        // belongs to its user alone.
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(dir.parent().unwrap_or(&dir)).map_err(|e| io(&dir, e))?;
        std::fs::create_dir_all(&own).map_err(|e| io(&own, e))?;
        for d in [&dir, &own] {
            std::os::unix::fs::chown(d, Some(ids.0), Some(ids.1)).map_err(|e| io(d, e))?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(d, e))?;
        }
        Ok((dir, bin))
    }

    fn start_blocking(&self, spec: &StartSpec) -> Result<Started> {
        let agent = self
            .agent
            .as_ref()
            .ok_or_else(|| Error::Internal("no agent binary is configured (SLIPSTREAM_AGENT_BIN or --agent-bin)".into()))?;
        let ids = self.confine.as_ref().map(|c| c.ids(self.started.fetch_add(1, Ordering::SeqCst)));
        let (dir, bin) = self.prepare_dirs(agent, spec, ids.unwrap_or_default())?;
        let address = Local::address(self.next_address.fetch_add(1, Ordering::SeqCst));
        let instance_id = format!("local-{}-{}", &spec.run[..8.min(spec.run.len())], spec.instance);
        let log = std::fs::File::create(dir.join(".slipstream").join("agent.log")).map_err(|e| Error::Internal(e.to_string()))?;
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
        let mut cmd = std::process::Command::new(bin.join("slipstream-agent"));
        // An allow-listed environment: nothing of the server's own (database URL, tokens,
        // settings) reaches the scripts.
        cmd.arg("run")
            .current_dir(&dir)
            .env_clear()
            .envs(inherited_env())
            .env("HOME", &dir)
            .env("PATH", path)
            .envs(spec.env.vars())
            .env("SLIPSTREAM_HOSTNAME", &address)
            .env("SLIPSTREAM_INSTANCEID", &instance_id)
            .env(super::sessions::ROOT_ENV, &self.data_dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| Error::Internal(e.to_string()))?)
            .stderr(log);
        // No pre_exec, no uid: the standard library then starts the agent with posix_spawn
        // (vfork-like) instead of forking this large process. The agent makes its own
        // session and, for a root server, confines itself before anything else.
        if let (Some(c), Some(ids)) = (&self.confine, ids) {
            cmd.env(model::confine::CONFINE_ENV, c.spec(ids).encode());
        }
        let child = cmd.spawn().map_err(|e| Error::Internal(format!("cannot start the agent {}: {e}", agent.display())))?;
        let pid = child.id();
        super::reaper_task::reap_when_it_exits(child);
        // The session id plus its leader's start time: a stop long after cannot hit another
        // session that got the same number.
        Ok(Started { handle: Handle::of(pid).to_string(), address, instance_id, identity_given: true, ssh: None })
    }
}

/// How long a stop waits between its looks at the instance's processes: longer than the age of
/// a shared snapshot, so that every look after the first sees the processes of after the stop.
const LOOK_AGAIN: std::time::Duration = std::time::Duration::from_millis(100);
const _: () = assert!(LOOK_AGAIN.as_nanos() > super::sessions::FRESH.as_nanos());

/// The variables of the server's environment an instance gets: locale and time zone only.
const INHERITED: [&str; 4] = ["LANG", "LC_ALL", "LC_CTYPE", "TZ"];

fn inherited_env() -> Vec<(&'static str, String)> {
    INHERITED.iter().filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))).collect()
}

impl Connector for Local {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    /// Its instances run on the server's own host, as the server's user (or, for a root
    /// server, an unprivileged one) and see what that user may see.
    fn restricted(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { build_images: false, own_address: true }
    }

    fn start<'a>(&'a self, spec: &'a StartSpec) -> BoxFuture<'a, Result<Started>> {
        Box::pin(async move {
            // On a blocking thread: the driver starts several at once.
            let (inner, spec) = (self.inner.clone(), spec.clone());
            tokio::task::spawn_blocking(move || inner.start_blocking(&spec))
                .await
                .map_err(|e| Error::Internal(format!("starting the agent: {e}")))?
        })
    }

    fn inspect<'a>(&'a self, handle: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<Health>> {
        Box::pin(async move {
            let Some(h) = Handle::parse(handle) else { return Ok(Health::Gone) };
            let sessions = self.inner.sessions.clone();
            let alive = tokio::task::spawn_blocking(move || h.is_current() && sessions.alive(h)).await.unwrap_or(false);
            Ok(if alive { Health::Running } else { Health::Gone })
        })
    }

    /// A process in the instance's directory, started by the agent's `enter` (its own
    /// session, the instance's confinement); a pseudo-terminal for a terminal.
    fn exec<'a>(&'a self, _handle: &'a str, _account: &'a Account, spec: &'a ExecSpec) -> BoxFuture<'a, Result<Exec>> {
        Box::pin(async move {
            let inner = &self.inner;
            let dir = inner.data_dir.join("runs").join(&spec.run).join(&spec.instance);
            if !dir.is_dir() {
                return Err(Error::NotFound(format!("instance {} has no directory on connector `{}`", spec.instance, inner.name)));
            }
            // The copy the instance runs (another user may not reach the server's own).
            let agent = inner.data_dir.join("bin").join("slipstream-agent");
            let mut env: Vec<(String, String)> = inherited_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            env.push(("HOME".into(), dir.display().to_string()));
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()));
            if let Some(c) = &inner.confine {
                // As the instance's own user: the owner of its directory.
                use std::os::unix::fs::MetadataExt;
                let meta = std::fs::metadata(&dir).map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
                env.push((model::confine::CONFINE_ENV.into(), c.spec((meta.uid(), meta.gid())).encode()));
            }
            super::local_exec::open(&agent, &dir, env, spec)
        })
    }

    /// The sessions whose processes carry this connector's instance root in their environment.
    fn instances<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Found>>> {
        Box::pin(async move {
            let root = self.inner.data_dir.display().to_string();
            let found = tokio::task::spawn_blocking(move || super::sessions::instances_of(&root))
                .await
                .map_err(|e| Error::Internal(format!("listing local instances: {e}")))?;
            Ok(found.into_iter().map(|(run, instance, sid)| Found { run, instance, handle: Handle::of(sid as u32).to_string() }).collect())
        })
    }

    /// Removes the run's instance directories (the reports were sent; nothing there is needed).
    fn release_run<'a>(&'a self, run: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let runs = self.inner.data_dir.join("runs");
            let (dir, doomed) = (runs.join(run), runs.join(format!("{REMOVING}{run}")));
            // Out of the way at once (a rename), deleted in the background: a run of 1,000
            // instances has ~15,000 files, and its end need not wait for them.
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::Internal(format!("removing the run's directories: {e}"))),
            }
            tokio::task::spawn_blocking(move || {
                if let Err(e) = std::fs::remove_dir_all(&doomed) {
                    tracing::warn!(dir = %doomed.display(), error = %e, "removing an ended run's directories failed");
                }
            });
            Ok(())
        })
    }

    /// Signals the agent and every process of its session; what ignores SIGTERM for 3 s is
    /// killed in the background. Returns at once.
    fn stop<'a>(&'a self, handle: &'a str, _account: &'a Account) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(h) = Handle::parse(handle) else { return Ok(()) };
            if !h.is_current() {
                return Ok(()); // that session ended long ago; its number now belongs to another
            }
            let blocking = move |sessions: &std::sync::Arc<Sessions>, f: fn(&Sessions, Handle)| {
                let sessions = sessions.clone();
                tokio::task::spawn_blocking(move || f(&sessions, h))
            };
            let _ = blocking(&self.inner.sessions, |s, h| s.signal(h, libc::SIGTERM)).await;
            let sessions = self.inner.sessions.clone();
            tokio::spawn(async move {
                // Each look after a pause of LOOK_AGAIN: a snapshot of the
                // processes taken before this stop (it may predate the agent's session and miss
                // its script) is never used to decide that the instance is gone.
                for round in 0..30 {
                    tokio::time::sleep(LOOK_AGAIN).await;
                    let looking = sessions.clone();
                    if !tokio::task::spawn_blocking(move || looking.alive(h)).await.unwrap_or(false) {
                        return;
                    }
                    if round == 0 {
                        // Once more, to what the first signal may have missed.
                        let _ = blocking(&sessions, |s, h| s.signal(h, libc::SIGTERM)).await;
                    }
                }
                // What ignored SIGTERM for 3 s is killed.
                let _ = blocking(&sessions, |s, h| s.signal(h, libc::SIGKILL)).await;
            });
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_distinct_loopback_addresses() {
        let a: Vec<String> = (0..u64::from(super::ADDRESS_SPACE)).step_by(997).map(super::Local::address).collect();
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(a.len(), b.len());
        assert!(a.iter().all(|x| x.starts_with("127.")));
        assert_eq!(super::Local::address(0), "127.2.0.1");
    }
}
