//! `cargo xtask build [--release]`, `cargo xtask serve [--release] [-- ARGS]`, `cargo xtask test`,
//! `cargo xtask lint`, `cargo xtask bench`.
//!
//! Each command installs what it needs when it is missing (the wasm32 target, wasm-bindgen-cli
//! at exactly Cargo.lock's version, Debian packages) and does nothing more when it is there.
//! The build is plain cargo plus wasm-bindgen (no cargo-leptos, whose installation takes
//! about 24 minutes and which downloads tools at run time): the frontend for wasm32 and the
//! server in two separate cargo runs, so feature unification never mixes `ssr` and `hydrate`.
//!
//! Later connectors add their test beds (Docker daemon, sshd) to [`test`] next to PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod assets;
mod docker;
mod docs;

type Result<T = ()> = std::result::Result<T, String>;

const SITE_NAME: &str = "site";
/// The packages and features of the first test pass (the browser journeys run apart).
const UNIT_PACKAGES: &[&str] =
    &["-p", "model", "-p", "engine", "-p", "app", "-p", "server", "-p", "agent", "-p", "xtask", "--features", "app/ssr"];
/// The formatter of `view!` blocks; `leptosfmt.toml` holds its settings.
const LEPTOSFMT_VERSION: &str = "0.1.33";
/// Debian packages the test suite needs: browser tests, the PostgreSQL pass, and what the
/// example modules' scripts run on the local connector (a web server and a client).
const TEST_PACKAGES: &[&str] = &[
    "chromium",
    "chromium-driver",
    "postgresql",
    "python3",
    "wget",
    "docker.io",
    "iptables",
    "busybox-static",
    "debootstrap",
    "podman",
    "openssl",
    "runc",
    "netavark",
    "aardvark-dns",
    "catatonit",
    // SSH hosts for the SSH connector's tests (sshd in network namespaces).
    "openssh-server",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root).expect("workspace root exists");
    let result = match args.first().map(String::as_str) {
        Some("build") => build(&root, args.iter().any(|a| a == "--release")).map(|_| ()),
        Some("serve") => serve(&root, &args[1..]),
        Some("test") => test(&root),
        Some("lint") => lint(&root),
        Some("with-docker") => with_docker(&args[1..]),
        Some("bench") => bench(&root),
        _ => {
            eprintln!("usage: cargo xtask build [--release] | serve [--release] [-- SERVE-ARGS] | test | lint | bench | with-docker CMD…");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// `$HOME/.cache/slipstream` when `$HOME/.cache` exists: what CI keeps between fresh clones.
fn cache_dir() -> Option<PathBuf> {
    let cache = Path::new(&std::env::var_os("HOME")?).join(".cache");
    cache.is_dir().then(|| cache.join("slipstream"))
}

/// Where cargo builds: `$CARGO_TARGET_DIR`, else a cache under `$HOME/.cache` when there is
/// one (CI reuses it across fresh clones), else `./target`.
fn target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cache = Path::new(&home).join(".cache");
        if cache.is_dir() {
            return cache.join("slipstream").join("target");
        }
    }
    root.join("target")
}

fn step<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {what}");
    let t = Instant::now();
    let out = f();
    eprintln!("    {what}: {:.1} s{}", t.elapsed().as_secs_f64(), if out.is_err() { " (failed)" } else { "" });
    out
}

fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    cmd.output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn cargo(target: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.env("CARGO_TARGET_DIR", target);
    c
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

// ---------------------------------------------------------------- tools

fn ensure_rust_tools(root: &Path) -> Result {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        step("install the wasm32-unknown-unknown target", || {
            run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
        })?;
    }
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let wanted = lock_version(&lock, "wasm-bindgen").ok_or("Cargo.lock has no wasm-bindgen")?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.trim() != format!("wasm-bindgen {wanted}") {
        step(&format!("install wasm-bindgen-cli {wanted} (about 4 minutes, once)"), || {
            run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &wanted, "--locked"]))
        })?;
    }
    Ok(())
}

/// The version of `name` in a Cargo.lock.
fn lock_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            return lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"').map(String::from);
        }
    }
    None
}

