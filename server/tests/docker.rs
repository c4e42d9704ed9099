//! Runs on the Docker connector, end to end: the real server, the real static agent in real
//! containers on the dockerd that `cargo xtask test` starts (`SLIPSTREAM_TEST_DOCKER`), the
//! examples' base image `slipstream/busybox:latest` imported there. After every run, nothing of
//! it is left on the engine: the test lists containers and networks by the server's label.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testkit::ServerOptions;

fn endpoint() -> String {
    std::env::var("SLIPSTREAM_TEST_DOCKER").expect(
        "SLIPSTREAM_TEST_DOCKER must name the test bed's Docker engine (cargo xtask test starts one), e.g. unix:///tmp/slipstream-docker/docker.sock",
    )
}

/// A server whose connectors are `local` and `docker` (the examples' image ids name both).
/// `SLIPSTREAM_TEST_DOCKER_AGENT_ADDRESS` sets the connector's `agent_address` (Podman creates
/// its bridges only when a container needs them, so the test bed gives it an address).
async fn docker_server() -> Server {
    let mut args = vec!["--connector".into(), "local=local".into()];
    match std::env::var("SLIPSTREAM_TEST_DOCKER_AGENT_ADDRESS") {
        Ok(address) => {
            let file = testkit::temp_dir("settings").join("slipstream.yaml");
            let yaml = format!(
                "connectors:\n  docker:\n    kind: docker\n    endpoint: {}\n    options: {{agent_address: \"{address}\"}}\n",
                endpoint()
            );
            std::fs::write(&file, yaml).unwrap();
            args.extend(["--config".to_string(), file.display().to_string()]);
        }
        Err(_) => args.extend(["--connector".to_string(), format!("docker=docker:{}", endpoint())]),
    }
    spawn_with(ServerOptions { args, ..Default::default() }).await
}

