//! Fault injection: the server is SIGKILLed at random moments (20 times) while multi-node runs
//! start, exchange parameters and end, and a client keeps writing a parameter. After the last
//! restart every run must end as the state machine says (Done, or Aborted saying the server
//! restarted — never Cancelled, nobody cancelled), no answered write may be lost, and no
//! process of any instance may be left. The seed, kills and outcomes are printed.

mod common;

use std::time::{Duration, Instant};

use common::{agent_bin, client};
use serde_json::{json, Value};
use testkit::{processes_under, ServerOptions, TestServer};

const KILLS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_sigkills_lose_no_run_no_answered_write_and_leave_no_process() {
    agent_bin();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = seed;
    let mut random = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let mut server = TestServer::start(ServerOptions { no_examples: false, ..Default::default() });
    let base = server.url.clone();
    let work_dir = std::path::PathBuf::from("/var/tmp/slipstream").join(server.server_id());
    let c = client();
    c.post(format!("{base}/api/v1/auth/register")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
    for m in [
        json!({"kind": "project", "path": "f"}),
        json!({"kind": "image", "path": "f/writer", "reference": "examples/images/busybox",
               "parameters": [{"name": "done", "category": "output"}, {"name": "count", "category": "output"}],
               "targets": {"execute": "#!/bin/sh -e\nfor i in 1 2 3 4 5 6 7 8; do ss-set count $i; sleep 0.2; done\nss-set done yes\n"}}),
        json!({"kind": "image", "path": "f/reader", "reference": "examples/images/busybox",
               "targets": {"execute": "#!/bin/sh -e\nv=$(ss-get --timeout 300 writer:done)\nss-display \"got $v\"\n"}}),
        json!({"kind": "image", "path": "f/store", "reference": "examples/images/busybox",
               "parameters": [{"name": "note", "category": "output"}],
               "targets": {"execute": "#!/bin/sh\ntrue\n"}}),
        json!({"kind": "deployment", "path": "f/d", "nodes": {"writer": {"image": "f/writer"}, "reader": {"image": "f/reader", "multiplicity": 2}}}),
    ] {
        let path = m["path"].as_str().unwrap().to_string();
        assert!(c.put(format!("{base}/api/v1/modules/{path}")).json(&m).send().await.unwrap().status().is_success());
    }
    let launch = |module: &'static str, keep: &'static str| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            // The server may be down this moment: try until it answers.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(r) = c.post(format!("{base}/api/v1/runs")).json(&json!({"module": module, "keep_running": keep})).send().await {
                    if r.status() == 201 {
                        return r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                    }
                }
                assert!(Instant::now() < deadline, "could not launch {module}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let store = launch("f/store", "always").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get(format!("{base}/api/v1/runs/{store}/state")).send().await.unwrap().text().await.unwrap() != "Ready" {
        assert!(Instant::now() < deadline, "the store run never became Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The check for leftovers at the end looks in the right place: the store run's agent is there.
    assert!(!processes_under(&work_dir).is_empty(), "no instance process found under {}", work_dir.display());

    // A client writing 1, 2, 3, … into the store run's parameter, remembering the last answered.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, base, store, stop) = (client(), base.clone(), store.clone(), stop.clone());
        c.post(format!("{base}/api/v1/auth/login")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
        tokio::spawn(async move {
            let (mut next, mut answered) = (1u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let url = format!("{base}/api/v1/runs/{store}/params/machine.1:note");
                match c.put(&url).body(next.to_string()).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status().is_success() => {
                        answered = next;
                        next += 1;
                    }
                    // Down, or killed mid-request: the same value again (its fate unknown).
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            answered
        })
    };

    let mut runs = Vec::new();
    println!("seed {seed}: {KILLS} SIGKILLs");
    for k in 0..KILLS {
        if k % 4 == 0 {
            runs.push(launch("f/d", "never").await);
        }
        tokio::time::sleep(Duration::from_millis(200 + random(1300))).await;
        server.kill_9();
        tokio::time::sleep(Duration::from_millis(random(500))).await;
        server.restart();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answered = writer.await.unwrap();

    // Every run ends; how is printed.
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for run in &runs {
        let deadline = Instant::now() + Duration::from_secs(240);
        let state = loop {
            let st = c.get(format!("{base}/api/v1/runs/{run}/state?wait=10&from=Executing")).send().await.unwrap().text().await.unwrap();
            if ["Done", "Aborted", "Cancelled"].contains(&st.as_str()) {
                break st;
            }
            assert!(Instant::now() < deadline, "run {run} did not end: {st}");
        };
        let d: Value = c.get(format!("{base}/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
        assert_ne!(state, "Cancelled", "nobody cancelled {run}: {d}");
        if state == "Aborted" {
            let abort = d["params"]["ss:abort"].as_str().unwrap_or_default().to_string();
            assert!(abort.contains("restart"), "aborted for another reason than the restart: {abort}");
        } else {
            assert_eq!(d["params"]["writer.1:done"], "yes", "{d}");
            assert_eq!(d["params"]["writer.1:count"], "8", "{d}");
        }
        *outcomes.entry(state).or_default() += 1;
    }
    let note = c.get(format!("{base}/api/v1/runs/{store}/params/machine.1:note")).send().await.unwrap().text().await.unwrap();
    let store_state = c.get(format!("{base}/api/v1/runs/{store}/state")).send().await.unwrap().text().await.unwrap();
    let kept: u64 = note.parse().unwrap_or_else(|_| panic!("the store run ({store_state}) answered {note}"));
    println!("{KILLS} kills survived; runs {outcomes:?}; writes answered {answered}, stored {kept}");
    assert!(kept >= answered, "an answered write was lost: answered {answered}, stored {kept}");

    c.delete(format!("{base}/api/v1/runs/{store}")).send().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_under(&work_dir);
        let st = c.get(format!("{base}/api/v1/runs/{store}/state")).send().await.unwrap().text().await.unwrap();
        if left.is_empty() && ["Cancelled", "Done", "Aborted"].contains(&st.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "left running after every run ended ({st}): {left:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("processes left: 0");
}

/// The two crashes a run's own end cannot clean up after: between an instance's start and its
/// record (the run has no handle for it), and between the end's commit and the stops. After the
/// restart the reaper finds those instances by their environment and stops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_stops_instances_a_crash_left_without_a_live_run() {
    agent_bin();
    let mut server = TestServer::start(ServerOptions { args: vec!["--reap-every-secs".into(), "1".into()], ..Default::default() });
    let base = server.url.clone();
    let work_dir = if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/tmp/slipstream").join(server.server_id())
    } else {
        server.data_dir.join("runs")
    };
    let c = client();
    c.post(format!("{base}/api/v1/auth/register")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
    for m in [
        json!({"kind": "project", "path": "f"}),
        json!({"kind": "image", "path": "f/sleeper", "reference": "examples/images/busybox",
               "targets": {"execute": "#!/bin/sh\nsleep 600 &\nss-display sleeping\nwait\n"}}),
    ] {
        let path = m["path"].as_str().unwrap().to_string();
        assert!(c.put(format!("{base}/api/v1/modules/{path}")).json(&m).send().await.unwrap().status().is_success());
    }
    let mut runs = Vec::new();
    for _ in 0..2 {
        let r: Value =
            c.post(format!("{base}/api/v1/runs")).json(&json!({"module": "f/sleeper"})).send().await.unwrap().json().await.unwrap();
        runs.push(r["id"].as_str().unwrap().to_string());
    }
    for run in &runs {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d: Value = c.get(format!("{base}/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
            if d["params"]["machine.1:statecustom"] == "sleeping" {
                break;
            }
            assert!(Instant::now() < deadline, "run {run} did not start sleeping: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let before = processes_under(&work_dir);
    assert!(before.len() >= 4, "each run's agent, script and sleep are there: {before:#?}");
    server.kill_9();
    // Run 0: as if the server died before recording the instance's handle. Run 1: as if it
    // died after committing the run's end, before stopping anything.
    common::edit_database(&server.data_dir, "UPDATE run_instances SET handle = '' WHERE run_id = $1", &runs[0]).await;
    common::edit_database(&server.data_dir, "UPDATE runs SET state = 'Done', ended_at = state_changed_at WHERE id = $1", &runs[1]).await;
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_under(&work_dir);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the reaper left these running: {left:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = c.get(format!("{base}/api/v1/runs/{}/state", runs[0])).send().await.unwrap().text().await.unwrap();
    assert_eq!(first, "Aborted", "a run caught before its start was recorded is aborted");
    let log = std::fs::read_to_string(server.data_dir.join("server.log")).unwrap_or_default();
    println!("{} processes of 2 crashed runs stopped by the reaper", before.len());
    assert!(log.contains("reaper stopped instances"), "the reaper says what it did");
}
