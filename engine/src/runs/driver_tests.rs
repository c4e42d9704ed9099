//! The driver against the scripted mock connector: start failures, slow starts with bounded
//! concurrency, vanished instances — no processes. The test plays the agents: it completes
//! each started instance's states itself.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use model::run::{KeepRunning, RunRequest};
use model::{Module, ModuleKind, Node, RunState, User};

use sqlx::Row;

use crate::connector::{Connector, ConnectorConfig};
use crate::connectors::mock::Mock;
use crate::{Engine, RunConfig};

/// An engine whose only connector is a mock scripted by `options`, and a signed-up user with
/// a deployment of `count` instances of node `web` on it.
async fn engine_with(options: &[(&str, &str)], count: i64) -> (Engine, Arc<Mock>, User) {
    let (engine, mock, user, _) = engine_on(&crate::testing::sqlite_url(), options, count).await;
    (engine, mock, user)
}

/// The same on the database at `url`; also returns the connectors, for a second engine on
/// that database (a restarted server).
async fn engine_on(url: &str, options: &[(&str, &str)], count: i64) -> (Engine, Arc<Mock>, User, BTreeMap<String, Arc<dyn Connector>>) {
    let config = ConnectorConfig {
        name: "mock".into(),
        kind: "mock".into(),
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    let mock = Arc::new(Mock::new(&config));
    let connectors: BTreeMap<String, Arc<dyn Connector>> = [("mock".to_string(), mock.clone() as Arc<dyn Connector>)].into();
    let run_config = RunConfig { data_dir: crate::testing::temp_dir("mock"), ..Default::default() };
    let engine = Engine::open_with_connectors(url, run_config, connectors.clone()).await.unwrap();
    engine.set_service_url("http://127.0.0.1:9");
    let user = engine.register("olivia", "correct horse", None, "test").await.unwrap();
    let modules = [
        Module { kind: ModuleKind::Project, path: "p".into(), ..Default::default() },
        Module {
            kind: ModuleKind::Image,
            path: "p/img".into(),
            native: true,
            images: [("mock".to_string(), "img".to_string())].into(),
            ..Default::default()
        },
        Module {
            kind: ModuleKind::Deployment,
            path: "p/d".into(),
            nodes: [(
                "web".to_string(),
                Node { image: "p/img".into(), multiplicity: count, connector: Some("mock".into()), ..Default::default() },
            )]
            .into(),
            ..Default::default()
        },
    ];
    for m in modules {
        engine.save_module(Some(&user), m).await.unwrap();
    }
    (engine, mock, user, connectors)
}

async fn launch(engine: &Engine, user: &User) -> String {
    let req = RunRequest { module: "p/d".into(), keep_running: Some(KeepRunning::Never), ..Default::default() };
    engine.create_run(Some(user), req).await.unwrap().id
}

async fn state_after(engine: &Engine, run: &str, from: RunState) -> RunState {
    engine.wait_state(run, Some(from), Duration::from_secs(10)).await.unwrap()
}

/// Completes `state` for every started instance, as their agents would.
async fn complete_all(engine: &Engine, mock: &Mock, run: &str, state: RunState) {
    let started = mock.started.lock().unwrap().clone();
    for instance in started {
        engine.complete_state(run, &instance, state).await.unwrap();
    }
}

#[tokio::test]
async fn an_instance_that_cannot_start_aborts_the_run_and_holds_back_no_barrier() {
    let (engine, mock, user) = engine_with(&[("fail", "web.2")], 3).await;
    let run = launch(&engine, &user).await;
    assert_eq!(state_after(&engine, &run, RunState::Initializing).await, RunState::Provisioning);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let abort = loop {
        if let Some(a) = engine.abort_message(&run).await.unwrap() {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "the failed start raised no abort");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(abort.contains("web.2") && abort.contains("mock") && abort.contains("scripted failure"), "{abort}");
    // web.1 and web.3 started and go on; web.2 holds nothing back.
    for state in [RunState::Provisioning, RunState::Executing, RunState::SendingReports] {
        complete_all(&engine, &mock, &run, state).await;
    }
    let mut state = engine.run_state(&run).await.unwrap();
    for _ in 0..10 {
        if state.is_terminal() {
            break;
        }
        state = state_after(&engine, &run, state).await;
    }
    assert_eq!(state, RunState::Aborted);
    let mut started = mock.started.lock().unwrap().clone();
    started.sort();
    assert_eq!(started, ["web.1", "web.3"]);
    let mut destroyed = mock.destroyed.lock().unwrap().clone();
    destroyed.sort();
    assert_eq!(destroyed, ["web.1", "web.3"], "every started instance is stopped and removed");
    assert_eq!(mock.released.lock().unwrap().as_slice(), std::slice::from_ref(&run), "the run's resources are released once");
    let summary = engine.run_summary(&run).await.unwrap();
    assert_eq!(summary.instance_states.get(model::run::START_FAILED), Some(&1));
}

#[tokio::test]
async fn when_no_instance_starts_the_run_still_ends() {
    let (engine, mock, user) = engine_with(&[("fail", "web.1,web.2")], 2).await;
    let run = launch(&engine, &user).await;
    let mut state = RunState::Initializing;
    for _ in 0..10 {
        if state.is_terminal() {
            break;
        }
        state = state_after(&engine, &run, state).await;
    }
    assert_eq!(state, RunState::Aborted);
    assert!(mock.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn slow_starts_run_a_few_at_a_time() {
    let (engine, mock, user) = engine_with(&[("delay_ms", "50")], 24).await;
    let run = launch(&engine, &user).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while mock.started.lock().unwrap().len() < 24 {
        assert!(tokio::time::Instant::now() < deadline, "not every instance started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let most = mock.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} starts at once (bounded, but more than one)");
    complete_all(&engine, &mock, &run, RunState::Provisioning).await;
    assert_eq!(engine.run_state(&run).await.unwrap(), RunState::Executing);
}

#[tokio::test]
async fn a_vanished_instance_shows_as_not_running() {
    let (engine, mock, user) = engine_with(&[("vanish", "web.2")], 2).await;
    let run = launch(&engine, &user).await;
    // Started, and recorded (each handle is written as its instance comes up).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let d = engine.run_detail(&run).await.unwrap();
        if mock.started.lock().unwrap().len() == 2 && d.instances.iter().all(|i| !i.address.is_empty()) {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "the instances were not recorded: {d:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let running: Vec<(String, bool)> = detail.instances.iter().map(|i| (i.name.clone(), i.running)).collect();
    assert_eq!(running, [("web.1".to_string(), true), ("web.2".to_string(), false)]);
}

/// Waits until the run's three instances have their handles recorded.
async fn all_started(engine: &Engine, run: &str) {
    for _ in 0..250 {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM run_instances WHERE run_id = $1 AND handle <> ''")
            .bind(run)
            .fetch_one(&engine.db.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        if n == 3 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {run}: its instances did not start");
}

/// A second engine on the same database: what a restarted server is (its in-memory agent
/// tokens are gone).
async fn restarted(url: &str, connectors: BTreeMap<String, Arc<dyn Connector>>) -> Engine {
    let run_config = RunConfig { data_dir: crate::testing::temp_dir("mock"), ..Default::default() };
    let engine = Engine::open_with_connectors(url, run_config, connectors).await.unwrap();
    engine.set_service_url("http://127.0.0.1:9");
    engine
}

#[tokio::test]
async fn a_restart_finishes_every_run_as_its_state_says() {
    let url = crate::testing::sqlite_url();
    let (engine, mock, user, connectors) = engine_on(&url, &[], 3).await;
    let set = |run: &str, state: &str| {
        let (engine, run, state) = (engine.clone(), run.to_string(), state.to_string());
        async move {
            sqlx::query("UPDATE runs SET state = $1 WHERE id = $2").bind(&state).bind(&run).execute(&engine.db.pool).await.unwrap();
        }
    };
    // Caught in Provisioning while its instances were starting: one never got a handle.
    let provisioning = launch(&engine, &user).await;
    assert_eq!(state_after(&engine, &provisioning, RunState::Initializing).await, RunState::Provisioning);
    // Once the three starts are recorded (else the first engine would record web.3 again).
    all_started(&engine, &provisioning).await;
    sqlx::query("UPDATE run_instances SET handle = '' WHERE run_id = $1 AND name = 'web.3'")
        .bind(&provisioning)
        .execute(&engine.db.pool)
        .await
        .unwrap();
    // Caught in Finalizing, and in Ready with nothing kept.
    let finalizing = launch(&engine, &user).await;
    assert_eq!(state_after(&engine, &finalizing, RunState::Initializing).await, RunState::Provisioning);
    all_started(&engine, &finalizing).await;
    set(&finalizing, "Finalizing").await;
    let ready = launch(&engine, &user).await;
    assert_eq!(state_after(&engine, &ready, RunState::Initializing).await, RunState::Provisioning);
    all_started(&engine, &ready).await;
    set(&ready, "Ready").await;

    let after = restarted(&url, connectors).await;
    after.recover_runs().await.unwrap();
    let summary = after.run_summary(&provisioning).await.unwrap();
    assert_eq!(summary.state, RunState::Aborted, "aborted, not cancelled");
    assert_eq!(summary.abort.as_deref(), Some(crate::orchestrator::RESTARTED_BEFORE_STARTS));
    assert_eq!(after.run_summary(&finalizing).await.unwrap().state, RunState::Done);
    assert_eq!(after.run_summary(&ready).await.unwrap().state, RunState::Done);
    let stopped = mock.stopped.lock().unwrap().clone();
    assert_eq!(stopped.len(), 2 * 3 + 2, "the started instances were stopped: {stopped:?}");
}

#[tokio::test]
async fn the_reaper_stops_what_no_live_run_wants_and_leaves_live_instances_alone() {
    for (_, url) in crate::testing::backend_urls().await {
        reaper_on(&url).await;
    }
}

async fn reaper_on(url: &str) {
    use crate::connector::Found;
    let (engine, mock, user, _) = engine_on(url, &[], 2).await;
    let live = launch(&engine, &user).await;
    assert_eq!(state_after(&engine, &live, RunState::Initializing).await, RunState::Provisioning);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while mock.started.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the instances did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stray = |run: &str, instance: &str| Found { run: run.into(), instance: instance.into(), handle: format!("mock:{instance}@{run}") };
    mock.found.lock().unwrap().extend([stray(&live, "ghost.1"), stray("no-such-run", "lost.1")]);
    // A run that ended long ago whose instance's stop never went through (a crash).
    let ended = launch(&engine, &user).await;
    assert_eq!(state_after(&engine, &ended, RunState::Initializing).await, RunState::Provisioning);
    engine.terminate_run(&crate::runs::RunCaller::User(Some(&user)), &ended).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !engine.run_state(&ended).await.unwrap().is_terminal() {
        assert!(tokio::time::Instant::now() < deadline, "the run did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped: i64 = sqlx::query("SELECT COUNT(*) AS n FROM run_instances WHERE run_id = $1 AND stopped = 1")
        .bind(&ended)
        .fetch_one(&engine.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(stopped, 2, "a run's end records the stops that went through");
    sqlx::query("UPDATE run_instances SET stopped = 0 WHERE run_id = $1 AND name = 'web.1'")
        .bind(&ended)
        .execute(&engine.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET ended_at = ended_at - 120000 WHERE id = $1").bind(&ended).execute(&engine.db.pool).await.unwrap();
    mock.destroyed.lock().unwrap().clear();
    mock.released.lock().unwrap().clear();
    // As if web.1's stop had not happened: the connector still has it.
    let unstopped = Found { run: ended.clone(), instance: "web.1".into(), handle: format!("mock:web.1@{ended}") };
    mock.found.lock().unwrap().push(unstopped);

    let first = engine.reap().await.unwrap();
    assert_eq!(first.by_record, 1, "the ended run's unstopped instance");
    assert_eq!(first.found, 1, "the instance of no run at once; the unknown one of a live run not yet");
    let mut destroyed = mock.destroyed.lock().unwrap().clone();
    destroyed.sort();
    assert_eq!(destroyed, ["lost.1", "web.1"]);
    let mut released = mock.released.lock().unwrap().clone();
    released.sort();
    let mut want = vec![ended.clone(), "no-such-run".to_string()];
    want.sort();
    assert_eq!(released, want);

    let second = engine.reap().await.unwrap();
    assert_eq!(second, crate::runs::Reaped { by_record: 0, found: 1 }, "the unknown one, found again");
    let destroyed = mock.destroyed.lock().unwrap().clone();
    assert!(destroyed.contains(&"ghost.1".to_string()), "{destroyed:?}");
    assert!(!destroyed.iter().any(|d| d.starts_with("web.") && d != "web.1"), "the live run's instances run on: {destroyed:?}");
    assert_eq!(engine.reap().await.unwrap(), crate::runs::Reaped::default(), "nothing left to do");
}

#[tokio::test]
async fn a_write_that_fails_in_a_group_fails_alone() {
    let (engine, _mock, user) = engine_with(&[], 1).await;
    let run = launch(&engine, &user).await;
    use crate::params::Op;
    // Sent back to back, so they meet in one group: an event of a run that does not exist
    // (its row breaks the foreign key) between two good writes.
    let good = engine.rt.committer.send(&run, Op::Param { keys: vec!["web.1:statecustom".into()], value: "fine".into() }).unwrap();
    let bad = engine.rt.committer.send("no-such-run", Op::Event { seq: 1, at: 1, kind: "x".into(), message: "x".into() }).unwrap();
    let also = engine.rt.committer.send(&run, Op::Event { seq: 2, at: 2, kind: "x".into(), message: "kept".into() }).unwrap();
    assert!(bad.committed().await.is_err(), "a row of no run cannot be written");
    good.committed().await.unwrap();
    also.committed().await.unwrap();
    let value: String = sqlx::query("SELECT value FROM run_params WHERE run_id = $1 AND key = 'web.1:statecustom'")
        .bind(&run)
        .fetch_one(&engine.db.pool)
        .await
        .unwrap()
        .get("value");
    assert_eq!(value, "fine");
    assert!(engine.events(&run).await.unwrap().iter().any(|e| e.message == "kept"));
}
