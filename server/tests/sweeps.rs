//! Parameter sweeps with the real agent on the local connector: the performance example over
//! four multiplicities, its samples, statistics and CSV; bad requests named.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn wait_done(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let sweep: Value = s.c.get(s.api(&format!("/sweeps/{id}"))).send().await.unwrap().json().await.unwrap();
        if sweep["state"] != "running" {
            return sweep;
        }
        assert!(Instant::now() < deadline, "the sweep did not end: {sweep}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_multiplicity_sweep_of_the_performance_example_collects_every_clients_response_time() {
    let s = sqlite().await;
    let r =
        s.c.post(s.api("/sweeps"))
            .json(&json!({"module": "examples/tutorials/performance/deployment", "vary": ["testsuite:multiplicity=1,2,3,4"],
                      "collect": "testsuite.*:response_ms", "parallel": 2}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let sweep = wait_done(&s, &id).await;
    assert_eq!(sweep["state"], "done", "{sweep}");
    let points = sweep["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p["label"], format!("testsuite:multiplicity={}", i + 1));
        let run = s.detail(p["run"].as_str().unwrap()).await;
        assert_eq!(p["state"], "Done", "{p}: {}", run["abort"]);
        assert_eq!(p["samples"].as_array().unwrap().len(), i + 1, "one response time per client: {p}");
        let stats = &p["stats"];
        assert_eq!(stats["n"], i + 1);
        assert!(
            stats["mean"].as_f64().unwrap() >= 0.0 && stats["p95"].as_f64().unwrap() >= stats["median"].as_f64().unwrap() - 1e-9,
            "{stats}"
        );
    }
    let csv = s.c.get(s.api(&format!("/sweeps/{id}/csv"))).send().await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "point,testsuite:multiplicity,run,state,instance,testsuite.*:response_ms");
    assert_eq!(lines.len(), 1 + 10, "one row per (run, instance): {csv}");
    assert!(lines[1].starts_with("0,1,") && lines[1].contains(",Done,testsuite.1,"), "{csv}");
    let list: Value = s.c.get(s.api("/sweeps")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["id"], id.as_str());
}

#[tokio::test]
async fn bad_sweeps_are_refused_naming_the_field() {
    let s = sqlite().await;
    let cases = [
        (json!({"module": "examples/tutorials/performance/deployment", "vary": [], "collect": "testsuite.*:response_ms"}), "vary", 400),
        (
            json!({"module": "examples/tutorials/performance/deployment", "vary": ["testsuite=1,2"], "collect": "testsuite.*:x"}),
            "vary",
            400,
        ),
        (
            json!({"module": "examples/tutorials/performance/deployment", "vary": ["testsuite:multiplicity=1"], "collect": "response_ms"}),
            "collect",
            400,
        ),
        (
            json!({"module": "examples/tutorials/performance/deployment", "vary": ["testsuite:multiplicity=1"], "collect": "t.*:x", "parallel": 99}),
            "parallel",
            400,
        ),
        (json!({"module": "no/such", "vary": ["t:multiplicity=1"], "collect": "t.*:x"}), "", 404),
    ];
    for (body, field, status) in cases {
        let r = s.c.post(s.api("/sweeps")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        if !field.is_empty() {
            assert_eq!(e["field"], field, "{e}");
        }
    }
}
