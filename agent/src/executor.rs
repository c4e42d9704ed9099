//! The executor (`slipstream-agent run`): takes one instance through the run's lifecycle.
//!
//! - Provisioning: publish `hostname` and `instanceid`, complete.
//! - Executing: run `prerecipe`, `packages`, `recipe`, then `execute`, each root image first; a
//!   non-zero exit raises the abort with the instance, the script and its last stderr line and
//!   skips the rest; complete either way.
//! - SendingReports: run the `report` scripts with `SLIPSTREAM_REPORT_DIR`, upload the report
//!   directory as `<instance>_report_<time>.tgz`, complete — also after an abort.
//! - Ready: nothing; Finalizing or a final state: exit.
//! - A scalable run that is scaled comes round again (Ready → Provisioning → …): an instance
//!   that is already deployed skips its deployment and runs `onvmadd` (instances were added)
//!   or `onvmremove` (some were removed, not this one) in Executing, with
//!   `SLIPSTREAM_SCALING_NODE` and `SLIPSTREAM_SCALING_VMS`; one that is leaving sends its
//!   reports again in SendingReports, then is stopped.
//!
//! Waiting for the next state is a long poll, not a sleep loop, and rides on the completion
//! (the server answers it once the state moved on). While a script runs, a watcher long-polls
//! the abort flag and stops the script's process group when it is raised. Script
//! output streams to the server line by line and is kept in the report directory.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use model::run::{InstancePlan, PlannedScript};
use model::{ParamKey, RunState};

use crate::client::{encode, Client, Failure, EXIT_SECURITY, EXIT_SERVER, EXIT_USAGE};
use crate::commands::write;

/// How long a script may go on after the run is aborted before it is stopped.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// How long a script runs before its abort watcher starts asking.
const WATCH_AFTER: Duration = Duration::from_millis(100);

pub fn run() -> u8 {
    let confined = crate::session::enter();
    let c = match Client::from_env() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("slipstream-agent: {e}");
            return EXIT_USAGE;
        }
    };
    if let Err(e) = confined {
        // Nothing runs unconfined: the run is told why and this instance does nothing.
        eprintln!("slipstream-agent: {e}");
        let body = serde_json::json!({"message": format!("{}: {e}", c.instance), "source": c.instance}).to_string();
        let _ = c.call("POST", "/abort", Some(body.as_bytes()), Duration::from_secs(30));
        return EXIT_SECURITY;
    }
    let started = Executor::new(c).and_then(|e| {
        crate::setup::write(&e.workdir, &e.report_dir)?;
        Ok(e)
    });
    match started.and_then(|mut e| e.lifecycle()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("slipstream-agent: {e}");
            EXIT_SERVER
        }
    }
}

/// `slipstream-agent rerun TARGET`: runs the scripts of one target given on stdin (a JSON list
/// of module, version and script, root first: the module's current version, chosen by the
/// server) in this instance, as the lifecycle would, its output streaming to the run like any
/// target's. Exits with the first failing script's exit code (0 if all succeed).
pub fn rerun(args: &[String]) -> u8 {
    let [target] = args else {
        eprintln!("usage: slipstream-agent rerun TARGET   (the scripts come on stdin as JSON)");
        return EXIT_USAGE;
    };
    let mut input = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input) {
        eprintln!("slipstream-agent: reading the scripts: {e}");
        return EXIT_USAGE;
    }
    let scripts: Vec<PlannedScript> = match serde_json::from_str(&input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("slipstream-agent: the scripts are not a JSON list of {{module, version, script}}: {e}");
            return EXIT_USAGE;
        }
    };
    let c = match Client::from_env() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("slipstream-agent: {e} (source slipstream.setup first)");
            return EXIT_USAGE;
        }
    };
    let mut e = match Executor::new(c) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("slipstream-agent: {e}");
            return EXIT_SERVER;
        }
    };
    e.rerun = true;
    let mut code = 0u8;
    for script in &scripts {
        match e.run_script(script, target) {
            Ok(Outcome::Ok) => {}
            Ok(Outcome::Stopped) => unreachable!("a re-run has no abort watcher"),
            Ok(Outcome::Failed { code: c, .. }) => {
                code = u8::try_from(c).unwrap_or(1).max(1);
                break;
            }
            Err(err) => {
                eprintln!("slipstream-agent: {err}");
                code = EXIT_SERVER;
                break;
            }
        }
    }
    e.flush_logs();
    code
}

