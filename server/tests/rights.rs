//! The rights matrix: every operation of the OpenAPI document and every server function of the
//! pages, called by an anonymous client, the owner of what it names, another user, an
//! administrator and the agent of another run (its run token), over a real socket. Each cell
//! is the status answered; the table below is what each of them must get. The test fails if an
//! operation or a server function has no row, so a new route cannot slip past it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{agent_bin, client, statecustom};
use leptos::server_fn::ServerFn;
use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};
use testkit::{ServerOptions, TestServer};

/// The server under test (no account on it yet: the first sign-up is the administrator).
struct Server {
    base: String,
    _server: TestServer,
}

impl Server {
    fn api(&self, p: &str) -> String {
        format!("{}/api/v1{p}", self.base)
    }
}

/// Who calls, in the order of each row's cells.
const CALLERS: [&str; 5] = ["anonymous", "owner", "other user", "administrator", "agent of another run"];
/// The order cells are tried in: the refused callers before the ones whose call changes things.
const ORDER: [usize; 5] = [0, 2, 4, 1, 3];

struct Bed {
    s: Server,
    clients: [Client; 5],
    /// Each caller's session cookie (`name=value`), for websockets; none for anonymous and agent.
    cookies: [Option<String>; 5],
    agent_token: String,
    /// The owner's runs: a kept one (A), one to abort (D), a scalable one (S), one for each of
    /// the owner and the administrator to terminate.
    a: String,
    d: String,
    /// Scalable runs: grown by the owner and the administrator through the API, shrunk
    /// through the API, then the same through the server functions.
    s_run: Vec<String>,
    terminate: [String; 2],
    report: String,
    sweep: String,
    /// Two of the owner's API tokens: revoked through the API and a server function.
    token_id: [String; 2],
}

async fn sign_up(s: &Server, name: &str) -> (Client, String) {
    let c = client();
    let r = c.post(s.api("/auth/register")).json(&json!({"name": name, "password": "long enough"})).send().await.unwrap();
    assert!(r.status().is_success(), "signing up {name}: {}", r.status());
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    (c, cookie)
}

