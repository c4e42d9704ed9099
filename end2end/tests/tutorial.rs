//! The original system's Hello World tutorial done in the browser, as a user would: chapter 2 (Hello World: two images and a
//! deployment built in the editors, run, watched live), chapter 3 (multiplicity 3) and
//! publishing to the catalog for another user to deploy. Adapted only where the local
//! connector differs from a cloud VM: the web server is python3's, on the instance's address.

use end2end::*;
use fantoccini::{Client, Locator};

const APACHE_EXECUTE: &str = r#"#!/bin/sh -xe
port=$(ss-get port)
host=$(ss-get hostname)
mkdir -p www
echo 'Hello from Apache deployed by SlipStream!' > www/data.txt
(cd www && exec python3 -m http.server --bind "$host" "$port") > httpd.log 2>&1 &
i=0
until wget -q -O /dev/null "http://$host:$port/data.txt"; do i=$((i + 1)); [ "$i" -lt 100 ]; sleep 0.1; done
ss-set ready true
"#;

const APACHE_REPORT: &str = "#!/bin/sh -x\ncp httpd.log $SLIPSTREAM_REPORT_DIR\n";

const CLIENT_EXECUTE: &str = r#"#!/bin/sh -xe
# Wait for the metadata to be resolved
web_server_ip=$(ss-get --timeout 360 webserver.hostname)
web_server_port=$(ss-get --timeout 360 webserver.port)
ss-get --timeout 360 webserver.ready

# Execute the test
ENDPOINT=http://${web_server_ip}:${web_server_port}/data.txt
wget -O data.txt ${ENDPOINT} && \
    ss-set statecustom "OK: $(cat data.txt)" || \
    ss-abort "Could not get the test file: ${ENDPOINT}"
"#;

const CLIENT_REPORT: &str = "#!/bin/sh -x\ncp data.txt $SLIPSTREAM_REPORT_DIR\n";

async fn value(c: &Client, css: &str) -> Step<String> {
    let e = c.find(Locator::Css(css)).await.map_err(|e| format!("{css}: {e}"))?;
    Ok(e.prop("value").await.map_err(|e| format!("{css}: {e}"))?.unwrap_or_default())
}

/// The chooser opens in the current project: up to the root with the keyboard (Backspace).
async fn chooser_to_root(c: &Client) -> Step {
    wait_for(c, "#chooser").await?;
    let list = c.find(Locator::Css("#chooser-list")).await.map_err(|e| e.to_string())?;
    while exists(c, "#chooser-list li.up").await {
        let shown = wait_text(c, "#chooser-where", |_| true).await?;
        list.send_keys("\u{E003}").await.map_err(|e| e.to_string())?;
        wait_text(c, "#chooser-where", |t| t != shown).await?;
    }
    Ok(())
}

/// Chooses `path` in the chooser window by clicking through the projects to it.
async fn choose(c: &Client, path: &str) -> Step {
    chooser_to_root(c).await?;
    let mut at = String::new();
    for seg in path.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(seg);
        let row = format!("#chooser-list li[data-path='{at}']");
        wait_for(c, &row).await?;
        click(c, &row).await?;
    }
    wait_text(c, "#chooser-details h3", |t| t == path).await?;
    click(c, "#chooser-select").await?;
    wait_gone(c, "#chooser").await
}