struct Executor {
    c: Arc<Client>,
    workdir: PathBuf,
    report_dir: PathBuf,
    logs: mpsc::Sender<Shipped>,
    shipper: Option<std::thread::JoinHandle<()>>,
    /// The environment of scaling hooks (`SLIPSTREAM_SCALING_*`), set while one runs.
    scaling_env: Vec<(&'static str, String)>,
    /// Report bundles uploaded so far.
    reports_sent: u32,
    /// A target re-run by hand (`slipstream-agent rerun`): a failure raises no abort, and an
    /// abort of the run does not stop it.
    rerun: bool,
}

/// What a scaling of the run is doing, from `ss:scaling.*`.
struct Scaling {
    action: String,
    node: String,
    vms: Vec<String>,
}

fn say(what: &str) {
    eprintln!("[agent] {what}");
}

impl Executor {
    fn new(c: Arc<Client>) -> Result<Self, String> {
        let workdir = std::env::current_dir().map_err(|e| e.to_string())?;
        let report_dir = workdir.join("reports").join(&c.instance);
        std::fs::create_dir_all(&report_dir).map_err(|e| format!("{}: {e}", report_dir.display()))?;
        let (tx, rx) = mpsc::channel::<Shipped>();
        let shipper_client = c.clone();
        let shipper = std::thread::spawn(move || ship_logs(&shipper_client, rx));
        Ok(Self { c, workdir, report_dir, logs: tx, shipper: Some(shipper), scaling_env: Vec::new(), reports_sent: 0, rerun: false })
    }

    fn lifecycle(&mut self) -> Result<(), String> {
        let mut last: Option<RunState> = None;
        // Set once the instance went through its first SendingReports: later rounds are scalings.
        let mut deployed = false;
        let mut plan: Option<InstancePlan> = None;
        // What the last completion answered: the next state, without a call of its own.
        let mut next: Option<String> = None;
        loop {
            let from = last.map(|s| format!("from={}&", s.as_str())).unwrap_or_default();
            let polled = match next.take() {
                Some(s) => Ok(s),
                None => self.c.get(&format!("/state?{from}wait=50"), Duration::from_secs(50)),
            };
            let state = match polled {
                Ok(s) => s,
                // The run ended and took its token with it: nothing is left to do.
                Err(Failure::Status(403, m)) if m.contains("has ended") => {
                    say("the run has ended");
                    break;
                }
                Err(f) => return Err(f.message()),
            };
            let state = RunState::parse(state.trim()).ok_or_else(|| format!("the server sent an unknown state `{state}`"))?;
            if Some(state) == last {
                continue;
            }
            say(&format!("state {}", state.as_str()));
            match state {
                RunState::Initializing | RunState::Ready => {}
                RunState::Provisioning | RunState::Executing | RunState::SendingReports if deployed => {
                    let scaling = self.scaling()?;
                    let me = &self.c.instance;
                    let leaving = scaling.action == "vm_remove" && scaling.vms.contains(me);
                    let hook = match scaling.action.as_str() {
                        "vm_create" => Some("onvmadd"),
                        "vm_remove" if !leaving => Some("onvmremove"),
                        _ => None,
                    };
                    match (state, hook) {
                        (RunState::Executing, Some(hook)) => {
                            self.scaling_env =
                                vec![("SLIPSTREAM_SCALING_NODE", scaling.node.clone()), ("SLIPSTREAM_SCALING_VMS", scaling.vms.join(" "))];
                            let plan = self.plan()?;
                            self.run_chain(&plan, hook, &mut None)?;
                            self.scaling_env.clear();
                        }
                        (RunState::SendingReports, _) if leaving => {
                            let plan = self.plan()?;
                            self.run_chain(&plan, "report", &mut None)?;
                            self.send_report();
                        }
                        _ => {}
                    }
                    next = Some(self.complete(state)?);
                }
                RunState::Provisioning => {
                    // Connectors that know the address before the agent starts say so, and
                    // the server published it with the instance id when it started this one;
                    // a container learns its own: the address it reaches the server from.
                    let given = (std::env::var("SLIPSTREAM_HOSTNAME"), std::env::var("SLIPSTREAM_INSTANCEID"));
                    if !matches!(given, (Ok(_), Ok(_))) {
                        let hostname = given.0.ok().or_else(|| self.c.own_address()).unwrap_or_else(|| "127.0.0.1".into());
                        let id = given
                            .1
                            .ok()
                            .or_else(|| {
                                std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty())
                            })
                            .unwrap_or_else(|| self.c.instance.clone());
                        self.publish("hostname", &hostname)?;
                        self.publish("instanceid", &id)?;
                    }
                    next = Some(self.complete(state)?);
                }
                RunState::Executing => {
                    let fetched = self.plan()?;
                    self.keep_scripts(&fetched)?;
                    // Image creation first (root image first in each), then deployment; each
                    // script looks at the abort before it starts (a target without scripts
                    // costs no call; the first asks the plan, read just now).
                    let mut aborted = Some(fetched.aborted);
                    for target in ["prerecipe", "packages", "recipe", "execute"] {
                        self.run_chain(&fetched, target, &mut aborted)?;
                    }
                    plan = Some(fetched);
                    next = Some(self.complete(state)?);
                }
                RunState::SendingReports => {
                    // The plan of this round, fetched in Executing (it is fixed at launch).
                    let plan = match plan.take() {
                        Some(p) => p,
                        None => self.plan()?,
                    };
                    self.run_chain(&plan, "report", &mut None)?;
                    self.send_report();
                    next = Some(self.complete(state)?);
                    deployed = true;
                }
                RunState::Finalizing | RunState::Done | RunState::Aborted | RunState::Cancelled => break,
            }
            last = Some(state);
        }
        self.flush_logs();
        Ok(())
    }

