//! Runs on the SSH connector, end to end: the real server and the real static agent on SSH
//! hosts that each test makes (network namespaces with their own `10.200.x` address, each
//! running Debian's sshd; see `testkit::SshHosts`). After every run nothing of it is left on
//! any host: no process in its namespace but sshd, no instance directory.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testkit::{ServerOptions, SshHosts};

/// A server with the connectors `local` and `ssh` (the examples' image ids name both) — and
/// `docker` when the Docker test bed is there — with `extra` YAML under `connectors:`.
async fn ssh_server(hosts: &SshHosts, slots: usize, pool_key: bool, pin: &[(usize, &str)], docker: bool) -> Server {
    let mut yaml = format!("connectors:\n  local:\n    kind: local\n{}", hosts.connector_yaml("ssh", slots, pool_key, pin));
    if docker {
        let endpoint = std::env::var("SLIPSTREAM_TEST_DOCKER").expect("SLIPSTREAM_TEST_DOCKER names the Docker test bed");
        yaml.push_str(&format!("  docker:\n    kind: docker\n    endpoint: {endpoint}\n"));
    }
    let file = testkit::temp_dir("settings").join("slipstream.yaml");
    std::fs::write(&file, yaml).unwrap();
    spawn_with(ServerOptions { args: vec!["--config".into(), file.display().to_string()], ..Default::default() }).await
}

fn on(connector: &str, nodes: &[&str]) -> Value {
    Value::Object(nodes.iter().map(|n| (n.to_string(), json!(connector))).collect())
}

