//! The client commands against a real server with the real agent: `slipstream login`, `run
//! --wait` and its exit codes, the JUnit file, report bundles, import/export, and the errors a
//! pipeline sees (revoked token, unreachable server, bad options).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};
use testkit::ServerOptions;

/// A user's config directory of their own, so the stored login is this test's.
struct Cli {
    config: PathBuf,
    url: String,
}

impl Cli {
    fn new(url: &str) -> Self {
        Self { config: testkit::temp_dir("cli-config"), url: url.to_string() }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(testkit::slipstream_bin())
            .args(args)
            .env("XDG_CONFIG_HOME", &self.config)
            .env_remove("SLIPSTREAM_URL")
            .env_remove("SLIPSTREAM_TOKEN")
            .env("SLIPSTREAM_PASSWORD", "correct horse")
            .output()
            .expect("the slipstream binary runs")
    }

    fn login(&self) {
        let out = self.run(&["login", &self.url, "--user", "olivia"]);
        assert!(out.status.success(), "login: {}", text(&out.stderr));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

#[tokio::test]
async fn login_stores_a_private_token_and_run_wait_gives_the_verdict_with_junit_and_reports() {
    let s = sqlite().await;
    let cli = Cli::new(&s.base);
    cli.login();
    let stored = cli.config.join("slipstream").join("login.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600, "the token file is private");
    let login: Value = serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    let token = login["token"].as_str().unwrap().to_string();

    // Done: exit 0, a JUnit case per instance, every report bundle unpacked.
    let dir = testkit::temp_dir("cli-run");
    let (junit, reports) = (dir.join("junit.xml"), dir.join("reports"));
    let started = std::time::Instant::now();
    let out = cli.run(&[
        "run",
        "examples/tutorials/hello/client_server",
        "--keep-running",
        "never",
        "--wait",
        "--junit",
        junit.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    assert_eq!(code(&out), 0, "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("Executing") && said.contains("testclient1.1: OK: Hello from Apache"), "live lines: {said}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert!(xml.contains(r#"failures="0""#) && xml.contains(r#"name="apache1.1""#) && xml.contains(r#"name="testclient1.1""#), "{xml}");
    for instance in ["apache1.1", "testclient1.1"] {
        let unpacked: Vec<_> = std::fs::read_dir(reports.join(instance)).unwrap().collect();
        assert!(!unpacked.is_empty(), "{instance}'s report unpacked");
    }
    println!("run --wait of Hello World: {:.2} s from command to exit", took.as_secs_f64());

    // `runs` with the stored token lists it.
    let out = cli.run(&["runs"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Done") && text(&out.stdout).contains("examples/tutorials/hello/client_server"));

    // A failing deployment: exit 1, stderr names the instance and the message; JUnit fails it.
    s.save(json!({"kind": "project", "path": "c"})).await;
    s.save(json!({"kind": "image", "path": "c/broken", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\necho working\necho 'the disk is full' >&2\nexit 3\n"}}))
        .await;
    let out = cli.run(&["run", "c/broken", "--keep-running", "never", "--wait", "--junit", junit.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("machine.1") && err.contains("the disk is full") && err.contains("Aborted"), "{err}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"failures="1""#) && xml.contains("<failure message=") && xml.contains("working"), "{xml}");

    // --timeout: exit 3, and the run is ended, not left running.
    s.save(json!({"kind": "image", "path": "c/waiter", "reference": "examples/images/busybox",
        "parameters": [{"name": "nothing", "category": "output"}],
        "targets": {"execute": "#!/bin/sh\nss-get --timeout 300 nothing\n"}}))
        .await;
    let out = cli.run(&["run", "c/waiter", "--keep-running", "never", "--wait", "--timeout", "3"]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let out = cli.run(&["runs", "--active"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut active = text(&out.stdout);
    while active.contains("c/waiter") {
        assert!(std::time::Instant::now() < deadline, "the timed-out run was not ended: {active}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        active = text(&cli.run(&["runs", "--active"]).stdout);
    }

    // Bad options: exit 2, naming the option.
    let out = cli.run(&["run", "c/broken", "--set", "machine:x"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("--set `machine:x`"), "{}", text(&out.stderr));
    let out = cli.run(&["run", "no/such/module", "--wait"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("no/such/module"), "{}", text(&out.stderr));

    // A revoked token: a clear error, exit 2, and the token is not printed.
    let tokens: Value = s.c.get(s.api("/auth/tokens")).send().await.unwrap().json().await.unwrap();
    for t in tokens.as_array().unwrap() {
        s.c.delete(s.api(&format!("/auth/tokens/{}", t["id"].as_str().unwrap()))).send().await.unwrap();
    }
    let out = cli.run(&["runs"]);
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(err.contains("revoked") && err.contains("slipstream login"), "{err}");
    assert!(!err.contains(&token) && !text(&out.stdout).contains(&token));

    // An unreachable server: exit 4.
    let out = Command::new(testkit::slipstream_bin())
        .args(["runs"])
        .env("SLIPSTREAM_URL", "http://127.0.0.1:9")
        .env("SLIPSTREAM_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
}

#[tokio::test]
async fn export_then_import_round_trips_a_tree_and_params_get_set_work() {
    let a = sqlite().await;
    a.save(json!({"kind": "project", "path": "rt"})).await;
    a.save(json!({"kind": "image", "path": "rt/base", "native": true, "images": {"local": "host"},
        "parameters": [{"name": "greeting", "category": "output"}, {"name": "reply", "category": "output"}], "targets": {"execute": "#!/bin/sh\nss-set greeting hi\nss-get --timeout 120 reply\n"}}))
        .await;
    let cli = Cli::new(&a.base);
    cli.login();
    let file = testkit::temp_dir("cli-export").join("rt.yaml");
    let out = cli.run(&["export", "rt", "-o", file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));

    let b = spawn_with(ServerOptions { no_examples: true, ..Default::default() }).await;
    let other = Cli::new(&b.base);
    other.login();
    let out = other.run(&["import", file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rt/base v1"), "{}", text(&out.stdout));
    let again = other.run(&["export", "rt"]);
    assert_eq!(text(&again.stdout), std::fs::read_to_string(&file).unwrap(), "the same tree came back");

    // get --wait, set, show and params on a live run.
    let out = cli.run(&["run", "rt/base", "--keep-running", "never"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let run = text(&out.stdout).trim().to_string();
    let out = cli.run(&["get", &run, "machine.1:greeting", "--wait", "60"]);
    assert_eq!((code(&out), text(&out.stdout).trim().to_string()), (0, "hi".to_string()), "{}", text(&out.stderr));
    let out = cli.run(&["get", &run, "machine.1:reply", "--wait", "1"]);
    assert_eq!(code(&out), 3, "not set in time: {}", text(&out.stderr));
    assert_eq!(code(&cli.run(&["set", &run, "machine.1:reply", "there"])), 0);
    assert_eq!(a.finished(&run).await, "Done");
    assert!(text(&cli.run(&["params", &run]).stdout).contains("machine.1:reply = there"));
    assert!(text(&cli.run(&["show", &run]).stdout).contains("state    Done"));
    let logs = cli.run(&["logs", &run]);
    assert_eq!(code(&logs), 0, "{}", text(&logs.stderr));
}

/// `examples/ci/pipeline.sh`, as docs/ci.md's GitHub and GitLab jobs call it.
fn pipeline(args: &[&str], env: &[(&str, String)], out: &std::path::Path) -> Output {
    let bin_dir = testkit::slipstream_bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("sh");
    c.arg("../examples/ci/pipeline.sh").args(args).env("PATH", path).env("SLIPSTREAM_OUT", out);
    c.env_remove("SLIPSTREAM_URL").env_remove("SLIPSTREAM_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("sh runs")
}

#[tokio::test]
async fn the_ci_example_pipeline_gives_a_verdict_a_junit_report_and_the_reports() {
    // On a server of its own, as on a fresh CI runner.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = testkit::temp_dir("ci-out");
    let config = testkit::temp_dir("ci-config");
    // Its temporary directory, to see that the throwaway server's data goes at the end.
    let tmp = testkit::temp_dir("ci-tmp");
    let env = [
        ("SLIPSTREAM_LISTEN", format!("127.0.0.1:{port}")),
        ("XDG_CONFIG_HOME", config.display().to_string()),
        ("TMPDIR", tmp.display().to_string()),
    ];
    let o = pipeline(&["../examples/ci/modules.yaml", "ci/system"], &env, &out);
    assert_eq!(code(&o), 0, "stdout: {}\nstderr: {}", text(&o.stdout), text(&o.stderr));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "the pipeline's server left {left:?}");
    assert!(std::fs::read_to_string(out.join("slipstream-server.log")).unwrap().contains("listening on"), "its log is kept");
    let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert!(xml.contains(r#"failures="0""#), "{xml}");
    assert!(text(&o.stdout).contains("check.2: OK: version 1"), "{}", text(&o.stdout));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the pipeline's server was stopped");

    // On an existing server (SLIPSTREAM_URL and SLIPSTREAM_TOKEN), a failing deployment: the
    // script exits 1 and the JUnit report names the failure.
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "p"})).await;
    s.save(json!({"kind": "image", "path": "p/broken", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\necho 'no space left' >&2\nexit 3\n"}}))
        .await;
    let made: Value = s.c.post(s.api("/auth/tokens")).json(&json!({"name": "ci"})).send().await.unwrap().json().await.unwrap();
    let env = [("SLIPSTREAM_URL", s.base.clone()), ("SLIPSTREAM_TOKEN", made["token"].as_str().unwrap().to_string())];
    let o = pipeline(&["../examples/ci/modules.yaml", "p/broken"], &env, &out);
    assert_eq!(code(&o), 1, "stdout: {}\nstderr: {}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stderr).contains("no space left"), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(out.join("junit.xml")).unwrap().contains(r#"failures="1""#));
}

#[tokio::test]
async fn scale_adds_and_removes_instances_of_a_scalable_run() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "g"})).await;
    s.save(json!({"kind": "image", "path": "g/web", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\ntrue\n", "onvmadd": "#!/bin/sh\nss-display \"added $SLIPSTREAM_SCALING_VMS\"\n"}}))
        .await;
    let cli = Cli::new(&s.base);
    cli.login();
    let out = cli.run(&["run", "g/web", "--scalable", "--wait"]);
    assert_eq!(code(&out), 0, "a scalable run has its verdict in Ready: {}", text(&out.stderr));
    let run = s.c.get(s.api("/runs")).send().await.unwrap().json::<Value>().await.unwrap()[0]["id"].as_str().unwrap().to_string();
    let out = cli.run(&["scale", &run, "machine", "--add", "2", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().take(2).collect::<Vec<_>>(), ["machine.2", "machine.3"]);
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "added machine.2 machine.3");
    let out = cli.run(&["scale", &run, "machine", "--remove", "machine.2", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(s.detail(&run).await["params"]["machine:ids"], "1,3");
    let out = cli.run(&["scale", &run, "machine"]);
    assert_eq!(code(&out), 2, "neither --add nor --remove");
    assert_eq!(code(&cli.run(&["terminate", &run])), 0);
    assert_eq!(s.finished(&run).await, "Done");
}
