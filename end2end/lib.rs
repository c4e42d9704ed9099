//! Browser-test fixtures: the real `slipstream` binary (from the project's one harness,
//! `testkit`), ChromeDriver with headless Chromium, and helpers that wait for the page
//! (fantoccini does not wait by itself). Every process runs in its own process group and is
//! stopped by it on drop, so a failing test leaves no browser behind. Selectors live in [`sel`].

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
pub use testkit::{env_path, temp_dir, Proc, ServerOptions, TestServer};

/// CSS selectors of the pages, in one place.
pub mod sel {
    pub const HYDRATED: &str = "#hydrated[data-hydrated='yes']";
    pub const NAME: &str = "#name";
    pub const PASSWORD: &str = "#password";
    pub const SUBMIT: &str = "#submit";
    pub const SIGNED_IN_AS: &str = "#signed-in-as";
    pub const SIGN_OUT: &str = "#signout";
    pub const NODES: &str = "#nodes";
    pub const VERSIONS: &str = "#versions";
    pub const MODULE_PATH: &str = "#module-path";
    pub const CATALOG: &str = "#catalog";
    pub const CHILDREN: &str = "#children";
    pub const RUN_BUTTON: &str = "#run-button";
    pub const LAUNCH_FORM: &str = "#launch-form";
    pub const KEEP_RUNNING: &str = "#keep-running";
    pub const TAGS: &str = "#tags";
    pub const LAUNCH: &str = "#launch";
    pub const RUN_STATE: &str = "#run-state";
    pub const INSTANCES: &str = "#instances";
    pub const REPORTS: &str = "#reports";
    pub const EVENTS: &str = "#events";
    pub const LOG: &str = "#log";
    pub const RUNS: &str = "#runs";
    pub const DASHBOARD: &str = "#dashboard";
}

/// The server on a free port with an empty data directory; returns it and its base URL.
pub fn start_server() -> (TestServer, String) {
    let server = TestServer::start(ServerOptions::default());
    let url = server.url.clone();
    (server, url)
}

/// ChromeDriver and its browser, stopped on drop; then the browser's profile and temporary
/// files are removed (about 30 MB a session; the driver's log stays, for a failed test).
pub struct Browser {
    driver: Option<Proc>,
    scratch: Vec<PathBuf>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.driver.take());
        for dir in &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// ChromeDriver on a free port, and a headless Chromium session through it.
