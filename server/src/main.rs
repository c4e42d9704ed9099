//! `slipstream serve | admin … | login | run | …` — see `slipstream --help` and docs/cli.md.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use server::{Application, Settings};

// Request handling allocates many small, short-lived buffers on every worker thread; glibc's
// allocator showed in profiles of the parameter store (its arena locks and consolidation),
// mimalloc's thread-local heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "slipstream", version, about = "Deploy and test multi-node systems")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API, web UI, example modules on first start).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SLIPSTREAM_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        #[command(flatten)]
        store: Store,
        /// The built site (default: `site` beside the binary's profile directory).
        #[arg(long, env = "SLIPSTREAM_SITE_ROOT")]
        site_root: Option<PathBuf>,
        /// The static node agent (default: found beside this binary).
        #[arg(long, env = "SLIPSTREAM_AGENT_BIN")]
        agent_bin: Option<PathBuf>,
        /// Do not load the example modules on first start.
        #[arg(long, env = "SLIPSTREAM_NO_EXAMPLES")]
        no_examples: bool,
        /// The largest report bundle an instance may upload, in MiB.
        #[arg(long, env = "SLIPSTREAM_REPORT_LIMIT_MB", default_value_t = 256)]
        report_limit_mb: u64,
        /// Mark the session cookie `Secure` (browsers send it over HTTPS only): set it when
        /// users reach the server through a TLS proxy.
        #[arg(long, env = "SLIPSTREAM_SECURE_COOKIES")]
        secure_cookies: bool,
        /// Who may sign up: `open` (anyone), `invite` (with an administrator's invitation
        /// link) or `closed` (administrators create accounts with `admin create`).
        #[arg(long, env = "SLIPSTREAM_REGISTRATION", default_value = "open")]
        registration: engine::users::Registration,
        /// Clients reach the server through a proxy that appends their address to
        /// `X-Forwarded-For` (sign-in limits then count that address, not the proxy's).
        #[arg(long, env = "SLIPSTREAM_BEHIND_PROXY")]
        behind_proxy: bool,
        /// Delete finished runs (with their logs, events and reports) this many days after
        /// they end, checked hourly; 0 keeps them forever.
        #[arg(long, env = "SLIPSTREAM_KEEP_FINISHED_RUNS_DAYS", default_value_t = 0)]
        keep_finished_runs_days: u32,
        /// How often the reaper looks for instances no live run wants (on every connector),
        /// in seconds; it also runs at start.
        #[arg(long, env = "SLIPSTREAM_REAP_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
        reap_every_secs: u64,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    #[command(flatten)]
    Client(server::client::ClientCommand),
}

