//! The web dashboard in real headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` over WebDriver): log in, the seed tutorial's
//! users and organisation, a repository's signed and unsigned tags, the
//! content trust settings, a service created and scaled whose running
//! tasks update without a reload, then updated and rolled back, containers
//! with their logs, networks, volumes, secrets and configs made and
//! removed from their forms, a stack removed, a node labelled, the access
//! matrix with an explained decision, the admin settings, every page as
//! the admin and as a user who may see less, names with markup shown inert, and forms refused
//! without the session's CSRF token or from another origin. Every case
//! saves a screenshot under `target/screenshots/`, and a case fails on any
//! browser console error or failed request.

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/registry.rs"]
mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capstan_testkit::{Harness, TestImage};
use fantoccini::{Client, ClientBuilder, Locator};
use gateway::{free_port, ADMIN_PASSWORD};
use registry::{import_image, Registry};
use reqwest::Method;
use serde_json::{json, Value};

const ANALISTA_PW: &str = "analista-password-1";
/// A display name no page may execute or break on.
const HOSTILE: &str = "<script>document.title='owned'</script>\"'><b>x</b>";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver (apt-get install chromium-driver)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/screenshots"
    ));
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// The browser, as one user.
struct Browser {
    c: Client,
    base: String,
}

/// What the browser reported since the last check (console errors, failed
/// requests), through chromedriver's log endpoint.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

