//! Figures for the run engine and the parameter store (a benchmark, not a test: it prints, it
//! asserts nothing about speed). `cargo xtask bench` builds the release server and the static
//! agent and runs it; by hand:
//! `SLIPSTREAM_BIN=target/release/slipstream SLIPSTREAM_AGENT_BIN=… cargo run --release -p server --example bench`.
//!
//! The server runs as its own process (release build, SQLite in a fresh data dir, local
//! connector; with `SLIPSTREAM_TEST_DOCKER` a Docker connector too), so its memory is its own:
//!
//! - launch to Done for 1, 10, 100 and 1,000 trivial instances, the server's peak RSS and the
//!   agents' RSS per instance (local connector; Docker: 1, 10, 100 containers);
//! - the parameter store as our side-by-side comparison with etcd measures it: put and get
//!   with 1 and 64 keep-alive connections (20,000 operations over 1,000 keys), fan-out of one
//!   put to 100, 1,000 and 10,000 blocked readers (time from the put to each reader's answer),
//!   and a chain of 200 get→set hops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

type Res<T> = Result<T, String>;

const OPS: usize = 20_000;
const KEYS: usize = 1_000;

#[tokio::main]
async fn main() {
    // 10,000 readers are 10,000 connections on this side too.
    // SAFETY: getrlimit/setrlimit only read and write this process's limits.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
    if let Err(e) = bench().await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// The server under test, stopped by its PID when dropped.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_181)
}