async fn wait_gone(c: &Client, css: &str) -> Step {
    for _ in 0..200 {
        if !exists(c, css).await {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(format!("`{css}` is still there after 20 s"))
}

/// Adds a parameter in the Parameters tab (`category`: input or output).
async fn add_parameter(c: &Client, category: &str, name: &str, default: &str) -> Step {
    let rows = format!("#edit-{category} tbody tr");
    let before = c.find_all(Locator::Css(&rows)).await.map_err(|e| e.to_string())?.len();
    click(c, &format!("#add-{category}")).await?;
    let last = format!("#edit-{category} tbody tr:nth-child({})", before + 1);
    wait_for(c, &last).await?;
    type_into(c, &format!("{last} .param-name"), name).await?;
    if !default.is_empty() {
        type_into(c, &format!("{last} .param-default"), default).await?;
    }
    Ok(())
}

/// Creates an image in the current project through the editor and saves it.
async fn create_image(c: &Client, project: &str, name: &str, params: &[(&str, &str, &str)], execute: &str, report: &str) -> Step {
    note(&format!("create image {name}"));
    open(c, &format!("{}/modules/{project}", base_of(c).await?)).await?;
    click(c, "#new-image").await?;
    wait_text(c, "#editor-title", |t| t == "New image").await?;
    type_into(c, "#edit-name", name).await?;
    type_into(c, "#edit-description", &format!("The {name} of the Hello World tutorial")).await?;
    click(c, "#tab-reference").await?;
    click(c, "#choose-reference").await?;
    choose(c, "examples/images/busybox").await?;
    wait_text(c, "#edit-reference", |t| t == "examples/images/busybox").await?;
    click(c, "#tab-parameters").await?;
    for (category, pname, default) in params {
        add_parameter(c, category, pname, default).await?;
    }
    click(c, "#tab-targets").await?;
    type_into(c, "#edit-execute", execute).await?;
    type_into(c, "#edit-report", report).await?;
    type_into(c, "#save-comment", "First version").await?;
    click(c, "#save").await?;
    wait_text(c, sel::MODULE_PATH, |t| t == format!("{project}/{name}")).await?;
    Ok(())
}

async fn base_of(c: &Client) -> Step<String> {
    let url = c.current_url().await.map_err(|e| e.to_string())?;
    Ok(url.origin().ascii_serialization())
}

/// Links `input` of `node` by typing part of it and picking the suggestion.
async fn link_input(c: &Client, node: &str, input: &str, typed: &str, pick: &str) -> Step {
    let row = format!("fieldset[data-node='{node}'] tr[data-input='{input}']");
    select(c, &format!("{row} .input-mode"), "link").await?;
    type_into(c, &format!("{row} .input-link"), typed).await?;
    let suggestions = wait_text(c, &format!("{row} ul.suggestions"), |t| t.contains(pick)).await?;
    if suggestions.lines().any(|l| l.starts_with(&format!("{node}:"))) {
        return Err(format!("a node's own outputs are offered for its links: {suggestions}"));
    }
    c.find(Locator::XPath(&format!(
        "//fieldset[@data-node='{node}']//tr[@data-input='{input}']//ul[contains(@class,'suggestions')]/li[text()='{pick}']"
    )))
    .await
    .map_err(|e| format!("suggestion {pick}: {e}"))?
    .click()
    .await
    .map_err(|e| e.to_string())?;
    let v = value(c, &format!("{row} .input-link")).await?;
    if v != pick {
        return Err(format!("the link field holds {v:?}, not {pick:?}"));
    }
    Ok(())
}

/// Adds a node of `image` with the chooser and names it.
async fn add_node(c: &Client, image: &str, name: &str) -> Step {
    click(c, "#add-node").await?;
    choose(c, image).await?;
    let default = image.rsplit('/').next().unwrap();
    let field = format!("fieldset[data-node='{default}'] .node-name");
    wait_for(c, &field).await?;
    type_into(c, &field, name).await?;
    wait_for(c, &format!("fieldset[data-node='{name}']")).await
}

#[tokio::test]
async fn tutorial_chapter_2_hello_world_built_and_run_in_the_browser() {
    run_journey("chapter-2", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;

        // 2. A new top-level project, and HelloWorld inside it.
        open(&c, &format!("{base}/modules")).await?;
        new_project(&c, "olivia", "olivia").await?;
        new_project(&c, "HelloWorld", "olivia/HelloWorld").await?;

        // 3. The web server image: parent chosen in the chooser, outputs port (8080) and ready.
        let project = "olivia/HelloWorld";
        create_image(&c, project, "apache", &[("output", "port", "8080"), ("output", "ready", "")], APACHE_EXECUTE, APACHE_REPORT).await?;
        wait_text(&c, "#parameters", |t| t.contains("port") && t.contains("8080") && t.contains("ready")).await?;
        wait_text(&c, "#reference", |t| t.contains("examples/images/busybox")).await?;
        wait_text(&c, "#target-execute", |t| t.contains("ss-set ready true")).await?;
        wait_text(&c, sel::VERSIONS, |t| t.contains("First version")).await?;

        // 4. The test client image with its three inputs.
        create_image(
            &c,
            project,
            "testclient",
            &[("input", "webserver.hostname", ""), ("input", "webserver.port", ""), ("input", "webserver.ready", "")],
            CLIENT_EXECUTE,
            CLIENT_REPORT,
        )
        .await?;
        wait_text(&c, "#parameters", |t| t.contains("webserver.hostname") && t.contains("webserver.ready")).await?;

        // 5. The deployment: Add Node through the chooser, links through the autocompletion.
        open(&c, &format!("{base}/modules/{project}")).await?;
        click(&c, "#new-deployment").await?;
        wait_text(&c, "#editor-title", |t| t == "New deployment").await?;
        type_into(&c, "#edit-name", "client_server").await?;
        click(&c, "#tab-nodes").await?;
        add_node(&c, &format!("{project}/apache"), "apache1").await?;
        add_node(&c, &format!("{project}/testclient"), "testclient1").await?;
        wait_text(&c, "fieldset[data-node='testclient1'] table.inputs", |t| t.contains("webserver.hostname") && t.contains("webserver.port") && t.contains("webserver.ready")).await?;
        link_input(&c, "testclient1", "webserver.hostname", "host", "apache1:hostname").await?;
        link_input(&c, "testclient1", "webserver.port", "apache1:p", "apache1:port").await?;
        // A link to an output that does not exist: the server names the field, nothing is saved.
        let ready = "fieldset[data-node='testclient1'] tr[data-input='webserver.ready']";
        select(&c, &format!("{ready} .input-mode"), "link").await?;
        type_into(&c, &format!("{ready} .input-link"), "apache1:readyy").await?;
        click(&c, "#save").await?;
        wait_text(&c, &format!("{ready} .field-error"), |t| t.contains("declares no output `readyy`")).await?;
        wait_text(&c, "#save-errors", |t| t.contains("nodes.testclient1.links.webserver.ready")).await?;
        screenshot(&c, "editor-error").await?;
        // Leaving with unsaved changes asks first; staying keeps the work.
        click(&c, "nav.top a[href='/modules']").await?;
        let alert = c.get_alert_text().await.map_err(|e| format!("no unsaved-changes prompt: {e}"))?;
        if !alert.contains("unsaved changes") {
            return Err(format!("unexpected prompt: {alert}"));
        }
        c.dismiss_alert().await.map_err(|e| e.to_string())?;
        wait_for(&c, "#editor").await?;
        link_input(&c, "testclient1", "webserver.ready", "apache1:re", "apache1:ready").await?;
        screenshot(&c, "editor-nodes").await?;
        type_into(&c, "#save-comment", "Client and server").await?;
        click(&c, "#save").await?;
        wait_text(&c, sel::MODULE_PATH, |t| t == format!("{project}/client_server")).await?;
        let nodes = wait_text(&c, sel::NODES, |t| t.contains("apache1") && t.contains("testclient1")).await?;
        for link in ["webserver.hostname linked to apache1:hostname", "webserver.port linked to apache1:port", "webserver.ready linked to apache1:ready"] {
            if !nodes.contains(link) {
                return Err(format!("`{link}` missing from the saved deployment: {nodes}"));
            }
        }

        // 6. Run it and watch it live.
        click(&c, sel::RUN_BUTTON).await?;
        wait_text(&c, sel::LAUNCH_FORM, |t| t.contains("Node testclient1")).await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        type_into(&c, sel::TAGS, "tutorial").await?;
        click(&c, sel::LAUNCH).await?;
        wait_for(&c, "#run-graph").await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("OK: Hello from Apache deployed by SlipStream!")).await?;
        wait_text(&c, "#run-graph", |t| t.contains("apache1") && t.contains("testclient1")).await?;
        let reports = wait_text(&c, sel::REPORTS, |t| t.matches(".tgz").count() == 2).await?;
        if !reports.contains("testclient1.1_report_") {
            return Err(format!("the client's report is missing: {reports}"));
        }
        screenshot(&c, "run-page-tutorial").await?;
        // Download a report the way the link does, with the browser's session.
        let got = c
            .execute_async(
                "const [css, done] = arguments; const a = document.querySelector(css);
                 fetch(a.href).then(r => r.arrayBuffer().then(b => done(r.status + ' ' + b.byteLength + ' ' + new Uint8Array(b)[0] + ' ' + new Uint8Array(b)[1])));",
                vec![serde_json::json!("#reports a[href*='testclient1.1_report_']")],
            )
            .await
            .map_err(|e| format!("download: {e}"))?;
        let got = got.as_str().unwrap_or_default().to_string();
        // 200, some bytes, and the gzip magic number 0x1f 0x8b.
        if !(got.starts_with("200 ") && got.ends_with(" 31 139")) {
            return Err(format!("the report did not download as a gzip file: {got}"));
        }

        // The dashboard lists the run.
        click(&c, "#dashboard-link").await?;
        wait_text(&c, sel::DASHBOARD, |t| t.contains(&format!("{project}/client_server")) && t.contains("Done")).await?;

        // Chapter 3 on the same deployment: multiplicity 3 for the client, run again.
        open(&c, &format!("{base}/modules/{project}/client_server")).await?;
        click(&c, "#edit-button").await?;
        click(&c, "#tab-nodes").await?;
        type_into(&c, "fieldset[data-node='testclient1'] .node-multiplicity", "3").await?;
        type_into(&c, "#save-comment", "Three clients").await?;
        click(&c, "#save").await?;
        wait_text(&c, sel::VERSIONS, |t| t.contains("Three clients")).await?;
        click(&c, sel::RUN_BUTTON).await?;
        wait_text(&c, sel::LAUNCH_FORM, |t| t.contains("Node testclient1")).await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        let instances = wait_text(&c, sel::INSTANCES, |t| t.matches("OK: Hello from Apache deployed by SlipStream!").count() == 3).await?;
        if !(1..=3).all(|i| instances.contains(&format!("testclient1.{i}"))) {
            return Err(format!("three client instances: {instances}"));
        }
        Ok::<(), String>(())
    })
    .await;
}

