//! `okd-forge demo`, end to end: it runs the whole pipeline on the embedded defaults, serves the
//! result, and a real headless Chromium (driven over WebDriver by the Debian `chromedriver`)
//! loads the overview, stream and payload pages and saves screenshots under `docs/screenshots/`.
//! skopeo reads the stable release through the demo's `/v2/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange over a fresh connection: (status, body). The body is read by its
/// Content-Length or its chunks (chromedriver keeps connections open), else to the end.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        &s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("content-length:") {
            length = Some(n.trim().parse::<usize>().unwrap());
        }
        chunked |= line == "transfer-encoding: chunked";
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            out.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        r.read_exact(&mut out).unwrap();
    } else {
        r.read_to_end(&mut out).unwrap();
    }
    (status, out)
}

/// A WebDriver session in a headless Chromium.
struct Browser {
    driver: String,
    session: String,
    _chromedriver: Killed,
}

impl Browser {
    fn start() -> Browser {
        let chromedriver = testkit::require("chromedriver");
        let chromium = testkit::require("chromium");
        let port = testkit::free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = format!("127.0.0.1:{port}");
        let guard = Killed(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&driver).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
        // As root in a container Chromium needs --no-sandbox; /dev/shm is small here.
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }
        }}});
        let (status, body) = http(&driver, "POST", "/session", Some(&caps));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            session,
            _chromedriver: guard,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, reply) = http(&self.driver, method, &path, body.as_ref());
        let v: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    /// Loads `url`; returns the page's visible text.
    fn open(&self, url: &str) -> String {
        self.call("POST", "/url", Some(json!({ "url": url })));
        let text = self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": "return document.body.innerText", "args": [] })),
        );
        text.as_str().unwrap().to_string()
    }

    /// Counts the elements matching an XPath expression.
    fn count(&self, xpath: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            Some(json!({ "using": "xpath", "value": xpath })),
        )
        .as_array()
        .unwrap()
        .len()
    }

    /// Saves a PNG of the window.
    fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http(&self.driver, "DELETE", &path, None);
    }
}

/// Starts the demo in `dir` on a free port, run from `cwd`; returns it with its URL and what it
/// printed.
fn demo(dir: &Path, cwd: &Path) -> (Killed, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_okd-forge"))
        .args(["demo", "--port", "0", "--dir"])
        .arg(dir)
        .current_dir(cwd)
        .env_remove("OKD_FORGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the demo printed no URL; it printed:\n{printed}"));
        printed.push_str(&line);
        printed.push('\n');
        if let Some(url) = line.strip_prefix("serving ") {
            return (guard, url.to_string(), printed);
        }
    }
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

#[test]
fn the_demo_runs_the_pipeline_and_its_dashboard_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (work, cwd) = (dir.path().join("demo"), dir.path().join("cwd"));
    std::fs::create_dir(&cwd).unwrap();
    let (_demo, url, printed) = demo(&work, &cwd);

    // The pipeline went round twice: two payloads, two stable releases, a tested edge.
    assert!(
        printed.contains("promoted as the stable release 4.17.0-okd-scos.0"),
        "{printed}"
    );
    assert!(
        printed.contains("promoted as the stable release 4.17.0-okd-scos.1"),
        "{printed}"
    );
    assert!(
        printed.contains("started upgrade from 4.17.0-okd-scos.0"),
        "{printed}"
    );
    assert!(printed.contains("OCPBUGS-1234"), "changelog: {printed}");
    // The OS the stream follows: each release entered through the payload that carried it.
    for v in ["9.0.20261201-0", "9.0.20261208-0"] {
        assert!(
            printed.contains(&format!("OS {v} accepted into the stream")),
            "{v}: {printed}"
        );
    }
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    // The API and the update graph over real HTTP.
    let (status, body) = http(&addr, "GET", "/api/v1/releasestream/stable/latest", None);
    let latest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["name"], "4.17.0-okd-scos.1");
    let (status, body) = http(&addr, "GET", "/graph?channel=stable-4.17", None);
    assert_eq!(status, 200);
    let graph: Value = serde_json::from_slice(&body).unwrap();
    let versions: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{graph}");
    assert!(versions.contains(&"4.17.0-okd-scos.0") && versions.contains(&"4.17.0-okd-scos.1"));
    let from = versions
        .iter()
        .position(|v| *v == "4.17.0-okd-scos.0")
        .unwrap();
    let to = versions
        .iter()
        .position(|v| *v == "4.17.0-okd-scos.1")
        .unwrap();
    assert_eq!(graph["edges"], json!([[from, to]]), "{graph}");

    // skopeo reads the stable release through the registry view, with the pull spec the payload
    // itself names (store_name is this server).
    let inspect = testkit::skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{addr}/okd:4.17.0-okd-scos.1"),
    ]);
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        inspect["Labels"]["io.openshift.release"], "4.17.0-okd-scos.1",
        "{inspect}"
    );

    // The dashboard in a real browser.
    let browser = Browser::start();
    let overview = browser.open(&url);
    for want in ["okd-scos-4.17", "4.17.0-okd-scos.1", "4.17.0-okd-scos.0"] {
        assert!(
            overview.contains(want),
            "overview lacks {want}:\n{overview}"
        );
    }
    browser.screenshot(&docs().join("overview.png"));

    let stream = browser.open(&format!("{url}releasestream/okd-scos-4.17"));
    assert!(stream.contains("Accepted"), "{stream}");
    let payloads: Vec<&str> = stream
        .split_whitespace()
        .filter(|w| w.starts_with("4.17.0-0.okd-scos-"))
        .collect();
    assert!(
        payloads.len() >= 2,
        "two payloads on the stream page:\n{stream}"
    );
    for want in [
        "e2e",
        "upgrade",
        "consistency",
        "In the stream: 9.0.20261208-0",
    ] {
        assert!(stream.contains(want), "stream page lacks {want}:\n{stream}");
    }
    browser.screenshot(&docs().join("stream.png"));

    let newest = payloads.iter().max().unwrap();
    let page = browser.open(&format!(
        "{url}releasestream/okd-scos-4.17/release/{newest}"
    ));
    for want in [
        "cluster-dns-operator",
        "machine-config-operator",
        "rhel-coreos",
        "installer",
        "4.17.0-okd-scos.0",
        "OCPBUGS-1234",
        "CentOS Stream CoreOS 9.0.20261208-0 (rhel-coreos) (upgraded from 9.0.20261201-0)",
    ] {
        assert!(page.contains(want), "payload page lacks {want}:\n{page}");
    }
    assert!(
        browser.count("//a[contains(., 'Report a bug')][contains(@href, '4.17.0-0.okd-scos-')]")
            == 1,
        "the payload page has a report-a-bug link"
    );
    browser.screenshot(&docs().join("payload.png"));

    // Everything the demo wrote is under --dir.
    assert!(
        testkit::file_names(&cwd).is_empty(),
        "{:?}",
        testkit::file_names(&cwd)
    );
}

#[test]
fn the_demo_refuses_a_directory_it_did_not_make_and_touches_nothing_in_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_okd-forge"))
        .args(["demo", "--port", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not empty and no earlier demo made it; choose another --dir"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(testkit::file_names(dir.path()), ["precious.txt"]);
}
