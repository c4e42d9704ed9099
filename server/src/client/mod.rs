//! The client commands of the `slipstream` binary, for people and CI pipelines: they talk to
//! a server over its HTTP API with an API token (`docs/cli.md`). Each command's exit code is
//! its verdict: 0 done, 1 aborted, 2 usage or input error, 3 timeout, 4 server unreachable.
//!
//! - [`http`]: the client, error answers, exit codes
//! - [`login`]: where the server URL and token come from, `slipstream login`
//! - [`request`]: `run`'s options as a launch request
//! - [`follow`]: following a run live
//! - [`junit`]: a run as a JUnit report
//! - [`reports`]: downloading and unpacking report bundles

pub mod follow;
pub mod http;
pub mod junit;
pub mod login;
pub mod reports;
pub mod request;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use model::run::{LogLine, RunDetail, RunSummary};
use model::RunState;
use reqwest::Method;
use serde_json::{json, Value};

use http::{exit, Client, Failure, Result};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Sign in to a server and store an API token for the other commands.
    Login {
        /// The server, e.g. `http://127.0.0.1:8080`.
        url: String,
        /// Your user name (asked for when absent).
        #[arg(long)]
        user: Option<String>,
        /// An API token made on the profile page, stored instead of signing in.
        #[arg(long)]
        token: Option<String>,
    },
    /// Import modules from YAML bundles (all of a file or none of it).
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Export a module and everything below it as a YAML bundle.
    Export {
        path: String,
        /// Write it here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Deploy a deployment or an image; with --wait, follow it and exit with its verdict.
    Run {
        module: String,
        #[arg(long)]
        version: Option<u32>,
        /// An input parameter, `node:param=value` (`param=value` for an image). Repeatable.
        #[arg(long = "set", value_name = "NODE:PARAM=VALUE")]
        set: Vec<String>,
        /// Instances of a node, `node=N`. Repeatable.
        #[arg(long, value_name = "NODE=N")]
        multiplicity: Vec<String>,
        /// The connector of a node, `node=NAME`. Repeatable.
        #[arg(long, value_name = "NODE=NAME")]
        connector: Vec<String>,
        /// A tag for the run. Repeatable.
        #[arg(long)]
        tag: Vec<String>,
        /// never, on-success, on-error or always.
        #[arg(long)]
        keep_running: Option<String>,
        /// Seconds the run may take as a whole; then it is terminated and the exit code is 3
        /// (with --wait).
        #[arg(long)]
        timeout: Option<u64>,
        /// Seconds the run may stay in one state before the server aborts it.
        #[arg(long)]
        state_timeout: Option<i64>,
        /// Follow the run until it ends and exit with its verdict.
        #[arg(long)]
        wait: bool,
        /// Write a JUnit XML report of the run here (implies --wait).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Download and unpack every report bundle into this directory (implies --wait).
        #[arg(long)]
        reports: Option<PathBuf>,
        /// Keep the run up in Ready so that `slipstream scale` can add or remove instances.
        #[arg(long)]
        scalable: bool,
    },
    /// Add instances to a node of a scalable run (`--add N`), or remove some (`--remove
    /// web.2,web.3`); with --wait, until the run is back in Ready.
    Scale {
        run: String,
        node: String,
        #[arg(long, conflicts_with = "remove")]
        add: Option<u32>,
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Run a deployment over a grid of values and collect an output from every instance.
    Sweep {
        module: String,
        /// What varies: `node:multiplicity=1,2,4,8` or `node:input=a,b`. Repeatable (a grid).
        #[arg(long, required = true)]
        vary: Vec<String>,
        /// The output to collect: `node.*:param`.
        #[arg(long)]
        collect: String,
        /// Runs at once (default 1).
        #[arg(long)]
        parallel: Option<u32>,
        /// Write the collected values here as CSV (one row per run and instance).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Your runs, newest first.
    Runs {
        /// Only runs that have not ended.
        #[arg(long)]
        active: bool,
    },
    /// A run's state, abort and instances.
    Show { run: String },
    /// A run's script output.
    Logs {
        run: String,
        /// Keep printing new lines until the run ends.
        #[arg(long, short)]
        follow: bool,
        /// Only this instance's lines.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Every parameter of a run.
    Params { run: String },
    /// A parameter's value; with --wait, wait until it is set.
    Get {
        run: String,
        key: String,
        /// Seconds to wait (exit code 3 when it is not set by then).
        #[arg(long)]
        wait: Option<f64>,
    },
    /// Set a parameter.
    Set { run: String, key: String, value: String },
    /// Raise the run's abort flag.
    Abort { run: String, reason: Option<String> },
    /// End a run: its instances are stopped.
    Terminate { run: String },
}

/// Runs a client command; prints what went wrong on stderr and returns the exit code.
pub async fn run(command: ClientCommand) -> u8 {
    match execute(command).await {
        Ok(code) => code,
        Err(f) => {
            eprintln!("slipstream: {}", f.message);
            f.code
        }
    }
}

async fn execute(command: ClientCommand) -> Result<u8> {
    if let ClientCommand::Login { url, user, token } = command {
        login::login(&url, user, token).await?;
        return Ok(exit::DONE);
    }
    let c = login::client()?;
    match command {
        ClientCommand::Login { .. } => unreachable!("handled above"),
        ClientCommand::Import { files } => {
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?;
                let r = c.request(Method::POST, "/import").header("content-type", "application/yaml").body(text);
                let written: Value = c.json(r).await.map_err(|e| Failure { message: format!("{}: {}", f.display(), e.message), ..e })?;
                for m in written["modules"].as_array().into_iter().flatten() {
                    println!("{} v{}", m["path"].as_str().unwrap_or("?"), m["version"]);
                }
            }
        }
        ClientCommand::Export { path, output } => {
            let yaml = c.text(c.request(Method::GET, &format!("/export/{}", path.trim_matches('/')))).await?;
            match output {
                Some(f) => std::fs::write(&f, yaml).map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?,
                None => print!("{yaml}"),
            }
        }
        ClientCommand::Run {
            module,
            version,
            set,
            multiplicity,
            connector,
            tag,
            keep_running,
            timeout,
            state_timeout,
            wait,
            junit,
            reports,
            scalable,
        } => {
            let options = request::RunOptions { module, version, set, multiplicity, connector, tag, keep_running, state_timeout, scalable };
            let launch = request::launch_request(&options)?;
            let started = Instant::now();
            let made: RunSummary = c.json(c.request(Method::POST, "/runs").json(&launch)).await?;
            if !(wait || junit.is_some() || reports.is_some()) {
                println!("{}", made.id);
                return Ok(exit::DONE);
            }
            eprintln!("run {} of {}: {}/runs/{}", made.id, made.module, c.base, made.id);
            let deadline = timeout.map(|s| started + Duration::from_secs(s));
            let (detail, timed_out) = match follow::follow(&c, &made.id, deadline).await {
                Ok(d) => (d, None),
                Err(f) if f.code == exit::TIMEOUT => {
                    // The pipeline gave up: the run is ended, not left running.
                    let _ = c.send(c.request(Method::DELETE, &format!("/runs/{}", made.id))).await;
                    let d: RunDetail = c.get(&format!("/runs/{}", made.id)).await?;
                    (d, Some(f))
                }
                Err(f) => return Err(f),
            };
            if let Some(file) = &junit {
                let logs = all_logs(&c, &made.id, None).await?;
                std::fs::write(file, junit::report(&detail, &logs)).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
            }
            if let Some(dir) = &reports {
                let n = reports::download(&c, &made.id, dir).await?;
                eprintln!("{n} report bundle(s) unpacked into {}", dir.display());
            }
            if let Some(f) = timed_out {
                return Err(f);
            }
            return Ok(verdict(&detail));
        }
        ClientCommand::Scale { run, node, add, remove, wait } => {
            let path = format!("/runs/{run}/nodes/{node}/instances");
            match (add, remove.is_empty()) {
                (Some(n), true) => {
                    let added: Value = c.json(c.request(Method::POST, &path).json(&json!({"count": n}))).await?;
                    for i in added["instances"].as_array().into_iter().flatten() {
                        println!("{}", i.as_str().unwrap_or_default());
                    }
                }
                (None, false) => {
                    c.send(c.request(Method::DELETE, &path).json(&json!({"instances": remove}))).await?;
                }
                _ => return Err(Failure::usage("say --add N or --remove INSTANCE[,INSTANCE…]")),
            }
            if wait {
                let d = scaled(&c, &run).await?;
                return Ok(verdict(&d));
            }
        }
        ClientCommand::Sweep { module, vary, collect, parallel, csv } => {
            let req =
                model::sweep::SweepRequest { module: module.trim_matches('/').to_string(), vary, collect, parallel, ..Default::default() };
            let made: model::sweep::Sweep = c.json(c.request(Method::POST, "/sweeps").json(&req)).await?;
            eprintln!("sweep {} of {}: {} points, {}/sweeps/{}", made.id, made.module, made.points.len(), c.base, made.id);
            let started = Instant::now();
            let mut shown: std::collections::BTreeMap<u32, String> = Default::default();
            let sweep = loop {
                let s: model::sweep::Sweep = c.get(&format!("/sweeps/{}", made.id)).await?;
                for p in &s.points {
                    let state = p.state.map(|s| s.as_str().to_string()).unwrap_or_else(|| "waiting".into());
                    if shown.get(&p.index) != Some(&state) && p.run.is_some() {
                        println!("[{:7.1}s] {}: {state}", started.elapsed().as_secs_f64(), p.label);
                        shown.insert(p.index, state);
                    }
                }
                if s.state != "running" {
                    break s;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            println!("{:<32} {:>4} {:>10} {:>10} {:>10}  state", "point", "n", "mean", "median", "p95");
            for p in &sweep.points {
                let (n, mean, median, p95) = p
                    .stats
                    .map(|s| (s.n.to_string(), format!("{:.2}", s.mean), format!("{:.2}", s.median), format!("{:.2}", s.p95)))
                    .unwrap_or_default();
                println!("{:<32} {n:>4} {mean:>10} {median:>10} {p95:>10}  {}", p.label, p.state.map(|s| s.as_str()).unwrap_or("-"));
            }
            if let Some(file) = csv {
                let text = c.text(c.request(Method::GET, &format!("/sweeps/{}/csv", sweep.id))).await?;
                std::fs::write(&file, text).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
            }
            let failed = sweep.points.iter().filter(|p| p.state != Some(RunState::Done)).count();
            if sweep.state != "done" || failed > 0 {
                return Err(Failure::aborted(format!(
                    "sweep {}: {} ({failed} of {} runs not Done)",
                    sweep.id,
                    sweep.state,
                    sweep.points.len()
                )));
            }
        }
        ClientCommand::Runs { active } => {
            let path = if active { "/runs?active=true" } else { "/runs" };
            let runs: Vec<RunSummary> = c.get(path).await?;
            for r in runs {
                let abort = r.abort.as_deref().map(|a| format!("  {a}")).unwrap_or_default();
                println!("{}  {:<14} {}{abort}", r.id, r.state.as_str(), r.module);
            }
        }
        ClientCommand::Show { run } => {
            let d: RunDetail = c.get(&format!("/runs/{run}")).await?;
            println!(
                "run      {}\nmodule   {} v{}\nowner    {}\nstate    {}",
                d.summary.id,
                d.summary.module,
                d.summary.module_version,
                d.summary.owner,
                d.summary.state.as_str()
            );
            if let Some(a) = &d.summary.abort {
                println!("abort    {a}");
            }
            for i in &d.instances {
                let done = i.completed.map(|s| s.as_str()).unwrap_or("-");
                let custom = i.statecustom.as_deref().unwrap_or("");
                println!("  {:<20} {:<10} {:<15} {:<14} {custom}", i.name, i.connector, i.address, done);
            }
        }
        ClientCommand::Logs { run, follow, instance } => {
            let mut after = 0;
            loop {
                let lines = all_logs_after(&c, &run, instance.as_deref(), after).await?;
                for l in &lines {
                    println!("{} {}", l.instance, l.line);
                    after = after.max(l.seq);
                }
                if !follow {
                    break;
                }
                let d: RunDetail = c.get(&format!("/runs/{run}")).await?;
                if follow::settled(&d) && lines.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        ClientCommand::Params { run } => {
            let params: std::collections::BTreeMap<String, Option<String>> = c.get(&format!("/runs/{run}/params")).await?;
            for (k, v) in params {
                println!("{k} = {}", v.unwrap_or_default());
            }
        }
        ClientCommand::Get { run, key, wait } => {
            let mut r = c.request(Method::GET, &format!("/runs/{run}/params/{key}"));
            if let Some(w) = wait {
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Failure::usage(format!("--wait `{w}` is not a number of seconds")));
                }
                r = r.query(&[("wait", w.to_string())]).timeout(Duration::from_secs_f64(w.min(86_400.0) + 30.0));
            }
            match c.text(r).await {
                Ok(v) => println!("{v}"),
                Err(f) if f.message.contains("408") => return Err(Failure::timeout(format!("`{key}` was not set in time"))),
                Err(f) => return Err(f),
            }
        }
        ClientCommand::Set { run, key, value } => {
            c.send(c.request(Method::PUT, &format!("/runs/{run}/params/{key}")).body(value)).await?;
        }
        ClientCommand::Abort { run, reason } => {
            let body = json!({"message": reason.unwrap_or_else(|| "aborted from the command line".into())});
            c.send(c.request(Method::POST, &format!("/runs/{run}/abort")).json(&body)).await?;
        }
        ClientCommand::Terminate { run } => {
            c.send(c.request(Method::DELETE, &format!("/runs/{run}"))).await?;
        }
    }
    Ok(exit::DONE)
}

/// Follows a scaled run until the scaling is over (no instance new or leaving) and it is
/// settled in Ready again.
async fn scaled(c: &Client, run: &str) -> Result<RunDetail> {
    loop {
        let d = follow::follow(c, run, None).await?;
        if d.summary.state.is_terminal() || d.instances.iter().all(|i| i.scale.is_empty()) {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The exit code a settled run earns; an abort is explained on stderr.
fn verdict(d: &RunDetail) -> u8 {
    let s = &d.summary;
    let failed = matches!(s.state, RunState::Aborted | RunState::Cancelled) || s.abort.is_some();
    if !failed {
        eprintln!(
            "{} after {:.1} s",
            s.state.as_str(),
            s.ended_at.unwrap_or(s.state_changed_at).saturating_sub(s.created_at) as f64 / 1000.0
        );
        return exit::DONE;
    }
    eprintln!("{}: {}", s.state.as_str(), s.abort.as_deref().unwrap_or("no reason given"));
    for i in d.instances.iter().filter(|i| i.abort.is_some()) {
        eprintln!("  failed: {} ({}): {}", i.name, i.connector, i.abort.as_deref().unwrap_or_default());
    }
    exit::ABORTED
}

async fn all_logs(c: &Client, run: &str, instance: Option<&str>) -> Result<Vec<LogLine>> {
    all_logs_after(c, run, instance, 0).await
}

/// Every line after `after`, page by page.
async fn all_logs_after(c: &Client, run: &str, instance: Option<&str>, mut after: i64) -> Result<Vec<LogLine>> {
    let mut out = Vec::new();
    loop {
        let mut r = c.request(Method::GET, &format!("/runs/{run}/logs")).query(&[("after", after.to_string()), ("limit", "5000".into())]);
        if let Some(i) = instance {
            r = r.query(&[("instance", i)]);
        }
        let page: Vec<LogLine> = c.json(r).await?;
        let full = page.len() == 5000;
        after = page.last().map(|l| l.seq).unwrap_or(after);
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}
