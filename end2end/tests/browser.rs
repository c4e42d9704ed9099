//! A new user signs up, opens the example Hello World deployment and sees its nodes and
//! versions; signed out, the catalog still shows the examples.

use end2end::*;

#[tokio::test]
async fn a_new_user_browses_the_examples_and_a_visitor_the_catalog() {
    run_journey("browse", |c, base| async move {
        // Sign up: the first account on this server.
        sign_up(&c, &base, "olivia", "correct horse").await?;

        // The project browser lists the examples; the user makes a project of their own.
        open(&c, &format!("{base}/modules")).await?;
        wait_text(&c, sel::CHILDREN, |t| t.contains("examples")).await?;
        // The tree opens projects in place, down to a deployment.
        for p in ["examples", "examples/tutorials", "examples/tutorials/hello"] {
            // Children load when their project opens: wait for each before clicking it.
            let toggle = format!("#project-tree li[data-path='{p}'] > button.toggle");
            wait_for(&c, &toggle).await?;
            click(&c, &toggle).await?;
        }
        wait_text(&c, "#project-tree li[data-path='examples/tutorials/hello']", |t| t.contains("client_server") && t.contains("apache"))
            .await?;
        click(&c, "#new-project").await?;
        type_into(&c, "#new-project-name", "bad name").await?;
        click(&c, "#new-project-create").await?;
        wait_text(&c, "#form-error", |t| t.contains("bad name")).await?;
        type_into(&c, "#new-project-name", "lab").await?;
        type_into(&c, "#new-project-description", "My experiments").await?;
        click(&c, "#new-project-create").await?;
        wait_text(&c, sel::MODULE_PATH, |t| t == "lab").await?;
        new_project(&c, "hello", "lab/hello").await?;
        // Search by name finds the example deployment.
        open(&c, &format!("{base}/modules?q=client_server")).await?;
        wait_text(&c, "#search-results", |t| t.contains("client_server")).await?;
        open(&c, &format!("{base}/modules/examples/tutorials/hello/client_server")).await?;
        wait_text(&c, sel::MODULE_PATH, |t| t == "examples/tutorials/hello/client_server").await?;
        let nodes = wait_text(&c, sel::NODES, |t| t.contains("apache1") && t.contains("testclient1")).await?;
        if !nodes.contains("apache1:hostname") {
            return Err(format!("the links are not shown: {nodes}"));
        }
        let versions = wait_text(&c, sel::VERSIONS, |t| t.contains("slipstream")).await?;
        if !versions.contains("Example shipped with Slipstream") {
            return Err(format!("the version list lacks the commit comment: {versions}"));
        }
        screenshot(&c, "module-view").await?;

        // Follow the link to the web server image: its parameters and targets are shown.
        click(&c, "#nodes a[href='/modules/examples/tutorials/hello/apache']").await?;
        wait_text(&c, "#parameters", |t| t.contains("port") && t.contains("8080")).await?;
        wait_text(&c, "#target-execute", |t| t.contains("ss-set ready true")).await?;

        // Sign out; the catalog is there for visitors.
        click(&c, sel::SIGN_OUT).await?;
        wait_text(&c, "nav.top", |t| t.contains("Sign in")).await?;
        open(&c, &format!("{base}/catalog")).await?;
        wait_text(&c, sel::CATALOG, |t| t.contains("examples/tutorials/hello/client_server") && t.contains("examples/cluster/cluster"))
            .await?;
        if exists(&c, sel::SIGNED_IN_AS).await {
            return Err("still signed in after signing out".into());
        }
        screenshot(&c, "catalog").await?;
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn a_user_runs_hello_world_and_watches_it_finish_live() {
    run_journey("hello-world", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;

        // Press Run on the deployment; the launch form lists its nodes and linked inputs.
        open(&c, &format!("{base}/modules/examples/tutorials/hello/client_server")).await?;
        click(&c, sel::RUN_BUTTON).await?;
        wait_text(&c, sel::LAUNCH_FORM, |t| t.contains("Node testclient1") && t.contains("linked to apache1:hostname")).await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        type_into(&c, sel::TAGS, "browser, hello").await?;
        click(&c, sel::LAUNCH).await?;

        // The run page follows the run over the websocket, without reloading.
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("OK: Hello from Apache deployed by SlipStream!")).await?;
        let reports = wait_text(&c, sel::REPORTS, |t| t.matches(".tgz").count() == 2).await?;
        if !(reports.contains("apache1.1_report_") && reports.contains("testclient1.1_report_")) {
            return Err(format!("both reports are listed: {reports}"));
        }
        wait_text(&c, sel::EVENTS, |t| t.contains("Finalizing") && t.contains("Done")).await?;
        wait_text(&c, sel::LOG, |t| t.contains("ss-set ready true")).await?;
        screenshot(&c, "run-page").await?;

        // The runs list and the dashboard show it; the dashboard filters by tag.
        open(&c, &format!("{base}/runs")).await?;
        wait_text(&c, sel::RUNS, |t| {
            t.contains("examples/tutorials/hello/client_server") && t.contains("Done") && t.contains("browser, hello")
        })
        .await?;
        click(&c, "#dashboard-link").await?;
        wait_text(&c, sel::DASHBOARD, |t| {
            t.contains("examples/tutorials/hello/client_server")
                && t.contains("Done")
                && t.contains("2 on local")
                && t.contains("2 completed SendingReports")
        })
        .await?;
        screenshot(&c, "dashboard").await?;
        open(&c, &format!("{base}/dashboard?tag=nothing")).await?;
        wait_text(&c, "#dashboard-totals", |t| t.starts_with("0 runs")).await?;
        open(&c, &format!("{base}/dashboard?tag=hello")).await?;
        wait_text(&c, "#dashboard-totals", |t| t.starts_with("1 runs")).await?;
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn a_user_sets_profile_defaults_and_tokens_and_deploys_from_the_catalog() {
    run_journey("profile", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        click(&c, sel::SIGNED_IN_AS).await?;
        wait_for(&c, "#profile-form").await?;
        select(&c, "#profile-keep-running", "always").await?;
        type_into(&c, "#profile-timeout", "45").await?;
        click(&c, "#profile-save").await?;
        wait_for(&c, "#profile-saved").await?;
        open(&c, &format!("{base}/profile")).await?;
        let timeout = c
            .find(fantoccini::Locator::Css("#profile-timeout"))
            .await
            .map_err(|e| e.to_string())?
            .prop("value")
            .await
            .map_err(|e| e.to_string())?;
        if timeout.as_deref() != Some("45") {
            return Err(format!("the timeout was not kept: {timeout:?}"));
        }
        type_into(&c, "#token-name", "ci").await?;
        click(&c, "#token-create").await?;
        wait_text(&c, "#token-secret", |t| t.contains("sst_")).await?;
        wait_text(&c, "#tokens", |t| t.contains("ci") && t.contains("never")).await?;
        click(&c, "#tokens button.revoke").await?;
        wait_text(&c, "#tokens", |t| !t.contains("never")).await?;

        // Connector settings and a credential: saved, never shown back.
        let form = "form[data-connector='local']";
        type_into(&c, &format!("{form} .connector-settings"), "user = olivia").await?;
        type_into(&c, &format!("{form} .connector-credential"), "s3cr3t-value").await?;
        click(&c, &format!("{form} .connector-save")).await?;
        wait_for(&c, "#connector-saved").await?;
        open(&c, &format!("{base}/profile")).await?;
        wait_text(&c, &format!("{form} .credential-state"), |t| t.contains("A credential is stored")).await?;
        let source = c.source().await.map_err(|e| e.to_string())?;
        if source.contains("s3cr3t-value") {
            return Err("the saved credential is in the page".into());
        }
        let shown = c
            .find(fantoccini::Locator::Css(&format!("{form} .connector-settings")))
            .await
            .map_err(|e| e.to_string())?
            .prop("value")
            .await
            .map_err(|e| e.to_string())?;
        if !shown.as_deref().unwrap_or_default().contains("user = olivia") {
            return Err(format!("the settings were not kept: {shown:?}"));
        }
        screenshot(&c, "profile").await?;

        // Another user deploys the cluster from the catalog with two workers.
        click(&c, sel::SIGN_OUT).await?;
        wait_text(&c, "nav.top", |t| t.contains("Sign in")).await?;
        sign_up(&c, &base, "oscar", "battery staple").await?;
        // The administrator (olivia, the first account) lets oscar use `local`, with a quota.
        let admin = api_login(&base, "olivia", "correct horse").await;
        allow_connector(&admin, &base, "oscar", "local").await;
        let r = admin
            .put(format!("{base}/api/v1/users/oscar/quotas/local"))
            .json(&serde_json::json!({"quota": 10}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != reqwest::StatusCode::NO_CONTENT {
            return Err(format!("setting the quota: {}", r.status()));
        }
        open(&c, &format!("{base}/catalog")).await?;
        click(&c, "a[data-deploy='examples/cluster/cluster']").await?;
        wait_text(&c, sel::LAUNCH_FORM, |t| t.contains("Node worker")).await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        type_into(&c, "#multiplicity-worker", "2").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("Cluster ready with 2 workers") && t.contains("worker.2")).await?;
        // The dashboard shows oscar's usage against his quota.
        click(&c, "#dashboard-link").await?;
        wait_text(&c, "#usage", |t| t.contains("local: 0 of 10 instances")).await?;
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn a_user_compares_two_versions_and_restores_the_first() {
    run_journey("compare", |c, base| async move {
        // Two versions of an image, saved through the API.
        let api = api_user(&base).await;
        save_modules(
            &api,
            &base,
            &[
                serde_json::json!({"kind": "project", "path": "olivia"}),
                serde_json::json!({"kind": "image", "path": "olivia/web", "reference": "examples/images/busybox", "description": "first",
                               "targets": {"execute": "#!/bin/sh\necho one\n"}, "comment": "v1"}),
                serde_json::json!({"kind": "image", "path": "olivia/web", "reference": "examples/images/busybox", "description": "second",
                               "targets": {"execute": "#!/bin/sh\necho two\n"}, "comment": "v2"}),
            ],
        )
        .await;
        sign_in(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/modules/olivia/web")).await?;
        click(&c, "#versions tr[data-version='1'] a.compare").await?;
        let diff = wait_text(&c, "#compare", |t| t.contains("targets.execute")).await?;
        for part in ["description", "first", "second", "- echo one", "+ echo two"] {
            if !diff.contains(part) {
                return Err(format!("`{part}` missing from the comparison: {diff}"));
            }
        }
        screenshot(&c, "compare").await?;
        click(&c, "#versions tr[data-version='1'] button.restore").await?;
        wait_text(&c, "#versions", |t| t.contains("Restored version 1")).await?;
        wait_text(&c, "#target-execute", |t| t.contains("echo one")).await?;
        Ok::<(), String>(())
    })
    .await;
}

/// The Run button of an old version's page launches that version, and the form says so.
#[tokio::test]
async fn the_run_button_of_an_old_version_runs_that_version() {
    run_journey("old-version", |c, base| async move {
        let api = api_user(&base).await;
        save_modules(
            &api,
            &base,
            &[
                serde_json::json!({"kind": "project", "path": "olivia"}),
                serde_json::json!({"kind": "image", "path": "olivia/say", "reference": "examples/images/busybox",
                               "targets": {"execute": "#!/bin/sh\nss-display 'said by version one'\n"}}),
                serde_json::json!({"kind": "image", "path": "olivia/say", "reference": "examples/images/busybox",
                               "targets": {"execute": "#!/bin/sh\nss-display 'said by version two'\n"}}),
            ],
        )
        .await;
        sign_in(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/modules/olivia/say?version=1")).await?;
        wait_for(&c, "#old-version").await?;
        click(&c, sel::RUN_BUTTON).await?;
        wait_text(&c, "#launch-old-version", |t| t.contains("version 1") && t.contains("latest (2)")).await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("said by version one")).await?;
        let url = c.current_url().await.map_err(|e| e.to_string())?;
        let id = url.path().rsplit('/').next().unwrap_or_default().to_string();
        let run: serde_json::Value =
            api.get(format!("{base}/api/v1/runs/{id}")).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if run["module_version"] != 1 {
            return Err(format!("the run deployed version {} instead of 1", run["module_version"]));
        }
        // From the latest version's page, the form launches the latest and says nothing more.
        open(&c, &format!("{base}/modules/olivia/say")).await?;
        click(&c, sel::RUN_BUTTON).await?;
        wait_text(&c, "#launch-version", |t| t.contains("version 2")).await?;
        if exists(&c, "#launch-old-version").await {
            return Err("the latest version is announced as an old one".into());
        }
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn the_run_page_shows_what_instances_wait_for_and_terminates_the_run() {
    run_journey("run-page", |c, base| async move {
        let api = api_user(&base).await;
        save_modules(
            &api,
            &base,
            &[
                serde_json::json!({"kind": "project", "path": "w"}),
                serde_json::json!({"kind": "image", "path": "w/patient", "reference": "examples/images/busybox",
                "parameters": [{"name": "go", "category": "output"}],
                "targets": {"execute": "#!/bin/sh\nss-get --timeout 300 go\nss-display \"got it\"\nsleep 300\n"}}),
            ],
        )
        .await;
        let run = launch(&api, &base, "w/patient").await;
        // Wait (long poll) until the run executes, then a moment for the script to block.
        let mut st = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while st != "Executing" {
            assert!(std::time::Instant::now() < deadline, "the run never reached Executing: {st}");
            let from = if st.is_empty() { String::new() } else { format!("from={st}&") };
            st = api.get(format!("{base}/api/v1/runs/{run}/state?{from}wait=10")).send().await.unwrap().text().await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        sign_in(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/runs/{run}")).await?;
        wait_text(&c, "#waiting", |t| t.contains("machine.1:go") && t.contains("1 reader")).await?;
        wait_text(&c, "#state-times", |t| t.contains("Provisioning") && t.contains("Executing")).await?;
        type_into(&c, "#param-filter", "machine.1:go").await?;
        wait_text(&c, "#params", |t| t.contains("machine.1:go") && !t.contains("hostname")).await?;
        screenshot(&c, "run-waiting").await?;
        // Another node (here: the API) sets the key: the page updates without a reload.
        api.put(format!("{base}/api/v1/runs/{run}/params/machine.1:go")).body("now").send().await.map_err(|e| e.to_string())?;
        wait_text(&c, "#waiting", |t| t.contains("No instance is waiting")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("got it")).await?;
        click(&c, "#terminate").await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Cancelled")).await?;
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn a_user_sweeps_the_performance_example_and_sees_the_chart() {
    run_journey("sweep", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/modules/examples/tutorials/performance/deployment")).await?;
        click(&c, "#sweep-button").await?;
        wait_for(&c, "#sweep-form").await?;
        type_into(&c, "#sweep-vary", "testsuite:multiplicity=1,2,3,4").await?;
        type_into(&c, "#sweep-collect", "testsuite.*:response_ms").await?;
        click(&c, "#sweep-start").await?;
        // The sweep page follows it: four runs, then the chart with a dot per client.
        wait_text(&c, "#sweep-state", |t| t == "done").await?;
        let points = wait_text(&c, "#sweep-points", |t| t.matches("Done").count() == 4).await?;
        if !points.contains("testsuite:multiplicity=4") {
            return Err(format!("the four points are listed: {points}"));
        }
        let dots = c.find_all(fantoccini::Locator::Css("#sweep-chart circle.sample")).await.map_err(|e| e.to_string())?.len();
        if dots != 10 {
            return Err(format!("the chart has {dots} dots, not one per client (10)"));
        }
        for series in ["mean", "median", "p95"] {
            wait_for(&c, &format!("#sweep-chart polyline.series-{series}")).await?;
        }
        screenshot(&c, "sweep-chart").await?;
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn a_user_scales_a_running_deployment_from_the_run_page() {
    run_journey("scaling", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/modules/examples/tutorials/hello/client_server")).await?;
        click(&c, sel::RUN_BUTTON).await?;
        wait_for(&c, sel::LAUNCH_FORM).await?;
        click(&c, "#scalable").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Ready")).await?;
        // Two more test clients: they deploy, and the page shows them as they come.
        let add = "#scaling tr[data-scale-node='testclient1']";
        wait_for(&c, add).await?;
        c.find(fantoccini::Locator::Css(&format!("{add} input.scale-count")))
            .await
            .map_err(|e| e.to_string())?
            .clear()
            .await
            .map_err(|e| e.to_string())?;
        type_into(&c, &format!("{add} input.scale-count"), "2").await?;
        click(&c, &format!("{add} button.scale-add")).await?;
        wait_text(&c, sel::INSTANCES, |t| {
            t.contains("testclient1.3") && t.matches("OK: Hello from Apache deployed by SlipStream!").count() == 3
        })
        .await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Ready")).await?;
        screenshot(&c, "scaled-run").await?;
        // A scalable run stays up until terminated: end it, so that nothing outlives the test.
        click(&c, "#terminate").await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        Ok::<(), String>(())
    })
    .await;
}