impl Browser {
    async fn open(driver: &Driver, base: &str) -> Browser {
        // fantoccini's client needs a process-wide TLS provider, even for
        // chromedriver's plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let caps = json!({
            "acceptInsecureCerts": true,
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--disable-extensions"],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("capabilities are an object"),
        };
        let c = ClientBuilder::rustls()
            .expect("TLS for WebDriver")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a chromium session");
        Browser {
            c,
            base: base.to_string(),
        }
    }

    async fn goto(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
        self.after_network_change().await;
    }

    async fn path(&self) -> String {
        self.c.current_url().await.expect("url").path().to_string()
    }

    async fn text(&self, css: &str) -> String {
        let path = self.path().await;
        match self.c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.expect("text"),
            Err(e) => {
                let page = self.c.source().await.unwrap_or_default();
                let main = page.split("<main").nth(1).unwrap_or(&page).to_string();
                panic!("{css} on {path}: {e}\n<main{main}")
            }
        }
    }

    async fn has(&self, css: &str) -> bool {
        !self
            .c
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .is_empty()
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear().await.expect("clear");
        e.send_keys(value).await.expect("type");
    }

    /// Clicks an element (through the DOM, so a layout that moves while
    /// the page styles itself cannot send the click elsewhere).
    async fn click(&self, css: &str) {
        let e = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        let arg = serde_json::to_value(&e).expect("element reference");
        self.c
            .execute("arguments[0].click()", vec![arg])
            .await
            .expect("click");
    }

    /// Clicks a submit button (or link) and waits until the page it
    /// leads to has replaced this one and finished loading. When Chromium
    /// cut the request off because a network interface of this machine came
    /// or went (a task's container starting), the form page is brought back
    /// (its fields as they were) and submitted again.
    async fn submit(&self, css: &str) {
        for _ in 0..3 {
            self.submit_once(css).await;
            if !self.network_changed().await {
                return;
            }
            self.c.back().await.expect("back to the form");
            self.wait_loaded().await;
            if !self.has(css).await {
                break;
            }
        }
        self.after_network_change().await;
    }

    async fn network_changed(&self) -> bool {
        let page = self.c.source().await.unwrap_or_default();
        page.contains("\"errorCode\":\"ERR_NETWORK_CHANGED\"")
    }

    async fn wait_loaded(&self) {
        for _ in 0..600 {
            let state = self
                .c
                .execute("return document.readyState", vec![])
                .await
                .unwrap_or(Value::Null);
            if state == json!("complete") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn submit_once(&self, css: &str) {
        self.c
            .execute("document.documentElement.dataset.leaving = '1'", vec![])
            .await
            .expect("mark the page");
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self
                .c
                .execute(
                    "return [document.documentElement.dataset.leaving || '', document.readyState]",
                    vec![],
                )
                .await
                .unwrap_or(Value::Null);
            if state == json!(["", "complete"]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "submitting {css} loaded no new page ({state})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starting or stopping a task's container adds or removes a network
    /// interface on this machine, and Chromium then aborts the page load in
    /// flight with its ERR_NETWORK_CHANGED page: that page is loaded again.
    /// Whether a form's change was made is then up to the assertions that
    /// follow, which read it back.
    async fn after_network_change(&self) {
        // Containers come and go for a few seconds after a change.
        for _ in 0..40 {
            if !self.network_changed().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let url = self.c.current_url().await.expect("url");
            self.c.goto(url.as_str()).await.expect("load again");
        }
        panic!("every load was cut off by network changes for 20 s");
    }

    /// Saves a screenshot and fails on any console error or failed request
    /// since the last check.
    async fn check(&self, case: &str) {
        self.check_allowing(case, None).await;
    }

    /// [`Self::check`], where one expected refusal (`allowed`, a text of
    /// the browser's message) is not a failure.
    async fn check_allowing(&self, case: &str, allowed: Option<&str>) {
        let png = self.c.screenshot().await.expect("screenshot");
        std::fs::write(screenshots().join(format!("{case}.png")), png).expect("save screenshot");
        let log = self.c.issue_cmd(BrowserLog).await.expect("browser log");
        let bad: Vec<String> = log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            // Starting a task's container adds a network interface to this
            // machine; Chromium then aborts open connections (the live
            // updates' event stream reconnects by itself). That is the test
            // machine changing, not a failed request of the dashboard.
            .filter(|e| {
                !e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("net::ERR_NETWORK_CHANGED")
            })
            .filter(|e| {
                allowed.is_none_or(|a| !e["message"].as_str().unwrap_or_default().contains(a))
            })
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(bad.is_empty(), "{case}: browser errors: {bad:#?}");
        let title = self.c.title().await.expect("title");
        assert_ne!(title, "owned", "{case}: a name ran as script");
    }

    /// Posts a form of this page (its CSRF token plus `fields`) to
    /// `action` from the page's own script, as a download: the answer's
    /// bytes.
    async fn post_download(&self, action: &str, fields: &[(&str, &str)]) -> Vec<u8> {
        let fields: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let b64 = self
            .c
            .execute_async(
                "const [action, fields, done] = arguments;
                 const form = new URLSearchParams(fields);
                 form.append('csrf', document.querySelector('input[name=csrf]').value);
                 fetch(action, {method: 'POST', body: form})
                   .then(r => r.ok ? r.arrayBuffer() : Promise.reject(r.status))
                   .then(b => { let s = ''; new Uint8Array(b).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); })
                   .catch(e => done('error ' + e));",
                vec![json!(action), Value::Object(fields)],
            )
            .await
            .expect("download");
        let b64 = b64.as_str().unwrap_or_default().to_string();
        assert!(
            !b64.starts_with("error"),
            "the download from {action} failed: {b64}"
        );
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("base64")
    }

    async fn login(&self, user: &str, password: &str) {
        self.login_to(user, password, "/ui/").await;
    }

    async fn login_to(&self, user: &str, password: &str, landing: &str) {
        self.goto("/ui/").await;
        assert_eq!(
            self.path().await,
            "/ui/login",
            "the dashboard did not ask to log in"
        );
        self.fill("#username", user).await;
        self.fill("#password", password).await;
        self.submit("form[action='/ui/login'] button[type=submit]")
            .await;
        let path = self.path().await;
        if path != landing {
            let page = self.c.source().await.unwrap_or_default();
            let main = page.split("<main").nth(1).unwrap_or(&page).to_string();
            panic!("login of {user} landed on {path}, not {landing}: <main{main}");
        }
        assert!(self.text("#whoami").await.starts_with(user));
    }

    async fn logout(&self) {
        self.submit("form[action='/ui/logout'] button").await;
        assert_eq!(self.path().await, "/ui/login");
    }

    /// Answers yes to every confirmation this page asks (the dialog itself
    /// is the browser's; what is tested is that the form goes on).
    async fn confirm_all(&self) {
        self.c
            .execute("window.confirm = function () { return true; }", vec![])
            .await
            .expect("accept confirmations");
    }

    /// Waits until the page's script has loaded its logs, and checks they
    /// came.
    async fn wait_logs(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.has("pre#logs[data-loaded]").await {
            assert!(Instant::now() < deadline, "the logs never loaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !self.has("pre#logs.error").await,
            "{}",
            self.text("pre#logs").await
        );
    }

    /// Reloads a service's page until `n` of its tasks are running.
    async fn wait_tasks_running(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let running = self
                .c
                .find_all(Locator::Css("#tasks td span.badge.ok"))
                .await
                .expect("find")
                .len();
            if running >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{running} of {n} tasks running");
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.c.refresh().await.expect("reload");
        }
    }

    /// Waits (without reloading) until `css`'s text is `want`.
    async fn wait_text(&self, css: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.text(css).await;
            if got.trim() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} stayed {got:?}, wanted {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Publishes trust data for `tag` of `admin/app` (the repository key signs
/// it), as a Notary client does.
fn sign_tag(reg: &Registry, tag: &str) {
    use capstan_trust::metadata::FileMeta;
    use capstan_trust::publisher::{targets, Publisher};
    let gun = format!("{}/admin/app", reg.host);
    let creds = Some(("admin", ADMIN_PASSWORD));
    let token = reg.token(
        creds,
        &[
            &format!("repository:{gun}:push,pull"),
            "repository:admin/app:pull",
        ],
    );
    let (s, _, manifest) = reg.send(
        reg.request(Method::GET, &format!("/v2/admin/app/manifests/{tag}"), Some(&token))
            .header("accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"),
    );
    assert_eq!(s, 200, "manifest of {tag}");
    let key = |role: &str| -> capstan_trust::PublicKey {
        let (s, _, b) = reg.send(reg.request(
            Method::GET,
            &format!("/v2/{gun}/_trust/tuf/{role}.key"),
            Some(&token),
        ));
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).expect("key")
    };
    let now = time::OffsetDateTime::now_utc();
    let owner = Publisher::generate().expect("keys");
    let root = owner
        .root(1, 365, &key("timestamp"), &key("snapshot"), now)
        .expect("root");
    let t = targets(
        1,
        365,
        &BTreeMap::from([(tag.to_string(), FileMeta::of(&manifest))]),
        &[],
        &owner.targets,
        now,
    )
    .expect("targets");
    let mut form = reqwest::blocking::multipart::Form::new();
    for (role, bytes) in [("root", root), ("targets", t)] {
        form = form.part(
            "files",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name(role),
        );
    }
    let (s, _, b) = reg.send(
        reg.request(
            Method::POST,
            &format!("/v2/{gun}/_trust/tuf/"),
            Some(&token),
        )
        .multipart(form),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
}

#[test]
fn dashboard_in_a_real_browser() {
    let harness = Harness::new().expect("test harness");
    let workload = TestImage::busybox_only().expect("busybox image");
    let reg = Registry::start_in_up();
    harness.sweep_label(format!("com.capstan.node.id={}", reg.gw.node_id()));
    let gw = &reg.gw;
    let driver = start_driver();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // Seed tutorial step 2: the first login asks for a license; skip it.
    let admin = rt.block_on(async {
        let admin = Browser::open(&driver, &gw.base).await;
        admin.login_to("admin", ADMIN_PASSWORD, "/ui/license").await;
        assert!(admin.text("main").await.contains("No license"));
        admin.check("00-admin-license").await;
        admin.submit("a.button[href='/ui/']").await;
        assert_eq!(admin.path().await, "/ui/");
        admin
    });
    reg.license();

    // A repository with a signed and an unsigned tag, whose description
    // carries markup.
    let (s, b) = reg.api(
        Method::POST,
        "/api/v0/repositories/admin",
        Some(("admin", ADMIN_PASSWORD)),
        Some(json!({"name": "app", "visibility": "private", "shortDescription": HOSTILE})),
    );
    assert_eq!(s, 201, "{b}");
    let pusher = reg.docker("admin");
    assert!(pusher.login(&reg.host, "admin", ADMIN_PASSWORD).ok);
    for tag in ["signed", "unsigned"] {
        let image = format!("{}/admin/app:{tag}", reg.host);
        import_image(&image, reg.work(), &format!("dash-{tag}"));
        pusher.ok(&["push", &image]);
    }
    sign_tag(&reg, "signed");

    rt.block_on(async {
        admin.goto("/ui/").await;
        admin.check("01-admin-dashboard").await;

        // Seed tutorial step 3: the analyst's account (a failed attempt
        // first: the error shows in place).
        admin.goto("/ui/users").await;
        admin
            .fill("form[action='/ui/users'] input[name=name]", "admin")
            .await;
        admin
            .fill("form[action='/ui/users'] input[name=full_name]", "dup")
            .await;
        admin
            .fill(
                "form[action='/ui/users'] input[name=password]",
                "whatever-pass-1",
            )
            .await;
        admin.submit("form[action='/ui/users'] button").await;
        assert_eq!(admin.path().await, "/ui/users");
        let err = admin.text(".error").await;
        assert!(
            err.contains("admin"),
            "the error does not say what failed: {err}"
        );
        admin
            .fill("form[action='/ui/users'] input[name=name]", "analista")
            .await;
        admin
            .fill("form[action='/ui/users'] input[name=full_name]", HOSTILE)
            .await;
        admin
            .fill("form[action='/ui/users'] input[name=password]", ANALISTA_PW)
            .await;
        admin.submit("form[action='/ui/users'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        let table = admin.text("#users").await;
        assert!(
            table.contains("analista") && table.contains(HOSTILE),
            "{table}"
        );
        assert!(
            !admin.has("#users b").await,
            "markup in a name was rendered"
        );
        admin.check("02-admin-users").await;

        admin.goto("/ui/orgs").await;
        admin
            .fill("form[action='/ui/orgs'] input[name=name]", "docker-dca")
            .await;
        admin.submit("form[action='/ui/orgs'] button").await;
        assert!(admin.text("#orgs").await.contains("docker-dca"));
        admin.fill("form[action='/ui/orgs/docker-dca/members'] input[name=user]", "analista").await;
        admin.submit("form[action='/ui/orgs/docker-dca/members'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        admin.check("03-admin-orgs").await;

        // Steps 4 and 5: the role with every container operation, granted to
        // the analyst on every collection.
        admin.goto("/ui/roles").await;
        admin.fill("form[action='/ui/roles'] input[name=name]", "containers-full-access").await;
        admin
            .c
            .execute(
                "document.querySelectorAll(\"input[name=op][value^='container.']\").forEach(function (e) { e.checked = true; })",
                vec![],
            )
            .await
            .expect("tick the container operations");
        admin.submit("form[action='/ui/roles'] button[type=submit]").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        assert!(admin.text("#roles").await.contains("containers-full-access"));
        admin.check("09-admin-roles").await;
        admin.goto("/ui/grants").await;
        for (name, label) in [("subject", "analista"), ("role", "containers-full-access"), ("collection", "/")] {
            admin
                .c
                .find(Locator::Css(&format!("select[name={name}]")))
                .await
                .expect("select")
                .select_by_label(label)
                .await
                .unwrap_or_else(|e| panic!("choose {label}: {e}"));
        }
        admin.submit("form[action='/ui/grants'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        let grants = admin.text("#grants").await;
        assert!(grants.contains("analista") && grants.contains("containers-full-access"), "{grants}");
        admin.check("10-admin-grants").await;
        admin.goto("/ui/collections").await;
        admin.check("10b-admin-collections").await;
        admin.goto("/ui/kubernetes").await;
        assert!(admin.text("main").await.contains("available when the Kubernetes API lands"));
        admin.check("10c-admin-kubernetes").await;

        admin.goto("/ui/nodes").await;
        assert!(admin.text("#nodes").await.contains("manager"));
        admin.check("04-admin-nodes").await;

        // The repository's tags with their content trust state.
        admin.goto("/ui/registry").await;
        admin.submit("#repositories a").await;
        assert_eq!(admin.path().await, "/ui/registry/admin/app");
        assert!(admin.text("main").await.contains(HOSTILE));
        assert_eq!(admin.text("tr[data-tag=signed] td.trust").await, "Signed");
        assert_eq!(
            admin.text("tr[data-tag=signed] td.signers").await,
            "repository key"
        );
        assert_eq!(
            admin.text("tr[data-tag=unsigned] td.trust").await,
            "Unsigned"
        );
        admin.check("05-admin-repository").await;

        // Content trust settings go through config-toml.
        admin.goto("/ui/settings/trust").await;
        admin.click("input[name=require]").await;
        admin.fill("#teams", "docker-dca/a/b").await;
        admin
            .click("form[action='/ui/settings/trust'] button")
            .await;
        let err = admin.text(".error").await;
        assert!(err.contains("require_signature_from"), "{err}");
        admin.fill("#teams", "docker-dca/ops").await;
        admin
            .click("form[action='/ui/settings/trust'] button")
            .await;
        assert_eq!(admin.text("[role=status]").await, "Saved.");
        let (s, toml) = tokio::task::block_in_place(|| {
            gw.raw(
                Method::GET,
                "/api/ucp/config-toml",
                Some(&gw.admin),
                "text/plain",
                vec![],
            )
        });
        assert_eq!(s, 200);
        assert!(
            toml.contains("require_content_trust = true") && toml.contains("docker-dca/ops"),
            "{toml}"
        );
        admin.check("06-admin-trust").await;
        admin.click("input[name=require]").await;
        admin
            .click("form[action='/ui/settings/trust'] button")
            .await;
        assert_eq!(admin.text("[role=status]").await, "Saved.");

        // A service created from the form; its running count updates live.
        admin.goto("/ui/services").await;
        admin
            .fill("form[action='/ui/services'] input[name=name]", "web")
            .await;
        admin
            .fill(
                "form[action='/ui/services'] input[name=image]",
                workload.tag(),
            )
            .await;
        admin
            .fill("form[action='/ui/services'] input[name=replicas]", "1")
            .await;
        admin
            .fill(
                "form[action='/ui/services'] input[name=command]",
                "/bin/busybox sleep 3600",
            )
            .await;
        admin.submit("form[action='/ui/services'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        let cell = "#services tr[data-service] td[data-replicas]";
        admin
            .wait_text(cell, "1 / 1", Duration::from_secs(90))
            .await;
        admin
            .fill("#services tr[data-service] input[name=replicas]", "2")
            .await;
        admin.submit("#services tr[data-service] button").await;
        admin
            .wait_text(cell, "2 / 2", Duration::from_secs(90))
            .await;
        admin.check("07-admin-services").await;

        // The overview counts the tasks and shows what happened last.
        admin.goto("/ui/").await;
        assert!(admin.text("#tasks-by-state").await.contains("running"));
        assert!(admin.text("#recent-events").await.contains("web."), "{}", admin.text("#recent-events").await);
        assert!(admin.has("#node-resources meter").await, "no disk chart");
        admin.check("01b-admin-dashboard-busy").await;
        let (s, b) = tokio::task::block_in_place(|| {
            gw.call(Method::GET, "/api/tasks/summary?recent=1", Some(&gw.admin), None)
        });
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["ByState"]["running"], 2, "{b}");
        assert_eq!(b["Recent"].as_array().map(Vec::len), Some(1), "{b}");
        let (s, b) = tokio::task::block_in_place(|| {
            gw.call(Method::GET, "/api/tasks/summary?recent=1000", Some(&gw.admin), None)
        });
        assert_eq!(s, 400, "{b}");
        assert!(b.to_string().contains("at most 100"), "{b}");

        // The service's own page: tasks, logs, an update, and the rollback
        // it makes possible.
        admin.goto("/ui/services").await;
        admin.submit("#services tr[data-service] td a").await;
        assert!(admin.path().await.starts_with("/ui/services/"));
        admin.wait_tasks_running(2).await;
        admin.wait_logs().await;
        admin.fill("textarea[name=env]", "STAGE=blue").await;
        admin.submit("form[action$='/update'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        assert!(admin.text("textarea[name=env]").await.contains("STAGE=blue"));
        admin.check("07b-admin-service").await;
        admin.confirm_all().await;
        admin.submit("form[action$='/rollback'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        assert!(!admin.text("textarea[name=env]").await.contains("STAGE=blue"));

        // Containers and images across the cluster; a container's logs
        // and inspect document.
        admin.goto("/ui/containers").await;
        assert!(admin.text("#containers").await.contains("web."), "{}", admin.text("#containers").await);
        admin.submit("#containers td a").await;
        assert!(admin.has("pre#inspect").await);
        admin.wait_logs().await;
        admin.check("20-admin-container").await;
        admin.goto("/ui/images").await;
        assert!(admin.text("#images").await.contains(workload.tag()));
        admin.check("21-admin-images").await;

        // Networks, volumes, secrets and configs: created from their forms,
        // one removed after a confirmation. A bad name is refused in place.
        for (slug, name, extra) in [
            ("networks", "dca-net", None),
            ("secrets", "dca-secret", Some(("textarea[name=data]", "s3cret"))),
            ("configs", "dca-config", Some(("textarea[name=data]", "key: value"))),
            ("volumes", "dca-vol", None),
        ] {
            admin.goto(&format!("/ui/{slug}")).await;
            let form = format!("form[action='/ui/{slug}']");
            admin.fill(&format!("{form} input[name=name]"), name).await;
            admin.fill(&format!("{form} input[name=collection]"), "Shared").await;
            if let Some((css, value)) = extra {
                admin.fill(&format!("{form} {css}"), value).await;
            }
            admin.submit(&format!("{form} button")).await;
            assert!(admin.text(".error").await.contains("must be a path"), "{slug}");
            admin.fill(&format!("{form} input[name=name]"), name).await;
            admin.fill(&format!("{form} input[name=collection]"), "/Shared").await;
            if let Some((css, value)) = extra {
                admin.fill(&format!("{form} {css}"), value).await;
            }
            admin.submit(&format!("{form} button")).await;
            assert!(!admin.has(".error").await, "{slug}: {}", admin.text(".error").await);
            assert!(admin.text(&format!("#{slug}")).await.contains(name), "{slug}");
            admin.check(&format!("22-admin-{slug}")).await;
        }
        admin.confirm_all().await;
        admin.submit("#volumes tr[data-id='dca-vol'] button.danger").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        assert!(!admin.text("main").await.contains("dca-vol"));

        // A stack (what `docker stack deploy` labels), listed and removed
        // with everything in it.
        let (s, b) = tokio::task::block_in_place(|| {
            gw.call(
                Method::POST,
                "/services/create",
                Some(&gw.admin),
                Some(json!({
                    "Name": "dca_api",
                    "Labels": {"com.docker.stack.namespace": "dca"},
                    "TaskTemplate": {"ContainerSpec": {"Image": workload.tag()}},
                    "Mode": {"Replicated": {"Replicas": 0}},
                })),
            )
        });
        assert!(s == 200 || s == 201, "{b}");
        admin.goto("/ui/stacks").await;
        assert!(admin.text("#stacks").await.contains("dca_api"));
        admin.check("23-admin-stacks").await;
        admin.confirm_all().await;
        admin.submit("#stacks button.danger").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        assert!(!admin.has("#stacks").await, "the stack is still listed");

        // A node: the Add Nodes panel, and a label set from its page.
        admin.goto("/ui/nodes").await;
        assert!(admin.text("#join-worker").await.starts_with("capstan join --token CAPTKN-1-"));
        admin.submit("#nodes td a").await;
        admin.fill("textarea[name=labels]", "zone=dca").await;
        admin.submit("form[action^='/ui/nodes/'] button").await;
        assert!(!admin.has(".error").await, "{}", admin.text(".error").await);
        assert_eq!(admin.text("textarea[name=labels]").await.trim(), "zone=dca");
        admin.check("24-admin-node").await;

        // The access matrix and an explained decision.
        admin.goto("/ui/access").await;
        let matrix = admin.text("#matrix").await;
        assert!(matrix.contains("analista") && matrix.contains("containers-full-access"), "{matrix}");
        admin.fill("input[name=subject]", "analista").await;
        admin.fill("input[name=operation]", "container.create").await;
        admin.fill("input[name=resource]", "/Shared").await;
        admin.submit("form[action='/ui/access'] button").await;
        let why = admin.text("#explanation").await;
        assert!(why.contains("allowed") && why.contains("containers-full-access"), "{why}");
        admin.check("25-admin-access").await;

        // Admin settings: the audit log, the registry install command, the
        // CA, and the configuration editor refusing a bad document in place.
        admin.goto("/ui/settings/audit").await;
        assert!(admin.text("#audit").await.contains("/services/create"));
        admin.check("26-admin-audit").await;
        admin.goto("/ui/settings/registry").await;
        assert!(admin.text("#install-command").await.starts_with("capstan registry install --ucp-url https://"));
        admin.check("27-admin-registry").await;
        admin.goto("/ui/settings/certificates").await;
        assert_eq!(admin.text("#ca-fingerprint").await.len(), 95);
        admin.check("28-admin-certificates").await;
        admin.goto("/ui/settings/config").await;
        let toml = admin.text("textarea[name=toml]").await;
        assert!(toml.contains("require_content_trust"), "{toml}");
        admin.fill("textarea[name=toml]", "this is = = not toml").await;
        admin.submit("form[action='/ui/settings/config'] button").await;
        assert!(admin.has(".error").await, "a bad document was saved");
        assert_eq!(admin.text("textarea[name=toml]").await, "this is = = not toml");
        admin.check("29-admin-config").await;
        admin.goto("/ui/settings/authentication").await;
        admin.check("30-admin-authentication").await;
        // The support bundle, downloaded as the form does: a zip of the
        // cluster with this node's log in it.
        admin.goto("/ui/settings/support").await;
        assert!(admin.has("#support-download").await);
        admin.check("31-admin-support").await;
        let zip = admin.post_download("/ui/settings/support", &[]).await;
        let mut support = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
        let mut manifest = String::new();
        std::io::Read::read_to_string(&mut support.by_name("manifest.json").expect("manifest"), &mut manifest)
            .expect("manifest text");
        assert!(manifest.contains("\"included\": true"), "{manifest}");

        admin.goto("/ui/about").await;
        admin.check("08-admin-about").await;
        admin.logout().await;

        // The analyst sees what the API lets them see: no admin forms or
        // settings.
        let user = Browser::open(&driver, &gw.base).await;
        user.login("analista", ANALISTA_PW).await;
        user.check("11-user-dashboard").await;
        let menu = user.text("nav.menu").await;
        for admin_only in ["Content Trust", "License", "Access Matrix", "Audit Log", "Certificates", "Cluster Configuration"] {
            assert!(!menu.contains(admin_only), "analista's menu offers {admin_only}: {menu}");
        }
        for (path, case) in [
            ("/ui/users", "12-user-users"),
            ("/ui/orgs", "13-user-orgs"),
            ("/ui/nodes", "14-user-nodes"),
            ("/ui/services", "15-user-services"),
            ("/ui/registry", "16-user-registry"),
            ("/ui/roles", "16b-user-roles"),
            ("/ui/grants", "16c-user-grants"),
            ("/ui/collections", "16d-user-collections"),
            ("/ui/stacks", "16e-user-stacks"),
            ("/ui/containers", "16f-user-containers"),
            ("/ui/images", "16g-user-images"),
            ("/ui/networks", "16h-user-networks"),
            ("/ui/volumes", "16i-user-volumes"),
            ("/ui/secrets", "16j-user-secrets"),
            ("/ui/configs", "16k-user-configs"),
            ("/ui/kubernetes", "16l-user-kubernetes"),
            ("/ui/about", "17-user-about"),
        ] {
            user.goto(path).await;
            assert!(
                !user.has("form[action='/ui/users']").await
                    && !user.has("form[action='/ui/orgs']").await
            );
            user.check(case).await;
        }
        // Step 9: the analyst's client bundle, made from My Profile.
        user.goto("/ui/profile").await;
        user.check("19-user-profile").await;
        let zip = user.post_download("/ui/profile/bundles", &[("label", "laptop")]).await;
        let dir = reg.work().join("analista-bundle");
        std::fs::create_dir_all(&dir).expect("bundle dir");
        zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip").extract(&dir).expect("unpack");
        let docker = tokio::task::block_in_place(|| {
            Command::new("sh")
                .current_dir(&dir)
                .env("DOCKER_CONFIG", &dir)
                .env_remove("DOCKER_HOST")
                .env_remove("DOCKER_CONTEXT")
                .args(["-c", ". ./env.sh >/dev/null && exec docker ps --format '{{.Names}}'"])
                .output()
                .expect("run docker")
        });
        assert!(docker.status.success(), "docker with the bundle: {}", String::from_utf8_lossy(&docker.stderr));
        user.goto("/ui/profile").await;
        assert!(user.text("#bundles").await.contains("laptop"));

        user.goto("/ui/users").await;
        assert!(user.text("#users").await.contains(HOSTILE));
        user.goto("/ui/services").await;
        assert!(!user.has("#services tr[data-service]").await, "analista sees the admin's service");
        user.goto("/ui/nodes").await;
        assert!(!user.has("#add-nodes").await, "analista is offered the join tokens");
        user.goto("/ui/secrets").await;
        assert!(!user.text("main").await.contains("dca-secret"), "analista sees the admin's secret");
        user.goto("/ui/registry").await;
        assert!(!user.has("#repositories a").await, "analista sees the admin's private repository");
        user.goto("/ui/settings/trust").await;
        assert!(user.text(".error").await.contains("only admins"));
        // The settings page refuses the analyst with a 403, as the API does.
        user.check_allowing("18-user-trust-refused", Some("/ui/settings/trust - Failed to load resource: the server responded with a status of 403"))
            .await;
        user.logout().await;
        user.c.close().await.expect("close");
        admin.c.close().await.expect("close");
    });
    // Clean up the service through the API.
    let (s, _) = gw.call(Method::DELETE, "/services/web", Some(&gw.admin), None);
    assert!(s == 200 || s == 204, "remove the service: {s}");
}

/// Forms are refused without the session's CSRF token or from another
/// origin, and the cookie is locked down.
#[test]
fn dashboard_forms_need_the_sessions_csrf_token_and_origin() {
    let gw = gateway::Gateway::start();
    let ca = std::fs::read(gw.data_dir().join("pki/ca.crt")).expect("CA");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let host = gw.base.trim_start_matches("https://").to_string();
    let form = |path: &str, cookie: Option<&str>, origin: Option<&str>, body: &[(&str, &str)]| {
        let mut req = client.post(format!("{}{path}", gw.base)).form(body);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().expect("request")
    };
    // A login from another site is refused; from this one it sets a
    // locked-down cookie.
    let r = form(
        "/ui/login",
        None,
        Some("https://evil.example"),
        &[("username", "admin"), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(r.status().as_u16(), 403);
    let r = form(
        "/ui/login",
        None,
        Some(&format!("https://{host}")),
        &[("username", "admin"), ("password", ADMIN_PASSWORD)],
    );
    assert_eq!(r.status().as_u16(), 303, "login failed");
    let set = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "the session cookie lacks {attr}: {set}");
    }
    let cookie = set.split(';').next().expect("cookie").to_string();
    let page = client
        .get(format!("{}/ui/users", gw.base))
        .header("cookie", &cookie)
        .send()
        .expect("users page");
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = page.text().expect("html");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF field in the page")
        .to_string();
    let user = [
        ("name", "mallory"),
        ("password", "mallory-pass-1"),
        ("full_name", ""),
    ];

    let r = form("/ui/users", Some(&cookie), None, &user);
    assert_eq!(
        r.status().as_u16(),
        403,
        "a form without the CSRF token was accepted"
    );
    let mut with_token = user.to_vec();
    with_token.push(("csrf", &csrf));
    let r = form(
        "/ui/users",
        Some(&cookie),
        Some("https://evil.example"),
        &with_token,
    );
    assert_eq!(
        r.status().as_u16(),
        403,
        "a form from another origin was accepted"
    );
    let mut wrong = user.to_vec();
    wrong.push(("csrf", "0000"));
    let r = form(
        "/ui/users",
        Some(&cookie),
        Some(&format!("https://{host}")),
        &wrong,
    );
    assert_eq!(r.status().as_u16(), 403, "a wrong CSRF token was accepted");
    let (s, b) = gw.get("/accounts/mallory", &gw.admin);
    assert_eq!(s, 404, "a refused form created the user: {b}");

    let r = form(
        "/ui/users",
        Some(&cookie),
        Some(&format!("https://{host}")),
        &with_token,
    );
    assert_eq!(
        r.status().as_u16(),
        303,
        "the form with its token was refused"
    );
    let (s, _) = gw.get("/accounts/mallory", &gw.admin);
    assert_eq!(s, 200);
    // The change was audited as the API call it made, by the admin.
    assert!(gw.audit().iter().any(|e| e["path"] == "/accounts"
        && e["method"] == "POST"
        && e["actor"] == "admin"
        && e["status"] == 201));

    // The content trust form shows a refusal in place, keeping what was typed.
    let r = form(
        "/ui/settings/trust",
        Some(&cookie),
        Some(&format!("https://{host}")),
        &[
            ("csrf", &csrf),
            ("require", "on"),
            ("teams", "docker-dca/a/b"),
        ],
    );
    let status = r.status().as_u16();
    let html = r.text().expect("html");
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("has more than one") && html.contains("value=\"docker-dca/a/b\""),
        "{html}"
    );

    // Without a session every page sends the browser to the login page.
    let r = client
        .get(format!("{}/ui/services", gw.base))
        .send()
        .expect("page");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
}