async fn start_server() -> Res<Server> {
    let bin = std::env::var("SLIPSTREAM_BIN").map_err(|_| "SLIPSTREAM_BIN names the release server".to_string())?;
    let agent = std::env::var("SLIPSTREAM_AGENT_BIN").map_err(|_| "SLIPSTREAM_AGENT_BIN names the static agent".to_string())?;
    let dir = std::env::temp_dir().join(format!("slipstream-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().map_err(|e| format!("{e}"))?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["serve", "--listen", &addr.to_string(), "--agent-bin", &agent])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(dir.join("server.err")).map_err(|e| e.to_string())?);
    if let Ok(endpoint) = std::env::var("SLIPSTREAM_TEST_DOCKER") {
        cmd.args(["--connector", "local=local", "--connector", &format!("docker=docker:{endpoint}")]);
    }
    let child = cmd.spawn().map_err(|e| format!("{bin}: {e}"))?;
    let server = Server { child, addr, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err("the server did not start listening in 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

/// Who a connection's requests come from: a header sent with each (`authorization: Bearer …`,
/// or `cookie: …` while signing in).
type Auth = Arc<(&'static str, String)>;

/// One HTTP/1.1 keep-alive connection.
struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
    host: String,
    auth: Auth,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr, auth: Auth) -> Res<Conn> {
        let s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = s.set_nodelay(true);
        let (tx, conn) = http1::handshake(TokioIo::new(s)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { tx, host: addr.to_string(), auth })
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Res<(u16, Bytes)> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        self.send(method, path, "application/json", body).await
    }

    async fn send(&mut self, method: &str, path: &str, ctype: &str, body: Bytes) -> Res<(u16, Bytes)> {
        let (status, _, body) = self.send_full(method, path, ctype, body).await?;
        Ok((status, body))
    }

    /// [`Conn::send`] with the answer's headers.
    async fn send_full(&mut self, method: &str, path: &str, ctype: &str, body: Bytes) -> Res<(u16, hyper::HeaderMap, Bytes)> {
        let mut req = hyper::Request::builder().method(method).uri(path).header("host", &self.host).header("content-type", ctype);
        if !self.auth.1.is_empty() {
            req = req.header(self.auth.0, self.auth.1.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        self.tx.ready().await.map_err(|e| format!("connection: {e}"))?;
        let r = self.tx.send_request(req).await.map_err(|e| format!("{method} {path}: {e}"))?;
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let body = r.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, headers, body))
    }

    async fn json(&mut self, method: &str, path: &str, body: Option<Value>) -> Res<Value> {
        let (status, b) = self.call(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: HTTP {status}: {}", String::from_utf8_lossy(&b)));
        }
        serde_json::from_slice(&b).or(Ok(Value::Null))
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The server's children that are agents (they stay its children: they start a session but
/// are not reparented while it lives).
fn agent_rss_kib(server: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == server && comm.ends_with("slipstream-agen")).then(|| rss_kib(pid)).flatten()
        })
        .collect()
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn bench() -> Res<()> {
    let server = start_server().await?;
    let addr = server.addr;
    let pid = server.child.id();
    let mut c = Conn::open(addr, Arc::new(("authorization", String::new()))).await?;
    let me = Bytes::from(json!({"name": "bench", "password": "benchmark"}).to_string());
    c.send("POST", "/api/v1/auth/register", "application/json", me.clone()).await?;
    // Sign in, then take an API token: the benchmarks call as scripts and CI do.
    let (_, headers, _) = c.send_full("POST", "/api/v1/auth/login", "application/json", me).await?;
    let cookie = headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").to_string();
    let mut signed_in = Conn::open(addr, Arc::new(("cookie", cookie))).await?;
    let token = signed_in.json("POST", "/api/v1/auth/tokens", Some(json!({"name": "bench"}))).await?;
    let token = token["token"].as_str().ok_or("no API token")?.to_string();
    let auth: Auth = Arc::new(("authorization", format!("Bearer {token}")));
    let mut c = Conn::open(addr, auth.clone()).await?;
    let keys: Vec<Value> = (0..KEYS + 210).map(|i| json!({"name": format!("k{i}"), "category": "output"})).collect();
    for m in [
        json!({"kind": "project", "path": "bench"}),
        // On Docker: the test bed's busybox image (what `cargo xtask bench` starts).
        json!({"kind": "image", "path": "bench/trivial", "native": true,
               "images": {"local": "host", "docker": "slipstream/busybox:latest"},
               "targets": {"execute": "#!/bin/sh\ntrue\n"}}),
        json!({"kind": "deployment", "path": "bench/many", "nodes": {"n": {"image": "bench/trivial"}}}),
        json!({"kind": "image", "path": "bench/kvimg", "native": true, "images": {"local": "host"}, "parameters": keys,
               "targets": {"execute": "#!/bin/sh\nexec sleep 100000\n"}}),
        json!({"kind": "deployment", "path": "bench/kv", "nodes": {"kv": {"image": "bench/kvimg"}}}),
    ] {
        let p = m["path"].as_str().unwrap_or_default().to_string();
        c.json("PUT", &format!("/api/v1/modules/{p}"), Some(m)).await?;
    }

    println!("launch to Done (local connector, trivial instances; release server, SQLite):");
    // SLIPSTREAM_BENCH_REPEAT=R runs the 1,000-instance case R times (its spread is wide here);
    // SLIPSTREAM_BENCH_LAUNCH_ONLY=1 stops after the launch figures.
    let repeat: usize = std::env::var("SLIPSTREAM_BENCH_REPEAT").ok().and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
    let sizes: Vec<usize> = [1, 10, 100].into_iter().chain(std::iter::repeat_n(1000, repeat)).collect();
    for n in sizes {
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kib(pid).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let t = Instant::now();
        let run = launch(&mut c, json!({"module": "bench/many", "keep_running": "never", "multiplicity": {"n": n}})).await?;
        let state = wait_end(&mut c, &run).await?;
        let took = t.elapsed().as_secs_f64();
        sampler.abort();
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        println!("  {n:>5} instances: {took:>6.2} s ({state}); server peak RSS {:.0} MiB", peak as f64 / 1024.0);
    }

    if std::env::var("SLIPSTREAM_BENCH_LAUNCH_ONLY").is_ok_and(|v| v == "1") {
        drop(server);
        return Ok(());
    }
    // Agents' memory: a run kept in Ready, 100 agents waiting.
    let run = launch(&mut c, json!({"module": "bench/many", "keep_running": "always", "multiplicity": {"n": 100}})).await?;
    wait_for(&mut c, &run, "Ready").await?;
    let rss = agent_rss_kib(pid);
    let avg = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
    println!(
        "  agent RSS while waiting: {avg:.0} KiB per instance ({} agents); server RSS {:.0} MiB",
        rss.len(),
        rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );
    c.call("DELETE", &format!("/api/v1/runs/{run}"), None).await?;

    if std::env::var("SLIPSTREAM_TEST_DOCKER").is_ok() {
        println!("launch to Done (Docker connector, trivial containers):");
        for n in [1, 10, 100] {
            let t = Instant::now();
            let req = json!({"module": "bench/many", "keep_running": "never", "multiplicity": {"n": n}, "connectors": {"n": "docker"}});
            let run = launch(&mut c, req).await?;
            let state = wait_end(&mut c, &run).await?;
            println!("  {n:>5} containers: {:>6.2} s ({state})", t.elapsed().as_secs_f64());
        }
    }

    // The parameter store: a run whose one instance declares k0… and waits in Executing.
    let run = launch(&mut c, json!({"module": "bench/kv", "keep_running": "never"})).await?;
    wait_for(&mut c, &run, "Executing").await?;
    let kv = Kv { addr, auth, run: run.clone() };
    println!("parameter store (keep-alive HTTP/1.1, {OPS} operations over {KEYS} keys; as kvbench measures etcd):");
    for conns in [1, 64] {
        let (rate, p99) = kv.load(true, conns).await?;
        println!("  put, {conns:>2} connection(s): {rate:>7.0} ops/s (p99 {p99:.2} ms)");
    }
    for conns in [1, 64] {
        let (rate, p99) = kv.load(false, conns).await?;
        println!("  get, {conns:>2} connection(s): {rate:>7.0} ops/s (p99 {p99:.2} ms)");
    }
    for (i, readers) in [100, 1000, 10_000].into_iter().enumerate() {
        match kv.fanout(&format!("kv.1:k{}", KEYS + i), readers).await {
            Ok(lat) => println!(
                "  fan-out, 1 put → {readers:>5} blocked readers: all released, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                pct(&lat, 1.0)
            ),
            Err(e) => println!("  fan-out to {readers} readers failed: {e}"),
        }
    }
    let per_hop = kv.chain(KEYS + 10, 200).await?;
    println!("  chain of 200 get→set hops: {per_hop:.3} ms per hop");
    println!("  server RSS after the parameter benchmarks: {:.0} MiB", rss_kib(pid).unwrap_or(0) as f64 / 1024.0);
    c.call("DELETE", &format!("/api/v1/runs/{run}"), None).await?;
    wait_end(&mut c, &run).await?;
    drop(server);
    Ok(())
}

async fn launch(c: &mut Conn, req: Value) -> Res<String> {
    let r = c.json("POST", "/api/v1/runs", Some(req)).await?;
    r["id"].as_str().map(String::from).ok_or_else(|| format!("launch failed: {r}"))
}

async fn state(c: &mut Conn, run: &str, from: &str) -> Res<String> {
    let from = if from.is_empty() { String::new() } else { format!("from={from}&") };
    let (_, b) = c.call("GET", &format!("/api/v1/runs/{run}/state?{from}wait=30"), None).await?;
    Ok(String::from_utf8_lossy(&b).trim().to_string())
}

async fn wait_end(c: &mut Conn, run: &str) -> Res<String> {
    let mut s = String::new();
    loop {
        s = state(c, run, &s).await?;
        if ["Done", "Aborted", "Cancelled"].contains(&s.as_str()) {
            return Ok(s);
        }
    }
}

async fn wait_for(c: &mut Conn, run: &str, want: &str) -> Res<()> {
    let mut s = String::new();
    while s != want {
        s = state(c, run, &s).await?;
        if ["Done", "Aborted", "Cancelled"].contains(&s.as_str()) {
            return Err(format!("run {run} ended {s} before {want}"));
        }
    }
    Ok(())
}

/// The kvbench cases against one run's parameters.
struct Kv {
    addr: std::net::SocketAddr,
    auth: Auth,
    run: String,
}

impl Kv {
    fn path(&self, key: &str) -> String {
        format!("/api/v1/runs/{}/params/{key}", self.run)
    }

    /// `OPS` puts or gets spread over `conns` connections; (ops/s, p99 ms).
    async fn load(&self, put: bool, conns: usize) -> Res<(f64, f64)> {
        let per = OPS / conns;
        let mut tasks = Vec::new();
        let start = Instant::now();
        for w in 0..conns {
            let mut c = Conn::open(self.addr, self.auth.clone()).await?;
            let paths: Vec<String> = (0..KEYS).map(|k| self.path(&format!("kv.1:k{k}"))).collect();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let path = &paths[(w * per + i) % KEYS];
                    let t = Instant::now();
                    let (status, _) = if put {
                        c.send("PUT", path, "text/plain", Bytes::from(format!("value {w} {i}"))).await?
                    } else {
                        c.send("GET", path, "text/plain", Bytes::new()).await?
                    };
                    if !(200..300).contains(&status) {
                        return Err(format!("{path}: HTTP {status}"));
                    }
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, String>(lat)
            }));
        }
        let mut all = Vec::with_capacity(OPS);
        for t in tasks {
            all.extend(t.await.map_err(|e| e.to_string())??);
        }
        let rate = all.len() as f64 / start.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        Ok((rate, pct(&all, 0.99)))
    }

    /// `readers` connections block on `key`; one put; ms from the put to each answer.
    async fn fanout(&self, key: &str, readers: usize) -> Res<Vec<f64>> {
        let path = format!("{}?wait=50", self.path(key));
        let mut conns = Vec::with_capacity(readers);
        for _ in 0..readers {
            conns.push(Conn::open(self.addr, self.auth.clone()).await?);
        }
        let (sent_tx, sent_rx) = tokio::sync::watch::channel(None::<Instant>);
        let mut tasks = Vec::with_capacity(readers);
        for mut c in conns {
            let (path, mut sent) = (path.clone(), sent_rx.clone());
            tasks.push(tokio::spawn(async move {
                let (status, body) = c.send("GET", &path, "text/plain", Bytes::new()).await?;
                let done = Instant::now();
                if status != 200 || &body[..] != b"go" {
                    return Err(format!("a reader got HTTP {status}"));
                }
                let at = sent.wait_for(Option::is_some).await.map_err(|e| e.to_string())?.expect("set");
                Ok::<_, String>(done.saturating_duration_since(at).as_secs_f64() * 1000.0)
            }));
        }
        // Let every request reach the server and block.
        tokio::time::sleep(Duration::from_millis(500 + readers as u64 / 5)).await;
        let mut w = Conn::open(self.addr, self.auth.clone()).await?;
        let at = Instant::now();
        let _ = sent_tx.send(Some(at));
        let (status, _) = w.send("PUT", &self.path(key), "text/plain", Bytes::from_static(b"go")).await?;
        if !(200..300).contains(&status) {
            return Err(format!("put: HTTP {status}"));
        }
        let mut lat = Vec::with_capacity(readers);
        for t in tasks {
            lat.push(t.await.map_err(|e| e.to_string())??);
        }
        lat.sort_by(f64::total_cmp);
        Ok(lat)
    }

    /// Hop i waits for key i and sets key i+1; ms per hop from the first set to the last read.
    async fn chain(&self, first: usize, hops: usize) -> Res<f64> {
        let mut tasks = Vec::new();
        for h in 0..hops {
            let mut c = Conn::open(self.addr, self.auth.clone()).await?;
            let (read, write) = (self.path(&format!("kv.1:k{}?wait=50", first + h)), self.path(&format!("kv.1:k{}", first + h + 1)));
            tasks.push(tokio::spawn(async move {
                let (status, _) = c.send("GET", &read, "text/plain", Bytes::new()).await?;
                if status != 200 {
                    return Err(format!("hop {h}: HTTP {status}"));
                }
                if h + 1 < hops {
                    c.send("PUT", &write, "text/plain", Bytes::from_static(b"hop")).await?;
                }
                Ok::<_, String>(Instant::now())
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut w = Conn::open(self.addr, self.auth.clone()).await?;
        let start = Instant::now();
        w.send("PUT", &self.path(&format!("kv.1:k{first}")), "text/plain", Bytes::from_static(b"hop")).await?;
        let mut last = start;
        for t in tasks {
            last = last.max(t.await.map_err(|e| e.to_string())??);
        }
        Ok(last.duration_since(start).as_secs_f64() * 1000.0 / hops as f64)
    }
}
