//! Runs end to end: the real server, the real static agent (`SLIPSTREAM_AGENT_BIN`, built by
//! `cargo xtask test`) and the local connector. No mocks: every instance is an agent process
//! running the modules' scripts on its own loopback address.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testkit::{ServerOptions, TestServer};

#[tokio::test]
async fn hello_world_reaches_done_with_the_fetched_text_and_both_reports() {
    for (db, url) in engine::testing::backend_urls().await {
        let s = spawn(url).await;
        let run = s.launch(json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never"})).await;
        assert_eq!(s.finished(&run).await, "Done", "{db}");
        let d = s.detail(&run).await;
        assert_eq!(statecustom(&d, "testclient1.1"), "OK: Hello from Apache deployed by SlipStream!", "{db}: {d}");
        assert_eq!(s.report_file(&run, "testclient1.1", "data.txt").await.trim(), "Hello from Apache deployed by SlipStream!", "{db}");
        assert!(s.report_file(&run, "apache1.1", "httpd.log").await.contains("/data.txt"), "{db}: the server log shows the client's fetch");
        let events: Value = s.c.get(s.api(&format!("/runs/{run}/events"))).send().await.unwrap().json().await.unwrap();
        let states: Vec<&str> =
            events.as_array().unwrap().iter().filter(|e| e["kind"] == "state").map(|e| e["message"].as_str().unwrap()).collect();
        assert_eq!(states, ["Provisioning", "Executing", "SendingReports", "Ready", "Finalizing", "Done"], "{db}");
        let logs: Value = s.c.get(s.api(&format!("/runs/{run}/logs?instance=apache1.1"))).send().await.unwrap().json().await.unwrap();
        assert!(logs.as_array().unwrap().iter().any(|l| l["line"].as_str().unwrap().contains("ss-set ready true")), "{db}: live logs");
        s.wait_stopped(&run).await;
    }
}

#[tokio::test]
async fn the_performance_variant_runs_with_3_and_with_50_clients() {
    let s = sqlite().await;
    for clients in [3, 50] {
        let run = s
            .launch(json!({"module": "examples/tutorials/performance/deployment", "keep_running": "never",
                                  "multiplicity": {"testsuite": clients}}))
            .await;
        assert_eq!(s.finished(&run).await, "Done", "{clients} clients");
        let d = s.detail(&run).await;
        for i in 1..=clients {
            assert_eq!(statecustom(&d, &format!("testsuite.{i}")), "OK: Hello from Apache deployed by SlipStream!", "testsuite.{i}");
        }
    }
}

#[tokio::test]
async fn the_cluster_master_lists_every_worker_and_workers_get_the_key() {
    let s = sqlite().await;
    let run = s.launch(json!({"module": "examples/cluster/cluster", "keep_running": "never", "multiplicity": {"worker": 4}})).await;
    assert_eq!(s.finished(&run).await, "Done");
    let d = s.detail(&run).await;
    let master = statecustom(&d, "master.1");
    for i in 1..=4 {
        let addr = d["params"][format!("worker.{i}:hostname")].as_str().unwrap().to_string();
        assert!(master.contains(&addr), "master lists worker.{i} ({addr}): {master}");
        assert_eq!(statecustom(&d, &format!("worker.{i}")), "Joined with a 1024-byte key");
    }
    let key = d["params"]["master.1:munge_key64"].as_str().unwrap();
    assert_eq!(key.len(), 1368, "1024 bytes in base64");
}

/// A project with two images: `t/aborter` and `t/waiter`, for the abort and timeout stories.
async fn save_test_images(s: &Server) {
    s.save(json!({"kind": "project", "path": "t"})).await;
    s.save(json!({"kind": "image", "path": "t/aborter", "reference": "examples/images/busybox",
        "parameters": [{"name": "never", "category": "output"}],
        "targets": {"execute": "#!/bin/sh\nsleep 1\nss-abort \"reason from the aborter\"\n",
                    "report": "#!/bin/sh\necho reported > \"$SLIPSTREAM_REPORT_DIR/aborter.txt\"\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "t/waiter", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\nstart=$(date +%s)\nss-get --timeout 300 aborter:never\ncode=$?\necho \"exit=$code after=$(( $(date +%s) - start ))\" > \"$SLIPSTREAM_REPORT_DIR/result.txt\"\n"}})).await;
}

#[tokio::test]
async fn ss_abort_releases_every_blocked_reader_with_exit_8_and_reports_are_still_collected() {
    let s = sqlite().await;
    save_test_images(&s).await;
    s.save(json!({"kind": "deployment", "path": "t/abort", "nodes": {
        "aborter": {"image": "t/aborter"}, "waiter": {"image": "t/waiter", "multiplicity": 3}}}))
        .await;
    let run = s.launch(json!({"module": "t/abort", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let d = s.detail(&run).await;
    assert_eq!(d["abort"], "reason from the aborter");
    assert_eq!(d["params"]["aborter.1:abort"], "reason from the aborter");
    for i in 1..=3 {
        let result = s.report_file(&run, &format!("waiter.{i}"), "result.txt").await;
        let after: u64 = result.trim().rsplit('=').next().unwrap().parse().unwrap();
        assert!(result.starts_with("exit=8 "), "waiter.{i}: {result}");
        assert!(after <= 3, "waiter.{i} was released at once, not after its timeout: {result}");
    }
    assert_eq!(s.report_file(&run, "aborter.1", "aborter.txt").await.trim(), "reported", "the report target still ran");
    let r = s.c.get(s.api(&format!("/runs/{run}/params/aborter.1:never"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "parameter calls of an aborted run fail fast");
}

#[tokio::test]
async fn a_failing_execute_aborts_with_the_scripts_last_stderr_line() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "f"})).await;
    s.save(json!({"kind": "image", "path": "f/broken", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\necho working\necho 'first complaint' >&2\necho 'the disk is full' >&2\nexit 3\n"}}))
        .await;
    let run = s.launch(json!({"module": "f/broken", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    for part in ["f/broken", "execute", "machine.1", "exit code 3", "the disk is full"] {
        assert!(abort.contains(part), "`{part}` in: {abort}");
    }
}

#[tokio::test]
async fn recipes_then_targets_run_root_image_first() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "r"})).await;
    s.save(json!({"kind": "image", "path": "r/parent", "reference": "examples/images/busybox",
        "recipe": "#!/bin/sh\necho parent-recipe >> order.txt\n",
        "targets": {"execute": "#!/bin/sh\necho parent-execute >> order.txt\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "r/child", "reference": "r/parent",
        "prerecipe": "#!/bin/sh\necho child-prerecipe >> order.txt\n",
        "recipe": "#!/bin/sh\necho child-recipe >> order.txt\n",
        "targets": {"execute": "#!/bin/sh\necho child-execute >> order.txt\ncp order.txt \"$SLIPSTREAM_REPORT_DIR\"\n"}}))
        .await;
    let run = s.launch(json!({"module": "r/child", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done");
    let order = s.report_file(&run, "machine.1", "order.txt").await;
    assert_eq!(order.lines().collect::<Vec<_>>(), ["child-prerecipe", "parent-recipe", "child-recipe", "parent-execute", "child-execute"]);
}

#[tokio::test]
async fn a_run_stuck_in_a_state_times_out_naming_the_instances_and_is_stopped() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "slow"})).await;
    s.save(json!({"kind": "image", "path": "slow/sleeper", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\nsleep 300\n", "report": "#!/bin/sh\necho reported > \"$SLIPSTREAM_REPORT_DIR/r.txt\"\n"}}))
        .await;
    let t = Instant::now();
    let run = s.launch(json!({"module": "slow/sleeper", "keep_running": "never", "timeout": 3})).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    assert!(t.elapsed() < Duration::from_secs(30), "stopped long before the script's 300 s: {:?}", t.elapsed());
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    assert!(abort.contains("timed out") && abort.contains("Executing") && abort.contains("machine.1"), "{abort}");
    assert_eq!(s.report_file(&run, "machine.1", "r.txt").await.trim(), "reported", "reports are kept on timeout");
}

#[tokio::test]
async fn ss_abort_cancel_clears_the_flag_and_the_run_goes_on() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "dbg"})).await;
    s.save(json!({"kind": "image", "path": "dbg/flaky", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh -e\nss-abort \"first try failed\"\nss-abort --cancel\nsleep 3\nss-display recovered\n"}}))
        .await;
    let run = s.launch(json!({"module": "dbg/flaky", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done");
    let d = s.detail(&run).await;
    assert_eq!(statecustom(&d, "machine.1"), "recovered", "not stopped after the grace period: {d}");
    let events: Value = s.c.get(s.api(&format!("/runs/{run}/events"))).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"abort") && kinds.contains(&"abort-cancelled"), "{kinds:?}");
}

#[tokio::test]
async fn deploying_needs_the_deploy_right() {
    let s = sqlite().await;
    save_test_images(&s).await;
    let other = client();
    other.post(s.api("/auth/register")).json(&json!({"name": "oscar", "password": "battery staple"})).send().await.unwrap();
    // The local connector is for administrators and the users they allow.
    s.c.put(s.api("/users/oscar/connectors/local")).json(&json!({"allowed": true})).send().await.unwrap();
    let r = other.post(s.api("/runs")).json(&json!({"module": "t/waiter"})).send().await.unwrap();
    assert_eq!(r.status(), 403, "private module");
    s.c.patch(s.api("/modules/t/waiter")).json(&json!({"public": {"read": true}})).send().await.unwrap();
    assert_eq!(other.post(s.api("/runs")).json(&json!({"module": "t/waiter"})).send().await.unwrap().status(), 403, "read is not deploy");
    s.c.patch(s.api("/modules/t/waiter")).json(&json!({"public": {"deploy": true}})).send().await.unwrap();
    let r = other.post(s.api("/runs")).json(&json!({"module": "t/waiter", "keep_running": "never", "timeout": 5})).send().await.unwrap();
    assert_eq!(r.status(), 201, "public deploy");
    let run = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let bad = other.post(s.api("/runs")).json(&json!({"module": "t/waiter", "multiplicity": {"nope": 2}})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "multiplicity.nope");
    let r = client().post(s.api("/runs")).json(&json!({"module": "t/waiter"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Leave nothing running behind the test: the waiter would outlive the server.
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    s.wait_stopped(&run).await;
}

#[tokio::test]
async fn ss_get_with_timeout_2_exits_9_after_about_2_seconds() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "g"})).await;
    s.save(json!({"kind": "image", "path": "g/impatient", "reference": "examples/images/busybox",
        "parameters": [{"name": "never", "category": "output"}],
        "targets": {"execute": "#!/bin/sh\nstart=$(date +%s%N)\nss-get --timeout 2 never 2> err.txt\ncode=$?\nms=$(( ($(date +%s%N) - start) / 1000000 ))\necho \"exit=$code ms=$ms $(cat err.txt)\" > \"$SLIPSTREAM_REPORT_DIR/result.txt\"\n"}})).await;
    let run = s.launch(json!({"module": "g/impatient", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done");
    let result = s.report_file(&run, "machine.1", "result.txt").await;
    let ms: u64 = result.split_whitespace().find_map(|w| w.strip_prefix("ms=")).unwrap().parse().unwrap();
    assert!(result.starts_with("exit=9 "), "{result}");
    assert!((1900..4000).contains(&ms), "waited {ms} ms: {result}");
    assert!(result.contains("Exceeded timeout limit of 2 waiting for key 'machine.1:never' to be set"), "{result}");
}

/// `ss-get --noblock` on a key nobody set prints an empty line and exits 0, as the original
/// did (scripts test the text); on a set key it prints the value.
#[tokio::test]
async fn ss_get_noblock_prints_an_empty_line_for_an_unset_key_and_exits_0() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "n"})).await;
    s.save(json!({"kind": "image", "path": "n/peek", "reference": "examples/images/busybox",
        "parameters": [{"name": "never", "category": "output"}, {"name": "given", "category": "output", "default": "42"}],
        "targets": {"execute": "#!/bin/sh\nv=$(ss-get --noblock never)\nunset_code=$?\nw=$(ss-get --noblock given)\nset_code=$?\nbytes=$(ss-get --noblock never | wc -c)\necho \"unset=[$v] code=$unset_code set=[$w] code=$set_code bytes=$bytes\" > \"$SLIPSTREAM_REPORT_DIR/result.txt\"\n"}})).await;
    let run = s.launch(json!({"module": "n/peek", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done");
    let result = s.report_file(&run, "machine.1", "result.txt").await;
    assert!(result.starts_with("unset=[] code=0 set=[42] code=0 "), "{result}");
    assert_eq!(result.split("bytes=").nth(1).map(str::trim), Some("1"), "one newline and nothing else: {result}");
}

#[tokio::test]
async fn keep_running_on_error_leaves_instances_up_after_an_abort_until_terminated() {
    let s = sqlite().await;
    save_test_images(&s).await;
    let run = s.launch(json!({"module": "t/aborter", "keep_running": "on-error"})).await;
    assert_eq!(s.wait_state(&run, |st| st == "Ready" || st.ends_with("ed") || st == "Done").await, "Ready");
    let d = s.detail(&run).await;
    assert_eq!(d["abort"], "reason from the aborter");
    assert!(d["instances"][0]["running"].as_bool().unwrap(), "kept for debugging: {d}");
    let r = s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.finished(&run).await, "Aborted");
    s.wait_stopped(&run).await;
}

#[tokio::test]
async fn parameters_are_checked_set_linked_and_read_with_a_deadline() {
    let s = sqlite().await;
    save_test_images(&s).await;
    // keep_running always: the run stays in Ready and its parameters stay writable.
    let run = s.launch(json!({"module": "t/waiter", "keep_running": "always", "timeout": 600})).await;
    let p = |k: &str| s.api(&format!("/runs/{run}/params/{k}"));
    let r = s.c.get(p("machine.1:nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("machine.1:nothing"), "the error names the key");
    let r = s.c.put(p("machine.1:statecustom")).body("x".repeat(4097)).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("4096"), "the error names the limit");
    let r = s.c.put(p("machine.1:statecustom")).body("x".repeat(4096)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let t = Instant::now();
    let r = s.c.get(format!("{}?wait=1", p("machine.1:url.service"))).send().await.unwrap();
    assert_eq!(r.status(), 408);
    assert!(t.elapsed() >= Duration::from_millis(900), "waited until the deadline");
    // A blocked read returns as soon as another caller sets the key.
    let reader = {
        let (c, url) = (s.c.clone(), format!("{}?wait=30", p("machine.1:url.service")));
        tokio::spawn(async move {
            let t = Instant::now();
            let v = c.get(url).send().await.unwrap().text().await.unwrap();
            (v, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.c.put(p("machine.1:url.service")).body("http://example.test").send().await.unwrap();
    let (value, waited) = reader.await.unwrap();
    assert_eq!(value, "http://example.test");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let r = s.c.put(p("ss:state")).body("Done").send().await.unwrap();
    assert_eq!(r.status(), 403, "the state belongs to the orchestrator");
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    // Another user sees nothing of the run; its agent token opens nothing else.
    let other = client();
    other.post(s.api("/auth/register")).json(&json!({"name": "oscar", "password": "battery staple"})).send().await.unwrap();
    assert_eq!(other.get(s.api(&format!("/runs/{run}"))).send().await.unwrap().status(), 403);
    assert_eq!(other.get(p("machine.1:hostname")).send().await.unwrap().status(), 403);
    let r = client().get(s.api(&format!("/runs/{run}"))).bearer_auth("ssr_not_the_token").send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_server_killed_during_executing_comes_back_and_the_run_finishes_with_nothing_lost() {
    agent_bin();
    let mut server = TestServer::start(ServerOptions::default());
    let base = server.url.clone();
    let c = client();
    c.post(format!("{base}/api/v1/auth/register")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
    for m in [
        json!({"kind": "project", "path": "c"}),
        json!({"kind": "image", "path": "c/writer", "reference": "examples/images/busybox",
               "parameters": [{"name": "step1", "category": "output"}, {"name": "step2", "category": "output"}],
               "targets": {"execute": "#!/bin/sh -e\nss-set step1 done\nsleep 3\nss-set step2 done\n"}}),
        json!({"kind": "image", "path": "c/reader", "reference": "examples/images/busybox",
               "targets": {"execute": "#!/bin/sh -e\nv=$(ss-get --timeout 120 writer:step2)\nss-display \"got $v\"\n"}}),
        json!({"kind": "deployment", "path": "c/d", "nodes": {"writer": {"image": "c/writer"}, "reader": {"image": "c/reader", "multiplicity": 2}}}),
    ] {
        let path = m["path"].as_str().unwrap().to_string();
        assert!(c.put(format!("{base}/api/v1/modules/{path}")).json(&m).send().await.unwrap().status().is_success());
    }
    let run: Value = c
        .post(format!("{base}/api/v1/runs"))
        .json(&json!({"module": "c/d", "keep_running": "never"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = run["id"].as_str().unwrap().to_string();
    // Wait until step1 is written (Executing, the writer sleeping), then SIGKILL the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.get(format!("{base}/api/v1/runs/{run}/params/writer.1:step1?wait=5")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "step1 was never written");
    }
    server.kill_9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(90);
    let state = loop {
        let st = c.get(format!("{base}/api/v1/runs/{run}/state?wait=10&from=Executing")).send().await.unwrap().text().await.unwrap();
        if ["Done", "Aborted", "Cancelled"].contains(&st.as_str()) {
            break st;
        }
        assert!(Instant::now() < deadline, "the run did not finish after the restart: {st}");
    };
    let d: Value = c.get(format!("{base}/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state, "Done", "{d}");
    assert_eq!(d["params"]["writer.1:step1"], "done", "written before the crash");
    assert_eq!(d["params"]["writer.1:step2"], "done", "written while the server was down: retried");
    assert_eq!(statecustom(&d, "reader.1"), "got done");
    assert_eq!(statecustom(&d, "reader.2"), "got done");
}

/// Writes are committed in groups; each is answered only once its group committed. A burst
/// of concurrent writes, the server SIGKILLed the moment the last answer arrives: after the
/// restart every answered value is there (SQLite's default, WAL with synchronous=NORMAL,
/// writes each commit to the WAL file before it returns).
#[tokio::test]
async fn every_answered_write_of_a_burst_survives_a_sigkill_right_after_it() {
    agent_bin();
    let mut server = TestServer::start(ServerOptions { no_examples: true, ..Default::default() });
    let base = server.url.clone();
    let c = client();
    c.post(format!("{base}/api/v1/auth/register")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
    const KEYS: usize = 400;
    let params: Vec<Value> = (0..KEYS).map(|i| json!({"name": format!("k{i}"), "category": "output"})).collect();
    for m in [
        json!({"kind": "project", "path": "d"}),
        json!({"kind": "image", "path": "d/kv", "native": true, "images": {"local": "host"}, "parameters": params,
               "targets": {"execute": "#!/bin/sh\nexec sleep 600\n"}}),
        json!({"kind": "deployment", "path": "d/run", "nodes": {"kv": {"image": "d/kv"}}}),
    ] {
        let path = m["path"].as_str().unwrap().to_string();
        assert!(c.put(format!("{base}/api/v1/modules/{path}")).json(&m).send().await.unwrap().status().is_success());
    }
    let run: Value = c.post(format!("{base}/api/v1/runs")).json(&json!({"module": "d/run"})).send().await.unwrap().json().await.unwrap();
    let run = run["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut st = String::new();
    while st != "Executing" {
        assert!(Instant::now() < deadline, "the run did not reach Executing: {st}");
        let from = if st.is_empty() { String::new() } else { format!("from={st}&") };
        st = c.get(format!("{base}/api/v1/runs/{run}/state?{from}wait=10")).send().await.unwrap().text().await.unwrap();
    }
    // 400 writers at once (distinct keys, so "the last value" is never ambiguous).
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writes = (0..KEYS).map(|i| {
        let (c, url, answered) = (c.clone(), format!("{base}/api/v1/runs/{run}/params/kv.1:k{i}"), answered.clone());
        async move {
            if let Ok(r) = c.put(url).body(format!("value {i}")).send().await {
                if r.status().is_success() {
                    answered.lock().unwrap().push(i);
                }
            }
        }
    });
    futures::future::join_all(writes).await;
    server.kill_9();
    let answered = answered.lock().unwrap().clone();
    assert_eq!(answered.len(), KEYS, "every write was answered before the kill");
    server.restart();
    // A fresh client: the old one's pooled connections went with the killed server.
    let c = client();
    c.post(format!("{base}/api/v1/auth/login")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
    let d: Value = c.get(format!("{base}/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    let lost: Vec<usize> = answered.iter().copied().filter(|i| d["params"][format!("kv.1:k{i}")] != format!("value {i}")).collect();
    assert!(lost.is_empty(), "answered writes lost after SIGKILL: {lost:?}");
    c.delete(format!("{base}/api/v1/runs/{run}")).send().await.unwrap();
    let st = c.get(format!("{base}/api/v1/runs/{run}/state?from=Executing&wait=30")).send().await.unwrap().text().await.unwrap();
    assert!(["Cancelled", "Finalizing"].contains(&st.as_str()), "{st}");
}

/// Reads websocket messages until `stop` says so (30 s at most).
async fn read_ws<S>(ws: &mut S, stop: impl Fn(&Value) -> bool) -> Vec<Value>
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures::StreamExt;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.expect("messages keep coming").expect("socket open").unwrap();
        if let Ok(text) = msg.to_text() {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                let done = stop(&v);
                seen.push(v);
                if done {
                    return seen;
                }
            }
        }
    }
}

#[tokio::test]
async fn the_websocket_streams_every_state_change_and_a_reconnect_misses_none() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = sqlite().await;
    let token: Value = s.c.post(s.api("/auth/tokens")).json(&json!({"name": "ws"})).send().await.unwrap().json().await.unwrap();
    let connect = |query: String| {
        let mut req = format!("{}/api/v1/ws{query}", s.base.replace("http://", "ws://")).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {}", token["token"].as_str().unwrap()).parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    let (mut ws, _) = connect(String::new()).await.expect("websocket opens");
    let run = s.launch(json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never"})).await;
    let seen = read_ws(&mut ws, |v| v["type"] == "state" && v["state"] == "Done").await;
    let states: Vec<&str> =
        seen.iter().filter(|v| v["type"] == "state" && v["run"] == run.as_str()).map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["Provisioning", "Executing", "SendingReports", "Ready", "Finalizing", "Done"]);
    assert!(seen.iter().any(|v| v["type"] == "param" && v["key"] == "testclient1.1:statecustom"), "statecustom is pushed");
    assert!(seen.iter().any(|v| v["type"] == "log" && v["line"]["instance"] == "apache1.1"), "log lines are pushed");

    // A client that saw only the creation reconnects: every state change is replayed, once.
    let created = seen.iter().find(|v| v["type"] == "event" && v["event"]["kind"] == "created").expect("creation event")["event"]["seq"]
        .as_i64()
        .unwrap();
    drop(ws);
    let (mut again, _) = connect(format!("?run={run}&since={created}")).await.unwrap();
    let replay = read_ws(&mut again, |v| v["type"] == "event" && v["event"]["message"] == "Done").await;
    let replayed: Vec<&str> =
        replay.iter().filter(|v| v["event"]["kind"] == "state").map(|v| v["event"]["message"].as_str().unwrap()).collect();
    assert_eq!(replayed, ["Provisioning", "Executing", "SendingReports", "Ready", "Finalizing", "Done"]);
    let r = client().get(s.api("/ws")).send().await.unwrap();
    assert_eq!(r.status(), 401, "anonymous visitors get nothing");
}

#[tokio::test]
async fn local_instances_get_none_of_the_servers_own_environment() {
    let db = format!("sqlite:{}", testkit::temp_dir("env").join("s.db").display());
    let env = vec![("SLIPSTREAM_PROBE_SECRET".to_string(), "do-not-leak".to_string()), ("SLIPSTREAM_DATABASE_URL".to_string(), db)];
    let s = spawn_with(ServerOptions { env, ..Default::default() }).await;
    s.save(json!({"kind": "project", "path": "e"})).await;
    s.save(json!({"kind": "image", "path": "e/env", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\nenv > \"$SLIPSTREAM_REPORT_DIR/env.txt\"\n"}}))
        .await;
    let run = s.launch(json!({"module": "e/env", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done");
    let env = s.report_file(&run, "machine.1", "env.txt").await;
    assert!(!env.contains("do-not-leak") && !env.contains("DATABASE_URL"), "the server's environment leaked: {env}");
    assert!(env.contains("SLIPSTREAM_NODE_INSTANCE_NAME=machine.1") && env.contains("SLIPSTREAM_REPORT_DIR="), "{env}");
}

#[tokio::test]
async fn local_instances_of_a_root_server_run_as_unprivileged_users_of_their_own_with_limits() {
    // The database in the data directory, as in the quick start.
    let s = spawn_with(ServerOptions::default()).await;
    let database = s.server.data_dir.join("slipstream.db");
    assert!(database.exists(), "the server's database is {}", database.display());
    s.save(json!({"kind": "project", "path": "u"})).await;
    // Each of two instances tries the server's database and the other's environment (where
    // its run token is), while both are alive.
    s.save(json!({"kind": "image", "path": "u/who", "reference": "examples/images/busybox",
        "parameters": [{"name": "db", "category": "input", "default": "/nonexistent"}, {"name": "pid", "category": "output"}, {"name": "checked", "category": "output"}],
        "targets": {"execute": "#!/bin/sh\ndb=$(ss-get db)\n\
            if cat \"$db\" > /dev/null 2>&1; then seen=read; else seen=refused; fi\n\
            if [ \"$SLIPSTREAM_NODE_INSTANCE_NAME\" = machine.1 ]; then peer=machine.2; else peer=machine.1; fi\n\
            ss-set pid $$\np=$(ss-get $peer:pid)\n\
            if tr '\\0' '\\n' < /proc/$p/environ | grep -q SLIPSTREAM_RUN_TOKEN; then env=read; else env=refused; fi\n\
            ss-set checked yes\nss-get $peer:checked > /dev/null\n\
            touch mine && ss-display \"uid=$(id -u) gid=$(id -g) files=$(ulimit -n) db=$seen peer=$env\"\n"}}))
        .await;
    s.save(json!({"kind": "deployment", "path": "u/d", "nodes": {"machine": {"image": "u/who", "multiplicity": 2}}})).await;
    let run = s.launch(json!({"module": "u/d", "keep_running": "never", "params": {"machine:db": database.display().to_string()}})).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    let said = [statecustom(&d, "machine.1"), statecustom(&d, "machine.2")];
    let me = String::from_utf8(std::process::Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    if me.trim() == "0" {
        // The server runs as root here: its instances do not, each has a uid of its own, and
        // neither can read the database or the other's environment.
        let uids: Vec<u32> = said.iter().map(|t| t.strip_prefix("uid=").unwrap().split(' ').next().unwrap().parse().unwrap()).collect();
        assert_ne!(uids[0], uids[1], "{said:?}");
        for (text, uid) in said.iter().zip(&uids) {
            assert!(*uid >= 1_000_000_000, "from the default range: {text}");
            assert_eq!(text, &format!("uid={uid} gid={uid} files=4096 db=refused peer=refused"));
        }
        // The check can tell: with one user for all (the `user` option), the peer is readable.
        let settings = testkit::temp_dir("settings").join("slipstream.yaml");
        std::fs::write(&settings, "connectors:\n  local:\n    kind: local\n    options: {user: nobody}\n").unwrap();
        let shared =
            spawn_with(ServerOptions { args: vec!["--config".into(), settings.display().to_string()], ..Default::default() }).await;
        for m in ["u", "u/who", "u/d"] {
            let module: Value = s.c.get(s.api(&format!("/modules/{m}"))).send().await.unwrap().json().await.unwrap();
            shared.save(module).await;
        }
        let run = shared.launch(json!({"module": "u/d", "keep_running": "never"})).await;
        assert_eq!(shared.finished(&run).await, "Done", "{}", shared.detail(&run).await);
        assert!(statecustom(&shared.detail(&run).await, "machine.1").ends_with("peer=read"), "{}", shared.detail(&run).await);
    } else {
        // A server that is not root cannot change user: the instances run as the server's user.
        assert!(said.iter().all(|t| t.starts_with(&format!("uid={} ", me.trim()))), "{said:?}");
    }
}

#[tokio::test]
async fn a_scalable_run_gains_and_loses_instances_with_hooks_reports_and_quotas() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "sc"})).await;
    let hooks = json!({
        "execute": "#!/bin/sh -e\nss-display \"up\"\n",
        "onvmadd": "#!/bin/sh -e\necho \"add $SLIPSTREAM_SCALING_NODE $SLIPSTREAM_SCALING_VMS\" >> scaling.log\nss-display \"saw add $SLIPSTREAM_SCALING_NODE $SLIPSTREAM_SCALING_VMS\"\n",
        "onvmremove": "#!/bin/sh -e\necho \"remove $SLIPSTREAM_SCALING_NODE $SLIPSTREAM_SCALING_VMS\" >> scaling.log\nss-display \"saw remove $SLIPSTREAM_SCALING_NODE $SLIPSTREAM_SCALING_VMS\"\n",
        "report": "#!/bin/sh\necho \"report of $(ss-get hostname)\" > \"$SLIPSTREAM_REPORT_DIR/who.txt\"\n"});
    s.save(json!({"kind": "image", "path": "sc/db", "reference": "examples/images/busybox", "targets": hooks})).await;
    s.save(json!({"kind": "image", "path": "sc/web", "reference": "examples/images/busybox",
        "parameters": [{"name": "db.host", "category": "input"}], "targets": hooks}))
        .await;
    s.save(json!({"kind": "deployment", "path": "sc/d", "nodes": {
        "db": {"image": "sc/db"},
        "web": {"image": "sc/web", "multiplicity": 2, "links": {"db.host": "db:hostname"}}}}))
        .await;
    let run = s.launch(json!({"module": "sc/d", "scalable": true})).await;
    s.wait_state(&run, |st| st == "Ready").await;
    let nodes = |node: &str| s.api(&format!("/runs/{run}/nodes/{node}/instances"));
    let settled = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let d = s.detail(&run).await;
            if d["state"] == "Ready" && d["instances"].as_array().unwrap().iter().all(|i| i["scale"] == "") {
                return d;
            }
            assert!(std::time::Instant::now() < deadline, "the scaling did not finish: {d}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };

    // Add two: new indexes, parameters and links as the first ones had, onvmadd on the others.
    let r = s.c.post(nodes("web")).json(&json!({"count": 2})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["instances"], json!(["web.3", "web.4"]));
    let again = s.c.post(nodes("web")).json(&json!({"count": 1})).send().await.unwrap();
    assert_eq!(again.status(), 409, "one scaling at a time");
    assert!(again.text().await.unwrap().contains("vm_create of 'web' (web.3 web.4)"));
    let d = settled().await;
    assert_eq!((d["params"]["web:multiplicity"].as_str(), d["params"]["web:ids"].as_str()), (Some("4"), Some("1,2,3,4")), "{d}");
    assert_eq!(d["params"]["web.3:db.host"], d["params"]["db.1:hostname"], "the link reached the new instance");
    for i in ["db.1", "web.1", "web.2"] {
        assert_eq!(statecustom(&d, i), "saw add web web.3 web.4", "{i}: {d}");
    }
    for i in ["web.3", "web.4"] {
        assert_eq!(statecustom(&d, i), "up", "{i} deployed: {d}");
    }

    // Remove one: it reports again and is stopped; the others run onvmremove; its index is not reused.
    let r = s.c.delete(nodes("web")).json(&json!({"instances": ["web.2"]})).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let d = settled().await;
    assert_eq!((d["params"]["web:multiplicity"].as_str(), d["params"]["web:ids"].as_str()), (Some("3"), Some("1,3,4")), "{d}");
    assert!(d["instances"].as_array().unwrap().iter().all(|i| i["name"] != "web.2"), "web.2 is gone: {d}");
    for i in ["db.1", "web.1", "web.3", "web.4"] {
        assert_eq!(statecustom(&d, i), "saw remove web web.2", "{i}: {d}");
    }
    let reports: Value = s.c.get(s.api(&format!("/runs/{run}/reports"))).send().await.unwrap().json().await.unwrap();
    let of_web2 = reports.as_array().unwrap().iter().filter(|f| f["instance"] == "web.2").count();
    assert_eq!(of_web2, 2, "web.2 reported at deployment and when it left: {reports}");
    let r = s.c.post(nodes("web")).json(&json!({"count": 1})).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["instances"], json!(["web.5"]), "indexes are never reused");
    settled().await;

    // Quotas count the instances that stay: 5 in use, a quota of 6 lets one more in, not two.
    let r = s.c.put(s.api("/users/olivia/quotas/local")).json(&json!({"quota": 6})).send().await.unwrap();
    assert!(r.status().is_success());
    let r = s.c.post(nodes("db")).json(&json!({"count": 2})).send().await.unwrap();
    assert_eq!(r.status(), 429, "{}", r.text().await.unwrap());
    let r = s.c.post(nodes("nosuch")).json(&json!({"count": 1})).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Terminated: Done, every agent stopped.
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    assert_eq!(s.finished(&run).await, "Done");
    s.wait_stopped(&run).await;

    // A run that is not scalable is not scaled.
    let run = s.launch(json!({"module": "sc/d", "keep_running": "always"})).await;
    s.wait_state(&run, |st| st == "Ready").await;
    let r = s.c.post(s.api(&format!("/runs/{run}/nodes/web/instances"))).json(&json!({"count": 1})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("not scalable"));
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    s.wait_stopped(&run).await;
}

#[tokio::test]
async fn odd_output_odd_timeouts_and_huge_waits_neither_panic_nor_lose_lines() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "odd"})).await;
    // Bytes that are not UTF-8, a NUL, and enough of them to fill a pipe that is not drained.
    let execute = "#!/bin/sh\nprintf 'bad \\377 byte\\n'\nprintf 'nul \\000 here\\n'\n\
                   i=0; while [ $i -lt 3000 ]; do printf '\\377\\376 filler %d\\n' $i; i=$((i+1)); done\n\
                   ss-get --timeout inf machine.1:hostname > /dev/null; echo \"inf: $?\"\n\
                   ss-get --timeout -1 machine.1:hostname; echo \"negative: $?\"\n\
                   ss-display finished\n";
    s.save(json!({"kind": "image", "path": "odd/out", "reference": "examples/images/busybox", "targets": {"execute": execute}})).await;
    let run = s.launch(json!({"module": "odd/out", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "finished");
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = s.c.get(s.api(&format!("/runs/{run}/logs?after={after}&limit=5000"))).send().await.unwrap().json().await.unwrap();
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap()["seq"].as_i64().unwrap();
        lines.extend(page.into_iter().map(|l| l["line"].as_str().unwrap().to_string()));
    }
    for want in ["bad \u{FFFD} byte", "nul \u{FFFD} here", "\u{FFFD}\u{FFFD} filler 2999", "inf: 0", "negative: 7"] {
        assert!(lines.iter().any(|l| l == want), "`{want}` in the output");
    }
    // Waits too long for a clock are capped, not a panic; a negative one is refused.
    for wait in ["inf", "1e30", "18446744073709551616"] {
        let r = s.c.get(s.api(&format!("/runs/{run}/params/ss:tags?wait={wait}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "wait={wait}");
        let r = s.c.get(s.api(&format!("/runs/{run}/state?from=Executing&wait={wait}"))).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "Done", "wait={wait}");
    }
    let r = s.c.get(s.api(&format!("/runs/{run}/params/ss:tags?wait=-1"))).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_report_over_the_limit_is_refused_and_the_run_still_ends_with_the_logs() {
    let env = vec![("SLIPSTREAM_REPORT_LIMIT_MB".to_string(), "1".to_string())];
    let s = spawn_with(ServerOptions { env, ..Default::default() }).await;
    s.save(json!({"kind": "project", "path": "big"})).await;
    s.save(json!({"kind": "image", "path": "big/report", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\necho working\n",
                    "report": "#!/bin/sh\nhead -c 3000000 /dev/urandom > \"$SLIPSTREAM_REPORT_DIR/big.bin\"\n"}}))
        .await;
    let run = s.launch(json!({"module": "big/report", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let reports: Value = s.c.get(s.api(&format!("/runs/{run}/reports"))).send().await.unwrap().json().await.unwrap();
    let files = reports.as_array().unwrap();
    assert_eq!(files.len(), 1, "the logs went instead: {reports}");
    assert!(files[0]["size"].as_i64().unwrap() < 1 << 20, "{reports}");
    let logs = s.c.get(s.api(&format!("/runs/{run}/logs"))).send().await.unwrap().text().await.unwrap();
    assert!(logs.contains("over the limit of 1 MiB") && logs.contains("sending the script logs only"), "{logs}");
    // Straight to the API: 413 naming the limit, nothing kept. (The server answers before
    // reading the whole body and closes that connection: the client must not reuse it.)
    let r =
        s.c.put(s.api(&format!("/runs/{run}/reports/machine.1/huge.tgz")))
            .header("connection", "close")
            .body(vec![0u8; 2 << 20])
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("1 MiB"));
    let reports: Value = s.c.get(s.api(&format!("/runs/{run}/reports"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_runs_token_works_for_that_run_only_and_not_after_it_ended() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "tok"})).await;
    // The report keeps the instance's token, as anything on an instance could.
    s.save(json!({"kind": "image", "path": "tok/leak", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\ntrue\n", "report": "#!/bin/sh\nprintf %s \"$SLIPSTREAM_RUN_TOKEN\" > \"$SLIPSTREAM_REPORT_DIR/token\"\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "tok/wait", "reference": "examples/images/busybox",
        "parameters": [{"name": "go", "category": "output"}], "targets": {"execute": "#!/bin/sh\nss-get --timeout 300 go\n"}}))
        .await;
    let a = s.launch(json!({"module": "tok/leak", "keep_running": "never"})).await;
    assert_eq!(s.finished(&a).await, "Done");
    let token = s.report_file(&a, "machine.1", "token").await;
    assert!(token.starts_with("ssr_"), "{token}");
    let b = s.launch(json!({"module": "tok/wait", "keep_running": "never"})).await;
    s.wait_state(&b, |st| st == "Executing").await;
    let agent = client();
    // Run A's token on run B: refused.
    let r = agent.get(s.api(&format!("/runs/{b}/params/ss:tags"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not valid for run"));
    // On its own run, once that ended: refused, reading and writing.
    let r = agent.get(s.api(&format!("/runs/{a}/params/ss:tags"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("has ended"));
    let r = agent.post(s.api(&format!("/runs/{a}/abort"))).bearer_auth(&token).json(&json!({"message": "late"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.detail(&a).await["abort"], Value::Null, "the ended run's abort was not changed");
    s.c.delete(s.api(&format!("/runs/{b}"))).send().await.unwrap();
    assert_eq!(s.finished(&b).await, "Cancelled");
}

/// A `secret` input: the script gets its value; the run's output, events, answers and
/// websocket show it masked; the owner sees it on request.
#[tokio::test]
async fn secret_parameters_reach_the_script_and_are_masked_everywhere_else() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "sec"})).await;
    s.save(json!({"kind": "image", "path": "sec/db", "reference": "examples/images/busybox",
        "parameters": [{"name": "password", "type": "secret", "default": "not-this-one"}],
        "targets": {"execute": "#!/bin/sh\npw=$(ss-get password)\necho \"connecting with $pw\"\necho \"stderr has $pw too\" >&2\nss-set statecustom \"length=${#pw}\"\n",
            "report": "#!/bin/sh\npw=$(ss-get password)\necho \"reporting with $pw\"\necho \"$pw\" > \"$SLIPSTREAM_REPORT_DIR/key-$pw.txt\"\n"}})).await;
    let mut ws = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let token: Value = s.c.post(s.api("/auth/tokens")).json(&json!({"name": "ws"})).send().await.unwrap().json().await.unwrap();
        let mut req = s.api("/ws").replacen("http", "ws", 1).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {}", token["token"].as_str().unwrap()).parse().unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap().0
    };
    let secret = "hunter2-correct-horse";
    let run = s.launch(json!({"module": "sec/db", "keep_running": "always", "params": {"password": secret}})).await;
    s.wait_state(&run, |st| st == "Ready").await;
    let detail = s.detail(&run).await;
    assert_eq!(statecustom(&detail, "machine.1"), format!("length={}", secret.len()), "the script read the real value");
    assert_eq!(detail["params"]["machine.1:password"], engine::runs::MASK);
    let logs = s.c.get(s.api(&format!("/runs/{run}/logs"))).send().await.unwrap().text().await.unwrap();
    assert!(logs.contains("connecting with ********") && logs.contains("stderr has ********"), "{logs}");
    let params = s.c.get(s.api(&format!("/runs/{run}/params"))).send().await.unwrap().text().await.unwrap();
    let one = s.c.get(s.api(&format!("/runs/{run}/params/machine.1:password"))).send().await.unwrap().text().await.unwrap();
    let page = s.c.get(format!("{}/runs/{run}", s.base)).send().await.unwrap().text().await.unwrap();
    for (what, text) in [("logs", &logs), ("params", &params), ("one param", &one), ("run page", &page)] {
        assert!(!text.contains(secret), "{what} shows the secret");
    }
    assert_eq!(one, engine::runs::MASK);
    // The report bundle: the logged output and the names redacted, the script's own file kept.
    let logged = s.report_file(&run, "machine.1", "slipstream-execute.log").await;
    assert!(logged.contains("connecting with ********") && !logged.contains(secret), "{logged}");
    assert!(s.report_file(&run, "machine.1", "slipstream-report.log").await.contains("reporting with ********"));
    assert_eq!(s.report_file(&run, "machine.1", "key-********.txt").await.trim(), secret, "the script's own file");
    // The owner, on request.
    let shown: Value = s.c.get(s.api(&format!("/runs/{run}?secrets=show"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["params"]["machine.1:password"], secret);
    let one = s.c.get(s.api(&format!("/runs/{run}/params/machine.1:password?secrets=show"))).send().await.unwrap().text().await.unwrap();
    assert_eq!(one, secret);
    // A secret written while the run is live goes out masked on the websocket.
    s.c.put(s.api(&format!("/runs/{run}/params/machine.1:password"))).body("another-secret-value").send().await.unwrap();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline && !seen.contains("machine.1:password") {
        use futures::StreamExt;
        if let Ok(Some(Ok(m))) = tokio::time::timeout(std::time::Duration::from_secs(1), ws.next()).await {
            seen.push_str(&m.into_text().map(|t| t.to_string()).unwrap_or_default());
        }
    }
    assert!(seen.contains("machine.1:password") && !seen.contains("another-secret-value") && !seen.contains(secret), "{seen}");
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    s.wait_stopped(&run).await;
}