/// Chooses `path` in the chooser with the keyboard only: Backspace up to the root, then
/// arrows and Enter down the projects, Enter on the module, Enter again to pick it.
async fn choose_by_keyboard(c: &Client, path: &str) -> Step {
    const DOWN: &str = "\u{E015}";
    const ENTER: &str = "\u{E007}";
    chooser_to_root(c).await?;
    let list = c.find(Locator::Css("#chooser-list")).await.map_err(|e| e.to_string())?;
    let mut at = String::new();
    for seg in path.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(seg);
        let row = format!("#chooser-list li[data-path='{at}']");
        wait_for(c, &row).await?;
        let rows = c.find_all(Locator::Css("#chooser-list li")).await.map_err(|e| e.to_string())?;
        let mut index = None;
        for (i, r) in rows.iter().enumerate() {
            if r.attr("data-path").await.map_err(|e| e.to_string())?.as_deref() == Some(at.as_str()) {
                index = Some(i);
            }
        }
        let index = index.ok_or(format!("{at} is not listed"))?;
        list.send_keys(&DOWN.repeat(index)).await.map_err(|e| e.to_string())?;
        wait_for(c, &format!("{row}.active")).await?;
        list.send_keys(ENTER).await.map_err(|e| e.to_string())?;
    }
    wait_text(c, "#chooser-details h3", |t| t == path).await?;
    list.send_keys(ENTER).await.map_err(|e| e.to_string())?;
    wait_gone(c, "#chooser").await
}