#[derive(Args)]
struct Store {
    /// Where the SQLite file, reports and logs live.
    #[arg(long, env = "SLIPSTREAM_DATA_DIR", default_value = "slipstream-data")]
    data_dir: PathBuf,
    /// `sqlite:FILE` or `postgres://USER:PASSWORD@HOST/DB` (default: SQLite in the data dir).
    #[arg(long, env = "SLIPSTREAM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A connector, `NAME=KIND[:ENDPOINT]` (repeatable), e.g.
    /// `lab=docker:unix:///run/slipstream-docker.sock`. None at all: one `local` connector.
    #[arg(long = "connector", env = "SLIPSTREAM_CONNECTORS", value_delimiter = ',')]
    connectors: Vec<String>,
    /// A settings file (YAML) with a `connectors:` section (names, kinds, endpoints, options).
    #[arg(long, env = "SLIPSTREAM_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make USER an administrator, creating the account if needed. The password comes from
    /// SLIPSTREAM_ADMIN_PASSWORD or the first line of standard input.
    Create {
        user: String,
        #[arg(long, env = "SLIPSTREAM_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Make an invitation link for sign-up policy `invite`: prints the path to give to the
    /// person invited (append it to the server's address).
    Invite {
        /// Days the link stays valid.
        #[arg(long, default_value_t = 7)]
        days: i64,
        #[command(flatten)]
        store: Store,
    },
    /// Let USER use CONNECTOR (`yes`) or not (`no`), for connectors restricted to trusted
    /// users (the local one).
    Allow {
        user: String,
        connector: String,
        /// `yes` or `no`.
        allowed: String,
        #[command(flatten)]
        store: Store,
    },
    /// The quota of every user without one of their own on CONNECTOR (`none` lifts it).
    DefaultQuota {
        connector: String,
        /// A number of instances, or `none`.
        quota: String,
        #[command(flatten)]
        store: Store,
    },
    /// Cap how many instances USER may have at once on CONNECTOR (`none` lifts the cap).
    Quota {
        user: String,
        connector: String,
        /// A number of instances, or `none`.
        quota: String,
        #[command(flatten)]
        store: Store,
    },
}

/// Threads for blocking work (file operations, starts of local instances). Tokio's default of
/// 512 was reached when 1,000 agents uploaded their reports at once: a thread per file
/// operation in flight, ~550 MiB of the server's RSS, and the CPU to start them.
const BLOCKING_THREADS: usize = 64;

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(BLOCKING_THREADS).build().unwrap_or_else(|e| {
            eprintln!("slipstream: cannot start the runtime: {e}");
            std::process::exit(1)
        });
    runtime.block_on(serve_or_run());
}

async fn serve_or_run() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLIPSTREAM_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()))
        .init();
    let cli = Cli::parse();
    if let Command::Client(command) = cli.command {
        // The client commands' exit code is their verdict (docs/cli.md).
        std::process::exit(i32::from(server::client::run(command).await));
    }
    if let Err(e) = run(cli).await {
        eprintln!("slipstream: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Client(_) => unreachable!("client commands return from main"),
        Command::Serve {
            listen,
            store,
            site_root,
            agent_bin,
            no_examples,
            report_limit_mb,
            secure_cookies,
            registration,
            behind_proxy,
            keep_finished_runs_days,
            reap_every_secs,
        } => {
            let settings = Settings {
                listen,
                data_dir: store.data_dir,
                database_url: store.database_url,
                site_root: site_root.unwrap_or_else(Settings::default_site_root),
                load_examples: !no_examples,
                agent_bin: agent_bin.or_else(Settings::default_agent_bin),
                connectors: server::settings::connectors(store.config.as_deref(), &store.connectors)?,
                report_limit_mb,
                secure_cookies,
                registration,
                behind_proxy,
                keep_finished_runs_days,
                reap_every_secs,
            };
            let files = raise_open_files();
            let app = Application::build(&settings).await?;
            println!("Slipstream listening on http://{}", app.addr());
            println!("  open files: {files}");
            println!("  database: {}", engine::db::redact(&settings.database_url()));
            println!("  site:     {}", settings.site_root.display());
            match &settings.agent_bin {
                Some(a) => println!("  agent:    {}", a.display()),
                None => println!("  agent:    none found; runs cannot start instances (set SLIPSTREAM_AGENT_BIN)"),
            }
            for c in app.engine.connectors() {
                println!(
                    "  connector {} ({}){}",
                    c.name(),
                    c.kind(),
                    if c.agent_urls().is_empty() { String::new() } else { format!(", agents at {}", c.agent_urls().join(" ")) }
                );
            }
            app.run(shutdown_signal()).await.map_err(|e| e.to_string())?;
            println!("Slipstream stopped");
            Ok(())
        }
        Command::Admin { command: AdminCommand::Allow { user, connector, allowed, store } } => {
            let allowed = match allowed.as_str() {
                "yes" => true,
                "no" => false,
                other => return Err(format!("allow: `{other}` is not `yes` or `no`")),
            };
            let engine = open_store(store).await?;
            engine.set_allowed(&command_line(), &user, &connector, allowed).await.map_err(|e| e.to_string())?;
            println!("{user} {} use {connector}", if allowed { "may" } else { "may not" });
            Ok(())
        }
        Command::Admin { command: AdminCommand::DefaultQuota { connector, quota, store } } => {
            let quota = parse_quota(&quota)?;
            let engine = open_store(store).await?;
            engine.set_default_quota(&command_line(), &connector, quota).await.map_err(|e| e.to_string())?;
            match quota {
                Some(q) => println!("users without a quota of their own may have {q} instance(s) at once on {connector}"),
                None => println!("{connector} has no default quota"),
            }
            Ok(())
        }
        Command::Admin { command: AdminCommand::Quota { user, connector, quota, store } } => {
            let quota = parse_quota(&quota)?;
            let engine = open_store(store).await?;
            engine.set_quota(&command_line(), &user, &connector, quota).await.map_err(|e| e.to_string())?;
            match quota {
                Some(q) => println!("{user} may have {q} instance(s) at once on {connector}"),
                None => println!("{user} has no quota on {connector}"),
            }
            Ok(())
        }
        Command::Admin { command: AdminCommand::Invite { days, store } } => {
            let engine = open_store(store).await?;
            let (token, _) = engine.create_invitation(&command_line(), Some(days)).await.map_err(|e| e.to_string())?;
            println!("/signup?invitation={token}");
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { user, password, store } } => {
            let engine = open_store(store).await?;
            let password = match password {
                Some(p) => Some(p),
                None => {
                    eprintln!("password for {user} (one line on standard input; empty keeps an existing one):");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
                    let line = line.trim_end_matches(['\r', '\n']).to_string();
                    (!line.is_empty()).then_some(line)
                }
            };
            let admin = engine.create_admin(&user, password.as_deref()).await.map_err(|e| e.to_string())?;
            println!("{} is an administrator", admin.name);
            Ok(())
        }
    }
}