    fn publish(&self, name: &str, value: &str) -> Result<(), String> {
        let (node, index) = self.c.node_index();
        let key = ParamKey::parse_relative(name, &node, index)?;
        write(&self.c, &key, value, true).map_err(|f| f.message())
    }

    /// Completes `state` for this instance, after its output has reached the server: once
    /// every instance completed, the run may move on and stop this instance. Answers the
    /// run's next state (the server waits for it, up to 50 s; the same state if it did not come).
    fn complete(&self, state: RunState) -> Result<String, String> {
        let (ack, acked) = mpsc::channel();
        if self.logs.send(Shipped::Flush(ack)).is_ok() {
            let _ = acked.recv_timeout(Duration::from_secs(60));
        }
        self.c
            .call(
                "POST",
                &format!("/instances/{}/complete?wait=50", encode(&self.c.instance)),
                Some(state.as_str().as_bytes()),
                Duration::from_secs(50),
            )
            .map_err(|f| f.message())
    }

    fn plan(&self) -> Result<InstancePlan, String> {
        let body =
            self.c.get(&format!("/instances/{}/plan", encode(&self.c.instance)), Duration::from_secs(30)).map_err(|f| f.message())?;
        serde_json::from_str(&body).map_err(|e| format!("unreadable plan: {e}"))
    }

    /// What the run's current scaling does (empty fields when none).
    fn scaling(&self) -> Result<Scaling, String> {
        let read = |k: &str| -> Result<String, String> {
            match self.c.get(&format!("/params/{k}?wait=0&ignoreabort=true"), Duration::from_secs(10)) {
                Ok(v) => Ok(v.trim_end_matches('\n').to_string()),
                Err(f) => Err(format!("reading {k}: {}", f.message())),
            }
        };
        let vms = read("ss:scaling.vms")?.split_whitespace().map(String::from).collect();
        Ok(Scaling { action: read("ss:scaling.action")?, node: read("ss:scaling.node")?, vms })
    }

    fn aborted(&self) -> bool {
        self.c.get("/params/ss:abort?wait=0&ignoreabort=true", Duration::from_secs(10)).is_ok()
    }

    fn raise_abort(&self, message: &str) {
        let body = serde_json::json!({"message": message, "source": self.c.instance}).to_string();
        if let Err(f) = self.c.call("POST", "/abort", Some(body.as_bytes()), Duration::from_secs(30)) {
            say(&format!("could not raise the abort: {}", f.message()));
        }
    }