/// Waits (stopping is asynchronous) until no host runs anything of the runs and no instance
/// directory is left.
async fn nothing_left(hosts: &SshHosts) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let procs: Vec<String> = hosts.hosts.iter().flat_map(|h| h.leftovers()).collect();
        let dirs: Vec<String> = hosts.hosts.iter().flat_map(|h| h.instance_dirs()).collect();
        if procs.is_empty() && dirs.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left on the hosts: processes {procs:?}, directories {dirs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn hello_world_and_the_cluster_run_on_ssh_hosts() {
    let hosts = SshHosts::start(2);
    let s = ssh_server(&hosts, 2, true, &[], false).await;
    let t = Instant::now();
    let run = s
        .launch(json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never",
                       "connectors": on("ssh", &["apache1", "testclient1"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    eprintln!("Hello World on two SSH hosts: launch to Done in {:.2} s", t.elapsed().as_secs_f64());
    let d = s.detail(&run).await;
    assert_eq!(statecustom(&d, "testclient1.1"), "OK: Hello from Apache deployed by SlipStream!", "{d}");
    let web = d["params"]["apache1.1:hostname"].as_str().unwrap().to_string();
    let client = d["params"]["testclient1.1:hostname"].as_str().unwrap().to_string();
    let addresses: Vec<&str> = hosts.hosts.iter().map(|h| h.address.as_str()).collect();
    assert!(
        addresses.contains(&web.as_str()) && addresses.contains(&client.as_str()),
        "hostnames are the hosts' addresses: {web} {client}"
    );
    assert_ne!(web, client, "the least-loaded host takes the next instance");
    nothing_left(&hosts).await;

    // Four instances on two hosts of two slots each.
    let run = s
        .launch(json!({"module": "examples/cluster/cluster", "keep_running": "never", "multiplicity": {"worker": 3},
                       "connectors": on("ssh", &["master", "worker"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    for i in 1..=3 {
        assert_eq!(statecustom(&d, &format!("worker.{i}")), "Joined with a 1024-byte key", "{d}");
    }
    assert!(statecustom(&d, "master.1").starts_with("Cluster ready with 3 workers"), "{d}");
    nothing_left(&hosts).await;

    // A fifth instance has no slot: refused, naming the connector; nothing is double-booked.
    let run = s
        .launch(json!({"module": "examples/cluster/cluster", "keep_running": "never", "multiplicity": {"worker": 4},
                       "connectors": on("ssh", &["master", "worker"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    assert!(abort.contains("connector `ssh`") && abort.contains("every host is full"), "{abort}");
    nothing_left(&hosts).await;
}

#[tokio::test]
async fn a_deployment_split_over_ssh_hosts_and_docker_shares_its_parameters() {
    if std::env::var("SLIPSTREAM_TEST_DOCKER").is_err() {
        panic!("SLIPSTREAM_TEST_DOCKER must name the Docker test bed (cargo xtask test starts one)");
    }
    let hosts = SshHosts::start(2);
    let s = ssh_server(&hosts, 2, true, &[], true).await;
    let run = s
        .launch(json!({"module": "examples/cluster/cluster", "keep_running": "never", "multiplicity": {"worker": 3},
                       "connectors": {"master": "docker", "worker": "ssh"}}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    let master = statecustom(&d, "master.1");
    for i in 1..=3 {
        let addr = d["params"][format!("worker.{i}:hostname")].as_str().unwrap().to_string();
        assert!(hosts.hosts.iter().any(|h| h.address == addr), "worker.{i} is on an SSH host: {addr}");
        assert!(master.contains(&addr), "the master in its container lists worker.{i} ({addr}): {master}");
    }
    let connectors = &d["connectors"];
    assert_eq!((connectors["docker"].as_u64(), connectors["ssh"].as_u64()), (Some(1), Some(3)), "{d}");
    nothing_left(&hosts).await;
}

#[tokio::test]
async fn a_refused_key_and_a_changed_host_key_abort_naming_the_host() {
    let hosts = SshHosts::start(2);
    let hello = json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never",
                       "connectors": on("ssh", &["apache1", "testclient1"])});
    // Host 0 is pinned to host 1's key: as if its key had changed.
    let other_key = hosts.hosts[1].host_key.clone();
    let s = ssh_server(&hosts, 1, false, &[(0, &other_key)], false).await;

    // No key at all: refused before anything starts.
    let run = s.launch(hello.clone()).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    assert!(abort.contains("connector `ssh` needs your SSH private key"), "{abort}");

    // A key the hosts do not accept.
    let r = s.c.put(s.api("/profile/connectors/ssh")).json(&json!({"credential": hosts.stranger_key})).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let run = s.launch(hello.clone()).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    let (changed, fine) = (&hosts.hosts[0].address, &hosts.hosts[1].address);
    assert!(abort.contains(changed) || abort.contains(fine), "names a host: {abort}");
    assert!(abort.contains("refused the key") || abort.contains("not the pinned one"), "{abort}");
    assert!(!abort.contains("PRIVATE KEY"), "no secret in: {abort}");

    // The accepted key: the changed host is refused by name, whatever the key.
    let r = s.c.put(s.api("/profile/connectors/ssh")).json(&json!({"credential": hosts.user_key})).send().await.unwrap();
    assert!(r.status().is_success());
    let run = s.launch(hello).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    assert!(abort.contains(changed.as_str()) && abort.contains("not the pinned one"), "{abort}");
    nothing_left(&hosts).await;
}

#[tokio::test]
async fn an_unreachable_host_aborts_the_start_naming_it() {
    let hosts = SshHosts::start(1);
    // A second "host" on the bridge's subnet where no machine answers.
    let gone = format!("{}.99", hosts.gateway.rsplit_once('.').unwrap().0);
    let yaml = hosts.connector_yaml("ssh", 1, true, &[]).replace(
        &format!("endpoints: [\"{}:22\"]", hosts.hosts[0].address),
        &format!("endpoints: [\"{gone}:22\", \"{}:22\"]", hosts.hosts[0].address),
    );
    let yaml = yaml
        .replace(&format!("host_key: \"{}\"", hosts.hosts[0].host_key), &format!("host_key: \"{0},{0}\"", hosts.hosts[0].host_key))
        .replace(
            &format!("work_dir: \"{}\"", hosts.hosts[0].work_dir.display()),
            &format!("work_dir: \"{0},{0}\"", hosts.hosts[0].work_dir.display()),
        );
    let file = testkit::temp_dir("settings").join("slipstream.yaml");
    std::fs::write(&file, format!("connectors:\n  local:\n    kind: local\n{yaml}")).unwrap();
    let s = spawn_with(ServerOptions { args: vec!["--config".into(), file.display().to_string()], ..Default::default() }).await;
    // Two instances, one slot per host: one lands on the missing host.
    let run = s
        .launch(json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never",
                       "connectors": on("ssh", &["apache1", "testclient1"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    assert!(abort.contains(&gone) && (abort.contains("cannot be reached") || abort.contains("did not answer")), "{abort}");
    nothing_left(&hosts).await;
}

#[tokio::test]
async fn a_server_killed_mid_run_comes_back_to_its_instances_on_ssh_hosts() {
    let hosts = SshHosts::start(2);
    let mut s = ssh_server(&hosts, 2, true, &[], false).await;
    s.save(json!({"kind": "project", "path": "k"})).await;
    s.save(json!({"kind": "image", "path": "k/writer", "reference": "examples/images/busybox",
        "parameters": [{"name": "step1", "category": "output"}, {"name": "step2", "category": "output"}],
        "targets": {"execute": "#!/bin/sh -e\nss-set step1 done\nsleep 3\nss-set step2 done\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "k/reader", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh -e\nv=$(ss-get --timeout 120 writer:step2)\nss-display \"got $v\"\n"}}))
        .await;
    s.save(json!({"kind": "deployment", "path": "k/d", "nodes": {
        "writer": {"image": "k/writer", "connector": "ssh"}, "reader": {"image": "k/reader", "multiplicity": 2, "connector": "ssh"}}}))
        .await;
    let run = s.launch(json!({"module": "k/d", "keep_running": "never"})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.c.get(s.api(&format!("/runs/{run}/params/writer.1:step1?wait=5"))).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "step1 was never written");
    }
    s.server.kill_9();
    assert!(!hosts.hosts.iter().all(|h| h.leftovers().is_empty()), "the instances live on while the server is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.server.restart();
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(d["params"]["writer.1:step2"], "done", "written while the server was down: retried");
    assert_eq!(statecustom(&d, "reader.2"), "got done");
    nothing_left(&hosts).await;
}

#[tokio::test]
async fn a_kept_instance_on_an_ssh_host_is_debugged_from_a_terminal_ssh_and_a_rerun() {
    let hosts = SshHosts::start(1);
    let s = ssh_server(&hosts, 2, true, &[], false).await;
    // The owner's profile key is installed for the working account while the instance runs.
    let r =
        s.c.put(s.api("/profile"))
            .json(&json!({"keep_running": "on-error", "run_timeout_minutes": 60, "ssh_public_key": hosts.owner_public_key}))
            .send()
            .await
            .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    s.save(json!({"kind": "project", "path": "dbg"})).await;
    let broken = "#!/bin/sh\necho 'app.conf: no such file' >&2\nexit 3\n";
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": broken}})).await;
    let t = Instant::now();
    let run = s.launch(json!({"module": "dbg/app", "keep_running": "on-error", "connectors": {"machine": "ssh"}})).await;
    s.wait_state(&run, |st| st == "Ready").await;
    eprintln!("one instance on an SSH host, launch to Ready (kept on error): {:.2} s", t.elapsed().as_secs_f64());
    let d = s.detail(&run).await;
    let host = &hosts.hosts[0];
    assert_eq!(d["params"]["machine.1:url.ssh"], format!("ssh -p 22 root@{}", host.address), "{d}");
    let via_ssh = host.ssh_login(&hosts.owner_key_file, "echo via-ssh").expect("the owner's key logs in while the instance runs");
    assert_eq!(via_ssh.trim(), "via-ssh");

    // A PTY channel over SSH: the shell starts in the instance's directory, setup sourced.
    let mut term = Terminal::open(&s, &run, "machine.1").await;
    term.type_text("echo \"name=$SLIPSTREAM_NODE_INSTANCE_NAME\"\n").await;
    term.read_until(|screen| screen.contains("name=machine.1\r\n")).await;
    let rtts = term.keystroke_rtts().await;
    eprintln!("terminal keystroke round trip (SSH host): median {} µs, max {} µs", rtts[2], rtts[4]);
    // (The answer is computed, so the echo of the typed line cannot match it.)
    term.type_text("\u{15}ss-abort --cancel && echo cancelled-$((40+2))\n").await;
    term.read_until(|screen| screen.contains("cancelled-42\r\n")).await;
    assert!(s.detail(&run).await["abort"].is_null(), "{}", s.detail(&run).await);
    term.send(json!({"type": "resize", "columns": 101, "rows": 41})).await;
    term.type_text("stty size\n").await;
    term.read_until(|screen| screen.contains("41 101")).await;
    // Left open: closing the page must end the shell on the host.
    drop(term);

    let fixed = "#!/bin/sh -e\necho 'port=8080' > app.conf\nss-display \"fixed on $(hostname -I 2>/dev/null || true)\"\n";
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": fixed}})).await;
    let rerun = s.rerun(&run, "machine.1", "execute").await;
    assert_eq!(rerun["exit_code"], 0, "{rerun}");
    assert_eq!(rerun["scripts"], json!(["dbg/app@2"]));
    assert!(statecustom(&s.detail(&run).await, "machine.1").starts_with("fixed"));

    let r = s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    assert!(r.status().is_success());
    s.wait_stopped(&run).await;
    nothing_left(&hosts).await;
    assert!(host.ssh_login(&hosts.owner_key_file, "true").is_none(), "the owner's key was removed with the instance");
    assert!(host.ssh_login(&hosts.dir.join("user_ed25519"), "true").is_some(), "the pool's key stays");
}
