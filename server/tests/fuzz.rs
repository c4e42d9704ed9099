//! Malformed requests over every operation of the OpenAPI document: path parameters, query
//! values, bodies, content types and credentials from a table of hostile values, chosen by a
//! seeded generator (the seed and the corpus size are printed; `SLIPSTREAM_FUZZ_REQUESTS`
//! and `SLIPSTREAM_FUZZ_SEED` change them). The server must answer every one, never with a
//! 5xx, and never panic (its log is read at the end). On SQLite, and on PostgreSQL (a quarter
//! of the corpus) when the suite has it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{json, Value};
use testkit::{ServerOptions, TestServer};

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Values for a path segment, by parameter name; the first ones name real things.
fn segment(name: &str, real: &Real, rng: &mut Rng) -> String {
    let long = "a".repeat(5000);
    let hostile = ["%00", "..", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%ff%fe", "%F0%9F%99%82", "-1", "1e30", "inf", "NaN", " ", long.as_str()];
    let real: Vec<String> = match name {
        "id" => vec![real.run.clone(), real.ended_run.clone(), "nope".into()],
        "path" => vec!["fz/img".into(), "fz".into(), "examples/images/busybox".into(), "fz/img/deeper".into()],
        "key" => vec!["machine.1:hostname".into(), "ss:abort".into(), "machine:port".into(), ":".into(), "a:b:c".into()],
        "instance" => vec!["machine.1".into(), "machine.99".into(), "ss".into()],
        "file" => vec!["reports.tgz".into(), "x".into()],
        "version" => vec!["1".into(), "0".into(), "99999999999999999999".into(), "abc".into()],
        "name" => vec!["olivia".into(), "nobody".into()],
        "connector" => vec!["local".into(), "nope".into()],
        "node" => vec!["machine".into(), "nope".into()],
        _ => vec!["x".into()],
    };
    if rng.below(2) == 0 {
        rng.pick(&real).clone()
    } else {
        rng.pick(&hostile).to_string()
    }
}

fn query(rng: &mut Rng) -> String {
    let names = [
        "wait",
        "from",
        "after",
        "limit",
        "version",
        "connector",
        "q",
        "kind",
        "parent",
        "active",
        "instance",
        "since",
        "run",
        "secrets",
        "ignoreabort",
        "noblock",
    ];
    // No large positive waits: a blocking read would rightly hold its answer up to 50 s.
    let values = [
        "inf",
        "-inf",
        "NaN",
        "1e30",
        "-1",
        "18446744073709551616",
        "0.001",
        "0",
        "abc",
        "",
        "%00",
        "%ff",
        "true",
        "Done",
        "Nope",
        "1,2",
        "show",
    ];
    (0..rng.below(4)).map(|_| format!("{}={}", rng.pick(&names), rng.pick(&values))).collect::<Vec<_>>().join("&")
}

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => json!(-1),
        1 => json!(1e308),
        2 => json!(u64::MAX),
        3 => Value::Null,
        4 => json!(true),
        5 => json!(""),
        6 => json!("x".repeat(100_000)),
        7 => json!("\u{0}nul\u{0}"),
        8 => json!([1, "two", null]),
        9 => json!({"nested": {"deeper": [{}]}}),
        10 => json!("../../etc/passwd"),
        _ => json!("olivia"),
    }
}

/// A body and its content type.
fn body(rng: &mut Rng) -> (Vec<u8>, Option<&'static str>) {
    let fields = [
        "name",
        "password",
        "invitation",
        "kind",
        "path",
        "module",
        "params",
        "multiplicity",
        "days",
        "current",
        "new",
        "credential",
        "settings",
        "quota",
        "allowed",
        "count",
        "instances",
        "target",
        "message",
        "keep_running",
        "run_timeout_minutes",
        "timeout",
        "tags",
        "connectors",
        "version",
        "scalable",
        "parameters",
        "targets",
        "nodes",
        "images",
        "reference",
        "native",
        "public",
    ];
    let json_type = Some("application/json");
    match rng.below(14) {
        0 => (Vec::new(), None),
        1 => (rng.pick(&["null", "[]", "{}", "123", "\"s\"", "true", "{\"name\": ", "{{{{", "[1,2"]).as_bytes().to_vec(), json_type),
        2 => (b"\xff\xfe{\"name\": \"\xc3\x28\"}".to_vec(), json_type),
        3 => ("[".repeat(50_000).into_bytes(), json_type),
        4 => (format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000)).into_bytes(), json_type),
        5 => (
            rng.pick(&[
                "kind: [",
                "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c, *c]",
                "!!binary zz",
                "kind: image\npath: ../x",
                "\t\t- : -",
            ])
            .as_bytes()
            .to_vec(),
            Some("application/yaml"),
        ),
        6 => (b"name=olivia&password=%00".to_vec(), Some("application/x-www-form-urlencoded")),
        7 => (vec![0u8; rng.below(4096)], Some("application/octet-stream")),
        8 => ("v".repeat(200_000).into_bytes(), Some("text/plain")),
        _ => {
            let mut o = serde_json::Map::new();
            for _ in 0..rng.below(6) + 1 {
                o.insert(rng.pick(&fields).to_string(), scalar(rng));
            }
            if rng.below(3) == 0 {
                o.insert("kind".into(), json!(rng.pick(&["image", "deployment", "project", "bogus"])));
                o.insert("path".into(), json!(rng.pick(&["fz/img", "fz/new", "fz", "", "/abs"])));
            }
            (serde_json::to_vec(&Value::Object(o)).unwrap(), if rng.below(5) == 0 { None } else { json_type })
        }
    }
}

