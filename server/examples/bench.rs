//! Run-engine figures (a benchmark, not a test: it prints, it asserts nothing about speed).
//! `cargo xtask bench` builds the agent and runs it; by hand:
//! `SLIPSTREAM_AGENT_BIN=… cargo run --release -p server --example bench`.
//!
//! - time from launch to Done for 1, 10, 100 and 500 trivial instances (local connector);
//! - with `SLIPSTREAM_TEST_DOCKER` (`cargo xtask bench` starts the Docker test bed): launch to
//!   Done for 1, 10 and 100 containers, and containers started per second;
//! - latency from a set to the return of 1,000 blocked reads of that key (p50/p99);
//! - parameter set and get throughput over HTTP (sequential and 8 concurrent clients).

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use server::{Application, Settings};

#[tokio::main]
async fn main() {
    let agent = std::env::var_os("SLIPSTREAM_AGENT_BIN").expect("SLIPSTREAM_AGENT_BIN names the static agent");
    let dir = engine::testing::temp_dir("bench");
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        database_url: std::env::var("SLIPSTREAM_BENCH_DB").ok().or_else(|| Some(format!("sqlite:{}", dir.join("bench.db").display()))),
        site_root: "target/site".into(),
        load_examples: true,
        agent_bin: Some(agent.into()),
        connectors: match std::env::var("SLIPSTREAM_TEST_DOCKER") {
            Ok(endpoint) => vec![
                engine::connector::ConnectorConfig::parse("local=local").unwrap(),
                engine::connector::ConnectorConfig::parse(&format!("docker=docker:{endpoint}")).unwrap(),
            ],
            Err(_) => Vec::new(),
        },
        report_limit_mb: 256,
    };
    let app = Application::build(&settings).await.expect("server starts");
    let base = format!("http://{}/api/v1", app.addr());
    tokio::spawn(app.run(std::future::pending()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Client::builder().cookie_store(true).pool_max_idle_per_host(2000).build().unwrap();
    c.post(format!("{base}/auth/register")).json(&json!({"name": "bench", "password": "benchmark"})).send().await.unwrap();
    for m in [
        json!({"kind": "project", "path": "bench"}),
        json!({"kind": "image", "path": "bench/trivial", "reference": "examples/images/busybox",
               "parameters": [{"name": "k", "category": "output"}], "targets": {"execute": "#!/bin/sh\ntrue\n"}}),
        json!({"kind": "deployment", "path": "bench/many", "nodes": {"n": {"image": "bench/trivial"}}}),
    ] {
        let p = m["path"].as_str().unwrap().to_string();
        assert!(c.put(format!("{base}/modules/{p}")).json(&m).send().await.unwrap().status().is_success());
    }

    println!("launch to Done (local connector, trivial instances):");
    for n in [1, 10, 100, 500] {
        let t = Instant::now();
        let run = launch(&c, &base, json!({"module": "bench/many", "keep_running": "never", "multiplicity": {"n": n}})).await;
        let state = wait_end(&c, &base, &run).await;
        println!("  {n:>4} instances: {:>7.2} s ({state})", t.elapsed().as_secs_f64());
    }

    if std::env::var("SLIPSTREAM_TEST_DOCKER").is_ok() {
        println!("launch to Done (Docker connector, trivial containers):");
        for n in [1, 10, 100] {
            let t = Instant::now();
            let req = json!({"module": "bench/many", "keep_running": "never", "multiplicity": {"n": n}, "connectors": {"n": "docker"}});
            let run = launch(&c, &base, req).await;
            // Executing: every container started and its agent reported in.
            let mut state = String::new();
            while !["Executing", "SendingReports", "Ready", "Done", "Aborted", "Cancelled"].contains(&state.as_str()) {
                let from = if state.is_empty() { String::new() } else { format!("from={state}&") };
                state = c.get(format!("{base}/runs/{run}/state?{from}wait=30")).send().await.unwrap().text().await.unwrap();
            }
            let started = t.elapsed().as_secs_f64();
            let end = wait_end(&c, &base, &run).await;
            let total = t.elapsed().as_secs_f64();
            println!("  {n:>4} containers: {total:>7.2} s ({end}); all started in {started:.2} s = {:.1} containers/s", n as f64 / started);
        }
    }

    // One instance kept in Ready: its parameters stay writable.
    let run = launch(&c, &base, json!({"module": "bench/trivial", "keep_running": "always"})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get(format!("{base}/runs/{run}/state")).send().await.unwrap().text().await.unwrap() != "Ready" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let waiters = 1000;
    let url = format!("{base}/runs/{run}/params/machine.1:k?wait=50");
    let mut handles = Vec::new();
    for _ in 0..waiters {
        let (c, url) = (c.clone(), url.clone());
        handles.push(tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            let done = Instant::now();
            (r.status().as_u16(), done)
        }));
    }
    // Let every request reach the server and block.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let set_at = Instant::now();
    c.put(format!("{base}/runs/{run}/params/machine.1:k")).body("go").send().await.unwrap();
    let mut lat: Vec<f64> = Vec::new();
    for h in handles {
        let (status, done) = h.await.unwrap();
        assert_eq!(status, 200);
        lat.push(done.saturating_duration_since(set_at).as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!("set → {waiters} blocked reads returned: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", pct(0.50), pct(0.99), lat[lat.len() - 1]);

    let n = 2000;
    let key = format!("{base}/runs/{run}/params/machine.1:statecustom");
    let t = Instant::now();
    for i in 0..n {
        c.put(&key).body(format!("value {i}")).send().await.unwrap();
    }
    let sets = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n {
        c.get(&key).send().await.unwrap().text().await.unwrap();
    }
    let gets = n as f64 / t.elapsed().as_secs_f64();
    println!("sequential over HTTP: {sets:.0} sets/s, {gets:.0} gets/s");
    for (what, put) in [("sets", true), ("gets", false)] {
        let t = Instant::now();
        let mut hs = Vec::new();
        for w in 0..8 {
            let (c, key) = (c.clone(), key.clone());
            hs.push(tokio::spawn(async move {
                for i in 0..n / 8 {
                    if put {
                        c.put(&key).body(format!("{w} {i}")).send().await.unwrap();
                    } else {
                        c.get(&key).send().await.unwrap().text().await.unwrap();
                    }
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        println!("8 concurrent clients: {:.0} {what}/s", n as f64 / t.elapsed().as_secs_f64());
    }
    c.delete(format!("{base}/runs/{run}")).send().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn launch(c: &Client, base: &str, req: Value) -> String {
    let r: Value = c.post(format!("{base}/runs")).json(&req).send().await.unwrap().json().await.unwrap();
    r["id"].as_str().unwrap_or_else(|| panic!("launch failed: {r}")).to_string()
}

async fn wait_end(c: &Client, base: &str, run: &str) -> String {
    let mut state = String::new();
    loop {
        let from = if state.is_empty() { String::new() } else { format!("from={state}&") };
        state = c.get(format!("{base}/runs/{run}/state?{from}wait=30")).send().await.unwrap().text().await.unwrap();
        if ["Done", "Aborted", "Cancelled"].contains(&state.as_str()) {
            return state;
        }
    }
}
