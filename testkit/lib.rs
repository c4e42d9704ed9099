//! The one test harness of the project. Server tests, run tests and browser journeys all start
//! the real `slipstream` binary (`SLIPSTREAM_BIN`, built by `cargo xtask test`) on a free port
//! with a fresh data directory through [`TestServer`]; every child process a test starts runs in
//! its own process group and is stopped by it on drop ([`Proc`]), so a failing test leaves
//! nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod ssh;
pub use ssh::{SshHost, SshHosts};

/// A fresh directory for one test, under `$TMPDIR/slipstream-tests` (which `cargo xtask test`
/// empties before each run).
pub fn temp_dir(prefix: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let unique = format!("{prefix}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let dir = std::env::temp_dir().join("slipstream-tests").join(unique);
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    dir
}

/// A path from an environment variable, or `default`.
pub fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// The `slipstream` binary under test (`SLIPSTREAM_BIN`).
pub fn slipstream_bin() -> PathBuf {
    let bin = env_path("SLIPSTREAM_BIN", "../target/debug/slipstream");
    assert!(bin.exists(), "no server binary at {} (run `cargo xtask build`, or set SLIPSTREAM_BIN)", bin.display());
    bin
}

/// A child process in its own process group, stopped (group and all) on drop.
pub struct Proc(Child);

impl Proc {
    /// Starts `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Proc> {
        cmd.process_group(0).spawn().map(Proc)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// SIGKILL to the whole group, as a crash would end it; waits for the leader.
    pub fn kill_9(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.0.wait();
    }

    fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) with the negated id of a process group this test created.
        unsafe { libc::kill(-(self.0.id() as i32), signal) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (a browser's helpers), then the leader itself.
        self.signal_group(libc::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start a [`TestServer`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `sqlite:…` or `postgres://…`; default: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Leave out the example modules (they are loaded by default, as in the quick start).
    pub no_examples: bool,
    /// The data directory; default: a fresh one.
    pub data_dir: Option<PathBuf>,
    /// A fixed port; default: a free one chosen by the server.
    pub port: Option<u16>,
    /// More `slipstream serve` arguments (`--connector docker=docker:unix://…`).
    pub args: Vec<String>,
    /// More environment variables for the server.
    pub env: Vec<(String, String)>,
}

/// The `slipstream` binary serving on loopback; stopped on drop.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub data_dir: PathBuf,
    options: ServerOptions,
    proc: Option<Proc>,
}

impl TestServer {
    /// Starts the server and returns once it listens (it prints its address: no sleeping,
    /// no port guessing). Its output goes to `server.log` in the data directory.
    pub fn start(mut options: ServerOptions) -> TestServer {
        let data_dir = options.data_dir.clone().unwrap_or_else(|| temp_dir("server"));
        options.data_dir = Some(data_dir.clone());
        let (proc, url) = launch(&options, &data_dir);
        TestServer { url, data_dir, options, proc: Some(proc) }
    }

    /// `url` + `/api/v1` + `path`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::id)
    }

    /// The server's identity (connectors label what they make with it).
    pub fn server_id(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server-id")).map(|s| s.trim().to_string()).unwrap_or_default()
    }

    /// Ends the server with SIGKILL, as a crash would.
    pub fn kill_9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill_9();
        }
    }

    /// Starts the server again on the same port and data directory (agents find it again).
    pub fn restart(&mut self) {
        self.kill_9();
        let port = self.url.rsplit(':').next().and_then(|p| p.parse().ok());
        let options = ServerOptions { port, ..self.options.clone() };
        let (proc, url) = launch(&options, &self.data_dir);
        assert_eq!(url, self.url, "the server came back on its port");
        self.proc = Some(proc);
    }
}

/// A root server's local instances work under `/var/tmp/slipstream/<server id>` (outside its
/// data directory): once the server is stopped, that goes too, or every test server would
/// leave its copy of the agent there.
impl Drop for TestServer {
    fn drop(&mut self) {
        let id = self.server_id();
        drop(self.proc.take());
        if !id.is_empty() {
            let _ = std::fs::remove_dir_all(Path::new("/var/tmp/slipstream").join(id));
        }
    }
}

fn launch(options: &ServerOptions, data_dir: &Path) -> (Proc, String) {
    let bin = slipstream_bin();
    let mut cmd = Command::new(&bin);
    let listen = format!("127.0.0.1:{}", options.port.unwrap_or(0));
    cmd.args(["serve", "--listen", &listen, "--data-dir"]).arg(data_dir);
    if let Some(site) = std::env::var_os("SLIPSTREAM_SITE_ROOT") {
        cmd.arg("--site-root").arg(site);
    }
    // The agent runs the instances of the runs a test launches.
    if let Some(agent) = std::env::var_os("SLIPSTREAM_AGENT_BIN") {
        cmd.arg("--agent-bin").arg(agent);
    }
    if let Some(url) = &options.database_url {
        cmd.arg("--database-url").arg(url);
    }
    if options.no_examples {
        cmd.arg("--no-examples");
    }
    cmd.args(&options.args).envs(options.env.iter().map(|(k, v)| (k, v)));
    let log_path = data_dir.join("server.log");
    let mut proc = Proc::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::inherit())).expect("the server starts");
    let stdout = proc.child().stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("the server log is writable");
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the server ended before it listened; see {}", log_path.display());
        };
        let _ = writeln!(log, "{line}");
        if let Some(rest) = line.strip_prefix("Slipstream listening on ") {
            break rest.trim().to_string();
        }
    };
    // Keep draining its output into the log, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
        }
    });
    (proc, url)
}

/// Every process id on this host.
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ")
}

/// Processes whose working directory is under `dir` (the instances' directories).
pub fn processes_under(dir: &Path) -> Vec<String> {
    pids()
        .filter_map(|pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            cwd.starts_with(dir).then(|| format!("{pid} {} in {}", command_of(pid), cwd.display()))
        })
        .collect()
}

/// The processes of `run`'s instances on this host, found by their environment
/// (`SLIPSTREAM_DIID`), not by asking the server: what a stop missed shows up here.
pub fn processes_of_run(run: &str) -> Vec<String> {
    let want = format!("SLIPSTREAM_DIID={run}");
    pids()
        .filter(|pid| std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())))
        .map(|pid| format!("{pid} {}", command_of(pid)))
        .collect()
}

/// Waits (10 s at most: SIGTERM at once, SIGKILL 3 s later) until no process of these runs is
/// left; returns what is still there.
pub async fn processes_left(runs: &[String]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<String> = runs.iter().flat_map(|r| processes_of_run(r)).collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