    /// Runs the scripts of one target, root image first; stops at the first failure.
    /// `known_abort`: whether the run was aborted, as just read (taken by the first script
    /// instead of asking).
    fn run_chain(&self, plan: &InstancePlan, target: &str, known_abort: &mut Option<bool>) -> Result<(), String> {
        for script in plan.targets.get(target).map(Vec::as_slice).unwrap_or_default() {
            if target != "report" && known_abort.take().unwrap_or_else(|| self.aborted()) {
                return Ok(());
            }
            let outcome = self.run_script(script, target)?;
            match outcome {
                Outcome::Ok => {}
                Outcome::Stopped => return Ok(()),
                Outcome::Failed { code, last_stderr } => {
                    let msg = format!(
                        "Failed running '{}@{}:{target}' script on '{}' (exit code {code}): {last_stderr}",
                        script.module, script.version, self.c.instance
                    );
                    say(&msg);
                    if target != "report" {
                        self.raise_abort(&msg);
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes every script of the plan to `.slipstream/scripts/` (to be run by hand too).
    fn keep_scripts(&self, plan: &InstancePlan) -> Result<(), String> {
        for (target, scripts) in &plan.targets {
            for script in scripts {
                self.write_script(script, target)?;
            }
        }
        Ok(())
    }

    /// `.slipstream/scripts/<module with / as _>__<target>`, executable.
    fn write_script(&self, script: &PlannedScript, target: &str) -> Result<PathBuf, String> {
        let dir = self.workdir.join(".slipstream").join("scripts");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{}__{target}", script.module.replace('/', "_")));
        std::fs::write(&path, &script.script).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        Ok(path)
    }

    fn run_script(&self, script: &PlannedScript, target: &str) -> Result<Outcome, String> {
        let path = self.write_script(script, target)?;
        say(&format!("running {}@{}:{target}", script.module, script.version));
        let mut child = Command::new(&path)
            .current_dir(&self.workdir)
            .env("SLIPSTREAM_REPORT_DIR", &self.report_dir)
            .env("SLIPSTREAM_TARGET", target)
            .envs(self.scaling_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {} (does it start with a #! line?): {e}", path.display()))?;
        let pgid = child.id() as i32;
        let mut log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.report_dir.join(format!("slipstream-{target}.log")))
            .map_err(|e| e.to_string())?;
        let mut last_stderr = String::new();
        // The abort watcher: a long poll on ss:abort; stops the script's group when raised.
        // It starts once the script has run for WATCH_AFTER: most scripts of a large run end
        // sooner, and then cost no thread and no call (the abort was looked at just before
        // the script started; one raised meanwhile is seen by the watcher's first poll).
        let done = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let watched = target != "report" && !self.rerun;
        let mut watcher_started = false;
        let mut start_watcher = || {
            if watched && !watcher_started {
                watcher_started = true;
                watch_abort(self.c.clone(), done.clone(), stopped.clone(), pgid);
            }
        };
        let mut pipes = Vec::new();
        if let Some(p) = child.stdout.take() {
            pipes.push(("stdout", std::fs::File::from(std::os::fd::OwnedFd::from(p))));
        }
        if let Some(p) = child.stderr.take() {
            pipes.push(("stderr", std::fs::File::from(std::os::fd::OwnedFd::from(p))));
        }
        let started = Instant::now();
        crate::output::drain(
            pipes,
            |stream, line| {
                let _ = writeln!(log_file, "{line}");
                if stream == "stderr" && !line.trim().is_empty() {
                    last_stderr = line.clone();
                }
                let _ = self.logs.send(Shipped::Line(stream.to_string(), line));
            },
            watched.then(|| started + WATCH_AFTER),
            &mut start_watcher,
        );
        // Its output closed, the script may still run (it left a process holding none of it).
        if matches!(child.try_wait(), Ok(None)) {
            start_watcher();
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        done.store(true, Ordering::SeqCst);
        if stopped.load(Ordering::SeqCst) {
            say("the run was aborted: the script was stopped");
            return Ok(Outcome::Stopped);
        }
        if status.success() {
            Ok(Outcome::Ok)
        } else {
            Ok(Outcome::Failed {
                code: status.code().unwrap_or(-1),
                last_stderr: if last_stderr.is_empty() { "(no output on stderr)".into() } else { last_stderr },
            })
        }
    }

    /// Uploads the report directory; if the server refuses it (over its size limit) or the
    /// upload fails, the output logs alone, which are small. Never fatal: the run goes on, and
    /// what happened is in the instance's output.
    fn send_report(&mut self) {
        let Err(e) = self.upload_report(false) else { return };
        let said = format!("the report could not be uploaded ({e}); sending the script logs only");
        say(&said);
        let _ = self.logs.send(Shipped::Line("stderr".into(), format!("[slipstream] {said}")));
        if let Err(e) = self.upload_report(true) {
            let said = format!("the script logs could not be uploaded either: {e}");
            say(&said);
            let _ = self.logs.send(Shipped::Line("stderr".into(), format!("[slipstream] {said}")));
        }
    }

    /// Packs and uploads the report directory (`logs_only`: its `slipstream-*.log` files).
    fn upload_report(&mut self, logs_only: bool) -> Result<(), String> {
        // A second bundle (a leaving instance of a scalable run) within the same second must
        // not replace the first: later ones are numbered.
        self.reports_sent += 1;
        let round = if self.reports_sent > 1 { format!("_{}", self.reports_sent) } else { String::new() };
        let file = format!("{}_report_{}{round}.tgz", self.c.instance, timestamp());
        let bytes = {
            let mut tar = tar::Builder::new(crate::pack::Packer::new());
            tar.follow_symlinks(false);
            if logs_only {
                let entries = std::fs::read_dir(&self.report_dir).map_err(|e| format!("reading the report directory: {e}"))?;
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with("slipstream-") && name.ends_with(".log") {
                        tar.append_path_with_name(entry.path(), format!("{}/{name}", self.c.instance))
                            .map_err(|e| format!("packing the logs: {e}"))?;
                    }
                }
            } else {
                tar.append_dir_all(&self.c.instance, &self.report_dir).map_err(|e| format!("packing the report: {e}"))?;
            }
            tar.into_inner().and_then(|gz| gz.finish()).map_err(|e| format!("packing the report: {e}"))?
        };
        self.c
            .call("PUT", &format!("/reports/{}/{}", encode(&self.c.instance), encode(&file)), Some(&bytes), Duration::from_secs(120))
            .map(|_| ())
            .map_err(|f| f.message())?;
        say(&format!("report {file} uploaded ({} bytes)", bytes.len()));
        Ok(())
    }

    fn flush_logs(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.logs, tx));
        if let Some(h) = self.shipper.take() {
            let _ = h.join();
        }
    }
}

enum Outcome {
    Ok,
    /// Stopped because the run was aborted.
    Stopped,
    Failed {
        code: i32,
        last_stderr: String,
    },
}

/// The abort watcher of a running script (see [`Executor::run_script`]): a long poll on
/// `ss:abort`; once it is raised, the script has [`ABORT_GRACE`] to end on its own (its
/// blocked `ss-get` calls fail at once, exit 8), then its group is stopped.
fn watch_abort(c: Arc<Client>, done: Arc<AtomicBool>, stopped: Arc<AtomicBool>, pgid: i32) {
    std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            match c.get("/params/ss:abort?wait=20&ignoreabort=true", Duration::from_secs(20)) {
                Ok(_) => {
                    let grace = Instant::now() + ABORT_GRACE;
                    while Instant::now() < grace && !done.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    // `ss-abort --cancel` may have cleared it meanwhile (debugging).
                    if c.get("/params/ss:abort?wait=0&ignoreabort=true", Duration::from_secs(10)).is_err() {
                        continue;
                    }
                    stopped.store(true, Ordering::SeqCst);
                    stop_group(pgid);
                    return;
                }
                Err(Failure::Status(408, _)) => {}
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    });
}

/// SIGTERM to the script's group, SIGKILL 5 s later if anything is left.
fn stop_group(pgid: i32) {
    // SAFETY: signals the script's own process group only.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    });
}

/// What the log shipper receives: a line of output, or a request to send what it holds.
enum Shipped {
    Line(String, String),
    Flush(mpsc::Sender<()>),
}

/// Sends script output in batches (up to 200 lines or every 200 ms, and on request).
fn ship_logs(c: &Client, rx: mpsc::Receiver<Shipped>) {
    let mut batch: Vec<serde_json::Value> = Vec::new();
    let mut since = Instant::now();
    loop {
        let next = rx.recv_timeout(Duration::from_millis(200));
        let closed = matches!(next, Err(mpsc::RecvTimeoutError::Disconnected));
        let mut ack = None;
        match next {
            Ok(Shipped::Line(stream, line)) => batch.push(serde_json::json!({"instance": c.instance, "stream": stream, "line": line})),
            Ok(Shipped::Flush(a)) => ack = Some(a),
            Err(_) => {}
        }
        if !batch.is_empty() && (closed || ack.is_some() || batch.len() >= 200 || since.elapsed() >= Duration::from_millis(200)) {
            let body = serde_json::Value::Array(std::mem::take(&mut batch)).to_string();
            if let Err(f) = c.call("POST", "/logs", Some(body.as_bytes()), Duration::from_secs(30)) {
                say(&format!("log lines lost: {}", f.message()));
            }
            since = Instant::now();
        }
        if let Some(a) = ack {
            let _ = a.send(());
        }
        if closed {
            return;
        }
    }
}

/// `YYYY-MM-DDTHHMMSSZ` (UTC, no colons), as the original report names.
fn timestamp() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let (y, m, d, hh, mm, ss) = model::time::utc_fields(ms);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}{mm:02}{ss:02}Z")
}