async fn launch(s: &Server, c: &Client, body: Value) -> String {
    let r = c.post(s.api("/runs")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "launching {body}");
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn ready(s: &Server, c: &Client, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d: Value = c.get(s.api(&format!("/runs/{run}"))).send().await.unwrap().json().await.unwrap();
        if d["state"] == "Ready" {
            return d;
        }
        assert!(Instant::now() < deadline, "run {run} never became Ready: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bed() -> Bed {
    agent_bin();
    let server = TestServer::start(ServerOptions { no_examples: false, ..Default::default() });
    let s = Server { base: server.url.clone(), _server: server };
    let (admin, admin_cookie) = sign_up(&s, "ada").await; // the first account administers
    let (owner, owner_cookie) = sign_up(&s, "olivia").await;
    let (other, other_cookie) = sign_up(&s, "oscar").await;
    for user in ["olivia", "oscar"] {
        let r = admin.put(s.api(&format!("/users/{user}/connectors/local"))).json(&json!({"allowed": true})).send().await.unwrap();
        assert!(r.status().is_success(), "allowing {user} the local connector: {}", r.status());
    }
    let save = |m: Value| {
        let (owner, s) = (owner.clone(), &s);
        async move {
            let path = m["path"].as_str().unwrap().to_string();
            let r = owner.put(s.api(&format!("/modules/{path}"))).json(&m).send().await.unwrap();
            assert!(r.status().is_success(), "saving {path}: {}", r.text().await.unwrap());
        }
    };
    save(json!({"kind": "project", "path": "olivia"})).await;
    save(json!({"kind": "image", "path": "olivia/web", "reference": "examples/images/busybox",
        "parameters": [{"name": "note", "category": "output"}],
        "targets": {"execute": "#!/bin/sh\nss-display up\n", "report": "#!/bin/sh\necho hi > \"$SLIPSTREAM_REPORT_DIR/r.txt\"\n"}}))
    .await;
    save(json!({"kind": "image", "path": "olivia/tok", "reference": "examples/images/busybox",
        "targets": {"execute": "#!/bin/sh\nss-display \"$SLIPSTREAM_RUN_TOKEN\"\n"}}))
    .await;
    save(json!({"kind": "deployment", "path": "olivia/d", "nodes": {"web": {"image": "olivia/web"}}})).await;
    for name in ["del1", "del2"] {
        save(json!({"kind": "project", "path": format!("olivia/{name}")})).await;
    }
    let kept = |module: &str| json!({"module": module, "keep_running": "always"});
    let a = launch(&s, &owner, kept("olivia/web")).await;
    let b = launch(&s, &owner, kept("olivia/tok")).await;
    let d = launch(&s, &owner, kept("olivia/web")).await;
    let mut s_run = Vec::new();
    for _ in 0..8 {
        s_run.push(launch(&s, &owner, json!({"module": "olivia/d", "scalable": true})).await);
    }
    let terminate = [launch(&s, &owner, kept("olivia/web")).await, launch(&s, &owner, kept("olivia/web")).await];
    for run in [&a, &d, &terminate[0], &terminate[1]].into_iter().chain(&s_run) {
        ready(&s, &owner, run).await;
    }
    let agent_token = statecustom(&ready(&s, &owner, &b).await, "machine.1");
    assert!(agent_token.starts_with("ssr_"), "run B's token: {agent_token}");
    let reports: Value = owner.get(s.api(&format!("/runs/{a}/reports"))).send().await.unwrap().json().await.unwrap();
    let report = reports[0]["file"].as_str().expect("run A sent a report").to_string();
    let r = owner
        .post(s.api("/sweeps"))
        .json(&json!({"module": "olivia/d", "vary": ["web:multiplicity=1"], "collect": "web.*:note"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "starting a sweep");
    let sweep = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let mut token_id = [String::new(), String::new()];
    for id in &mut token_id {
        let r = owner.post(s.api("/auth/tokens")).json(&json!({"name": "mine"})).send().await.unwrap();
        *id = r.json::<Value>().await.unwrap()["id"].as_str().expect("a token id").to_string();
    }
    let agent = client();
    let anon = client();
    Bed {
        clients: [anon, owner, other, admin, agent],
        cookies: [None, Some(owner_cookie), Some(other_cookie), Some(admin_cookie), None],
        s,
        agent_token,
        a,
        d,
        s_run,
        terminate,
        report,
        sweep,
        token_id,
    }
}

impl Bed {
    /// The request as caller `who` sends it: from the server's own origin, with the run token
    /// for the agent.
    fn as_caller(&self, who: usize, r: RequestBuilder) -> RequestBuilder {
        let r = r.header("origin", &self.s.base);
        if who == 4 {
            r.bearer_auth(&self.agent_token)
        } else {
            r
        }
    }

    async fn websocket(&self, who: usize, path: &str) -> u16 {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("{}{path}", self.s.base.replacen("http", "ws", 1)).into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("origin", self.s.base.parse().unwrap());
        if let Some(cookie) = &self.cookies[who] {
            h.insert("cookie", cookie.parse().unwrap());
        }
        if who == 4 {
            h.insert("authorization", format!("Bearer {}", self.agent_token).parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("websocket {path}: {e}"),
        }
    }
}

/// One row: the operation as the OpenAPI document names it, and what each caller gets.
struct Row {
    method: &'static str,
    path: &'static str,
    want: [u16; 5],
}

const fn row(method: &'static str, path: &'static str, want: [u16; 5]) -> Row {
    Row { method, path, want }
}

/// [anonymous, owner, other user, administrator, agent of another run]
const OPERATIONS: &[Row] = &[
    row("POST", "/api/v1/auth/register", [201, 201, 201, 201, 201]),
    row("POST", "/api/v1/auth/login", [200, 200, 200, 200, 200]),
    row("PUT", "/api/v1/auth/password", [401, 400, 400, 400, 401]),
    row("POST", "/api/v1/invitations", [401, 403, 403, 201, 401]),
    row("GET", "/api/v1/auth/me", [401, 200, 200, 200, 401]),
    row("POST", "/api/v1/auth/tokens", [401, 201, 201, 201, 401]),
    row("GET", "/api/v1/auth/tokens", [401, 200, 200, 200, 401]),
    row("DELETE", "/api/v1/auth/tokens/{id}", [401, 204, 404, 404, 401]),
    row("GET", "/api/v1/profile", [401, 200, 200, 200, 401]),
    row("PUT", "/api/v1/profile", [401, 200, 200, 200, 401]),
    row("GET", "/api/v1/modules", [200, 200, 200, 200, 200]),
    row("GET", "/api/v1/modules/{path}", [401, 200, 403, 200, 401]),
    row("PUT", "/api/v1/modules/{path}", [401, 200, 403, 200, 401]),
    row("PATCH", "/api/v1/modules/{path}", [401, 200, 403, 200, 401]),
    row("GET", "/api/v1/modules/{path}/versions", [401, 200, 403, 200, 401]),
    row("POST", "/api/v1/modules/{path}/versions/{version}/restore", [401, 200, 403, 200, 401]),
    row("POST", "/api/v1/import", [401, 200, 403, 200, 401]),
    row("GET", "/api/v1/export/{path}", [401, 200, 403, 200, 401]),
    row("GET", "/api/v1/catalog", [200, 200, 200, 200, 200]),
    row("GET", "/api/v1/openapi.json", [200, 200, 200, 200, 200]),
    row("POST", "/api/v1/runs", [401, 201, 403, 201, 401]),
    row("GET", "/api/v1/runs", [401, 200, 200, 200, 401]),
    row("GET", "/api/v1/runs/{id}", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/runs/{id}/state", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/runs/{id}/params", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/runs/{id}/params/{key}", [401, 200, 403, 200, 403]),
    row("PUT", "/api/v1/runs/{id}/params/{key}", [401, 204, 403, 204, 403]),
    row("GET", "/api/v1/runs/{id}/events", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/runs/{id}/logs", [401, 200, 403, 200, 403]),
    row("POST", "/api/v1/runs/{id}/logs", [401, 204, 403, 204, 403]),
    row("GET", "/api/v1/runs/{id}/reports", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/runs/{id}/reports/{instance}/{file}", [401, 200, 403, 200, 403]),
    row("PUT", "/api/v1/runs/{id}/reports/{instance}/{file}", [401, 204, 403, 204, 403]),
    row("POST", "/api/v1/runs/{id}/instances/{instance}/complete", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/runs/{id}/instances/{instance}/plan", [401, 200, 403, 200, 403]),
    row("POST", "/api/v1/runs/{id}/instances/{instance}/rerun", [401, 200, 403, 200, 401]),
    row("GET", "/api/v1/runs/{id}/instances/{instance}/terminal", [401, 101, 403, 101, 401]),
    row("GET", "/api/v1/ws", [401, 101, 101, 101, 401]),
    row("POST", "/api/v1/runs/{id}/nodes/{node}/instances", [401, 201, 403, 201, 401]),
    row("DELETE", "/api/v1/runs/{id}/nodes/{node}/instances", [401, 202, 403, 202, 401]),
    row("POST", "/api/v1/runs/{id}/abort", [401, 200, 403, 200, 403]),
    row("DELETE", "/api/v1/runs/{id}/abort", [401, 200, 403, 200, 403]),
    row("DELETE", "/api/v1/runs/{id}", [401, 200, 403, 200, 403]),
    row("GET", "/api/v1/profile/connectors", [401, 200, 200, 200, 401]),
    row("PUT", "/api/v1/profile/connectors/{connector}", [401, 200, 200, 200, 401]),
    row("PUT", "/api/v1/users/{name}/quotas/{connector}", [401, 403, 403, 204, 401]),
    row("PUT", "/api/v1/users/{name}/connectors/{connector}", [401, 403, 403, 204, 401]),
    row("PUT", "/api/v1/connectors/{connector}/quota", [401, 403, 403, 204, 401]),
    row("POST", "/api/v1/modules/{path}/build", [401, 400, 403, 400, 401]),
    row("GET", "/api/v1/modules/{path}/builds", [401, 200, 403, 200, 401]),
    row("POST", "/api/v1/sweeps", [401, 201, 403, 201, 401]),
    row("GET", "/api/v1/sweeps", [401, 200, 200, 200, 401]),
    row("GET", "/api/v1/sweeps/{id}", [401, 200, 403, 200, 401]),
    row("GET", "/api/v1/sweeps/{id}/csv", [401, 200, 403, 200, 401]),
    row("DELETE", "/api/v1/modules/{path}", [401, 204, 403, 204, 401]),
    row("POST", "/api/v1/auth/logout", [204, 204, 204, 204, 204]),
];

impl Bed {
    /// The request of operation `r` for caller `who` (`None`: a websocket).
    fn request(&self, r: &Row, who: usize) -> Option<RequestBuilder> {
        let (c, api) = (&self.clients[who], |p: &str| self.s.api(p));
        let (a, d, sr) = (&self.a, &self.d, &self.s_run);
        let image = json!({"kind": "image", "path": "olivia/web", "reference": "examples/images/busybox",
            "parameters": [{"name": "note", "category": "output"}],
            "targets": {"execute": "#!/bin/sh\nss-display up\n", "report": "#!/bin/sh\necho hi > \"$SLIPSTREAM_REPORT_DIR/r.txt\"\n"}});
        // What the owner and the administrator each change or remove is their own.
        let mine = if who == 3 { 1 } else { 0 };
        let rb = match (r.method, r.path) {
            // A client of its own: the caller's session must not become the new one.
            ("POST", "/api/v1/auth/register") => {
                client().post(api("/auth/register")).json(&json!({"name": format!("new{who}"), "password": "long enough"}))
            }
            ("POST", "/api/v1/auth/login") => client().post(api("/auth/login")).json(&json!({"name": "oscar", "password": "long enough"})),
            ("PUT", "/api/v1/auth/password") => c.put(api("/auth/password")).json(&json!({"current": "not it", "new": "something long"})),
            ("POST", "/api/v1/invitations") => c.post(api("/invitations")).json(&json!({"days": 1})),
            ("GET", "/api/v1/auth/me") => c.get(api("/auth/me")),
            ("POST", "/api/v1/auth/tokens") => c.post(api("/auth/tokens")).json(&json!({"name": format!("t{who}")})),
            ("GET", "/api/v1/auth/tokens") => c.get(api("/auth/tokens")),
            ("DELETE", "/api/v1/auth/tokens/{id}") => c.delete(api(&format!("/auth/tokens/{}", self.token_id[0]))),
            ("GET", "/api/v1/profile") => c.get(api("/profile")),
            ("PUT", "/api/v1/profile") => c.put(api("/profile")).json(&json!({"keep_running": "on-success", "run_timeout_minutes": 60})),
            ("GET", "/api/v1/modules") => c.get(api("/modules")),
            ("GET", "/api/v1/modules/{path}") => c.get(api("/modules/olivia/web")),
            ("PUT", "/api/v1/modules/{path}") => c.put(api("/modules/olivia/web")).json(&image),
            ("PATCH", "/api/v1/modules/{path}") => c.patch(api("/modules/olivia/web")).json(&json!({"published": false})),
            ("DELETE", "/api/v1/modules/{path}") => c.delete(api(&format!("/modules/olivia/del{}", mine + 1))),
            ("GET", "/api/v1/modules/{path}/versions") => c.get(api("/modules/olivia/web/versions")),
            ("POST", "/api/v1/modules/{path}/versions/{version}/restore") => c.post(api("/modules/olivia/web/versions/1/restore")),
            ("POST", "/api/v1/import") => c
                .post(api("/import"))
                .header("content-type", "application/yaml")
                .body(format!("kind: project\npath: olivia/imported{who}\n")),
            ("GET", "/api/v1/export/{path}") => c.get(api("/export/olivia/web")),
            ("GET", "/api/v1/catalog") => c.get(api("/catalog")),
            ("GET", "/api/v1/openapi.json") => c.get(api("/openapi.json")),
            ("POST", "/api/v1/runs") => c.post(api("/runs")).json(&json!({"module": "olivia/web", "keep_running": "never"})),
            ("GET", "/api/v1/runs") => c.get(api("/runs")),
            ("GET", "/api/v1/runs/{id}") => c.get(api(&format!("/runs/{a}"))),
            ("GET", "/api/v1/runs/{id}/state") => c.get(api(&format!("/runs/{a}/state"))),
            ("GET", "/api/v1/runs/{id}/params") => c.get(api(&format!("/runs/{a}/params"))),
            ("GET", "/api/v1/runs/{id}/params/{key}") => c.get(api(&format!("/runs/{a}/params/machine.1:hostname?wait=0"))),
            ("PUT", "/api/v1/runs/{id}/params/{key}") => c.put(api(&format!("/runs/{a}/params/machine.1:note"))).body("written"),
            ("GET", "/api/v1/runs/{id}/events") => c.get(api(&format!("/runs/{a}/events"))),
            ("GET", "/api/v1/runs/{id}/logs") => c.get(api(&format!("/runs/{a}/logs"))),
            ("POST", "/api/v1/runs/{id}/logs") => {
                c.post(api(&format!("/runs/{a}/logs"))).json(&json!([{"instance": "machine.1", "stream": "stdout", "line": "a line"}]))
            }
            ("GET", "/api/v1/runs/{id}/reports") => c.get(api(&format!("/runs/{a}/reports"))),
            ("GET", "/api/v1/runs/{id}/reports/{instance}/{file}") => c.get(api(&format!("/runs/{a}/reports/machine.1/{}", self.report))),
            ("PUT", "/api/v1/runs/{id}/reports/{instance}/{file}") => {
                c.put(api(&format!("/runs/{a}/reports/machine.1/extra{who}.tgz"))).body(vec![0u8; 16])
            }
            ("POST", "/api/v1/runs/{id}/instances/{instance}/complete") => {
                c.post(api(&format!("/runs/{a}/instances/machine.1/complete"))).body("Executing")
            }
            ("GET", "/api/v1/runs/{id}/instances/{instance}/plan") => c.get(api(&format!("/runs/{a}/instances/machine.1/plan"))),
            ("POST", "/api/v1/runs/{id}/instances/{instance}/rerun") => {
                c.post(api(&format!("/runs/{a}/instances/machine.1/rerun"))).json(&json!({"target": "execute"}))
            }
            ("GET", "/api/v1/runs/{id}/instances/{instance}/terminal") | ("GET", "/api/v1/ws") => return None,
            ("POST", "/api/v1/runs/{id}/nodes/{node}/instances") => {
                c.post(api(&format!("/runs/{}/nodes/web/instances", sr[mine]))).json(&json!({"count": 1}))
            }
            ("DELETE", "/api/v1/runs/{id}/nodes/{node}/instances") => {
                c.delete(api(&format!("/runs/{}/nodes/web/instances", sr[2 + mine]))).json(&json!({"instances": ["web.1"]}))
            }
            ("POST", "/api/v1/runs/{id}/abort") => c.post(api(&format!("/runs/{d}/abort"))).json(&json!({"message": "stop"})),
            ("DELETE", "/api/v1/runs/{id}/abort") => c.delete(api(&format!("/runs/{d}/abort"))),
            ("DELETE", "/api/v1/runs/{id}") => c.delete(api(&format!("/runs/{}", self.terminate[mine]))),
            ("GET", "/api/v1/profile/connectors") => c.get(api("/profile/connectors")),
            ("PUT", "/api/v1/profile/connectors/{connector}") => c.put(api("/profile/connectors/local")).json(&json!({"settings": {}})),
            ("PUT", "/api/v1/users/{name}/quotas/{connector}") => c.put(api("/users/oscar/quotas/local")).json(&json!({"quota": 10})),
            ("PUT", "/api/v1/users/{name}/connectors/{connector}") => {
                c.put(api("/users/oscar/connectors/local")).json(&json!({"allowed": true}))
            }
            ("PUT", "/api/v1/connectors/{connector}/quota") => c.put(api("/connectors/local/quota")).json(&json!({"quota": null})),
            ("POST", "/api/v1/modules/{path}/build") => c.post(api("/modules/olivia/web/build?connector=local")),
            ("GET", "/api/v1/modules/{path}/builds") => c.get(api("/modules/olivia/web/builds")),
            ("POST", "/api/v1/sweeps") => {
                c.post(api("/sweeps")).json(&json!({"module": "olivia/d", "vary": ["web:multiplicity=1"], "collect": "web.*:note"}))
            }
            ("GET", "/api/v1/sweeps") => c.get(api("/sweeps")),
            ("GET", "/api/v1/sweeps/{id}") => c.get(api(&format!("/sweeps/{}", self.sweep))),
            ("GET", "/api/v1/sweeps/{id}/csv") => c.get(api(&format!("/sweeps/{}/csv", self.sweep))),
            ("POST", "/api/v1/auth/logout") => c.post(api("/auth/logout")),
            (m, p) => panic!("no request for {m} {p}"),
        };
        Some(self.as_caller(who, rb))
    }

    /// Calls each of `rows` as every caller; a row answered otherwise than it says goes to `wrong`.
    async fn check(&self, rows: &[&Row], wrong: &mut Vec<String>, cells: &mut usize) {
        for r in rows {
            let mut got = [0u16; 5];
            for who in ORDER {
                got[who] = self.status(r, who).await;
                *cells += 1;
            }
            if got != r.want {
                wrong.push(format!("{} {}: got {got:?}, want {:?}", r.method, r.path, r.want));
            }
        }
    }

    async fn status(&self, r: &Row, who: usize) -> u16 {
        match self.request(r, who) {
            Some(rb) => rb.send().await.unwrap().status().as_u16(),
            None if r.path.ends_with("/terminal") => {
                self.websocket(who, &format!("/api/v1/runs/{}/instances/machine.1/terminal", self.a)).await
            }
            None => self.websocket(who, "/api/v1/ws").await,
        }
    }
}

/// [anonymous, owner, other user, administrator, agent of another run]; the server functions
/// read the session cookie only (a run token is no one there).
const SERVER_FUNCTIONS: &[(&str, &str, [u16; 5])] = &[
    ("current_user", <app::api::CurrentUser as ServerFn>::PATH, [200, 200, 200, 200, 200]),
    ("register", <app::api::Register as ServerFn>::PATH, [200, 200, 200, 200, 200]),
    ("login", <app::api::Login as ServerFn>::PATH, [200, 200, 200, 200, 200]),
    ("module_page", <app::api::ModulePage as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("catalog", <app::api::Catalog as ServerFn>::PATH, [200, 200, 200, 200, 200]),
    ("run_page", <app::api::RunPage as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("list_runs", <app::api::ListRuns as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("rerun_target", <app::api::RerunTarget as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("scale_up", <app::api::ScaleUp as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("scale_down", <app::api::ScaleDown as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("launch_form", <app::api::LaunchForm as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("image_builds", <app::api::ImageBuilds as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("build_image", <app::api::BuildImage as ServerFn>::PATH, [401, 400, 403, 400, 401]),
    ("launch", <app::api::Launch as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("start_sweep", <app::api::StartSweep as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("sweep_page", <app::api::SweepPage as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("my_profile", <app::api::MyProfile as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("save_profile", <app::api::SaveProfile as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("change_password", <app::api::ChangePassword as ServerFn>::PATH, [401, 400, 400, 400, 401]),
    ("new_api_token", <app::api::NewApiToken as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("revoke_api_token", <app::api::RevokeApiToken as ServerFn>::PATH, [401, 200, 404, 404, 401]),
    ("dashboard_runs", <app::api::DashboardRuns as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("compare_versions", <app::api::CompareVersions as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("restore_version", <app::api::RestoreVersion as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("search_modules", <app::api::SearchModules as ServerFn>::PATH, [200, 200, 200, 200, 200]),
    ("new_project", <app::api::NewProject as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("editor_data", <app::api::EditorData as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("image_parameters", <app::api::ImageParameters as ServerFn>::PATH, [404, 200, 404, 200, 404]),
    ("save_module", <app::api::SaveModule as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("my_connectors", <app::api::MyConnectors as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("save_connector", <app::api::SaveConnector as ServerFn>::PATH, [401, 200, 200, 200, 401]),
    ("terminate_run", <app::api::TerminateRun as ServerFn>::PATH, [401, 200, 403, 200, 401]),
    ("logout", <app::api::Logout as ServerFn>::PATH, [200, 200, 200, 200, 200]),
];

impl Bed {
    /// The form fields of server function `name` for caller `who`.
    fn arguments(&self, name: &str, who: usize) -> Vec<(&'static str, String)> {
        let a = self.a.clone();
        let mine = if who == 3 { 1 } else { 0 };
        let image = json!({"kind": "image", "path": "olivia/web", "reference": "examples/images/busybox",
            "parameters": [{"name": "note", "category": "output"}], "targets": {"execute": "#!/bin/sh\nss-display up\n"}});
        let s = |v: &str| v.to_string();
        match name {
            "current_user" | "list_runs" | "my_profile" | "my_connectors" | "logout" => vec![],
            "register" => vec![("name", format!("form{who}")), ("password", s("long enough"))],
            "login" => vec![("name", s("oscar")), ("password", s("long enough"))],
            "module_page" => vec![("path", s("olivia/web"))],
            "catalog" => vec![("query", s("")), ("kind", s(""))],
            "run_page" => vec![("id", a)],
            "rerun_target" => vec![("id", a), ("instance", s("machine.1")), ("target", s("execute"))],
            "scale_up" => vec![("id", self.s_run[4 + mine].clone()), ("node", s("web")), ("count", s("1"))],
            "scale_down" => vec![("id", self.s_run[6 + mine].clone()), ("node", s("web")), ("instance", s("web.1"))],
            "launch_form" => vec![("module", s("olivia/web"))],
            "image_builds" => vec![("path", s("olivia/web"))],
            "build_image" => vec![("path", s("olivia/web")), ("connector", s("local"))],
            "launch" => vec![("request", json!({"module": "olivia/web", "keep_running": "never"}).to_string())],
            "start_sweep" => {
                vec![("request", json!({"module": "olivia/d", "vary": ["web:multiplicity=1"], "collect": "web.*:note"}).to_string())]
            }
            "sweep_page" => vec![("id", self.sweep.clone())],
            "save_profile" => vec![("keep_running", s("on-success")), ("run_timeout_minutes", s("60")), ("ssh_public_key", s(""))],
            "change_password" => vec![("current", s("not it")), ("new", s("something long"))],
            "new_api_token" => vec![("name", format!("f{who}"))],
            "revoke_api_token" => vec![("id", self.token_id[1].clone())],
            "dashboard_runs" => vec![("active", s("false")), ("module", s("")), ("tag", s(""))],
            "compare_versions" => vec![("path", s("olivia/web")), ("from", s("1")), ("to", s("2"))],
            "restore_version" => vec![("path", s("olivia/web")), ("version", s("1"))],
            "search_modules" => vec![("query", s("web"))],
            "new_project" => vec![("parent", s("olivia")), ("name", format!("p{who}")), ("description", s(""))],
            "editor_data" => vec![("path", s("olivia/web")), ("kind", s("image")), ("parent", s(""))],
            "image_parameters" => vec![("image", s("olivia/web"))],
            "save_module" => vec![("doc", image.to_string())],
            "save_connector" => vec![("connector", s("local")), ("settings", s("")), ("credential", s(""))],
            "terminate_run" => vec![("id", self.terminate[mine].clone())],
            other => panic!("no arguments for server function {other}"),
        }
    }
}

/// `application/x-www-form-urlencoded` of one value.
fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_and_server_function_answers_each_kind_of_caller_as_the_table_says() {
    let bed = bed().await;
    // Every operation of the OpenAPI document has a row, and no row names one it lacks.
    let doc: Value = bed.clients[0].get(bed.s.api("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), p.clone())))
        .collect();
    let rows: BTreeSet<(String, String)> = OPERATIONS.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(rows, documented, "the table covers the OpenAPI document exactly");

    let mut wrong = Vec::new();
    let mut cells = 0;
    // Signing out last: the server functions need the sessions.
    let (logout, operations): (Vec<&Row>, Vec<&Row>) = OPERATIONS.iter().partition(|r| r.path == "/api/v1/auth/logout");
    bed.check(&operations, &mut wrong, &mut cells).await;

    // Every server function of the pages has a row: the names in the source are the table's.
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../app/src/api.rs")).unwrap();
    let declared: BTreeSet<&str> = source.split("#[server]\npub async fn ").skip(1).map(|rest| rest.split('(').next().unwrap()).collect();
    let listed: BTreeSet<&str> = SERVER_FUNCTIONS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(listed, declared, "the table covers every server function of app/src/api.rs");
    for (name, path, want) in SERVER_FUNCTIONS {
        let mut got = [0u16; 5];
        for who in ORDER {
            let form = bed.arguments(name, who);
            let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
            // Signing in or up from a client of its own: the caller's session must stay its own.
            let c = if ["register", "login"].contains(name) { client() } else { bed.clients[who].clone() };
            let rb = c
                .post(format!("{}{path}", bed.s.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(body.join("&"));
            got[who] = bed.as_caller(who, rb).send().await.unwrap().status().as_u16();
            cells += 1;
        }
        if got != *want {
            wrong.push(format!("server function {name}: got {got:?}, want {want:?}"));
        }
    }
    bed.check(&logout, &mut wrong, &mut cells).await;
    // The owner's kept runs end with the test (the sessions above were signed out).
    let owner = client();
    owner.post(bed.s.api("/auth/login")).json(&json!({"name": "olivia", "password": "long enough"})).send().await.unwrap();
    let runs: Value = owner.get(bed.s.api("/runs")).send().await.unwrap().json().await.unwrap();
    for run in runs.as_array().into_iter().flatten().filter(|r| r["ended_at"].is_null()) {
        let id = run["id"].as_str().unwrap_or_default();
        owner.delete(bed.s.api(&format!("/runs/{id}"))).header("origin", &bed.s.base).send().await.unwrap();
    }
    println!("{cells} calls: {} operations and {} server functions × {CALLERS:?}", OPERATIONS.len(), SERVER_FUNCTIONS.len());
    assert!(wrong.is_empty(), "answers that differ from the table ({CALLERS:?}):\n{}", wrong.join("\n"));
}
