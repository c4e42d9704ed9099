//! What the run tests share: the real server (through `testkit`) with a signed-up user, and
//! helpers that launch runs and follow them over the API.

#![allow(dead_code)] // each test file uses its own part of it

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use testkit::{ServerOptions, TestServer};

pub fn agent_bin() -> PathBuf {
    let p = std::env::var_os("SLIPSTREAM_AGENT_BIN")
        .map(PathBuf::from)
        .expect("SLIPSTREAM_AGENT_BIN must name the static agent (cargo xtask test builds it and sets it)");
    assert!(p.is_file(), "no agent at {}", p.display());
    p
}

pub struct Server {
    pub base: String,
    pub c: Client,
    pub server: TestServer,
}

pub async fn spawn(url: String) -> Server {
    spawn_with(ServerOptions { database_url: Some(url), ..Default::default() }).await
}

/// The server started with `options`, and `olivia` signed up (the administrator).
pub async fn spawn_with(options: ServerOptions) -> Server {
    agent_bin();
    let server = TestServer::start(options);
    let base = server.url.clone();
    let c = client();
    let r =
        c.post(format!("{base}/api/v1/auth/register")).json(&json!({"name": "olivia", "password": "correct horse"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    Server { base, c, server }
}

/// A client that keeps its session cookie. (The server's HTTP client library is built with
/// TLS whose crypto provider must be chosen first: ring, as the client commands do.)
pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().cookie_store(true).build().unwrap()
}

pub async fn sqlite() -> Server {
    spawn(engine::testing::sqlite_url()).await
}

impl Server {
    pub fn api(&self, p: &str) -> String {
        format!("{}/api/v1{p}", self.base)
    }

    pub async fn save(&self, module: Value) {
        let path = module["path"].as_str().unwrap().to_string();
        let r = self.c.put(self.api(&format!("/modules/{path}"))).json(&module).send().await.unwrap();
        assert!(r.status().is_success(), "saving {path}: {}", r.text().await.unwrap());
    }

    pub async fn launch(&self, req: Value) -> String {
        let r = self.c.post(self.api("/runs")).json(&req).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Follows the run's state with the long-poll endpoint until `done` says so (5 minutes at most).
    pub async fn wait_state(&self, run: &str, done: impl Fn(&str) -> bool) -> String {
        // Long enough for a run that installs packages from the registry.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut state = String::new();
        loop {
            let from = if state.is_empty() { String::new() } else { format!("from={state}&") };
            state = self.c.get(self.api(&format!("/runs/{run}/state?{from}wait=10"))).send().await.unwrap().text().await.unwrap();
            if done(&state) {
                return state;
            }
            assert!(Instant::now() < deadline, "run {run} is still {state}: {}", self.detail(run).await);
        }
    }

    pub async fn finished(&self, run: &str) -> String {
        self.wait_state(run, |s| ["Done", "Aborted", "Cancelled"].contains(&s)).await
    }

    /// Stopping is asynchronous (SIGTERM, SIGKILL 3 s later): waits until no instance runs.
    pub async fn wait_stopped(&self, run: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = self.detail(run).await;
            if d["instances"].as_array().unwrap().iter().all(|i| i["running"] == false) {
                return;
            }
            assert!(Instant::now() < deadline, "instances still running: {d}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Re-runs `target` on `instance` (the API answers once it ended).
    pub async fn rerun(&self, run: &str, instance: &str, target: &str) -> Value {
        let r = self
            .c
            .post(self.api(&format!("/runs/{run}/instances/{instance}/rerun")))
            .json(&json!({"target": target}))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    pub async fn detail(&self, run: &str) -> Value {
        self.c.get(self.api(&format!("/runs/{run}"))).send().await.unwrap().json().await.unwrap()
    }

    pub async fn report_file(&self, run: &str, instance: &str, name: &str) -> String {
        let reports: Value = self.c.get(self.api(&format!("/runs/{run}/reports"))).send().await.unwrap().json().await.unwrap();
        let file = reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance"] == instance)
            .unwrap_or_else(|| panic!("no report from {instance}: {reports}"))["file"]
            .as_str()
            .unwrap()
            .to_string();
        let bytes = self.c.get(self.api(&format!("/runs/{run}/reports/{instance}/{file}"))).send().await.unwrap().bytes().await.unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().ends_with(name) {
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                return s;
            }
        }
        panic!("{file} has no {name}");
    }
}

pub fn statecustom(detail: &Value, instance: &str) -> String {
    detail["instances"].as_array().unwrap().iter().find(|i| i["name"] == instance).unwrap()["statecustom"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A terminal inside an instance, over the terminal websocket, for tests: type into it and
/// read its screen output (raw bytes as text, escape sequences and all).
pub struct Terminal {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pub seen: String,
}

impl Terminal {
    /// Opens it with an API token of the signed-in user.
    pub async fn open(s: &Server, run: &str, instance: &str) -> Terminal {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let token: Value = s.c.post(s.api("/auth/tokens")).json(&json!({"name": "terminal"})).send().await.unwrap().json().await.unwrap();
        let url = format!("{}/api/v1/runs/{run}/instances/{instance}/terminal?columns=100&rows=30", s.base.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {}", token["token"].as_str().unwrap()).parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("the terminal opens");
        Terminal { ws, seen: String::new() }
    }

    pub async fn send(&mut self, message: Value) {
        use futures::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::Text(message.to_string().into())).await.unwrap();
    }

    pub async fn type_text(&mut self, text: &str) {
        self.send(json!({"type": "input", "data": text})).await;
    }

    /// Round trips of five typed keys (typed until echoed), in µs, sorted.
    pub async fn keystroke_rtts(&mut self) -> Vec<u128> {
        let mut rtts = Vec::new();
        for c in ["a", "b", "c", "d", "e"] {
            let before = self.seen.len();
            let t = Instant::now();
            self.type_text(c).await;
            self.read_until(|screen| screen[before..].contains(c)).await;
            rtts.push(t.elapsed().as_micros());
        }
        rtts.sort();
        rtts
    }

    /// Reads until the shell's exit message (`{"type":"exit","code":N}`).
    pub async fn wait_exit(&mut self) -> Value {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the shell never exited; the terminal showed:\n{}", self.seen);
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(_) => panic!("the terminal closed without an exit message; it showed:\n{}", self.seen),
            }
        }
    }

    /// Reads output until `done(everything seen so far)`, for 20 s at most (then fails,
    /// showing the screen).
    pub async fn read_until(&mut self, done: impl Fn(&str) -> bool) {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the terminal never showed what was expected; it showed:\n{}", self.seen);
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Ok(Some(Ok(Message::Text(t)))) => panic!("the shell ended ({t}); the terminal showed:\n{}", self.seen),
                Ok(Some(Ok(_))) => {}
                Ok(_) => panic!("the terminal closed; it showed:\n{}", self.seen),
                Err(_) => {}
            }
        }
    }
}

/// Runs `sql` (with `$1` = `run`) on the stopped server's SQLite database, as a crash would
/// have left it.
pub async fn edit_database(data_dir: &std::path::Path, sql: &'static str, run: &str) {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}", data_dir.join("slipstream.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(sql).bind(run).execute(&pool).await.unwrap();
    pool.close().await;
}