#[tokio::test]
async fn tutorial_chapter_3_a_deployment_with_three_test_clients() {
    run_journey("chapter-3", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/modules")).await?;
        new_project(&c, "Performance_Tutorial", "Performance_Tutorial").await?;

        // A deployment reusing the Hello World images, nodes added with the keyboard.
        click(&c, "#new-deployment").await?;
        type_into(&c, "#edit-name", "deployment").await?;
        click(&c, "#tab-nodes").await?;
        click(&c, "#add-node").await?;
        choose_by_keyboard(&c, "examples/tutorials/hello/apache").await?;
        let name = "fieldset[data-node='apache'] .node-name";
        wait_for(&c, name).await?;
        click(&c, "#add-node").await?;
        choose_by_keyboard(&c, "examples/tutorials/hello/testclient").await?;
        type_into(&c, "fieldset[data-node='testclient'] .node-name", "testsuite").await?;
        wait_for(&c, "fieldset[data-node='testsuite'] tr[data-input='webserver.ready']").await?;
        type_into(&c, "fieldset[data-node='testsuite'] .node-multiplicity", "3").await?;
        link_input(&c, "testsuite", "webserver.hostname", "apache:host", "apache:hostname").await?;
        link_input(&c, "testsuite", "webserver.port", "apache:po", "apache:port").await?;
        link_input(&c, "testsuite", "webserver.ready", "apache:rea", "apache:ready").await?;
        click(&c, "#save").await?;
        wait_text(&c, sel::MODULE_PATH, |t| t == "Performance_Tutorial/deployment").await?;
        wait_text(&c, sel::NODES, |t| t.contains("testsuite") && t.contains("3")).await?;

        click(&c, sel::RUN_BUTTON).await?;
        wait_text(&c, sel::LAUNCH_FORM, |t| t.contains("Node testsuite")).await?;
        let m = value(&c, "#multiplicity-testsuite").await?;
        if m != "3" {
            return Err(format!("the launch form offers multiplicity {m:?}, not 3"));
        }
        select(&c, sel::KEEP_RUNNING, "never").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        let instances = wait_text(&c, sel::INSTANCES, |t| t.matches("OK: Hello from Apache deployed by SlipStream!").count() == 3).await?;
        for i in 1..=3 {
            if !instances.contains(&format!("testsuite.{i}")) {
                return Err(format!("testsuite.{i} is missing: {instances}"));
            }
        }
        wait_text(&c, "#run-graph g[data-node='testsuite']", |t| t.contains("3 instances")).await?;
        let dots = c.find_all(Locator::Css("#run-graph g[data-node='testsuite'] circle")).await.map_err(|e| e.to_string())?.len();
        if dots != 3 {
            return Err(format!("the graph shows {dots} instance dots for testsuite, not 3"));
        }
        let reports = wait_text(&c, sel::REPORTS, |t| t.matches(".tgz").count() == 4).await?;
        if !(1..=3).all(|i| reports.contains(&format!("testsuite.{i}_report_"))) {
            return Err(format!("a report per test suite instance: {reports}"));
        }
        screenshot(&c, "run-page-multiplicity").await?;
        Ok::<(), String>(())
    })
    .await;
}