fn docker_ids(what: &[&str], server_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["-H", &endpoint()])
        .args(what)
        .args(["--filter", &format!("label=io.slipstream.server={server_id}"), "-q"])
        .output()
        .expect("the docker client runs");
    assert!(out.status.success(), "docker {what:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

/// Waits (a few seconds at most: stopping is asynchronous) until the server has no container
/// and no network left on the engine.
async fn nothing_left(s: &Server) {
    let id = s.server.server_id();
    assert!(!id.is_empty(), "the server has an id");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (containers, networks) = (docker_ids(&["ps", "-a"], &id), docker_ids(&["network", "ls"], &id));
        if containers.is_empty() && networks.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: containers {containers:?}, networks {networks:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn on_docker(nodes: &[&str]) -> Value {
    Value::Object(nodes.iter().map(|n| (n.to_string(), json!("docker"))).collect())
}

#[tokio::test]
async fn hello_world_runs_in_containers_that_reach_each_other_by_address() {
    let s = docker_server().await;
    let run = s
        .launch(json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never",
                       "connectors": on_docker(&["apache1", "testclient1"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(statecustom(&d, "testclient1.1"), "OK: Hello from Apache deployed by SlipStream!", "{d}");
    let web = d["params"]["apache1.1:hostname"].as_str().unwrap().to_string();
    assert!(web.starts_with("10.200."), "the server's address is its container's on the run network: {web}");
    assert!(s.report_file(&run, "apache1.1", "httpd.log").await.contains("/data.txt"), "the client's fetch reached the container");
    let instances = d["instances"].as_array().unwrap();
    assert!(instances.iter().all(|i| i["connector"] == "docker"), "{d}");
    nothing_left(&s).await;
}

#[tokio::test]
async fn three_clients_and_the_cluster_run_on_docker() {
    let s = docker_server().await;
    let run = s
        .launch(json!({"module": "examples/tutorials/performance/deployment", "keep_running": "never",
                       "multiplicity": {"testsuite": 3}, "connectors": on_docker(&["apache", "testsuite"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    for i in 1..=3 {
        assert_eq!(statecustom(&d, &format!("testsuite.{i}")), "OK: Hello from Apache deployed by SlipStream!", "{d}");
    }
    let run = s
        .launch(json!({"module": "examples/cluster/cluster", "keep_running": "never", "multiplicity": {"worker": 3},
                       "connectors": on_docker(&["master", "worker"])}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    let master = statecustom(&d, "master.1");
    for i in 1..=3 {
        let addr = d["params"][format!("worker.{i}:hostname")].as_str().unwrap().to_string();
        assert!(master.contains(&addr), "master lists worker.{i} ({addr}): {master}");
        assert_eq!(statecustom(&d, &format!("worker.{i}")), "Joined with a 1024-byte key");
    }
    nothing_left(&s).await;
}

#[tokio::test]
async fn one_run_spans_docker_and_the_local_connector() {
    let s = docker_server().await;
    // The web server in a container, the client a local process: the host reaches the
    // container's address on the run network.
    let run = s
        .launch(json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never",
                       "connectors": {"apache1": "docker", "testclient1": "local"}}))
        .await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(statecustom(&d, "testclient1.1"), "OK: Hello from Apache deployed by SlipStream!", "{d}");
    let connectors = &d["connectors"];
    assert_eq!((connectors["docker"].as_u64(), connectors["local"].as_u64()), (Some(1), Some(1)), "{d}");
    nothing_left(&s).await;
}

/// Test images on the busybox base: one that aborts, one that fails, one that waits.
async fn save_test_images(s: &Server) {
    s.save(json!({"kind": "project", "path": "d"})).await;
    s.save(json!({"kind": "image", "path": "d/aborter", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\nsleep 1\nss-abort \"reason from the aborter\"\n",
                    "report": "#!/bin/sh\necho reported > \"$SLIPSTREAM_REPORT_DIR/aborter.txt\"\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "d/broken", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\necho 'the disk is full' >&2\nexit 3\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "d/waiter", "reference": "examples/images/busybox",
        "parameters": [{"name": "go", "category": "output"}],
        "targets": {"execute": "#!/bin/sh\nss-get --timeout 300 go\n"}}))
        .await;
    s.save(json!({"kind": "deployment", "path": "d/abort", "nodes": {
        "aborter": {"image": "d/aborter", "connector": "docker"}, "waiter": {"image": "d/waiter", "multiplicity": 2, "connector": "docker"}}}))
        .await;
}

#[tokio::test]
async fn abort_failure_keep_running_and_terminate_leave_nothing_behind() {
    let s = docker_server().await;
    save_test_images(&s).await;

    // ss-abort in one container releases the others; reports still come; all is removed.
    let run = s.launch(json!({"module": "d/abort", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    assert_eq!(s.detail(&run).await["abort"], "reason from the aborter");
    assert_eq!(s.report_file(&run, "aborter.1", "aborter.txt").await.trim(), "reported");
    nothing_left(&s).await;

    // A failing script aborts naming the instance, the exit code and its last stderr line.
    let run = s.launch(json!({"module": "d/broken", "keep_running": "never", "connectors": {"machine": "docker"}})).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    for part in ["d/broken", "machine.1", "exit code 3", "the disk is full"] {
        assert!(abort.contains(part), "`{part}` in: {abort}");
    }
    nothing_left(&s).await;

    // Kept on error: the containers stay up after the abort until the run is terminated.
    let run = s.launch(json!({"module": "d/abort", "keep_running": "on-error"})).await;
    s.wait_state(&run, |st| st == "Ready").await;
    let d = s.detail(&run).await;
    assert!(d["instances"].as_array().unwrap().iter().all(|i| i["running"] == true), "kept running: {d}");
    assert_eq!(docker_ids(&["ps"], &s.server.server_id()).len(), 3, "three running containers");
    let r = s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(s.finished(&run).await, "Aborted");
    nothing_left(&s).await;

    // Terminated while executing: Cancelled, and removed.
    let run = s.launch(json!({"module": "d/waiter", "keep_running": "never", "connectors": {"machine": "docker"}})).await;
    s.wait_state(&run, |st| st == "Executing").await;
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    assert_eq!(s.finished(&run).await, "Cancelled");
    nothing_left(&s).await;
}

#[tokio::test]
async fn an_image_the_engine_does_not_have_aborts_the_run_naming_it() {
    let s = docker_server().await;
    s.save(json!({"kind": "project", "path": "m"})).await;
    s.save(json!({"kind": "image", "path": "m/nowhere", "native": true, "images": {"docker": "slipstream/not-imported:1"},
                  "targets": {"execute": "#!/bin/sh\ntrue\n"}}))
        .await;
    let run = s.launch(json!({"module": "m/nowhere", "keep_running": "never", "connectors": {"machine": "docker"}})).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    for part in ["machine.1", "docker", "slipstream/not-imported:1", "not on connector"] {
        assert!(abort.contains(part), "`{part}` in: {abort}");
    }
    nothing_left(&s).await;
}

#[tokio::test]
async fn a_server_killed_mid_run_comes_back_to_its_containers_and_cleans_up() {
    let mut s = docker_server().await;
    s.save(json!({"kind": "project", "path": "k"})).await;
    s.save(json!({"kind": "image", "path": "k/writer", "reference": "examples/images/busybox",
        "parameters": [{"name": "step1", "category": "output"}, {"name": "step2", "category": "output"}],
        "targets": {"execute": "#!/bin/sh -e\nss-set step1 done\nsleep 3\nss-set step2 done\n"}}))
        .await;
    s.save(json!({"kind": "image", "path": "k/reader", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh -e\nv=$(ss-get --timeout 120 writer:step2)\nss-display \"got $v\"\n"}}))
        .await;
    s.save(json!({"kind": "deployment", "path": "k/d", "nodes": {
        "writer": {"image": "k/writer", "connector": "docker"}, "reader": {"image": "k/reader", "multiplicity": 2, "connector": "docker"}}}))
        .await;
    let run = s.launch(json!({"module": "k/d", "keep_running": "never"})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.c.get(s.api(&format!("/runs/{run}/params/writer.1:step1?wait=5"))).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "step1 was never written");
    }
    s.server.kill_9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.server.restart();
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(d["params"]["writer.1:step2"], "done", "written while the server was down: retried");
    assert_eq!(statecustom(&d, "reader.2"), "got done");
    nothing_left(&s).await;
}

#[tokio::test]
async fn an_image_built_once_skips_its_recipes_until_they_change() {
    let s = docker_server().await;
    s.save(json!({"kind": "project", "path": "b"})).await;
    // The recipe leaves a mark in the image; execute counts the marks it finds.
    let image = |recipe: &str, execute: &str| {
        json!({"kind": "image", "path": "b/baked", "reference": "examples/images/busybox",
               "recipe": format!("#!/bin/sh -e\n{recipe}\n"),
               "targets": {"execute": format!("#!/bin/sh -e\n{execute}\n")}})
    };
    let count = "ss-display \"marks=$(cat /marks 2>/dev/null | wc -l) flavour=$(cat /flavour 2>/dev/null)\"";
    s.save(image("echo baked >> /marks; echo vanilla > /flavour", count)).await;

    // The local connector keeps no image: it cannot build.
    let r = s.c.post(s.api("/modules/b/baked/build?connector=local")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("cannot build images"));

    // Build on Docker: a build run, shown like any run, ends Done with the image kept.
    let r = s.c.post(s.api("/modules/b/baked/build?connector=docker")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let build = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(s.finished(&build).await, "Done", "{}", s.detail(&build).await);
    let builds: Value = s.c.get(s.api("/modules/b/baked/builds")).send().await.unwrap().json().await.unwrap();
    assert_eq!(builds.as_array().map(Vec::len), Some(1), "{builds}");
    assert_eq!((builds[0]["connector"].as_str(), builds[0]["current"].as_bool()), (Some("docker"), Some(true)), "{builds}");
    let tag = builds[0]["image"].as_str().unwrap().to_string();
    let inspected = Command::new("docker").args(["-H", &endpoint(), "image", "inspect", &tag]).output().unwrap();
    assert!(inspected.status.success(), "the built image {tag} is on the engine");
    nothing_left(&s).await;

    // A run on the built image skips the recipe: one mark, from the build.
    let on_docker = json!({"module": "b/baked", "keep_running": "never", "connectors": {"machine": "docker"}});
    let run = s.launch(on_docker.clone()).await;
    assert_eq!(s.finished(&run).await, "Done");
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "marks=1 flavour=vanilla");

    // A new version that changes only execute keeps the built image.
    s.save(image("echo baked >> /marks; echo vanilla > /flavour", &format!("{count}; true"))).await;
    let run = s.launch(on_docker.clone()).await;
    assert_eq!(s.finished(&run).await, "Done");
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "marks=1 flavour=vanilla");

    // One that changes the recipe has no built image: the recipe runs at deploy time.
    s.save(image("echo baked >> /marks; echo chocolate > /flavour", count)).await;
    let builds: Value = s.c.get(s.api("/modules/b/baked/builds")).send().await.unwrap().json().await.unwrap();
    assert_eq!(builds[0]["current"], false, "{builds}");
    let run = s.launch(on_docker.clone()).await;
    assert_eq!(s.finished(&run).await, "Done");
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "marks=1 flavour=chocolate", "built from the base at deploy time");
    nothing_left(&s).await;
    let _ = Command::new("docker").args(["-H", &endpoint(), "image", "rm", &tag]).output();
}

/// The original tutorial's Apache server script in a Debian container: `apt-get install -y
/// apache2` from Debian's package registry, `service apache2 stop|start`, `ss-get port`,
/// `sed` on the configuration, `ss-set ready true`. Written for Ubuntu 12.04, it names two
/// files that Debian 12 has elsewhere (the document root `/var/www/html`, the site
/// `000-default.conf`); those two paths are the only change.
#[tokio::test]
async fn the_tutorials_apache_script_runs_in_a_debian_container() {
    let s = docker_server().await;
    s.save(json!({"kind": "project", "path": "deb"})).await;
    s.save(json!({"kind": "image", "path": "deb/debian", "native": true, "images": {"docker": "slipstream/debian:bookworm"}})).await;
    let execute = r#"#!/bin/sh -xe
apt-get update -y
apt-get install -y apache2

echo 'Hello from Apache deployed by SlipStream!' > /var/www/html/data.txt

service apache2 stop

port=$(ss-get port)

sed -i -e 's/^Listen.*$/Listen '$port'/' /etc/apache2/ports.conf
sed -i -e 's/^NameVirtualHost.*$/NameVirtualHost *:'$port'/' \
          /etc/apache2/ports.conf
sed -i -e 's/^<VirtualHost.*$/<VirtualHost *:'$port'>/' \
          /etc/apache2/sites-available/000-default.conf

service apache2 start
ss-set ready true
"#;
    let report =
        "#!/bin/sh -x\ncp /var/log/apache2/access.log $SLIPSTREAM_REPORT_DIR\ncp /var/log/apache2/error.log $SLIPSTREAM_REPORT_DIR\n";
    s.save(json!({"kind": "image", "path": "deb/apache", "reference": "deb/debian",
        "parameters": [{"name": "port", "category": "output", "default": "8080"}, {"name": "ready", "category": "output"}],
        "targets": {"execute": execute, "report": report}}))
        .await;
    s.save(json!({"kind": "deployment", "path": "deb/client_server", "nodes": {
        "apache1": {"image": "deb/apache", "connector": "docker"},
        "testclient1": {"image": "examples/tutorials/hello/testclient", "connector": "docker",
            "links": {"webserver.hostname": "apache1:hostname", "webserver.port": "apache1:port", "webserver.ready": "apache1:ready"}}}}))
        .await;
    let run = s.launch(json!({"module": "deb/client_server", "keep_running": "never", "timeout": 600})).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(statecustom(&d, "testclient1.1"), "OK: Hello from Apache deployed by SlipStream!", "{d}");
    assert!(s.report_file(&run, "apache1.1", "access.log").await.contains("GET /data.txt"), "Apache served the client");
    nothing_left(&s).await;
}

/// The Podman test bed as a second Docker endpoint (`SLIPSTREAM_TEST_PODMAN`, its agent address
/// in `SLIPSTREAM_TEST_PODMAN_AGENT_ADDRESS`; `cargo xtask test` starts both engines).
fn podman() -> (String, String) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set (cargo xtask test starts the Podman test bed)"));
    (var("SLIPSTREAM_TEST_PODMAN"), var("SLIPSTREAM_TEST_PODMAN_AGENT_ADDRESS"))
}

fn ids_on(endpoint: &str, what: &[&str], server_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["-H", endpoint])
        .args(what)
        .args(["--filter", &format!("label=io.slipstream.server={server_id}"), "-q"])
        .output()
        .expect("the docker client runs");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

#[tokio::test]
async fn a_run_over_two_engines_and_the_local_connector_shares_parameters_barriers_and_abort() {
    let (podman_endpoint, podman_address) = podman();
    let file = testkit::temp_dir("settings").join("slipstream.yaml");
    // `docker` and `podman` one engine each; `lab` both, spreading a run's instances over them
    // (its Docker engine's agent address is found, Podman's is given).
    let yaml = format!(
        "connectors:\n  local:\n    kind: local\n  docker:\n    kind: docker\n    endpoint: {docker}\n  podman:\n    kind: docker\n    \
         endpoint: {podman_endpoint}\n    options: {{agent_address: \"{podman_address}\"}}\n  lab:\n    kind: docker\n    \
         endpoints: [{docker}, {podman_endpoint}]\n    options: {{agent_address: \",{podman_address}\"}}\n",
        docker = endpoint()
    );
    std::fs::write(&file, yaml).unwrap();
    let s = spawn_with(ServerOptions { args: vec!["--config".into(), file.display().to_string()], ..Default::default() }).await;
    s.save(json!({"kind": "project", "path": "two"})).await;
    let busybox = "slipstream/busybox:latest";
    s.save(json!({"kind": "image", "path": "two/base", "native": true,
        "images": {"local": "host", "docker": busybox, "podman": busybox, "lab": busybox}}))
        .await;
    // Each instance publishes where it runs and waits for its peers.
    let execute = "#!/bin/sh -e\nss-set where \"$(ss-get node)@$(ss-get hostname)\"\n\
                   for n in $(ss-get peers); do v=$(ss-get --timeout 120 $n:where); echo \"$v\" >> seen.txt; done\n\
                   [ \"$(ss-get node)\" != \"$(ss-get fail_on)\" ] || ss-abort \"$(ss-get node) gives up\"\n\
                   ss-display \"saw $(sort seen.txt | tr '\\n' ' ')\"\n";
    s.save(json!({"kind": "image", "path": "two/peer", "reference": "two/base",
        "parameters": [{"name": "where", "category": "output"}, {"name": "node", "category": "input"},
                       {"name": "peers", "category": "input", "default": "a.1 b.1 c.1"},
                       {"name": "fail_on", "category": "input", "default": "nobody"}],
        "targets": {"execute": execute, "report": "#!/bin/sh\ncp seen.txt \"$SLIPSTREAM_REPORT_DIR\"\n"}}))
        .await;
    let node = |name: &str, connector: &str| json!({"image": "two/peer", "connector": connector, "values": {"node": name}});
    s.save(json!({"kind": "deployment", "path": "two/d", "nodes": {"a": node("a", "docker"), "b": node("b", "podman"), "c": node("c", "local")}}))
        .await;

    let run = s.launch(json!({"module": "two/d", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(
        (d["connectors"]["docker"].as_u64(), d["connectors"]["podman"].as_u64(), d["connectors"]["local"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    for n in ["a", "b", "c"] {
        let seen = statecustom(&d, &format!("{n}.1"));
        assert!(seen.starts_with("saw a@") && seen.contains(" b@") && seen.contains(" c@127."), "{n}.1: {seen}");
        assert!(s.report_file(&run, &format!("{n}.1"), "seen.txt").await.lines().count() == 3, "{n}.1 reported");
    }

    // An abort on the local instance reaches the containers on both engines; reports still come.
    let run = s
        .launch(json!({"module": "two/d", "keep_running": "never", "params": {"a:fail_on": "c", "b:fail_on": "c", "c:fail_on": "c"}}))
        .await;
    assert_eq!(s.finished(&run).await, "Aborted");
    assert_eq!(s.detail(&run).await["abort"], "c gives up");
    for n in ["a", "b", "c"] {
        s.report_file(&run, &format!("{n}.1"), "seen.txt").await;
    }

    // One connector over both engines: node a's two instances land one on each.
    let mut spread = node("a", "lab");
    spread["multiplicity"] = json!(2);
    spread["values"]["peers"] = json!("a.1 a.2 c.1");
    let mut local = node("c", "local");
    local["values"]["peers"] = json!("a.1 a.2 c.1");
    s.save(json!({"kind": "deployment", "path": "two/spread", "nodes": {"a": spread, "c": local}})).await;
    let run = s.launch(json!({"module": "two/spread", "keep_running": "never"})).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    let d = s.detail(&run).await;
    assert_eq!(d["connectors"]["lab"].as_u64(), Some(2), "{d}");
    let net = |i: &str| d["params"][format!("{i}:hostname")].as_str().unwrap().rsplit_once('.').unwrap().0.to_string();
    assert_ne!(net("a.1"), net("a.2"), "a.1 and a.2 on the networks of two engines: {d}");
    for i in ["a.1", "a.2", "c.1"] {
        assert_eq!(statecustom(&d, i).matches('@').count(), 3, "{i} saw its peers: {d}");
    }

    nothing_left(&s).await;
    let id = s.server.server_id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(ids_on(&podman_endpoint, &["ps", "-a"], &id).is_empty() && ids_on(&podman_endpoint, &["network", "ls"], &id).is_empty()) {
        assert!(Instant::now() < deadline, "containers or networks left on Podman");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The test bed's dockerd over TLS (`SLIPSTREAM_TEST_DOCKER_TLS`), and its TLS files
/// (`SLIPSTREAM_TEST_DOCKER_TLS_DIR`: `ca.pem`, `client.pem`, `stranger.pem`).
fn tls_bed() -> (String, std::path::PathBuf) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set (cargo xtask test starts the Docker test bed)"));
    (var("SLIPSTREAM_TEST_DOCKER_TLS"), var("SLIPSTREAM_TEST_DOCKER_TLS_DIR").into())
}

/// The gateway of the engine's default bridge: where its containers reach this host.
fn bridge_gateway() -> String {
    let out = Command::new("docker")
        .args(["-H", &endpoint(), "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"])
        .output()
        .expect("the docker client runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_remote_engine_over_tls_takes_each_users_client_certificate() {
    let (tls_endpoint, dir) = tls_bed();
    let file = testkit::temp_dir("settings").join("slipstream.yaml");
    // Named `docker` so that the examples' image ids apply; the engine is reached as a remote
    // one would be: over TCP with TLS, the agent uploaded into each container.
    let yaml = format!(
        "connectors:\n  docker:\n    kind: docker\n    endpoint: {tls_endpoint}\n    options: {{tls_ca: \"{}\", agent_address: \"{}\"}}\n",
        dir.join("ca.pem").display(),
        bridge_gateway()
    );
    std::fs::write(&file, yaml).unwrap();
    let s = spawn_with(ServerOptions { args: vec!["--config".into(), file.display().to_string()], ..Default::default() }).await;
    let hello = json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never",
                       "connectors": on_docker(&["apache1", "testclient1"])});
    let set_credential = |credential: String| {
        let s = &s;
        async move {
            let r = s.c.put(s.api("/profile/connectors/docker")).json(&json!({"credential": credential})).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };

    // No credential: the run aborts naming the connector and what is missing.
    let run = s.launch(hello.clone()).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    for part in ["connector `docker`", "TLS client certificate", "credential"] {
        assert!(abort.contains(part), "`{part}` in: {abort}");
    }

    // A certificate from another CA: refused by the engine, and the key is not in the message.
    let stranger = std::fs::read_to_string(dir.join("stranger.pem")).unwrap();
    set_credential(stranger.clone()).await;
    let run = s.launch(hello.clone()).await;
    assert_eq!(s.finished(&run).await, "Aborted");
    let abort = s.detail(&run).await["abort"].as_str().unwrap().to_string();
    assert!(abort.contains("connector `docker`") && abort.contains("refused"), "{abort}");
    assert!(!abort.contains("PRIVATE KEY") && !stranger.lines().skip(1).take(2).any(|l| abort.contains(l)), "no secret: {abort}");

    // The user's own certificate: Hello World runs on the remote engine.
    set_credential(std::fs::read_to_string(dir.join("client.pem")).unwrap()).await;
    let run = s.launch(hello).await;
    assert_eq!(s.finished(&run).await, "Done", "{}", s.detail(&run).await);
    assert_eq!(statecustom(&s.detail(&run).await, "testclient1.1"), "OK: Hello from Apache deployed by SlipStream!");
    nothing_left(&s).await;
}

#[tokio::test]
async fn a_kept_container_is_debugged_from_a_terminal_and_a_rerun() {
    let s = docker_server().await;
    s.save(json!({"kind": "project", "path": "dbg"})).await;
    let broken = "#!/bin/sh\necho 'app.conf: no such file' >&2\nexit 3\n";
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": broken}})).await;
    let run = s.launch(json!({"module": "dbg/app", "keep_running": "on-error", "connectors": {"machine": "docker"}})).await;
    s.wait_state(&run, |st| st == "Ready").await;

    // A TTY exec in the container, in /slipstream with slipstream.setup sourced.
    let mut term = Terminal::open(&s, &run, "machine.1").await;
    term.type_text("echo \"name=$SLIPSTREAM_NODE_INSTANCE_NAME in $(pwd)\"\n").await;
    term.read_until(|screen| screen.contains("name=machine.1 in /slipstream\r\n")).await;
    let rtts = term.keystroke_rtts().await;
    eprintln!("terminal keystroke round trip (Docker): median {} µs, max {} µs", rtts[2], rtts[4]);
    term.type_text("\u{15}ss-abort --cancel && echo cancelled-$((40+2))\n").await;
    term.read_until(|screen| screen.contains("cancelled-42\r\n")).await;
    term.send(json!({"type": "resize", "columns": 99, "rows": 33})).await;
    term.type_text("stty size\n").await;
    term.read_until(|screen| screen.contains("33 99")).await;
    // Closed with the shell still running: it gets a hang-up.
    drop(term);

    let fixed = "#!/bin/sh -e\necho 'port=8080' > app.conf\nss-display fixed\n";
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": fixed}})).await;
    let rerun = s.rerun(&run, "machine.1", "execute").await;
    assert_eq!(rerun["exit_code"], 0, "{rerun}");
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "fixed");
    // The shell of the closed terminal is gone from the container.
    let d = s.detail(&run).await;
    let id = d["params"]["machine.1:instanceid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ps = Command::new("docker").args(["-H", &endpoint(), "exec", &id, "ps", "-o", "args"]).output().unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout).to_string();
        if !ps.lines().any(|l| l.trim_start().starts_with("sh -i") || l.contains("bash -i")) {
            break;
        }
        assert!(Instant::now() < deadline, "the terminal's shell is still running:\n{ps}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    s.wait_stopped(&run).await;
    nothing_left(&s).await;
}

#[tokio::test]
async fn containers_of_a_run_whose_end_a_crash_cut_short_are_reaped_at_restart() {
    let mut s = docker_server().await;
    s.save(json!({"kind": "project", "path": "z"})).await;
    s.save(json!({"kind": "image", "path": "z/sleeper", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\nss-display sleeping\nsleep 600\n"}}))
        .await;
    s.save(json!({"kind": "deployment", "path": "z/d", "nodes": {"a": {"image": "z/sleeper", "multiplicity": 2, "connector": "docker"}}}))
        .await;
    let run = s.launch(json!({"module": "z/d"})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while statecustom(&s.detail(&run).await, "a.2") != "sleeping" || statecustom(&s.detail(&run).await, "a.1") != "sleeping" {
        assert!(Instant::now() < deadline, "the instances did not start: {}", s.detail(&run).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = s.server.server_id();
    assert_eq!(docker_ids(&["ps", "-a"], &id).len(), 2, "both containers are there before the crash");
    s.server.kill_9();
    // As if the server died right after committing the run's end, before stopping anything.
    common::edit_database(&s.server.data_dir, "UPDATE runs SET state = 'Done', ended_at = state_changed_at WHERE id = $1", &run).await;
    s.server.restart();
    nothing_left(&s).await;
}
