//! Debugging kept instances over the API, on the local connector with the real agent: a
//! terminal inside an instance (typed into, its screen read), the client environment by hand
//! (`slipstream.setup`), and re-running one target with the module's current script — the
//! loop of the guide's appendix. Who may do it, and what the events record.

mod common;

use common::*;
use serde_json::{json, Value};

async fn events(s: &Server, run: &str) -> Vec<String> {
    let e: Value = s.c.get(s.api(&format!("/runs/{run}/events"))).send().await.unwrap().json().await.unwrap();
    e.as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn a_failing_instance_kept_on_error_is_fixed_from_a_terminal_and_a_rerun() {
    let s = sqlite().await;
    s.save(json!({"kind": "project", "path": "dbg"})).await;
    let broken = "#!/bin/sh\necho \"reading $HOME/app.conf\"\necho 'app.conf: no such file' >&2\nexit 3\n";
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": broken}})).await;
    let run = s.launch(json!({"module": "dbg/app", "keep_running": "on-error"})).await;
    s.wait_state(&run, |st| st == "Ready").await;
    let d = s.detail(&run).await;
    assert!(d["abort"].as_str().unwrap().contains("app.conf: no such file"), "{d}");

    // The terminal: a shell in the instance's directory with slipstream.setup sourced.
    let t0 = std::time::Instant::now();
    let mut term = Terminal::open(&s, &run, "machine.1").await;
    term.type_text("echo \"name=$SLIPSTREAM_NODE_INSTANCE_NAME\"; pwd\n").await;
    term.read_until(|screen| screen.contains("name=machine.1") && screen.contains("/machine.1\r\n")).await;
    eprintln!("terminal: open and first answer in {} ms", t0.elapsed().as_millis());
    assert!(term.seen.contains(&format!("/runs/{run}/machine.1")), "starts in the instance's directory:\n{}", term.seen);
    // Keystroke round trip: one character typed, its echo seen.
    let rtts = term.keystroke_rtts().await;
    eprintln!("terminal keystroke round trip (local): median {} µs, max {} µs", rtts[2], rtts[4]);
    term.type_text("\u{15}").await; // Ctrl-U: drop the typed letters
                                    // The client environment works as in a target: the abort is cancelled from the shell.
                                    // (Answers are computed, so the echo of the typed line cannot match them.)
    term.type_text("ss-abort --cancel && echo cancelled-$((40+2)); ls .slipstream/scripts\n").await;
    term.read_until(|screen| screen.contains("cancelled-42\r\n") && screen.contains("dbg_app__execute\r\n")).await;
    assert!(s.detail(&run).await["abort"].is_null(), "ss-abort --cancel from the terminal cleared the abort");
    // Ctrl-C interrupts a running program; the shell goes on.
    term.type_text("sleep 30; echo slept\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    term.type_text("\u{3}echo after-ctrl-c\n").await;
    term.read_until(|screen| screen.contains("after-ctrl-c\r\n")).await;
    assert!(!term.seen.contains("\r\nslept\r\n"), "sleep was interrupted");
    // Full-screen programs work: top draws and quits on `q`; vi edits a file.
    term.type_text("top\n").await;
    term.read_until(|screen| screen.contains("load average")).await;
    // top discards typed-ahead input when it leaves: wait for the prompt first.
    let before = term.seen.len();
    term.type_text("q").await;
    term.read_until(|screen| screen[before..].contains("$ ")).await;
    term.type_text("echo top-done-$((1+1))\n").await;
    term.read_until(|screen| screen.contains("top-done-2\r\n")).await;
    let before = term.seen.len();
    term.type_text("VI=$(command -v vi || echo 'busybox vi'); $VI notes.txt\n").await;
    // Typed only once vi drew its screen (it asks the terminal things first).
    term.read_until(|screen| screen[before..].contains("\"notes.txt\"")).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = term.seen.len();
    term.type_text("ihello from vi\u{1b}:wq\r").await;
    term.read_until(|screen| screen[before..].contains("$ ")).await;
    term.type_text("cat notes.txt | tr a-z A-Z\n").await;
    term.read_until(|screen| screen.contains("HELLO FROM VI\r\n")).await;
    // A resize reaches the terminal.
    term.send(json!({"type": "resize", "columns": 123, "rows": 45})).await;
    term.type_text("stty size\n").await;
    term.read_until(|screen| screen.contains("45 123")).await;
    term.type_text("exit\n").await;
    assert_eq!(term.wait_exit().await["code"], 0, "the shell's exit is reported");

    // Fix the script in the module (a new version) and re-run execute on that instance.
    let fixed = "#!/bin/sh -e\necho 'port=8080' > app.conf\necho \"started with $(cat app.conf)\"\nss-display fixed\n";
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": fixed}})).await;
    let r = s.c.post(s.api(&format!("/runs/{run}/instances/machine.1/rerun"))).json(&json!({"target": "execute"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rerun: Value = r.json().await.unwrap();
    assert_eq!(rerun["exit_code"], 0, "{rerun}");
    assert_eq!(rerun["scripts"], json!(["dbg/app@2"]), "the module's current version: {rerun}");
    assert_eq!(statecustom(&s.detail(&run).await, "machine.1"), "fixed");
    let logs: Value = s.c.get(s.api(&format!("/runs/{run}/logs"))).send().await.unwrap().json().await.unwrap();
    assert!(logs.to_string().contains("started with port=8080"), "the re-run's output is in the run's logs: {logs}");

    // The old script fails again when re-run: its exit code comes back.
    s.save(json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox", "targets": {"execute": broken}})).await;
    let again = s.rerun(&run, "machine.1", "execute").await;
    assert_eq!(again["exit_code"], 3, "{again}");
    assert!(s.detail(&run).await["abort"].is_null(), "a re-run that fails raises no abort");

    // Bad requests say why.
    let r = s.c.post(s.api(&format!("/runs/{run}/instances/machine.1/rerun"))).json(&json!({"target": "deploy"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not a target that can be re-run"));
    let r = s.c.post(s.api(&format!("/runs/{run}/instances/machine.9/rerun"))).json(&json!({"target": "execute"})).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Another user may neither re-run nor open a terminal.
    let other = client();
    let r = other.post(s.api("/auth/register")).json(&json!({"name": "mallory", "password": "correct horse"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = other.post(s.api(&format!("/runs/{run}/instances/machine.1/rerun"))).json(&json!({"target": "execute"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = other.get(s.api(&format!("/runs/{run}/instances/machine.1/terminal"))).send().await.unwrap();
    assert_eq!(r.status(), 403, "checked before the upgrade");
    // A page of another site may not open one with the owner's cookie.
    let r =
        s.c.get(s.api(&format!("/runs/{run}/instances/machine.1/terminal")))
            .header("origin", "http://evil.example")
            .header("upgrade", "websocket")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);

    let ev = events(&s, &run).await;
    assert!(ev.iter().any(|e| e == "Terminal opened on machine.1 by olivia"), "{ev:?}");
    assert!(ev.iter().any(|e| e.starts_with("Re-running execute on machine.1 with dbg/app@2")), "{ev:?}");
    assert!(ev.iter().any(|e| e == "Re-run of execute on machine.1 exited with 0"), "{ev:?}");
    assert!(!ev.iter().any(|e| e.contains("cancelled-")), "no keystrokes in the events");

    let r = s.c.delete(s.api(&format!("/runs/{run}"))).send().await.unwrap();
    assert!(r.status().is_success());
    s.wait_stopped(&run).await;
    let r = s.c.post(s.api(&format!("/runs/{run}/instances/machine.1/rerun"))).json(&json!({"target": "execute"})).send().await.unwrap();
    assert_eq!(r.status(), 409, "an ended run's instances are gone");
}