/// A 1×1 PNG, as a logo typed into the editor.
const LOGO: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

#[tokio::test]
async fn a_published_deployment_is_found_in_the_catalog_and_deployed_by_another_user() {
    run_journey("catalog", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        // The project is shared first (Authorization tab): read and deploy for everyone, so
        // what is created inside it is too.
        open(&c, &format!("{base}/modules")).await?;
        new_project(&c, "shop", "shop").await?;
        click(&c, "#edit-button").await?;
        click(&c, "#tab-authorization").await?;
        click(&c, "#public-read").await?;
        click(&c, "#public-deploy").await?;
        click(&c, "#save").await?;
        wait_text(&c, "#summary", |t| t.contains("read, deploy")).await?;

        create_image(&c, "shop", "apache", &[("output", "port", "8080"), ("output", "ready", "")], APACHE_EXECUTE, APACHE_REPORT).await?;
        create_image(
            &c,
            "shop",
            "testclient",
            &[("input", "webserver.hostname", ""), ("input", "webserver.port", ""), ("input", "webserver.ready", "")],
            CLIENT_EXECUTE,
            CLIENT_REPORT,
        )
        .await?;
        open(&c, &format!("{base}/modules/shop")).await?;
        click(&c, "#new-deployment").await?;
        type_into(&c, "#edit-name", "hello").await?;
        type_into(&c, "#edit-description", "Hello World, ready to deploy").await?;
        type_into(&c, "#edit-logo", LOGO).await?;
        click(&c, "#tab-nodes").await?;
        add_node(&c, "shop/apache", "apache1").await?;
        add_node(&c, "shop/testclient", "testclient1").await?;
        link_input(&c, "testclient1", "webserver.hostname", "hostname", "apache1:hostname").await?;
        link_input(&c, "testclient1", "webserver.port", "port", "apache1:port").await?;
        link_input(&c, "testclient1", "webserver.ready", "ready", "apache1:ready").await?;
        // Publish it in the Authorization tab.
        click(&c, "#tab-authorization").await?;
        click(&c, "#published").await?;
        type_into(&c, "#save-comment", "Published").await?;
        click(&c, "#save").await?;
        wait_text(&c, "#summary", |t| t.contains("yes, in the catalog")).await?;

        // Signed out, a visitor finds it in the catalog, filtered to deployments.
        click(&c, sel::SIGN_OUT).await?;
        wait_text(&c, "nav.top", |t| t.contains("Sign in")).await?;
        open(&c, &format!("{base}/catalog")).await?;
        type_into(&c, "#catalog-search", "shop").await?;
        select(&c, "#catalog-kind", "deployment").await?;
        click(&c, "#catalog-filter").await?;
        wait_text(&c, sel::CATALOG, |t| t.contains("shop/hello") && !t.contains("shop/apache")).await?;
        wait_for(&c, "li[data-path='shop/hello'] img.logo").await?;
        screenshot(&c, "catalog-published").await?;

        // Another user deploys it from the catalog's form.
        sign_up(&c, &base, "oscar", "battery staple").await?;
        // The local connector runs scripts on the server's host: its administrator allows oscar.
        let admin = api_login(&base, "olivia", "correct horse").await;
        allow_connector(&admin, &base, "oscar", "local").await;
        // Shared for reading and deploying, not for writing: Run is offered, Edit is not.
        open(&c, &format!("{base}/modules/shop/hello")).await?;
        wait_for(&c, sel::RUN_BUTTON).await?;
        if exists(&c, "#edit-button").await || exists(&c, "#versions button.restore").await {
            return Err("another user is offered to edit a module shared for reading and deploying".into());
        }
        open(&c, &format!("{base}/catalog?q=shop")).await?;
        click(&c, "a[data-deploy='shop/hello']").await?;
        wait_text(&c, sel::LAUNCH_FORM, |t| t.contains("Node testclient1") && t.contains("linked to apache1:hostname")).await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("OK: Hello from Apache deployed by SlipStream!")).await?;
        click(&c, "#dashboard-link").await?;
        wait_text(&c, sel::DASHBOARD, |t| t.contains("shop/hello") && t.contains("Done")).await?;
        Ok::<(), String>(())
    })
    .await;
}