pub async fn start_browser() -> (Browser, Client) {
    note("start chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (profile, tmp) = (temp_dir("chromium"), temp_dir("chromium-tmp"));
    let driver = Proc::spawn(
        Command::new(env_path("CHROMEDRIVER", "/usr/bin/chromedriver"))
            // The browser's own scratch directories go where the drop removes them.
            .env("TMPDIR", &tmp)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", {
                let log = temp_dir("chromedriver").join("chromedriver.log");
                note(&format!("chromedriver log: {}", log.display()));
                log.display().to_string()
            }))
            .arg("--verbose")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("chromedriver starts (apt-get install chromium-driver)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let driver = Browser { driver: Some(driver), scratch: vec![profile.clone(), tmp] };
    note("connect to chromedriver");
    let caps = serde_json::json!({
        // A page that never finishes loading fails the step instead of blocking for 5 minutes.
        "timeouts": { "pageLoad": 20000, "script": 20000 },
        "goog:chromeOptions": {
        "binary": env_path("CHROMIUM", "/usr/bin/chromium"),
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,800", format!("--user-data-dir={}", profile.display())] } });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    (driver, client)
}

pub type Step<T = ()> = Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Waits (up to 20 s) until `css` matches an element whose text satisfies `pred`.
pub async fn wait_text(c: &Client, css: &str, pred: impl Fn(&str) -> bool) -> Step<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if pred(&t) {
                    return Ok(t);
                }
                last = t;
            }
        }
        if Instant::now() > deadline {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            return Err(format!("waited 20 s for `{css}` on {url}; last text: {last:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css` matches something.
pub async fn wait_for(c: &Client, css: &str) -> Step {
    wait_text(c, css, |_| true).await.map(|_| ())
}

/// Prints a step of a journey (shown by `cargo test` when a test fails, or with --nocapture).
pub fn note(what: &str) {
    eprintln!("[browser] {what}");
}

/// Opens a page and waits for it to hydrate.
pub async fn open(c: &Client, url: &str) -> Step {
    note(&format!("open {url}"));
    c.goto(url).await.map_err(err(url))?;
    wait_for(c, sel::HYDRATED).await
}

/// Types into the field `css` (waiting for it to appear), replacing what it held.
pub async fn type_into(c: &Client, css: &str, text: &str) -> Step {
    wait_for(c, css).await?;
    let e = c.find(Locator::Css(css)).await.map_err(err(css))?;
    e.clear().await.map_err(err(css))?;
    e.send_keys(text).await.map_err(err(css))
}

/// Clicks `css` once it is on the page (pages fill in as their data arrives).
pub async fn click(c: &Client, css: &str) -> Step {
    wait_for(c, css).await?;
    c.find(Locator::Css(css)).await.map_err(err(css))?.click().await.map_err(err(css))
}

/// Signs up a new account (the first on a fresh server is its administrator).
pub async fn sign_up(c: &Client, base: &str, name: &str, password: &str) -> Step {
    open(c, &format!("{base}/signup")).await?;
    type_into(c, sel::NAME, name).await?;
    type_into(c, sel::PASSWORD, password).await?;
    click(c, sel::SUBMIT).await?;
    wait_text(c, sel::SIGNED_IN_AS, |t| t == name).await.map(|_| ())
}

/// Signs in with an existing account.
pub async fn sign_in(c: &Client, base: &str, name: &str, password: &str) -> Step {
    open(c, &format!("{base}/signin")).await?;
    type_into(c, sel::NAME, name).await?;
    type_into(c, sel::PASSWORD, password).await?;
    click(c, sel::SUBMIT).await?;
    wait_text(c, sel::SIGNED_IN_AS, |t| t == name).await.map(|_| ())
}

/// Runs a journey against a fresh server in a fresh browser: `steps` get the browser and the
/// server's base URL. On failure the page is saved as `failure-<name>.png` and its text noted;
/// the browser is closed before the result is asserted, so none is left behind.
pub async fn run_journey<F, Fut>(name: &str, steps: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: std::future::Future<Output = Step>,
{
    run_journey_with(name, ServerOptions::default(), steps).await
}

/// [`run_journey`] on a server started with `options` (e.g. more connectors).
pub async fn run_journey_with<F, Fut>(name: &str, options: ServerOptions, steps: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: std::future::Future<Output = Step>,
{
    let server = TestServer::start(options);
    let base = server.url.clone();
    let (_driver, c) = start_browser().await;
    let result = steps(c.clone(), base).await;
    if result.is_err() {
        if let Err(e) = screenshot(&c, &format!("failure-{name}")).await {
            note(&e);
        }
        if let Ok(text) = c.execute("return document.querySelector('main').innerText", vec![]).await {
            note(&format!("page: {text}"));
        }
    }
    c.close().await.ok();
    result.unwrap();
}

/// Creates a project with the "New Project" form of the page shown (the root list or a
/// project), and waits until it opens at `path`.
pub async fn new_project(c: &Client, name: &str, path: &str) -> Step {
    click(c, "#new-project").await?;
    type_into(c, "#new-project-name", name).await?;
    click(c, "#new-project-create").await?;
    wait_text(c, sel::MODULE_PATH, |t| t == path).await.map(|_| ())
}

/// Chooses `value` in the `<select>` matched by `css`.
pub async fn select(c: &Client, css: &str, value: &str) -> Step {
    let option = format!("{css} option[value='{value}']");
    wait_for(c, &option).await?;
    c.find(Locator::Css(&option)).await.map_err(err(css))?.click().await.map_err(err(css))
}

pub async fn exists(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css)).await.is_ok()
}

/// Saves a PNG of the page under `end2end/artifacts/` (kept by CI as evidence).
pub async fn screenshot(c: &Client, name: &str) -> Step {
    let png = c.screenshot().await.map_err(err("screenshot"))?;
    // Read when the test runs (cargo sets it), not when it was compiled: a build cache shared
    // between checkouts may hold a binary compiled elsewhere.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join("artifacts");
    std::fs::create_dir_all(&dir).map_err(err("artifacts dir"))?;
    std::fs::write(dir.join(format!("{name}.png")), png).map_err(err("write screenshot"))
}

/// A client of the JSON API signed up as `olivia` (the first account: the administrator), for
/// journeys that prepare modules or runs before the browser opens.
pub async fn api_user(base: &str) -> reqwest::Client {
    let api = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = api
        .post(format!("{base}/api/v1/auth/register"))
        .json(&serde_json::json!({"name": "olivia", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "sign-up through the API: {}", r.status());
    api
}

/// Saves modules through the API, in order (each body names its `path`).
pub async fn save_modules(api: &reqwest::Client, base: &str, modules: &[serde_json::Value]) {
    for body in modules {
        let path = body["path"].as_str().expect("a module names its path");
        let r = api.put(format!("{base}/api/v1/modules/{path}")).json(body).send().await.unwrap();
        assert!(r.status().is_success(), "saving {path}: {}", r.text().await.unwrap_or_default());
    }
}

/// Launches `module` through the API (instances stopped at the end); returns the run's id.
pub async fn launch(api: &reqwest::Client, base: &str, module: &str) -> String {
    let r: serde_json::Value = api
        .post(format!("{base}/api/v1/runs"))
        .json(&serde_json::json!({"module": module, "keep_running": "never"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_str().unwrap_or_else(|| panic!("run created: {r}")).to_string()
}

/// A client of the JSON API signed in as an existing account.
pub async fn api_login(base: &str, name: &str, password: &str) -> reqwest::Client {
    let api = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r =
        api.post(format!("{base}/api/v1/auth/login")).json(&serde_json::json!({"name": name, "password": password})).send().await.unwrap();
    assert!(r.status().is_success(), "sign-in through the API: {}", r.status());
    api
}

/// An administrator lets `user` use a restricted connector (the local one).
pub async fn allow_connector(admin: &reqwest::Client, base: &str, user: &str, connector: &str) {
    let r = admin
        .put(format!("{base}/api/v1/users/{user}/connectors/{connector}"))
        .json(&serde_json::json!({"allowed": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "allowing {user} on {connector}: {}", r.status());
}

/// Server options with the local connector and the test bed's Docker engine as `docker`
/// (`SLIPSTREAM_TEST_DOCKER`, set by `cargo xtask test`).
pub fn with_docker() -> ServerOptions {
    let endpoint =
        std::env::var("SLIPSTREAM_TEST_DOCKER").expect("SLIPSTREAM_TEST_DOCKER names the test bed's Docker engine (cargo xtask test)");
    ServerOptions {
        args: vec!["--connector".into(), "local=local".into(), "--connector".into(), format!("docker=docker:{endpoint}")],
        ..Default::default()
    }
}
