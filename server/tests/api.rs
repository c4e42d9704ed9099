//! The HTTP API over a real socket, against SQLite and PostgreSQL: accounts, the module life
//! cycle, the rights matrix, validation errors, YAML round trips, the catalog, OpenAPI.

use engine::testing::backend_urls;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use testkit::{ServerOptions, TestServer};

/// The real server binary on a fresh data directory (see `testkit`).
struct Server {
    base: String,
    database_url: String,
    _server: TestServer,
}

async fn spawn(database_url: String, load_examples: bool) -> Server {
    let server =
        TestServer::start(ServerOptions { database_url: Some(database_url.clone()), no_examples: !load_examples, ..Default::default() });
    Server { base: server.url.clone(), database_url, _server: server }
}

async fn servers() -> Vec<(&'static str, Server)> {
    let mut out = Vec::new();
    for (name, url) in backend_urls().await {
        out.push((name, spawn(url, true).await));
    }
    out
}

/// A browser-like client that keeps its session cookie.
fn client() -> Client {
    // The HTTP client library is built with TLS whose crypto provider must be chosen first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().cookie_store(true).build().unwrap()
}

async fn signed_up(s: &Server, name: &str) -> Client {
    let c = client();
    let r =
        c.post(format!("{}/api/v1/auth/register", s.base)).json(&json!({"name": name, "password": "long enough"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "register {name}");
    c
}

async fn put(c: &Client, s: &Server, body: Value) -> (StatusCode, Value) {
    let path = body["path"].as_str().unwrap().to_string();
    let r = c.put(format!("{}/api/v1/modules/{path}", s.base)).json(&body).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn accounts_sessions_and_bearer_tokens() {
    for (db, s) in servers().await {
        let api = |p: &str| format!("{}/api/v1{p}", s.base);
        let ada = signed_up(&s, "ada").await;
        let me: Value = ada.get(api("/auth/me")).send().await.unwrap().json().await.unwrap();
        assert_eq!(me, json!({"name": "ada", "is_admin": true}), "{db}: first user is the administrator");

        let anon = client();
        assert_eq!(anon.get(api("/auth/me")).send().await.unwrap().status(), 401, "{db}");
        let r = anon.post(api("/auth/login")).json(&json!({"name": "ada", "password": "wrong password"})).send().await.unwrap();
        assert_eq!(r.status(), 401, "{db}");
        let r = anon.post(api("/auth/register")).json(&json!({"name": "x", "password": "long enough"})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{db}");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "name", "{db}");

        let token: Value = ada.post(api("/auth/tokens")).json(&json!({"name": "ci"})).send().await.unwrap().json().await.unwrap();
        let secret = token["token"].as_str().unwrap();
        let bearer = client();
        let me: Value = bearer.get(api("/auth/me")).bearer_auth(secret).send().await.unwrap().json().await.unwrap();
        assert_eq!(me["name"], "ada", "{db}: bearer tokens authenticate scripts");
        let listed: Value = ada.get(api("/auth/tokens")).send().await.unwrap().json().await.unwrap();
        assert!(listed[0].get("token").is_none(), "{db}: secrets are never listed");
        let r = ada.delete(api(&format!("/auth/tokens/{}", token["id"].as_str().unwrap()))).send().await.unwrap();
        assert_eq!(r.status(), 204, "{db}");
        assert_eq!(bearer.get(api("/auth/me")).bearer_auth(secret).send().await.unwrap().status(), 401, "{db}: revoked");

        assert_eq!(ada.post(api("/auth/logout")).send().await.unwrap().status(), 204, "{db}");
        assert_eq!(ada.get(api("/auth/me")).send().await.unwrap().status(), 401, "{db}: signed out");

        let profile: Value = {
            let c = signed_up(&s, "olivia").await;
            c.put(api("/profile"))
                .json(&json!({"keep_running": "always", "run_timeout_minutes": 10}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        };
        assert_eq!((profile["keep_running"].as_str(), profile["run_timeout_minutes"].as_i64()), (Some("always"), Some(10)), "{db}");
    }
}

#[tokio::test]
async fn modules_are_created_versioned_restored_and_deleted() {
    for (db, s) in servers().await {
        let api = |p: &str| format!("{}/api/v1{p}", s.base);
        let c = signed_up(&s, "olivia").await;
        assert_eq!(put(&c, &s, json!({"kind": "project", "path": "olivia"})).await.0, 201, "{db}");
        let img = json!({"kind": "image", "path": "olivia/web", "reference": "examples/images/busybox",
                         "parameters": [{"name": "port", "category": "output", "default": "8080"}], "comment": "first"});
        let (st, v1) = put(&c, &s, img.clone()).await;
        assert_eq!((st, v1["version"].as_u64()), (StatusCode::CREATED, Some(1)), "{db}: {v1}");
        let mut img2 = img.clone();
        img2["description"] = json!("second");
        img2["comment"] = json!("describe");
        let (st, v2) = put(&c, &s, img2).await;
        assert_eq!((st, v2["version"].as_u64()), (StatusCode::OK, Some(2)), "{db}");

        let history: Value = c.get(api("/modules/olivia/web/versions")).send().await.unwrap().json().await.unwrap();
        assert_eq!(history.as_array().unwrap().len(), 2, "{db}");
        assert_eq!((history[0]["version"].as_u64(), history[0]["comment"].as_str()), (Some(2), Some("describe")), "{db}");
        let old: Value = c.get(api("/modules/olivia/web?version=1")).send().await.unwrap().json().await.unwrap();
        assert_eq!(old.get("description"), None, "{db}");

        let r = c.post(api("/modules/olivia/web/versions/1/restore")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{db}");
        let v3: Value = r.json().await.unwrap();
        assert_eq!((v3["version"].as_u64(), v3.get("description")), (Some(3), None), "{db}");

        let listed: Value = c.get(api("/modules?parent=olivia")).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed[0]["path"], "olivia/web", "{db}");
        assert_eq!(c.delete(api("/modules/olivia/web")).send().await.unwrap().status(), 204, "{db}");
        assert_eq!(c.get(api("/modules/olivia/web")).send().await.unwrap().status(), 404, "{db}");
    }
}

#[tokio::test]
async fn every_operation_checks_rights_for_anonymous_owner_other_and_admin() {
    for (db, s) in servers().await {
        let api = |p: &str| format!("{}/api/v1{p}", s.base);
        let admin = signed_up(&s, "ada").await;
        let owner = signed_up(&s, "olivia").await;
        let other = signed_up(&s, "oscar").await;
        let anon = client();
        put(&owner, &s, json!({"kind": "project", "path": "olivia"})).await;
        for name in ["m1", "m2", "m3"] {
            let (st, _) =
                put(&owner, &s, json!({"kind": "image", "path": format!("olivia/{name}"), "reference": "examples/images/busybox"})).await;
            assert_eq!(st, 201, "{db}");
        }
        let body = json!({"kind": "image", "path": "olivia/m1", "reference": "examples/images/busybox"});
        // (operation, anonymous, owner, other, admin)
        let cases: Vec<(&str, [u16; 4])> = vec![
            ("read", [401, 200, 403, 200]),
            ("history", [401, 200, 403, 200]),
            ("save", [401, 200, 403, 200]),
            ("share", [401, 200, 403, 200]),
            ("restore", [401, 200, 403, 200]),
            ("export", [401, 200, 403, 200]),
        ];
        for (op, want) in cases {
            let mut got = [0u16; 4];
            for (i, c) in [&anon, &owner, &other, &admin].into_iter().enumerate() {
                let req = match op {
                    "read" => c.get(api("/modules/olivia/m1")),
                    "history" => c.get(api("/modules/olivia/m1/versions")),
                    "save" => c.put(api("/modules/olivia/m1")).json(&body),
                    "share" => c.patch(api("/modules/olivia/m1")).json(&json!({"published": false})),
                    "restore" => c.post(api("/modules/olivia/m1/versions/1/restore")),
                    "export" => c.get(api("/export/olivia/m1")),
                    _ => unreachable!(),
                };
                got[i] = req.send().await.unwrap().status().as_u16();
            }
            assert_eq!(got, want, "{db}: {op} as [anonymous, owner, other, admin]");
        }
        // Delete: refused to anonymous and other users, allowed to the owner and to administrators.
        assert_eq!(anon.delete(api("/modules/olivia/m2")).send().await.unwrap().status(), 401, "{db}");
        assert_eq!(other.delete(api("/modules/olivia/m2")).send().await.unwrap().status(), 403, "{db}");
        assert_eq!(owner.delete(api("/modules/olivia/m2")).send().await.unwrap().status(), 204, "{db}");
        assert_eq!(admin.delete(api("/modules/olivia/m3")).send().await.unwrap().status(), 204, "{db}");
        // Creating inside someone's project needs write on it; any signed-in user may create a root.
        let (st, _) = put(&other, &s, json!({"kind": "project", "path": "olivia/oscars"})).await;
        assert_eq!(st, 403, "{db}");
        assert_eq!(put(&other, &s, json!({"kind": "project", "path": "oscar"})).await.0, 201, "{db}");
        assert_eq!(put(&anon, &s, json!({"kind": "project", "path": "anon"})).await.0, 401, "{db}");
        // Public write lets others save, not share; publishing opens reading to everyone.
        owner.patch(api("/modules/olivia/m1")).json(&json!({"public": {"write": true}})).send().await.unwrap();
        assert_eq!(other.put(api("/modules/olivia/m1")).json(&body).send().await.unwrap().status(), 200, "{db}");
        assert_eq!(other.patch(api("/modules/olivia/m1")).json(&json!({"published": true})).send().await.unwrap().status(), 403, "{db}");
        owner.patch(api("/modules/olivia/m1")).json(&json!({"published": true})).send().await.unwrap();
        assert_eq!(anon.get(api("/modules/olivia/m1")).send().await.unwrap().status(), 200, "{db}: published");
        assert_eq!(anon.put(api("/modules/olivia/m1")).json(&body).send().await.unwrap().status(), 401, "{db}");
    }
}

#[tokio::test]
async fn invalid_modules_get_400_with_the_field_named_and_nothing_is_written() {
    for (db, s) in servers().await {
        let api = |p: &str| format!("{}/api/v1{p}", s.base);
        let c = signed_up(&s, "olivia").await;
        put(&c, &s, json!({"kind": "project", "path": "p"})).await;
        let deployment = |node: Value| json!({"kind": "deployment", "path": "p/d", "nodes": {"web": {"image": "examples/tutorials/hello/apache"}, "client": node}});
        let cases = vec![
            (
                "multiplicity",
                deployment(json!({"image": "examples/tutorials/hello/apache", "multiplicity": -2})),
                "nodes.client.multiplicity",
            ),
            ("unknown field", json!({"kind": "image", "path": "p/i", "reference": "examples/images/busybox", "recipie": "x"}), "recipie"),
            ("wrong type", json!({"kind": "image", "path": "p/i", "native": "yes"}), "native"),
            (
                "missing output",
                deployment(json!({"image": "examples/tutorials/hello/testclient",
                "links": {"webserver.hostname": "web:hostname", "webserver.port": "web:nope", "webserver.ready": "web:ready"}})),
                "nodes.client.links.webserver.port",
            ),
            (
                "unresolved input",
                deployment(json!({"image": "examples/tutorials/hello/testclient",
                "links": {"webserver.hostname": "web:hostname", "webserver.port": "web:port"}})),
                "nodes.client.links.webserver.ready",
            ),
            (
                "value too long",
                deployment(json!({"image": "examples/tutorials/hello/testclient",
                "values": {"webserver.hostname": "x".repeat(4097)},
                "links": {"webserver.port": "web:port", "webserver.ready": "web:ready"}})),
                "nodes.client.values.webserver.hostname",
            ),
            ("bad name", json!({"kind": "project", "path": "p/has space"}), "path"),
        ];
        for (what, body, field) in cases {
            let (status, err) = put(&c, &s, body).await;
            assert_eq!(status, 400, "{db}: {what}: {err}");
            assert_eq!(err["field"], field, "{db}: {what}: {err}");
            assert!(err["error"].as_str().unwrap().contains(field.split('.').next_back().unwrap()), "{db}: {what}: {err}");
        }
        let r = c.put(api("/modules/p/other")).json(&json!({"kind": "project", "path": "p/else"})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{db}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["field"], "path", "{db}: body and URL must agree");
        let message = err["error"].as_str().unwrap();
        assert!(message.contains("p/else") && message.contains("p/other"), "{db}: names both: {message}");
        let listed: Value = c.get(api("/modules?parent=p")).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed, json!([]), "{db}: nothing written");

        // The URL names the module: a body without `path` (JSON or YAML) saves it there.
        let r = c.put(api("/modules/p/nameless")).json(&json!({"kind": "project", "description": "from the URL"})).send().await.unwrap();
        assert_eq!(r.status(), 201, "{db}: {}", r.text().await.unwrap());
        let yaml = "kind: project\ndescription: from the URL, in YAML\n";
        let r = c.put(api("/modules/p/nameless")).header("content-type", "application/yaml").body(yaml).send().await.unwrap();
        assert_eq!(r.status(), 200, "{db}: {}", r.text().await.unwrap());
        let saved: Value = c.get(api("/modules/p/nameless")).send().await.unwrap().json().await.unwrap();
        assert_eq!((saved["path"].as_str(), saved["version"].as_u64()), (Some("p/nameless"), Some(2)), "{db}: {saved}");
    }
}

#[tokio::test]
async fn yaml_export_then_import_reproduces_the_modules() {
    for (db, url) in backend_urls().await {
        let first = spawn(url, true).await;
        let c = signed_up(&first, "olivia").await;
        let r = c.get(format!("{}/api/v1/export/examples", first.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{db}");
        assert!(r.headers()["content-type"].to_str().unwrap().contains("yaml"), "{db}");
        let exported = r.text().await.unwrap();
        assert!(exported.contains("path: examples/tutorials/hello/client_server"), "{db}");

        let (_, fresh_url) = backend_urls().await.into_iter().find(|(n, _)| *n == db).unwrap();
        let second = spawn(fresh_url, false).await;
        let d = signed_up(&second, "ivan").await;
        let r = d
            .post(format!("{}/api/v1/import", second.base))
            .header("content-type", "application/yaml")
            .body(exported.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{db}");
        let written: Value = r.json().await.unwrap();
        assert_eq!(written["modules"].as_array().unwrap().len(), 15, "{db}");
        let again = d.get(format!("{}/api/v1/export/examples", second.base)).send().await.unwrap().text().await.unwrap();
        assert_eq!(again, exported, "{db}: export → import → export is the identity");

        let broken = format!("{exported}---\nkind: deployment\npath: examples/broken\nnodes: {{a: {{image: examples/none}}}}\n");
        let r = d.post(format!("{}/api/v1/import", second.base)).body(broken).send().await.unwrap();
        assert_eq!(r.status(), 400, "{db}");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "nodes.a.image", "{db}");
    }
}

#[tokio::test]
async fn the_catalog_and_the_openapi_document_need_no_sign_in() {
    for (db, s) in servers().await {
        let anon = client();
        let catalog: Value = anon.get(format!("{}/api/v1/catalog", s.base)).send().await.unwrap().json().await.unwrap();
        let paths: Vec<&str> = catalog.as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap()).collect();
        for p in ["examples/tutorials/hello/client_server", "examples/tutorials/performance/deployment", "examples/cluster/cluster"] {
            assert!(paths.contains(&p), "{db}: {p} in {paths:?}");
        }
        let deployments: Value =
            anon.get(format!("{}/api/v1/catalog?kind=deployment&q=cluster", s.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(deployments.as_array().unwrap().len(), 1, "{db}");
        assert!(catalog.as_array().unwrap().iter().all(|m| m["kind"] != "project"), "{db}: projects are not in the catalog");
        let doc: Value = anon.get(format!("{}/api/v1/openapi.json", s.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["openapi"], "3.0.3", "{db}");
        let r = anon.get(format!("{}/api/v1/nothing", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{db}");
        let page = anon.get(format!("{}/catalog", s.base)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("examples/tutorials/hello/client_server"), "{db}: the catalog page is rendered on the server");
    }
}

#[tokio::test]
async fn connector_credentials_are_write_only_and_quotas_refuse_runs_over_them() {
    for (db, s) in servers().await {
        let admin = signed_up(&s, "root").await; // the first account administers
        let olivia = signed_up(&s, "olivia").await;
        let url = |p: &str| format!("{}/api/v1/{p}", s.base);

        // Settings and a credential; the credential never comes back, in any response.
        let secret = "-----BEGIN KEY----- s3cr3t -----END KEY-----";
        let r = olivia
            .put(url("profile/connectors/local"))
            .json(&json!({"settings": {"user": "olivia"}, "credential": secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{db}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("s3cr3t"), "{db}: the credential was sent back: {body}");
        let list: Value = olivia.get(url("profile/connectors")).send().await.unwrap().json().await.unwrap();
        assert!(!list.to_string().contains("s3cr3t"), "{db}");
        assert_eq!(list[0]["connector"], "local", "{db}");
        assert_eq!(list[0]["credential_set"], true, "{db}");
        assert_eq!(list[0]["settings"]["user"], "olivia", "{db}");
        // In the database it is sealed: nothing of it in clear.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&s.database_url).await.unwrap();
        let stored: String = sqlx::Row::get(
            &sqlx::query("SELECT credential FROM connector_accounts WHERE user_name = 'olivia'").fetch_one(&pool).await.unwrap(),
            "credential",
        );
        pool.close().await;
        assert!(stored.starts_with("v1:") && !stored.contains("s3cr3t") && !stored.contains("KEY"), "{db}: stored {stored}");
        // Saving settings alone keeps the credential; an empty one removes it.
        let kept: Value =
            olivia.put(url("profile/connectors/local")).json(&json!({"settings": {}})).send().await.unwrap().json().await.unwrap();
        assert_eq!(kept["credential_set"], true, "{db}");
        let removed: Value =
            olivia.put(url("profile/connectors/local")).json(&json!({"credential": ""})).send().await.unwrap().json().await.unwrap();
        assert_eq!(removed["credential_set"], false, "{db}");
        let r = olivia.put(url("profile/connectors/cloudy")).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{db}: unknown connector");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "connector", "{db}");

        // The local connector runs scripts on the server's host: administrators and the
        // users they allow only.
        let r = olivia.post(url("runs")).json(&json!({"module": "examples/tutorials/hello/client_server"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{db}");
        let msg = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert!(msg.contains("`local`") && msg.contains("administrators"), "{db}: {msg}");
        let list: Value = olivia.get(url("profile/connectors")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list[0]["may_use"], false, "{db}");
        let r = olivia.put(url("users/olivia/connectors/local")).json(&json!({"allowed": true})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{db}: users cannot allow themselves");
        let r = admin.put(url("users/olivia/connectors/local")).json(&json!({"allowed": true})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{db}");

        // Only an administrator sets quotas.
        let r = olivia.put(url("users/olivia/quotas/local")).json(&json!({"quota": 100})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{db}");
        let r = admin.put(url("users/olivia/quotas/local")).json(&json!({"quota": 1})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{db}");
        let list: Value = olivia.get(url("profile/connectors")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list[0]["quota"], 1, "{db}");

        // Hello World needs two instances: over the quota of one, refused, nothing created.
        let r = olivia.post(url("runs")).json(&json!({"module": "examples/tutorials/hello/client_server"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{db}");
        let msg = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert!(msg.contains("2 instance(s) on `local`") && msg.contains("quota of 1"), "{db}: {msg}");
        let runs: Value = olivia.get(url("runs")).send().await.unwrap().json().await.unwrap();
        assert_eq!(runs.as_array().map(Vec::len), Some(0), "{db}: a refused run left a trace: {runs}");
        // Lifted, the same run is accepted.
        let r = admin.put(url("users/olivia/quotas/local")).json(&json!({"quota": null})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{db}");
        let r = olivia
            .post(url("runs"))
            .json(&json!({"module": "examples/tutorials/hello/client_server", "keep_running": "never"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{db}");
        // Let it end, so the race below starts from nothing in use.
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let mut state = String::new();
        for _ in 0..12 {
            let from = if state.is_empty() { String::new() } else { format!("from={state}&") };
            state = olivia.get(url(&format!("runs/{id}/state?{from}wait=10"))).send().await.unwrap().text().await.unwrap();
            if ["Done", "Aborted", "Cancelled"].contains(&state.as_str()) {
                break;
            }
        }
        assert_eq!(state, "Done", "{db}");

        // Two launches at the same instant against a quota of one: exactly one passes.
        let sleeper = json!({"kind": "image", "path": "olivia/sleeper", "reference": "examples/images/busybox",
                             "targets": {"execute": "#!/bin/sh\nsleep 60\n"}});
        let r = olivia.put(url("modules/olivia")).json(&json!({"kind": "project"})).send().await.unwrap();
        assert!(r.status().is_success(), "{db}: {}", r.text().await.unwrap());
        let r = olivia.put(url("modules/olivia/sleeper")).json(&sleeper).send().await.unwrap();
        assert!(r.status().is_success(), "{db}: {}", r.text().await.unwrap());
        let r = admin.put(url("users/olivia/quotas/local")).json(&json!({"quota": 1})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{db}");
        let launch = || olivia.post(url("runs")).json(&json!({"module": "olivia/sleeper", "keep_running": "never"})).send();
        let (a, b) = tokio::join!(launch(), launch());
        let mut statuses = [a.unwrap().status(), b.unwrap().status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS], "{db}: 1 + 1 > 1");

        // A default quota covers users without one of their own.
        admin.put(url("users/olivia/quotas/local")).json(&json!({"quota": null})).send().await.unwrap();
        let r = olivia.put(url("connectors/local/quota")).json(&json!({"quota": 0})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{db}");
        let r = admin.put(url("connectors/local/quota")).json(&json!({"quota": 0})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{db}");
        let list: Value = olivia.get(url("profile/connectors")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list[0]["quota"], 0, "{db}: {list}");
        let r = olivia.post(url("runs")).json(&json!({"module": "olivia/sleeper"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{db}");
        // Stop what is still running: a run terminated a moment after its launch leaves no
        // process behind (its agent, started just before, had not made its session yet).
        let runs: Value = olivia.get(url("runs?active=true")).send().await.unwrap().json().await.unwrap();
        let mut ids = Vec::new();
        for run in runs.as_array().unwrap() {
            let id = run["id"].as_str().unwrap().to_string();
            olivia.delete(url(&format!("runs/{id}"))).send().await.unwrap();
            ids.push(id);
        }
        let left = testkit::processes_left(&ids).await;
        assert!(left.is_empty(), "{db}: still running after the runs were terminated: {left:?}");
    }
}

#[tokio::test]
async fn many_users_saving_importing_and_signing_up_at_once_never_see_an_internal_error() {
    for (db, s) in servers().await {
        let owner = signed_up(&s, "olivia").await;
        let (status, _) = put(&owner, &s, json!({"kind": "project", "path": "busy", "public": {"read": true, "write": true}})).await;
        assert!(status.is_success(), "{db}");
        let mut writers = Vec::new();
        for i in 0..24 {
            let base = s.base.clone();
            writers.push(tokio::spawn(async move {
                let c = client();
                let name = format!("user{i}");
                let r = c
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&json!({"name": name, "password": "correct horse"}))
                    .send()
                    .await
                    .unwrap();
                let mut statuses = vec![r.status().as_u16()];
                for v in 0..3 {
                    let body = json!({"kind": "image", "path": format!("busy/img{i}"), "native": true, "images": {"local": "host"},
                                      "description": format!("version {v}")});
                    let r = c.put(format!("{base}/api/v1/modules/busy/img{i}")).json(&body).send().await.unwrap();
                    statuses.push(r.status().as_u16());
                }
                let bundle = format!("kind: image\npath: busy/bundle{i}\nnative: true\nimages: {{local: host}}\n");
                let r =
                    c.post(format!("{base}/api/v1/import")).header("content-type", "application/yaml").body(bundle).send().await.unwrap();
                statuses.push(r.status().as_u16());
                statuses
            }));
        }
        for w in writers {
            let statuses = w.await.unwrap();
            assert!(statuses.iter().all(|s| *s < 500), "{db}: {statuses:?}");
            assert!(statuses.iter().all(|s| (200..300).contains(s)), "{db}: every write went through: {statuses:?}");
        }
        // A NUL in a line of output (PostgreSQL text cannot hold one) is kept as U+FFFD.
        let r = owner
            .post(format!("{}/api/v1/runs", s.base))
            .json(&json!({"module": "examples/tutorials/hello/client_server", "multiplicity": {"apache1": 0, "testclient1": 0}}))
            .send()
            .await
            .unwrap();
        let run = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let r = owner
            .post(format!("{}/api/v1/runs/{run}/logs", s.base))
            .json(&json!([{"instance": "ss", "stream": "stdout", "line": "before\u{0}after"}]))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{db}: {}", r.text().await.unwrap());
        let logs: Value = owner.get(format!("{}/api/v1/runs/{run}/logs", s.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(logs[0]["line"], "before\u{FFFD}after", "{db}");
    }
}

#[tokio::test]
async fn pages_and_answers_forbid_framing_and_sniffing() {
    let (_, url) = backend_urls().await.into_iter().next().unwrap();
    let s = spawn(url, true).await;
    for path in ["/", "/catalog", "/api/v1/catalog", "/api/v1/runs"] {
        let r = client().get(format!("{}{path}", s.base)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["content-security-policy"], "frame-ancestors 'none'", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
}

#[tokio::test]
async fn the_server_raises_its_open_file_limit_to_the_hard_limit() {
    let (_, url) = backend_urls().await.into_iter().next().unwrap();
    let s = spawn(url, false).await;
    let pid = s._server.pid().expect("the server runs");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft = hard: {line}");
}

#[tokio::test]
async fn cookie_requests_from_another_site_are_refused_and_cookies_can_be_secure() {
    let s = spawn(engine::testing::sqlite_url(), false).await;
    let api = |p: &str| format!("{}/api/v1{p}", s.base);
    let c = signed_up(&s, "olivia").await;
    let project = json!({"kind": "project", "path": "xsite"});
    // The owner's browser, on a page of another site: refused before anything is written.
    let r = c.put(api("/modules/xsite")).header("origin", "http://evil.example").json(&project).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("another site"));
    assert_eq!(c.get(api("/modules/xsite")).send().await.unwrap().status(), 404, "nothing was written");
    let r = c.put(api("/modules/xsite")).header("sec-fetch-site", "cross-site").json(&project).send().await.unwrap();
    assert_eq!(r.status(), 403, "Sec-Fetch-Site without Origin");
    // A cookie websocket from another site.
    let r = c.get(api("/ws")).header("origin", "http://evil.example").header("upgrade", "websocket").send().await.unwrap();
    assert_eq!(r.status(), 403);
    // The server's own pages, a client without Origin, and a bearer token from anywhere pass.
    let r = c.put(api("/modules/xsite")).header("origin", s.base.as_str()).json(&project).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (status, _) = put(&c, &s, json!({"kind": "project", "path": "xsite", "description": "again"})).await;
    assert!(status.is_success());
    let token: Value = c.post(api("/auth/tokens")).json(&json!({"name": "ci"})).send().await.unwrap().json().await.unwrap();
    let r = client()
        .put(api("/modules/xsite"))
        .header("origin", "http://evil.example")
        .bearer_auth(token["token"].as_str().unwrap())
        .json(&json!({"kind": "project", "path": "xsite", "description": "from CI"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "a bearer token carries nothing ambient: {}", r.status());
    let plain = c.post(api("/auth/login")).json(&json!({"name": "olivia", "password": "long enough"})).send().await.unwrap();
    assert!(!plain.headers().get("set-cookie").unwrap().to_str().unwrap().contains("Secure"));

    // Behind a TLS proxy: the cookie goes over HTTPS only.
    let secure = TestServer::start(ServerOptions { args: vec!["--secure-cookies".into()], no_examples: true, ..Default::default() });
    let r = client()
        .post(format!("{}/api/v1/auth/register", secure.url))
        .json(&json!({"name": "olivia", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.ends_with("; Secure"), "{cookie}");
}

/// `slipstream admin …` against a test server's store.
fn admin_command(s: &TestServer, db_url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(testkit::slipstream_bin())
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg("--database-url")
        .arg(db_url)
        .env("SLIPSTREAM_ADMIN_PASSWORD", "admin password")
        .output()
        .unwrap();
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn sign_ups_follow_the_policy_and_exactly_one_first_user_becomes_administrator() {
    for (db, url) in backend_urls().await {
        // Eight first sign-ups at the same moment: one administrator.
        let s = spawn(url.clone(), false).await;
        let mut at_once = Vec::new();
        for i in 0..8 {
            let base = s.base.clone();
            at_once.push(tokio::spawn(async move {
                let r = client()
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&json!({"name": format!("first{i}"), "password": "long enough"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                r.json::<Value>().await.unwrap()["is_admin"].as_bool().unwrap()
            }));
        }
        let mut admins = 0;
        for a in at_once {
            admins += a.await.unwrap() as usize;
        }
        assert_eq!(admins, 1, "{db}: exactly one administrator");
        drop(s);

        // `invite`: no sign-up without a link; an administrator's link works once.
        let fresh = engine::testing::fresh_url(&url).await;
        let s = TestServer::start(ServerOptions {
            database_url: Some(fresh.clone()),
            no_examples: true,
            args: vec!["--registration".into(), "invite".into()],
            ..Default::default()
        });
        let api = |p: &str| s.api(p);
        let r = client().post(api("/auth/register")).json(&json!({"name": "ivan", "password": "long enough"})).send().await.unwrap();
        assert_eq!(r.status(), 403, "{db}");
        assert!(r.text().await.unwrap().contains("invitation"), "{db}");
        admin_command(&s, &fresh, &["create", "ada"]);
        let path = admin_command(&s, &fresh, &["invite", "--days", "2"]);
        let token = path.strip_prefix("/signup?invitation=").unwrap_or_else(|| panic!("{path}"));
        let with = |name: &str| json!({"name": name, "password": "long enough", "invitation": token});
        let r = client().post(api("/auth/register")).json(&with("ivan")).send().await.unwrap();
        assert_eq!(r.status(), 201, "{db}");
        assert_eq!(r.json::<Value>().await.unwrap()["is_admin"], false, "{db}: the administrator came first, from the command line");
        let r = client().post(api("/auth/register")).json(&with("ivy")).send().await.unwrap();
        assert_eq!(r.status(), 403, "{db}: a link is used once");
        // Links from the API: administrators only.
        let ada = client();
        ada.post(api("/auth/login")).json(&json!({"name": "ada", "password": "admin password"})).send().await.unwrap();
        let ivan = client();
        ivan.post(api("/auth/login")).json(&json!({"name": "ivan", "password": "long enough"})).send().await.unwrap();
        assert_eq!(ivan.post(api("/invitations")).send().await.unwrap().status(), 403, "{db}");
        let link: Value = ada.post(api("/invitations")).json(&json!({"days": 1})).send().await.unwrap().json().await.unwrap();
        let r = client()
            .post(api("/auth/register"))
            .json(&json!({"name": "ivy", "password": "long enough", "invitation": link["token"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{db}");
        let r = ada.post(api("/invitations")).json(&json!({"days": 0})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{db}");
        drop(s);

        // `closed`: nobody signs up, with or without a link.
        let fresh = engine::testing::fresh_url(&url).await;
        let s = TestServer::start(ServerOptions {
            database_url: Some(fresh),
            no_examples: true,
            args: vec!["--registration".into(), "closed".into()],
            ..Default::default()
        });
        let r = client().post(s.api("/auth/register")).json(&json!({"name": "carl", "password": "long enough"})).send().await.unwrap();
        assert_eq!(r.status(), 403, "{db}");
        assert!(r.text().await.unwrap().contains("closed"), "{db}");
    }
}

#[tokio::test]
async fn wrong_passwords_are_limited_per_account_and_a_password_change_ends_other_sessions() {
    for (db, s) in servers().await {
        let api = |p: &str| format!("{}/api/v1{p}", s.base);
        let olivia = signed_up(&s, "olivia").await;
        let laptop = client();
        let r = laptop.post(api("/auth/login")).json(&json!({"name": "olivia", "password": "long enough"})).send().await.unwrap();
        assert_eq!(r.status(), 200, "{db}");

        // Ten wrong passwords, then even the right one waits (429 with Retry-After).
        let guesser = client();
        for i in 0..10 {
            let r =
                guesser.post(api("/auth/login")).json(&json!({"name": "olivia", "password": format!("guess {i}")})).send().await.unwrap();
            assert_eq!(r.status(), 401, "{db}: guess {i}");
        }
        let r = guesser.post(api("/auth/login")).json(&json!({"name": "olivia", "password": "long enough"})).send().await.unwrap();
        assert_eq!(r.status(), 429, "{db}");
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{db}: Retry-After {retry}");
        assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("try again in"), "{db}");
        // Another account is not locked by it; signed-in sessions go on.
        signed_up(&s, "oscar").await;
        assert_eq!(olivia.get(api("/auth/me")).send().await.unwrap().status(), 200, "{db}");

        // A password change needs the current password and ends every other session.
        let r = olivia.put(api("/auth/password")).json(&json!({"current": "wrong one", "new": "new password"})).send().await.unwrap();
        assert_eq!(r.status(), 429, "{db}: the account is still locked for guesses");
        let oscar = client();
        oscar.post(api("/auth/login")).json(&json!({"name": "oscar", "password": "long enough"})).send().await.unwrap();
        let r = oscar.put(api("/auth/password")).json(&json!({"current": "wrong one", "new": "new password"})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{db}");
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "current", "{db}");
        let r = oscar.put(api("/auth/password")).json(&json!({"current": "long enough", "new": "short"})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "new", "{db}");
        let other = client();
        other.post(api("/auth/login")).json(&json!({"name": "oscar", "password": "long enough"})).send().await.unwrap();
        assert_eq!(other.get(api("/auth/me")).send().await.unwrap().status(), 200, "{db}");
        let r = oscar.put(api("/auth/password")).json(&json!({"current": "long enough", "new": "new password"})).send().await.unwrap();
        assert_eq!(r.status(), 204, "{db}");
        assert_eq!(oscar.get(api("/auth/me")).send().await.unwrap().status(), 200, "{db}: the changer got a new session");
        assert_eq!(other.get(api("/auth/me")).send().await.unwrap().status(), 401, "{db}: the other session ended");
        let r = client().post(api("/auth/login")).json(&json!({"name": "oscar", "password": "new password"})).send().await.unwrap();
        assert_eq!(r.status(), 200, "{db}");
    }
}

#[tokio::test]
async fn the_data_directory_database_and_key_file_are_private() {
    let server = TestServer::start(ServerOptions { no_examples: true, ..Default::default() });
    let c = client();
    let r = c.post(server.api("/auth/register")).json(&json!({"name": "olivia", "password": "long enough"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777;
    assert_eq!(mode(&server.data_dir), 0o700);
    for file in ["slipstream.db", "slipstream.db-wal", "secret.key"] {
        assert_eq!(mode(&server.data_dir.join(file)), 0o600, "{file}");
    }
}