#[tokio::test]
async fn a_native_image_edited_twice_keeps_every_field() {
    run_journey("native", |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        open(&c, &format!("{base}/modules")).await?;
        new_project(&c, "bases", "bases").await?;
        click(&c, "#new-image").await?;
        type_into(&c, "#edit-name", "tiny").await?;
        // Reference: native, with an image id for the local connector.
        click(&c, "#tab-reference").await?;
        click(&c, "#edit-native").await?;
        click(&c, "#add-image-id").await?;
        type_into(&c, "#edit-images tbody tr:nth-child(1) td:nth-child(1) input", "local").await?;
        type_into(&c, "#edit-images tbody tr:nth-child(1) td:nth-child(2) input", "host").await?;
        // Parameters: three inputs; `b` removed, `c` moved above `a`; `a` an enum.
        click(&c, "#tab-parameters").await?;
        for name in ["a", "b", "c"] {
            click(&c, "#add-input").await?;
            let n = c.find_all(fantoccini::Locator::Css("#edit-input tbody tr")).await.map_err(|e| e.to_string())?.len();
            type_into(&c, &format!("#edit-input tbody tr:nth-child({n}) .param-name"), name).await?;
        }
        click(&c, "#edit-input tr[data-param='b'] .remove-param").await?;
        click(&c, "#edit-input tr[data-param='c'] button[aria-label='Move up']").await?;
        select(&c, "#edit-input tr[data-param='a'] .param-type", "enum").await?;
        type_into(&c, "#edit-input tr[data-param='a'] .param-values", "x, y").await?;
        type_into(&c, "#edit-input tr[data-param='a'] .param-default", "x").await?;
        screenshot(&c, "editor-parameters").await?;
        // The code editor indents with Tab instead of leaving the field.
        click(&c, "#tab-creation").await?;
        type_into(&c, "#edit-recipe", "if true; then\n\u{E004}echo ok\nfi").await?;
        let recipe = value(&c, "#edit-recipe").await?;
        if recipe != "if true; then\n    echo ok\nfi" {
            return Err(format!("Tab did not indent: {recipe:?}"));
        }
        wait_text(&c, ".code-editor[data-target='recipe'] .gutter", |t| t.contains('3')).await?;
        click(&c, "#save").await?;
        wait_text(&c, sel::MODULE_PATH, |t| t == "bases/tiny").await?;
        wait_text(&c, "#native-images", |t| t.contains("local") && t.contains("host")).await?;
        let params = wait_text(&c, "#parameters", |t| t.contains("(x, y)")).await?;
        let (pc, pa) = (params.find("\nc input"), params.find("\na input enum (x, y) x"));
        if params.contains("\nb input") || !matches!((pc, pa), (Some(i), Some(j)) if i < j) {
            return Err(format!("parameters are not c then a: {params:?}"));
        }

        // Edit again: the editor starts from what was saved; a second version is made.
        click(&c, "#edit-button").await?;
        wait_text(&c, "#edit-summary", |t| t.contains("other versions")).await?;
        let kind = value(&c, "#edit-input tr[data-param='a'] .param-type").await?;
        if kind != "enum" {
            return Err(format!("the saved type came back as {kind:?}"));
        }
        type_into(&c, "#edit-description", "The smallest base").await?;
        type_into(&c, "#save-comment", "Described").await?;
        click(&c, "#save").await?;
        wait_text(&c, sel::VERSIONS, |t| t.contains("Described")).await?;
        wait_text(&c, "#module-version", |t| t.starts_with('2')).await?;
        Ok::<(), String>(())
    })
    .await;
}

