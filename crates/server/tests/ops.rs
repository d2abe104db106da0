//! The mutations and webhooks of `okd-forge serve` through the real router: promotion of a
//! payload made of real images, builds triggered through the API and by signed GitHub and GitLab
//! push events, built natively from local git repositories (`file://` remotes).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use common::{forge_from, send, STREAM};
use hmac::{Hmac, Mac};
use oci::{Layout, Selector};
use release::state::{NewPayload, Records};
use serde_json::{json, Value};
use sha2::Sha256;
use testkit::git::Upstream;
use testkit::images::{write_image, ImageSpec};
use testkit::release::ReleaseSet;

const TOKEN: &str = "s3cret";
const BRANCH: &str = "release-4.17";

fn app(
    forge: std::sync::Arc<build::run::Forge>,
    f: impl FnOnce(&mut server::App),
) -> server::AppState {
    let mut app = server::App::new(forge);
    f(&mut app);
    std::sync::Arc::new(app)
}

fn post(uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut req = Request::post(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

const BEARER: (&str, &str) = ("authorization", "Bearer s3cret");

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

// ---------------------------------------------------------------------------------------------
// Promotion

const ACCEPTED: &str = "4.17.0-0.okd-scos-2026-11-24-000000";
const REJECTED: &str = "4.17.0-0.okd-scos-2026-11-25-000000";

/// A stream whose payloads are made of the standard images, written into the store: ACCEPTED and
/// REJECTED. The app has `token`.
fn promotion_site(token: Option<&str>) -> (tempfile::TempDir, server::AppState) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
         streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: {BRANCH}\n    release:\n      \
         name: 4.17.0-0.okd-scos\n      promote: {{ every: 14d }}\n"
    );
    let forge = forge_from(dir.path(), &yaml);
    let set = ReleaseSet::standard("amd64").write(&dir.path().join("var/store"));
    let inputs = set
        .components
        .iter()
        .map(|(tag, c)| (tag.clone(), c.digest.to_string()))
        .collect();
    let r = Records::new(&forge.state);
    for (i, name) in [ACCEPTED, REJECTED].into_iter().enumerate() {
        let t = common::T0 + i as i64 * 86_400;
        r.create(&NewPayload {
            name,
            stream: STREAM,
            created: t,
            hash: &format!("sha256:{i:064}"),
            inputs: &inputs,
        })
        .unwrap();
        let digest = format!("sha256:{:064}", i + 10);
        r.ready(name, &digest, &common::spec(&digest), t).unwrap();
        r.decide(name, i == 0, "as the test says", t).unwrap();
    }
    let app = app(forge, |a| a.token = token.map(String::from));
    (dir, app)
}

fn promote_uri(tag: &str) -> String {
    format!("/api/v1/releasestream/4.17.0-0.okd-scos/release/{tag}/promote")
}