fn ensure_debian_packages(packages: &[&str]) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p])).is_some_and(|s| s.contains("install ok installed")))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("install Debian packages: {}", missing.join(" ")), || {
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
        let apt = |args: &[&str]| {
            let mut all: Vec<&str> = sudo.to_vec();
            all.push("apt-get");
            all.extend_from_slice(args);
            let mut c = Command::new(all[0]);
            c.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
            run(&mut c)
        };
        apt(&["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend(&missing);
        apt(&args)
    })
}

// ---------------------------------------------------------------- build

struct Built {
    server: PathBuf,
    site: PathBuf,
    agent: PathBuf,
}

fn host_triple() -> Result<String> {
    let out = output(Command::new("rustc").arg("-vV")).ok_or("rustc -vV failed")?;
    out.lines().find_map(|l| l.strip_prefix("host: ")).map(|h| h.trim().to_string()).ok_or_else(|| "rustc -vV names no host".into())
}

/// The node agent, statically linked so it runs in any image (even busybox).
fn build_agent(target: &Path, release: bool) -> Result<PathBuf> {
    let host = host_triple()?;
    let mut c = cargo(target);
    // With an explicit --target, RUSTFLAGS reach only the agent's own artifacts, not the
    // build scripts and proc macros of the host.
    c.args(["build", "-p", "agent", "--bin", "slipstream-agent", "--target", &host]).env("RUSTFLAGS", "-C target-feature=+crt-static");
    if release {
        c.arg("--release");
    }
    step("build the agent (static)", || run(&mut c))?;
    let agent = target.join(&host).join(if release { "release" } else { "debug" }).join("slipstream-agent");
    let ldd = Command::new("ldd").arg(&agent).output().map_err(|e| format!("ldd: {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&ldd.stdout), String::from_utf8_lossy(&ldd.stderr));
    if !(said.contains("statically linked") || said.contains("not a dynamic executable")) {
        return Err(format!("{} is not statically linked: {said}", agent.display()));
    }
    Ok(agent)
}

fn build(root: &Path, release: bool) -> Result<Built> {
    ensure_rust_tools(root)?;
    let target = target_dir(root);
    let (wasm_profile, wasm_dir) = if release { ("wasm-release", "wasm-release") } else { ("dev", "debug") };
    step(&format!("build the frontend (wasm32, {wasm_profile})"), || {
        run(cargo(&target).args(["build", "-p", "frontend", "--lib", "--target", "wasm32-unknown-unknown", "--profile", wasm_profile]))
    })?;
    let site = target.join("site");
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).map_err(|e| e.to_string())?;
    step("wasm-bindgen", || {
        let mut bindgen = Command::new("wasm-bindgen");
        bindgen.args(["--target", "web", "--no-typescript", "--out-name", SITE_NAME]);
        if release {
            // Function names are 60 % of the optimised module; panics still say what failed.
            bindgen.args(["--remove-name-section", "--remove-producers-section"]);
        }
        run(bindgen.arg("--out-dir").arg(&pkg).arg(target.join("wasm32-unknown-unknown").join(wasm_dir).join("frontend.wasm")))?;
        // LEPTOS_OUTPUT_NAME is set at compile time, so pages ask for /pkg/site.wasm.
        std::fs::rename(pkg.join(format!("{SITE_NAME}_bg.wasm")), pkg.join(format!("{SITE_NAME}.wasm"))).map_err(|e| e.to_string())?;
        std::fs::copy(root.join("style/main.css"), pkg.join(format!("{SITE_NAME}.css"))).map_err(|e| e.to_string())?;
        assets::bundle(root, &cache_dir().unwrap_or_else(|| target.clone()), &pkg)?;
        for ext in ["wasm", "js", "css"] {
            let file = pkg.join(format!("{SITE_NAME}.{ext}"));
            let gz = pkg.join(format!("{SITE_NAME}.{ext}.gz"));
            if release {
                // The server sends these to browsers that accept gzip.
                run(Command::new("gzip").args(["-9", "-k", "-f"]).arg(&file))?;
            } else {
                // A stale twin from a release build would be served instead of the new file.
                let _ = std::fs::remove_file(gz);
            }
        }
        Ok(())
    })?;
    let mut server_build = cargo(&target);
    server_build.args(["build", "-p", "server", "--bin", "slipstream"]);
    if release {
        server_build.arg("--release");
    }
    step(&format!("build the server ({})", if release { "release" } else { "debug" }), || run(&mut server_build))?;
    let server = target.join(if release { "release" } else { "debug" }).join("slipstream");
    let agent = build_agent(&target, release)?;
    let wasm = pkg.join(format!("{SITE_NAME}.wasm"));
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    eprintln!("    built {} and {} ({} KiB of WASM)", server.display(), site.display(), size / 1024);
    Ok(Built { server, site, agent })
}

// ---------------------------------------------------------------- serve

fn serve(root: &Path, args: &[String]) -> Result {
    let release = args.iter().take_while(|a| *a != "--").any(|a| a == "--release");
    let extra: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    let built = build(root, release)?;
    eprintln!("==> slipstream serve (Ctrl-C stops it)");
    let mut cmd = Command::new(&built.server);
    cmd.arg("serve").args(extra).env("SLIPSTREAM_SITE_ROOT", &built.site).env("SLIPSTREAM_AGENT_BIN", &built.agent);
    run(&mut cmd)
}

// ---------------------------------------------------------------- test

/// The gate that runs before any test: formatting, clippy with warnings as errors (the server
/// side and the wasm side in separate runs, as they are built), and the docs' links.
fn lint(root: &Path) -> Result {
    ensure_rust_tools(root)?;
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"])).unwrap_or_default();
    for component in ["rustfmt", "clippy"] {
        if !installed.lines().any(|l| l.trim().starts_with(component)) {
            step(&format!("install the {component} component"), || run(Command::new("rustup").args(["component", "add", component])))?;
        }
    }
    if output(Command::new("leptosfmt").arg("--version")).is_none_or(|v| !v.contains(LEPTOSFMT_VERSION)) {
        step(&format!("install leptosfmt {LEPTOSFMT_VERSION} (about a minute, once)"), || {
            run(Command::new("cargo").args(["install", "leptosfmt", "--version", LEPTOSFMT_VERSION, "--locked"]))
        })?;
    }
    let target = target_dir(root);
    step("cargo fmt --check", || run(cargo(&target).args(["fmt", "--all", "--check"])))?;
    step("leptosfmt --check (view! blocks)", || run(Command::new("leptosfmt").args(["--check", "--quiet", "app/src", "frontend/src"])))?;
    step("clippy, server side (-D warnings)", || {
        run(cargo(&target).args([
            "clippy",
            "--workspace",
            "--exclude",
            "frontend",
            "--all-targets",
            "--features",
            "app/ssr",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy, browser side (-D warnings)", || {
        run(cargo(&target).args(["clippy", "-p", "frontend", "-p", "app", "--target", "wasm32-unknown-unknown", "--", "-D", "warnings"]))
    })?;
    step("docs: links stay inside the repository", || docs::check(root))
}

fn test(root: &Path) -> Result {
    let t = Instant::now();
    lint(root)?;
    ensure_debian_packages(TEST_PACKAGES)?;
    let built = build(root, false)?;
    let target = target_dir(root);
    // Every test puts its files under one folder; empty it so runs do not pile up.
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join("slipstream-tests"));
    let pg = step("start PostgreSQL", Postgres::start)?;
    let docker = step("start the Docker test bed (dockerd, busybox image)", || docker::DockerBed::start(cache_dir().as_deref()))?;
    // A second engine for runs over two Docker endpoints, and for a pass of its own below.
    let podman = step("start the Podman test bed (Docker-compatible service)", || docker::DockerBed::start_podman(cache_dir().as_deref()))?;
    let mut tally = Tally::default();
    let result = (|| {
        step("unit, store and API tests (SQLite and PostgreSQL)", || {
            tally.run(
                cargo(&target)
                    .args(["test"])
                    .args(UNIT_PACKAGES)
                    .env("SLIPSTREAM_TEST_PG_URL", &pg.url)
                    .env("SLIPSTREAM_TEST_DOCKER", &docker.endpoint)
                    .env("SLIPSTREAM_TEST_DOCKER_TLS", docker::TLS_ENDPOINT)
                    .env("SLIPSTREAM_TEST_DOCKER_TLS_DIR", docker.tls_dir.as_deref().unwrap_or(Path::new("")))
                    .env("SLIPSTREAM_TEST_PODMAN", &podman.endpoint)
                    .env("SLIPSTREAM_TEST_PODMAN_AGENT_ADDRESS", podman.agent_address.as_deref().unwrap_or_default())
                    .env("SLIPSTREAM_AGENT_BIN", &built.agent)
                    .env("SLIPSTREAM_BIN", &built.server),
            )
        })?;
        step("the Docker connector's tests again, on Podman's Docker-compatible service", || {
            // The Debian image and the TLS listener are the Docker bed's; the runs over both
            // engines ran above; the rest runs unchanged on Podman.
            tally.run(
                cargo(&target)
                    // The same packages and features as above: cargo reuses that test binary.
                    .args(["test"])
                    .args(UNIT_PACKAGES)
                    .args(["--test", "docker", "--", "--skip", "debian", "--skip", "two_engines", "--skip", "tls"])
                    .env("SLIPSTREAM_TEST_DOCKER", &podman.endpoint)
                    .env("SLIPSTREAM_TEST_DOCKER_AGENT_ADDRESS", podman.agent_address.as_deref().unwrap_or_default())
                    .env("SLIPSTREAM_AGENT_BIN", &built.agent)
                    .env("SLIPSTREAM_BIN", &built.server),
            )
        })?;
        step("browser tests (headless Chromium)", || {
            tally.run(
                cargo(&target)
                    .args(["test", "-p", "end2end"])
                    .env("SLIPSTREAM_TEST_DOCKER", &docker.endpoint)
                    .env("SLIPSTREAM_BIN", &built.server)
                    .env("SLIPSTREAM_SITE_ROOT", &built.site)
                    .env("SLIPSTREAM_AGENT_BIN", &built.agent),
            )
        })
    })();
    // Podman started second: it puts the host back to how dockerd left it, then dockerd's bed
    // puts it back to how it was.
    drop(podman);
    drop(docker);
    drop(pg);
    eprintln!("==> cargo xtask test: {} in {:.0} s", if result.is_ok() { "passed" } else { "FAILED" }, t.elapsed().as_secs_f64());
    // One closing line for the whole suite, whatever cargo printed last.
    println!("tests: {} passed, {} failed", tally.passed, tally.failed);
    result
}

/// Runs a command with the Docker and Podman test beds up (`SLIPSTREAM_TEST_DOCKER`,
/// `SLIPSTREAM_TEST_PODMAN` and the TLS variables name them), then stops them:
/// `cargo xtask with-docker cargo test -p server --test docker`.
fn with_docker(cmd: &[String]) -> Result {
    let (program, args) = cmd.split_first().ok_or("usage: cargo xtask with-docker CMD [ARGS…]")?;
    ensure_debian_packages(&["docker.io", "iptables", "busybox-static", "debootstrap", "podman", "runc", "netavark", "openssl"])?;
    let bed = step("start the Docker test bed", || docker::DockerBed::start(cache_dir().as_deref()))?;
    let podman = step("start the Podman test bed", || docker::DockerBed::start_podman(cache_dir().as_deref()))?;
    let result = run(Command::new(program)
        .args(args)
        .env("SLIPSTREAM_TEST_DOCKER", &bed.endpoint)
        .env("SLIPSTREAM_TEST_DOCKER_TLS", docker::TLS_ENDPOINT)
        .env("SLIPSTREAM_TEST_DOCKER_TLS_DIR", bed.tls_dir.as_deref().unwrap_or(Path::new("")))
        .env("SLIPSTREAM_TEST_PODMAN", &podman.endpoint)
        .env("SLIPSTREAM_TEST_PODMAN_AGENT_ADDRESS", podman.agent_address.as_deref().unwrap_or_default()));
    drop(podman);
    drop(bed);
    result
}

/// Run-engine figures (release build): prints them, asserts nothing about speed.
fn bench(root: &Path) -> Result {
    ensure_rust_tools(root)?;
    let target = target_dir(root);
    let agent = build_agent(&target, true)?;
    step("build the server (release)", || run(cargo(&target).args(["build", "--release", "-p", "server", "--bin", "slipstream"])))?;
    let server = target.join("release").join("slipstream");
    ensure_debian_packages(&["docker.io", "iptables", "busybox-static", "debootstrap"])?;
    let bed = step("start the Docker test bed", || docker::DockerBed::start(cache_dir().as_deref()))?;
    let result = step("benchmark", || {
        run(cargo(&target)
            .args(["run", "--release", "-p", "server", "--example", "bench"])
            .env("SLIPSTREAM_BIN", &server)
            .env("SLIPSTREAM_AGENT_BIN", &agent)
            .env("SLIPSTREAM_TEST_DOCKER", &bed.endpoint))
    });
    drop(bed);
    result
}

/// Counts what `cargo test` runs report, passing their output through.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn run(&mut self, cmd: &mut Command) -> Result {
        use std::io::{BufRead, BufReader};
        let shown = format!("{cmd:?}");
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
        for line in BufReader::new(child.stdout.take().expect("piped")).lines().map_while(|l| l.ok()) {
            println!("{line}");
            if let Some((passed, failed)) = parse_result(&line) {
                self.passed += passed;
                self.failed += failed;
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{shown} failed ({status})"))
        }
    }
}

/// `test result: ok. 6 passed; 0 failed; …` → (6, 0).
fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u64> {
        rest.split(';')
            .find_map(|part| part.trim().trim_start_matches("ok. ").trim_start_matches("FAILED. ").strip_suffix(word)?.trim().parse().ok())
    };
    Some((count(" passed")?, count(" failed")?))
}

/// The Debian PostgreSQL cluster, started for the tests and stopped afterwards if it was down.
struct Postgres {
    url: String,
    port: String,
    started: Option<(String, String)>,
}

impl Postgres {
    fn start() -> Result<Self> {
        let clusters = output(Command::new("pg_lsclusters").arg("-h")).ok_or("pg_lsclusters failed; is postgresql installed?")?;
        let line = clusters.lines().next().ok_or("no PostgreSQL cluster; create one with pg_createcluster")?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (version, cluster, port, status) = (cols[0].to_string(), cols[1].to_string(), cols[2].to_string(), cols[3]);
        let mut started = None;
        if status != "online" {
            run(Command::new("pg_ctlcluster").args([&version, &cluster, "start"]))?;
            started = Some((version.clone(), cluster.clone()));
        }
        let psql = |sql: &str| psql(&port, sql);
        if psql("SELECT 1 FROM pg_roles WHERE rolname = 'slipstream_test'").is_none_or(|s| s.trim() != "1") {
            psql("CREATE ROLE slipstream_test LOGIN CREATEDB PASSWORD 'slipstream_test'").ok_or("cannot create the test role")?;
        }
        Ok(Self { url: format!("postgres://slipstream_test:slipstream_test@127.0.0.1:{port}/postgres"), port, started })
    }
}

fn psql(port: &str, sql: &str) -> Option<String> {
    output(Command::new("runuser").args(["-u", "postgres", "--", "psql", "-p", port, "-tAc", sql]))
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Each test made its own database; drop them so a reused machine does not fill up.
        let dbs = psql(&self.port, "SELECT datname FROM pg_database WHERE datname LIKE 'slipstream_test_%'").unwrap_or_default();
        for db in dbs.lines().map(str::trim).filter(|d| !d.is_empty()) {
            psql(&self.port, &format!("DROP DATABASE IF EXISTS \"{db}\""));
        }
        if let Some((version, cluster)) = &self.started {
            let _ = Command::new("pg_ctlcluster").args([version, cluster, "stop"]).status();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_versions_are_read() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.128\"\n";
        assert_eq!(super::lock_version(lock, "wasm-bindgen").as_deref(), Some("0.2.128"));
        assert_eq!(super::lock_version(lock, "nothing"), None);
    }

    #[test]
    fn cargo_test_results_are_counted() {
        let ok = "test result: ok. 6 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.50s";
        assert_eq!(super::parse_result(ok), Some((6, 0)));
        let bad = "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s";
        assert_eq!(super::parse_result(bad), Some((3, 2)));
        assert_eq!(super::parse_result("running 3 tests"), None);
    }
}
