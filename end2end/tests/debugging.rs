//! The guide's appendix in the browser: a deployment fails and is kept on error; the user
//! opens a terminal on the failing instance (xterm.js on the terminal websocket), sources the
//! client environment, cancels the abort and reads the script's problem; fixes the execute
//! script in the editor; re-runs execute on that instance, which now succeeds; terminates.

use end2end::*;
use fantoccini::{Client, Locator};

const BROKEN: &str = "#!/bin/sh\necho \"reading $PWD/app.conf\"\ncat app.conf\n";
const FIXED: &str = "#!/bin/sh -e\necho 'port=8080' > app.conf\nss-display \"fixed: $(cat app.conf)\"\n";

/// Types into the terminal emulator as a user would (into xterm.js's input element).
async fn type_in_terminal(c: &Client, text: &str) -> Step {
    let input = c.find(Locator::Css("#terminal .xterm-helper-textarea")).await.map_err(|e| format!("the emulator's input: {e}"))?;
    input.send_keys(text).await.map_err(|e| format!("typing into the terminal: {e}"))
}

/// The emulator's screen as text, waited for until `pred` holds.
async fn wait_screen(c: &Client, pred: impl Fn(&str) -> bool) -> Step<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let screen = c
            .execute("return window.slipstreamTerminal ? window.slipstreamTerminal.text() : ''", vec![])
            .await
            .map_err(|e| e.to_string())?
            .as_str()
            .unwrap_or("")
            .to_string();
        if pred(&screen) {
            return Ok(screen);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("the terminal never showed what was expected; it showed:\n{screen}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failing_instance_is_debugged_in_a_browser_terminal_fixed_and_rerun() {
    run_journey("debugging", |c, base| async move {
        let api = api_user(&base).await;
        save_modules(
            &api,
            &base,
            &[
                serde_json::json!({"kind": "project", "path": "dbg"}),
                serde_json::json!({"kind": "image", "path": "dbg/app", "reference": "examples/images/busybox",
                                   "targets": {"execute": BROKEN}}),
            ],
        )
        .await;
        sign_in(&c, &base, "olivia", "correct horse").await?;

        // Run it, kept on error: it fails and stays up.
        open(&c, &format!("{base}/modules/dbg/app")).await?;
        click(&c, sel::RUN_BUTTON).await?;
        wait_for(&c, sel::LAUNCH_FORM).await?;
        select(&c, sel::KEEP_RUNNING, "on-error").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Ready")).await?;
        wait_text(&c, "#abort", |t| t.contains("app.conf")).await?;

        // The terminal on the failing instance.
        click(&c, "tr[data-instance='machine.1'] button.open-terminal").await?;
        wait_for(&c, "#terminal[data-connected='true']").await?;
        wait_for(&c, "#terminal .xterm-helper-textarea").await?;
        type_in_terminal(&c, "source slipstream.setup && ss-abort --cancel && echo \"[$SLIPSTREAM_NODE_INSTANCE_NAME] cancelled\"\n")
            .await?;
        wait_screen(&c, |s| s.lines().any(|l| l.trim() == "[machine.1] cancelled")).await?;
        // The script as it ran, kept where the docs say, run by hand.
        type_in_terminal(&c, "sh .slipstream/scripts/dbg_app__execute; echo \"exit=$?\"\n").await?;
        let screen = wait_screen(&c, |s| s.lines().any(|l| l.trim() == "exit=1")).await?;
        if !(screen.contains("app.conf") && screen.contains("No such file or directory")) {
            return Err(format!("the script's problem is not on the screen:\n{screen}"));
        }
        // Keystroke round trip inside the page: a key handed to the emulator (as typing does)
        // until the emulator has drawn its echo, timed with the page's clock.
        let timing = c
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   const term = window.slipstreamTerminal.term();
                   const chars = "qwertyuiop", times = [];
                   let i = 0;
                   function one() {
                     if (i >= chars.length) { done(times); return; }
                     const ch = chars[i++], t0 = performance.now();
                     const sub = term.onWriteParsed(() => {
                       const b = term.buffer.active;
                       if (b.getLine(b.baseY + b.cursorY).translateToString(true).endsWith(ch)) {
                         sub.dispose(); times.push(performance.now() - t0); setTimeout(one, 20);
                       }
                     });
                     term.input(ch, true);
                   }
                   one();"#,
                vec![],
            )
            .await
            .map_err(|e| format!("timing keystrokes: {e}"))?;
        let mut rtts: Vec<f64> = timing.as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
        rtts.sort_by(|a, b| a.total_cmp(b));
        if rtts.len() != 10 {
            return Err(format!("keystrokes were not all echoed: {timing}"));
        }
        note(&format!("keystroke round trip in the browser terminal: median {:.1} ms, max {:.1} ms", rtts[5], rtts[9]));
        type_in_terminal(&c, "\u{15}").await?;
        screenshot(&c, "terminal").await?;
        click(&c, "#terminal-close").await?;

        // Fix the execute script in the editor: a new version.
        open(&c, &format!("{base}/modules/dbg/app")).await?;
        click(&c, "#edit-button").await?;
        click(&c, "#tab-targets").await?;
        type_into(&c, "#edit-execute", FIXED).await?;
        type_into(&c, "#save-comment", "Write the config first").await?;
        click(&c, "#save").await?;
        wait_text(&c, "#module-version", |t| t.starts_with('2')).await?;

        // Back on the run page: re-run execute on that instance with the current script.
        let runs = api.get(format!("{base}/api/v1/runs")).send().await.map_err(|e| e.to_string())?;
        let runs: serde_json::Value = runs.json().await.map_err(|e| e.to_string())?;
        let run = runs.as_array().and_then(|r| r.first()).and_then(|r| r["id"].as_str()).ok_or("no run listed")?.to_string();
        open(&c, &format!("{base}/runs/{run}")).await?;
        select(&c, "tr[data-instance='machine.1'] select[name='target']", "execute").await?;
        click(&c, "tr[data-instance='machine.1'] button.rerun").await?;
        wait_text(&c, "#rerun-result", |t| t.contains("exited with 0") && t.contains("dbg/app@2")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("fixed: port=8080")).await?;
        wait_text(&c, sel::EVENTS, |t| {
            t.contains("Terminal opened on machine.1 by olivia") && t.contains("Re-run of execute on machine.1 exited with 0")
        })
        .await?;
        screenshot(&c, "rerun").await?;

        click(&c, "#terminate").await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done") || t.contains("Aborted") || t.contains("Cancelled")).await?;
        Ok::<(), String>(())
    })
    .await;
}