#[tokio::test]
async fn promotion_through_the_api_needs_the_token_and_an_accepted_payload() {
    let (_off, off) = promotion_site(None);
    let (status, body) = send(&off, post(&promote_uri(ACCEPTED), &[BEARER], "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (dir, site) = promotion_site(Some(TOKEN));
    for headers in [&[][..], &[("authorization", "Bearer s3cre")][..]] {
        let (status, _) = send(&site, post(&promote_uri(ACCEPTED), headers, "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let stables = |site: &server::AppState| {
        Records::new(&site.forge.state)
            .payloads(STREAM)
            .unwrap()
            .into_iter()
            .filter(|p| p.stable_of.is_some())
            .map(|p| p.name)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert!(stables(&site).is_empty(), "refused, nothing promoted");

    let (status, body) = send(&site, post(&promote_uri(ACCEPTED), &[BEARER], "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = parse(&body);
    assert_eq!(
        (&p["name"], &p["from"], &p["promoted"]),
        (&json!("4.17.0-okd-scos.0"), &json!(ACCEPTED), &json!(true))
    );
    assert_eq!(p["channels"], json!(["stable-4", "stable-4.17"]));
    assert_eq!(stables(&site), ["4.17.0-okd-scos.0"]);
    // The restamped payload is in the store under the stable name, with the digest answered.
    let store = Layout::open(dir.path().join("var/store")).unwrap();
    let m = store
        .get_manifest(Some(&Selector::Tag("4.17.0-okd-scos.0".into())))
        .unwrap();
    assert!(
        p["pull_spec"]
            .as_str()
            .unwrap()
            .ends_with(&m.digest.to_string()),
        "{p}"
    );

    // Again: nothing to do. With a name: a stable release of that name.
    let (status, body) = send(&site, post(&promote_uri(ACCEPTED), &[BEARER], "")).await;
    assert_eq!(
        (status, parse(&body)["promoted"].clone()),
        (StatusCode::OK, json!(false))
    );
    let named = format!("{}?name=4.17.0-okd-scos.7", promote_uri(ACCEPTED));
    let (status, body) = send(&site, post(&named, &[BEARER], "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(parse(&body)["name"], "4.17.0-okd-scos.7");

    // Not Accepted: 409 saying so. Unknown tag or stream: 404 naming it.
    let (status, body) = send(&site, post(&promote_uri(REJECTED), &[BEARER], "")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("only an Accepted payload"), "{body}");
    let (status, body) = send(
        &site,
        post(&promote_uri("4.17.0-0.okd-scos-nope"), &[BEARER], ""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("4.17.0-0.okd-scos-nope"), "{body}");
    let (status, _) = send(
        &site,
        post(&promote_uri("4.17.0-okd-scos.0"), &[BEARER], ""),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a stable release is no payload tag"
    );
    let uri = format!("/api/v1/releasestream/nope/release/{ACCEPTED}/promote");
    assert_eq!(
        send(&site, post(&uri, &[BEARER], "")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(stables(&site), ["4.17.0-okd-scos.0", "4.17.0-okd-scos.7"]);
}

// ---------------------------------------------------------------------------------------------
// Builds

/// A small base image for this machine's architecture, tagged `base` in `<dir>/bases`: the
/// native builder runs its command in the checkout and only layers the outputs onto it.
fn base_image(dir: &Path) -> String {
    let layout = Layout::create(dir.join("bases")).unwrap();
    let spec = ImageSpec::new(&[(1, 64)]).arch(oci::manifest::host_arch());
    write_image(&layout, &spec, Some("base"));
    format!("oci:{}:base", dir.join("bases").display())
}

/// Components `hello` and `world` (local repositories with a `release-4.17` branch), each one
/// native image, built by STREAM from that branch. A build waits until the file
/// `gate` exists.
struct BuildSite {
    _dir: tempfile::TempDir,
    forge: std::sync::Arc<build::run::Forge>,
    hello: Upstream,
    world: Upstream,
}

impl BuildSite {
    fn new() -> BuildSite {
        let site = BuildSite::gated();
        site.open();
        site
    }

    /// Builds wait until [`BuildSite::open`].
    fn gated() -> BuildSite {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("gate");
        let base = base_image(dir.path());
        let repo = |name: &str| {
            let up = Upstream::init(dir.path().join("upstream").join(name));
            std::fs::write(up.dir().join("VERSION"), format!("{name} 1\n")).unwrap();
            up.git(&["add", "-A"]);
            up.commit("version 1");
            up.branch(BRANCH, "main");
            up
        };
        let (hello, world) = (repo("hello"), repo("world"));
        let image = |name: &str, url: &str| {
            format!(
                "  {name}:\n    git: {url}\n    images:\n      - to: {name}\n        native:\n          \
                 command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done; cp VERSION out.txt']\n          outputs: [\"out.txt:/etc/{name}\"]\n          \
                 base: \"{base}\"\n",
                gate = gate.display()
            )
        };
        let yaml = format!(
            "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\ncomponents:\n{}{}\
             streams:\n  {STREAM}: {{ variant: okd-scos, branch: {BRANCH} }}\n",
            image("hello", &hello.url()),
            image("world", &world.url()),
        );
        let forge = forge_from(dir.path(), &yaml);
        BuildSite {
            _dir: dir,
            forge,
            hello,
            world,
        }
    }

    /// Lets builds go on.
    fn open(&self) {
        std::fs::write(self._dir.path().join("gate"), "").unwrap();
    }

    fn app(&self, f: impl FnOnce(&mut server::App)) -> server::AppState {
        app(self.forge.clone(), f)
    }

    /// The digest STREAM's `tag` points at, if any.
    fn tag(&self, tag: &str) -> Option<String> {
        self.forge
            .state
            .stream_tag(STREAM, tag)
            .unwrap()
            .map(|t| t.digest)
    }

    /// The commit that the build behind STREAM's `tag` built.
    fn commit(&self, tag: &str) -> String {
        let t = self.forge.state.stream_tag(STREAM, tag).unwrap().unwrap();
        let b = self
            .forge
            .state
            .build(t.build_id.unwrap())
            .unwrap()
            .unwrap();
        b.build.commit
    }
}

/// Waits until the build queue is idle after a run; the last run's report.
async fn idle(app: &server::AppState) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = send(
            app,
            Request::get("/api/v1/trigger").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let q = parse(&body);
        if q["running"] == json!([]) && q["queued"] == json!([]) && !q["last"].is_null() {
            return q["last"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "builds still running: {q}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pairs(reply: &Value) -> Vec<(String, String)> {
    reply["builds"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|b| {
            (
                b["stream"].as_str().unwrap().to_string(),
                b["component"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(component: &str) -> Vec<(String, String)> {
    vec![(STREAM.to_string(), component.to_string())]
}

#[tokio::test]
async fn a_trigger_needs_the_token_and_builds_what_it_names() {
    let site = BuildSite::new();
    let off = site.app(|_| {});
    let uri = format!("/api/v1/trigger?stream={STREAM}&component=hello");
    assert_eq!(
        send(&off, post(&uri, &[BEARER], "")).await.0,
        StatusCode::FORBIDDEN
    );
    let app = site.app(|a| a.token = Some(TOKEN.into()));
    assert_eq!(
        send(&app, post(&uri, &[], "")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, post(&uri, &[("authorization", "Bearer nope")], ""))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    for (uri, named) in [
        ("/api/v1/trigger?stream=okd-9.99", "okd-9.99"),
        ("/api/v1/trigger?component=nope", "nope"),
    ] {
        let (status, body) = send(&app, post(uri, &[BEARER], "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(body.contains(named), "{body}");
    }
    let (status, body) = send(&app, post("/api/v1/trigger", &[BEARER], "{\"strem\": 1}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        site.tag("hello").is_none() && site.tag("world").is_none(),
        "nothing built yet"
    );

    // By query: hello only.
    let (status, body) = send(&app, post(&uri, &[BEARER], "")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(pairs(&parse(&body)), pair("hello"));
    let last = idle(&app).await;
    assert_eq!(last["failed"], json!([]), "{last}");
    assert!(site.tag("hello").is_some());
    assert_eq!(site.commit("hello"), site.hello.head());
    assert!(site.tag("world").is_none(), "world was not asked for");

    // By JSON body: world.
    let body = json!({ "stream": STREAM, "component": "world" }).to_string();
    let (status, reply) = send(
        &app,
        post(
            "/api/v1/trigger",
            &[BEARER, ("content-type", "application/json")],
            &body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(pairs(&parse(&reply)), pair("world"));
    idle(&app).await;
    assert_eq!(site.commit("world"), site.world.head());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_while_a_build_runs_are_queued_and_coalesced() {
    let site = BuildSite::gated();
    let app = site.app(|a| a.token = Some(TOKEN.into()));
    let queue = || async {
        let (_, body) = send(
            &app,
            Request::get("/api/v1/trigger").body(Body::empty()).unwrap(),
        )
        .await;
        parse(&body)
    };
    let (_, first) = send(&app, post("/api/v1/trigger?component=hello", &[BEARER], "")).await;
    assert_eq!(parse(&first)["queued"], json!(false), "{first}");
    let hello = json!([{ "stream": STREAM, "component": "hello" }]);
    let world = json!([{ "stream": STREAM, "component": "world" }]);
    let start = Instant::now();
    while queue().await["running"] != hello {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hello never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While hello builds (held at the gate), world is asked for twice: it waits, once.
    for _ in 0..2 {
        let (status, body) =
            send(&app, post("/api/v1/trigger?component=world", &[BEARER], "")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(parse(&body)["queued"], json!(true), "{body}");
    }
    let q = queue().await;
    assert_eq!((&q["running"], &q["queued"]), (&hello, &world), "{q}");
    assert!(site.tag("hello").is_none() && site.tag("world").is_none());
    site.open();
    let last = idle(&app).await;
    assert_eq!(
        (&last["targets"], &last["images"]),
        (&world, &json!(1)),
        "{last}"
    );
    assert!(site.tag("hello").is_some() && site.tag("world").is_some());
}

// ---------------------------------------------------------------------------------------------
// Webhooks

const GITHUB_SECRET: &str = "it's a secret to everybody";

fn hex_hmac(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// A GitHub delivery of `event` with `body`, signed with `secret` unless `None`.
fn github(event: &str, body: &str, secret: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/webhooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    if let Some(s) = secret {
        req = req.header(
            "x-hub-signature-256",
            format!("sha256={}", hex_hmac(s.as_bytes(), body.as_bytes())),
        );
    }
    req.body(Body::from(body.to_string())).unwrap()
}

/// A GitHub push event to `git_ref` of the repository cloned from `clone_url`.
fn github_push(clone_url: &str, git_ref: &str) -> String {
    json!({
        "ref": git_ref,
        "before": "0".repeat(40),
        "after": "1".repeat(40),
        "deleted": false,
        "repository": {
            "full_name": "okd-project/hello",
            "clone_url": clone_url,
            "ssh_url": "git@github.example:okd-project/hello.git",
            "html_url": "https://github.example/okd-project/hello",
        },
        "commits": [],
    })
    .to_string()
}

#[tokio::test]
async fn a_signed_github_push_to_a_configured_branch_builds_the_component() {
    let site = BuildSite::new();
    let off = site.app(|_| {});
    let push = github_push(
        &format!("{}.git", site.hello.url()),
        "refs/heads/release-4.17",
    );
    let (status, body) = send(&off, github("push", &push, Some(GITHUB_SECRET))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("--github-secret-file"), "{body}");

    let app = site.app(|a| a.github_secret = Some(GITHUB_SECRET.into()));
    // Unsigned, signed with another secret, a signature of another body: 401, nothing built.
    for req in [
        github("push", &push, None),
        github("push", &push, Some("another secret")),
        {
            let mut r = github("push", &push, Some(GITHUB_SECRET));
            *r.body_mut() = Body::from(push.replace("release-4.17", "release-4.18"));
            r
        },
    ] {
        let (status, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("X-Hub-Signature-256"), "{body}");
    }
    let (status, body) = send(
        &app,
        github(
            "ping",
            r#"{"zen":"Keep it logically awesome."}"#,
            Some(GITHUB_SECRET),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another repository, another branch or a tag of this one, the branch deleted: nothing to
    // build.
    let deleted = push.replace("\"deleted\":false", "\"deleted\":true");
    assert_ne!(deleted, push);
    for push in [
        github_push(
            "https://github.example/okd-project/other.git",
            "refs/heads/release-4.17",
        ),
        github_push(&site.hello.url(), "refs/heads/main"),
        github_push(&site.hello.url(), "refs/tags/v4.17.0"),
        deleted,
    ] {
        let (status, body) = send(&app, github("push", &push, Some(GITHUB_SECRET))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(parse(&body)["builds"], json!([]), "{push}");
    }
    assert!(site.tag("hello").is_none(), "nothing built yet");

    // A new commit on the branch, pushed: hello is built from it, world is left alone.
    std::fs::write(site.hello.dir().join("VERSION"), "hello 2\n").unwrap();
    site.hello.git(&["add", "-A"]);
    let pushed = site.hello.commit("version 2");
    let (status, body) = send(&app, github("push", &push, Some(GITHUB_SECRET))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(pairs(&parse(&body)), pair("hello"));
    let start = Instant::now();
    while site.tag("hello").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "hello never built"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(site.commit("hello"), pushed);
    let last = idle(&app).await;
    assert_eq!(last["failed"], json!([]), "{last}");
    assert!(site.tag("world").is_none());
}

/// A GitLab push event to `git_ref` of the project at `url`.
fn gitlab_push(url: &str, git_ref: &str) -> String {
    json!({
        "object_kind": "push",
        "ref": git_ref,
        "after": "1".repeat(40),
        "project": {
            "path_with_namespace": "okd-project/world",
            "git_http_url": url,
            "git_ssh_url": "git@gitlab.example:okd-project/world.git",
            "web_url": "https://gitlab.example/okd-project/world",
        },
    })
    .to_string()
}

fn gitlab(body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut h = vec![
        ("content-type", "application/json"),
        ("x-gitlab-event", "Push Hook"),
    ];
    h.extend_from_slice(headers);
    post("/webhooks/gitlab", &h, body)
}

#[tokio::test]
async fn a_gitlab_push_with_the_secret_token_builds_the_component() {
    let site = BuildSite::new();
    let push = gitlab_push(&site.world.url(), "refs/heads/release-4.17");
    let off = site.app(|_| {});
    let (status, body) = send(&off, gitlab(&push, &[("x-gitlab-token", "t0ken")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("--gitlab-secret-file"), "{body}");

    let app = site.app(|a| a.gitlab_secret = Some("t0ken".into()));
    for headers in [&[][..], &[("x-gitlab-token", "t0ke")][..]] {
        let (status, body) = send(&app, gitlab(&push, headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}: {body}");
    }
    // Another event of the same project triggers nothing.
    let mut tag_push = gitlab(&push, &[("x-gitlab-token", "t0ken")]);
    tag_push
        .headers_mut()
        .insert("x-gitlab-event", "Tag Push Hook".parse().unwrap());
    let (status, body) = send(&app, tag_push).await;
    assert_eq!(
        (status, parse(&body)["builds"].clone()),
        (StatusCode::OK, json!([]))
    );
    let (status, body) = send(&app, gitlab(&push, &[("x-gitlab-token", "t0ken")])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(pairs(&parse(&body)), pair("world"));
    let last = idle(&app).await;
    assert_eq!(last["failed"], json!([]), "{last}");
    assert_eq!(site.commit("world"), site.world.head());
    assert!(site.tag("hello").is_none());
}

#[tokio::test]
async fn a_gitlab_push_signed_with_the_signing_token_is_checked() {
    let site = BuildSite::new();
    let key = [7u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    let signing_token = format!("whsec_{}", b64.encode(key));
    let app = site.app(|a| a.gitlab_secret = Some(signing_token.clone()));
    // Pushed to a branch nothing builds: 200, nothing queued, once the signature holds.
    let push = gitlab_push(&site.world.url(), "refs/heads/main");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |id: &str, at: i64, body: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{at}.{body}").as_bytes());
        format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
    };
    let send_signed = |id: &'static str, at: i64, signature: String| {
        let app = app.clone();
        let push = push.clone();
        async move {
            let at = at.to_string();
            let headers = [
                ("webhook-id", id),
                ("webhook-timestamp", at.as_str()),
                ("webhook-signature", signature.as_str()),
            ];
            send(&app, gitlab(&push, &headers)).await
        }
    };
    let (status, body) = send_signed("msg_1", now, sign("msg_1", now, &push)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(parse(&body)["builds"], json!([]));
    // Another id than signed, a stale timestamp, another key: 401.
    let (status, _) = send_signed("msg_2", now, sign("msg_1", now, &push)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stale = now - 600;
    let (status, body) = send_signed("msg_1", stale, sign("msg_1", stale, &push)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("webhook-timestamp"), "{body}");
    let (status, _) = send_signed("msg_1", now, sign("msg_1", now, "{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The plain secret token is not enough once a signing token is configured.
    let (status, _) = send(
        &app,
        gitlab(&push, &[("x-gitlab-token", signing_token.as_str())]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