/// Raises the open-file limit to its hard limit (every instance's agent holds connections; a
/// 1,000-instance run needs more than the usual 1,024); says what it is, or why not.
fn raise_open_files() -> String {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return format!("unknown ({})", std::io::Error::last_os_error());
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return format!("{} (could not raise it to {}: {})", l.rlim_cur, l.rlim_max, std::io::Error::last_os_error());
            }
            return format!("{} (raised from {})", l.rlim_max, l.rlim_cur);
        }
        l.rlim_cur.to_string()
    }
}

/// The command line stands for an administrator: whoever can run it owns the database.
fn command_line() -> model::User {
    model::User { name: "(command line)".into(), is_admin: true }
}

/// `N` or `none`.
fn parse_quota(quota: &str) -> Result<Option<i64>, String> {
    match quota {
        "none" => Ok(None),
        n => n.parse::<i64>().map(Some).map_err(|_| format!("quota: `{n}` is not a number of instances or `none`")),
    }
}

/// The engine on the store the flags name, for one-shot commands (no examples, no server).
async fn open_store(store: Store) -> Result<engine::Engine, String> {
    std::fs::create_dir_all(&store.data_dir).map_err(|e| e.to_string())?;
    let connectors = server::settings::connectors(store.config.as_deref(), &store.connectors)?;
    let settings = Settings {
        listen: String::new(),
        data_dir: store.data_dir,
        database_url: store.database_url,
        site_root: PathBuf::new(),
        load_examples: false,
        agent_bin: None,
        connectors: connectors.clone(),
        report_limit_mb: 256,
        secure_cookies: false,
        registration: Default::default(),
        behind_proxy: false,
        keep_finished_runs_days: 0,
        reap_every_secs: 60,
    };
    // The same connectors as the server, so quotas name the connectors it has.
    let config = engine::RunConfig { data_dir: settings.data_dir.clone(), connectors, ..Default::default() };
    engine::Engine::open_with(&settings.database_url(), config).await.map_err(|e| e.to_string())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: stopping"),
        _ = term => tracing::info!("SIGTERM: stopping"),
    }
}