/// Things that exist, so that requests also get past "not found".
struct Real {
    run: String,
    ended_run: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tens_of_thousands_of_malformed_requests_get_no_5xx_and_no_panic() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let total: usize = std::env::var("SLIPSTREAM_FUZZ_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seed: u64 = std::env::var("SLIPSTREAM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    // SQLite in the data directory (the quick start) takes the whole corpus; PostgreSQL, when
    // the suite has it, a quarter of it.
    fuzz("sqlite", None, total, seed).await;
    for (db, url) in engine::testing::backend_urls().await.into_iter().filter(|(db, _)| *db == "postgres") {
        fuzz(db, Some(url), total / 4, seed).await;
    }
}

async fn fuzz(db: &str, database_url: Option<String>, total: usize, seed: u64) {
    let server = TestServer::start(ServerOptions { no_examples: false, database_url, ..Default::default() });
    let base = server.url.clone();
    let owner = Client::builder().cookie_store(true).build().unwrap();
    let r = owner
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"name": "olivia", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token: Value =
        owner.post(format!("{base}/api/v1/auth/tokens")).json(&json!({"name": "fuzz"})).send().await.unwrap().json().await.unwrap();
    let bearer = token["token"].as_str().unwrap().to_string();
    for m in [
        json!({"kind": "project", "path": "fz"}),
        json!({"kind": "image", "path": "fz/img", "reference": "examples/images/busybox",
                     "parameters": [{"name": "port", "category": "output"}, {"name": "pw", "type": "secret", "default": "s3cret-value"}],
                     "targets": {"execute": "#!/bin/sh\nss-set port 8080\n"}}),
    ] {
        let path = m["path"].as_str().unwrap().to_string();
        let r = owner.put(format!("{base}/api/v1/modules/{path}")).json(&m).send().await.unwrap();
        assert!(r.status().is_success());
    }
    let launch = |keep: &str| {
        let (owner, base, keep) = (owner.clone(), base.clone(), keep.to_string());
        async move {
            let r: Value = owner
                .post(format!("{base}/api/v1/runs"))
                .json(&json!({"module": "fz/img", "keep_running": keep}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["id"].as_str().unwrap().to_string()
        }
    };
    let run = launch("always").await;
    let ended_run = launch("never").await;
    let doc: Value = owner.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    println!("{db}: fuzzing {} operations with {total} requests, seed {seed} (SLIPSTREAM_FUZZ_SEED={seed} repeats it)", operations.len());

    let real = Arc::new(Real { run: run.clone(), ended_run });
    let operations = Arc::new(operations);
    let next = Arc::new(AtomicUsize::new(0));
    // A connection per request: after an answer given without reading a large body the server
    // closes the connection, and a pooled client would send its next request into that close.
    let anonymous = Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..16u64 {
        let (real, operations, next, base, bearer, anonymous) =
            (real.clone(), operations.clone(), next.clone(), base.clone(), bearer.clone(), anonymous.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ (w.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut bad = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            while next.fetch_add(1, Ordering::SeqCst) < total {
                let (method, template) = rng.pick(&operations).clone();
                let mut path = String::new();
                for part in template.split('/').filter(|p| !p.is_empty()) {
                    path.push('/');
                    match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        Some(name) => path.push_str(&segment(name, &real, &mut rng)),
                        None => path.push_str(part),
                    }
                }
                let q = query(&mut rng);
                let url = if q.is_empty() { format!("{base}{path}") } else { format!("{base}{path}?{q}") };
                let (bytes, content_type) = body(&mut rng);
                let mut req = anonymous.request(Method::from_bytes(method.as_bytes()).unwrap(), &url).body(bytes);
                if let Some(t) = content_type {
                    req = req.header("content-type", t);
                }
                req = match rng.below(5) {
                    0 => req,
                    1 | 2 => req.bearer_auth(&bearer),
                    3 => req.header(
                        "authorization",
                        *rng.pick(&[
                            "Bearer ssr_not-a-token",
                            "Bearer ",
                            "Basic b2xpdmlh",
                            "Bearer \u{7f}".trim_end_matches('\u{7f}'),
                            "Bearer sst_0000",
                        ]),
                    ),
                    _ => req.header("cookie", "slipstream_session=forged; other=%00"),
                };
                match req.send().await {
                    Ok(r) => {
                        *statuses.entry(r.status().as_u16()).or_default() += 1;
                        if r.status().is_server_error() {
                            let status = r.status();
                            bad.push(format!(
                                "{status} {method} {url}: {}",
                                r.text().await.unwrap_or_default().chars().take(200).collect::<String>()
                            ));
                        }
                    }
                    Err(e) => bad.push(format!("no answer to {method} {}: {e:?}", url.chars().take(300).collect::<String>())),
                }
            }
            (bad, statuses)
        }));
    }
    let mut bad = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for w in workers {
        let (b, s) = w.await.unwrap();
        bad.extend(b);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let answered: usize = statuses.values().sum();
    println!(
        "{db}: {answered} of {total} answered in {:.1} s; statuses {statuses:?}; 5xx or unanswered: {}",
        started.elapsed().as_secs_f64(),
        bad.len()
    );
    // The server is still there, and said nothing of a panic.
    let me = owner.get(format!("{base}/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(me.status(), 200, "{db}: the server still answers");
    let log = std::fs::read_to_string(server.data_dir.join("server.log")).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).take(5).collect();
    assert!(panics.is_empty(), "{db}: the server panicked: {panics:#?}");
    assert!(
        bad.is_empty(),
        "{db}: {} requests got a 5xx or no answer, e.g.:\n{}",
        bad.len(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    let _ = owner.delete(format!("{base}/api/v1/runs/{run}")).send().await;
}