/// Building an image, as the original's "Faster deployments" tutorial does: Build on Docker,
/// watch the build run, then deploy on the built image, whose recipe is skipped.
#[tokio::test]
async fn an_image_built_in_the_browser_is_deployed_on_docker_without_its_recipe() {
    run_journey_with("build", with_docker(), |c, base| async move {
        sign_up(&c, &base, "olivia", "correct horse").await?;
        let api = api_login(&base, "olivia", "correct horse").await;
        save_modules(
            &api,
            &base,
            &[
                serde_json::json!({"kind": "project", "path": "fast"}),
                serde_json::json!({"kind": "image", "path": "fast/baked", "reference": "examples/images/busybox",
                    "recipe": "#!/bin/sh -e\necho baked >> /marks\n",
                    "targets": {"execute": "#!/bin/sh -e\nss-display \"marks=$(wc -l < /marks)\"\n"}}),
            ],
        )
        .await;
        open(&c, &format!("{base}/modules/fast/baked")).await?;
        wait_text(&c, "#builds", |t| t.contains("Not built yet")).await?;
        select(&c, "#build-connector", "docker").await?;
        click(&c, "#build-button").await?;
        // The build is a run like any other: its page follows it live to Done.
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::EVENTS, |t| t.contains("Built fast/baked@1 on docker")).await?;
        screenshot(&c, "build-run").await?;
        open(&c, &format!("{base}/modules/fast/baked")).await?;
        wait_text(&c, "#build-list", |t| t.contains("docker") && t.contains("✓ yes")).await?;
        screenshot(&c, "built-images").await?;
        // Deploy it on Docker: the form says the recipe is skipped, and it is.
        click(&c, sel::RUN_BUTTON).await?;
        select(&c, "#connector-machine", "docker").await?;
        wait_text(&c, ".build-note[data-built='yes']", |t| t.contains("built on docker")).await?;
        select(&c, "#connector-machine", "local").await?;
        wait_text(&c, ".build-note[data-built='no']", |t| t.contains("deploy time")).await?;
        select(&c, "#connector-machine", "docker").await?;
        select(&c, sel::KEEP_RUNNING, "never").await?;
        click(&c, sel::LAUNCH).await?;
        wait_text(&c, sel::RUN_STATE, |t| t.contains("Done")).await?;
        wait_text(&c, sel::INSTANCES, |t| t.contains("marks=1")).await?;
        Ok::<(), String>(())
    })
    .await;
}
