//! The dashboard: server-rendered HTML (askama, every value escaped), no JavaScript needed. The
//! paths are the release-controller's (`../shared/specs/release-controller.md` §3.1):
//!
//! - `/`: every release stream with its payloads, where promotion stands, the stable releases;
//! - `/releasestream/{s}`: one stream's payloads with their job results;
//! - `/channels`: each channel of the update graph, its stable releases and a picture of its
//!   upgrade graph (inline SVG drawn on the server, [`graph::picture`]);
//! - `/releasestream/{s}/release/{tag}` and `/releasetag/{tag}`: one payload or stable release:
//!   pull spec, verification runs, upgrades from and to it, the changelog against the previous
//!   tag (`?from=TAG` for another), its component images, and a "report a bug" link prefilled
//!   with its version, digest and platform.
//!
//! Text from git (commit subjects, bug keys) and from jobs is only ever put in the pages through
//! askama's escaping; links from image labels are links only when they are `https://`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use payload::diff::ReleaseDiff;
use release::lifecycle::Phase;
use release::state::{PayloadRecord, Records};

use crate::api::{any_tag, changelog, stream, tags_of, upgrades_to_and_from, Upgrade, STABLE};
use crate::AppState;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/releasestream/{stream}", get(stream_page))
        .route("/releasestream/{stream}/release/{tag}", get(payload_page))
        .route("/releasetag/{tag}", get(tag_page))
        .route("/channels", get(channels_page))
}

/// A tag in a list.
struct Row {
    name: String,
    phase: String,
    age: String,
    jobs: Vec<Job>,
}

/// A job's newest result.
struct Job {
    name: String,
    state: String,
}

struct StreamView {
    key: String,
    name: String,
    promotion: Option<String>,
    tags: Vec<Row>,
}

struct StableRow {
    name: String,
    channels: String,
    from: String,
    age: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    streams: Vec<StreamView>,
    stable: Vec<StableRow>,
    graph_url: String,
}

#[derive(Template)]
#[template(path = "stream.html")]
struct StreamPage {
    name: String,
    promotion: Option<String>,
    tags: Vec<Row>,
    /// Where the stream's OS stands, when it follows one.
    os: Option<build::osgate::OsStatus>,
}

struct RunRow {
    job: String,
    attempt: u32,
    state: String,
    tests: String,
    message: String,
    dir: String,
}

#[derive(Template)]
#[template(path = "payload.html")]
struct PayloadPage {
    p: PayloadRecord,
    pull_spec: String,
    channels: String,
    bug_url: String,
    runs: Vec<RunRow>,
    upgrades_to: Vec<Upgrade>,
    upgrades_from: Vec<Upgrade>,
    changelog: Option<Arc<ReleaseDiff>>,
    changelog_note: String,
    from_choices: Vec<String>,
    from_selected: String,
    published: Vec<PublishedRow>,
}

/// One publication of a stable release on its page, with links to what this server serves of it.
struct PublishedRow {
    kind: String,
    location: String,
    detail: String,
    /// (href, label).
    links: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "changelog.html")]
struct ChangelogPage<'a> {
    d: &'a ReleaseDiff,
}

#[derive(Template)]
#[template(path = "changelog_section.html")]
struct ChangelogSection<'a> {
    d: &'a ReleaseDiff,
}

/// The changelog as an HTML fragment (the API's `changeLog`, base64-encoded there).
pub fn changelog_html(d: &ReleaseDiff) -> String {
    ChangelogSection { d }
        .render()
        .unwrap_or_else(|e| format!("<p>the changelog cannot be rendered: {e}</p>"))
}

/// How long a payload page waits for its changelog before it says that it is still being made
/// (the first one of a pair fetches every changed component's repository).
pub const CHANGELOG_WAIT: Duration = Duration::from_secs(10);

/// The changelog as an HTML page of its own (`/changelog?format=html`).
pub fn changelog_page(d: &ReleaseDiff) -> Response {
    page(Ok(ChangelogPage { d }))
}

/// One channel of the update graph, for one architecture.
struct ChannelView {
    name: String,
    arch: String,
    releases: Vec<String>,
    /// The picture, SVG made by [`graph::Catalog::picture`], which escapes every text in it.
    svg: String,
}

#[derive(Template)]
#[template(path = "channels.html")]
struct ChannelsPage {
    channels: Vec<ChannelView>,
    skipped: Vec<String>,
}

/// A page, or an error page with its status.
fn page(t: Result<impl Template, (StatusCode, String)>) -> Response {
    match t.and_then(|t| {
        t.render()
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }) {
        Ok(html) => Html(html).into_response(),
        Err((status, message)) => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response(),
    }
}

fn err(e: crate::api::ApiError) -> (StatusCode, String) {
    e.parts()
}

fn db(e: build::state::StateError) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `3d4h`, `5h12m`, `40m`, `12s`.
fn age(since: i64, now: i64) -> String {
    let s = (now - since).max(0);
    match s {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn rows(records: &Records<'_>, tags: &[PayloadRecord], jobs: bool) -> Vec<Row> {
    let now = now();
    tags.iter()
        .map(|p| {
            let mut newest: BTreeMap<String, (u32, String)> = BTreeMap::new();
            if jobs {
                for r in records.runs(&p.name).unwrap_or_default() {
                    if newest.get(&r.job).is_none_or(|(a, _)| *a < r.attempt) {
                        newest.insert(r.job.clone(), (r.attempt, state_class(r.state)));
                    }
                }
            }
            Row {
                name: p.name.clone(),
                phase: p.phase.to_string(),
                age: age(p.created, now),
                jobs: newest
                    .into_iter()
                    .map(|(name, (_, state))| Job { name, state })
                    .collect(),
            }
        })
        .collect()
}

/// A run state as the pages show it (and style it): Success, Failure, Pending, Skipped.
fn state_class(s: release::state::RunState) -> String {
    use release::state::RunState::*;
    match s {
        Succeeded => "Success",
        Failed | TimedOut | Error => "Failure",
        Skipped => "Skipped",
        _ => "Pending",
    }
    .to_string()
}

async fn overview(State(app): State<AppState>) -> Response {
    page((|| {
        let records = Records::new(&app.forge.state);
        let mut streams = Vec::new();
        for (key, s) in &app.forge.config.streams {
            let Some(r) = &s.release else { continue };
            let tags = tags_of(&app, key).map_err(err)?;
            streams.push(StreamView {
                key: key.clone(),
                name: r.name.clone(),
                promotion: records.promotion_status(key).map_err(db)?.map(|(s, _)| s),
                tags: rows(&records, &tags[..tags.len().min(10)], false),
            });
        }
        let now = now();
        let stable = tags_of(&app, STABLE)
            .map_err(err)?
            .into_iter()
            .map(|p| StableRow {
                channels: p.channels.join(", "),
                from: p.stable_of.clone().unwrap_or_default(),
                age: age(p.created, now),
                name: p.name,
            })
            .collect();
        Ok(Overview {
            streams,
            stable,
            graph_url: "/graph".into(),
        })
    })())
}

async fn channels_page(State(app): State<AppState>) -> Response {
    page((|| {
        let records = Records::new(&app.forge.state);
        let streams = app.forge.config.streams.keys().map(String::as_str);
        let catalog = graph::Catalog::from_records(&records, streams).map_err(db)?;
        let mut channels = Vec::new();
        for arch in catalog.arches() {
            for (i, channel) in catalog.channels().into_iter().enumerate() {
                let g = catalog.graph(channel, arch);
                channels.push(ChannelView {
                    name: channel.to_string(),
                    arch: arch.to_string(),
                    releases: g.nodes.iter().rev().map(|n| n.version.clone()).collect(),
                    svg: catalog.picture(channel, arch, &format!("g{i}-{arch}")),
                });
            }
        }
        Ok(ChannelsPage {
            channels,
            skipped: catalog.skipped().to_vec(),
        })
    })())
}

async fn stream_page(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    page((|| {
        let records = Records::new(&app.forge.state);
        let tags = tags_of(&app, &name).map_err(err)?;
        let (promotion, os) = match stream(&app, &name) {
            Ok((key, _)) => (
                records.promotion_status(&key).map_err(db)?.map(|(s, _)| s),
                build::osgate::status(&app.forge.config, &app.forge.state, &key).map_err(db)?,
            ),
            Err(_) => (None, None),
        };
        Ok(StreamPage {
            name,
            promotion,
            tags: rows(&records, &tags, true),
            os,
        })
    })())
}

async fn payload_page(
    State(app): State<AppState>,
    Path((name, tag)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let found = tags_of(&app, &name).map_err(err).and_then(|tags| {
        tags.into_iter().find(|p| p.name == tag).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("unable to find release tag {tag} in stream {name}"),
            )
        })
    });
    payload_with_changelog(&app, found, q).await
}

async fn tag_page(
    State(app): State<AppState>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let found = Records::new(&app.forge.state)
        .payload(&tag)
        .map_err(db)
        .and_then(|p| {
            p.ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("unable to find release tag {tag}"),
                )
            })
        });
    payload_with_changelog(&app, found, q).await
}

/// The payload page of `found`, with its changelog from `?from=` or from the previous tag.
async fn payload_with_changelog(
    app: &AppState,
    found: Result<PayloadRecord, (StatusCode, String)>,
    query: Option<String>,
) -> Response {
    let mut view = match found.and_then(|p| payload(app, p)) {
        Ok(view) => view,
        Err(e) => return page(Err::<PayloadPage, _>(e)),
    };
    let from = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "from")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty());
    let (choices, previous) = match comparable(app, &view.p) {
        Ok(c) => c,
        Err(e) => return page(Err::<PayloadPage, _>(e)),
    };
    view.from_choices = choices;
    let base = match from {
        Some(name) => any_tag(app, &name).map(Some).map_err(|e| e.parts().1),
        None => Ok(previous),
    };
    match base {
        Err(why) => view.changelog_note = why,
        Ok(None) => view.changelog_note = "There is no earlier tag to compare with.".into(),
        Ok(Some(base)) => {
            view.from_selected = base.name.clone();
            match tokio::time::timeout(CHANGELOG_WAIT, changelog(app, &base, &view.p)).await {
                Ok(Ok(d)) => view.changelog = Some(d),
                Ok(Err(e)) => view.changelog_note = e.parts().1,
                Err(_) => {
                    view.changelog_note = format!(
                        "The changelog from {} is still being made (the components' git \
                         repositories are being fetched); reload this page in a moment.",
                        base.name
                    )
                }
            }
        }
    }
    page(Ok(view))
}

/// The tags `p` can be compared with (the other tags of its release stream that were pushed,
/// and the stable releases), and the one it is compared with by default: the newest older
/// Accepted tag of its release stream, else the newest older one that was pushed.
pub(crate) fn comparable(
    app: &AppState,
    p: &PayloadRecord,
) -> Result<(Vec<String>, Option<PayloadRecord>), (StatusCode, String)> {
    let own = if p.stable_of.is_some() {
        tags_of(app, STABLE)
    } else {
        tags_of(app, &p.stream)
    }
    .map_err(err)?;
    let pushed = |t: &PayloadRecord| t.pull_spec.as_deref().is_some_and(|s| !s.is_empty());
    let older: Vec<&PayloadRecord> = own
        .iter()
        .skip_while(|t| t.name != p.name)
        .skip(1)
        .filter(|t| pushed(t))
        .collect();
    let previous = older
        .iter()
        .find(|t| t.phase == Phase::Accepted)
        .or(older.first())
        .map(|t| (*t).clone());
    let mut choices: Vec<String> = own
        .iter()
        .filter(|t| t.name != p.name && pushed(t))
        .map(|t| t.name.clone())
        .collect();
    if p.stable_of.is_none() {
        let stable = tags_of(app, STABLE).map_err(err)?;
        choices.extend(stable.into_iter().filter(pushed).map(|t| t.name));
    }
    Ok((choices, previous))
}

fn payload(app: &AppState, p: PayloadRecord) -> Result<PayloadPage, (StatusCode, String)> {
    let records = Records::new(&app.forge.state);
    let runs = records
        .runs(&p.name)
        .map_err(db)?
        .into_iter()
        .map(|r| RunRow {
            job: r.job.clone(),
            attempt: r.attempt,
            state: state_class(r.state),
            tests: r
                .tests
                .map(|t| {
                    format!(
                        "{} passed, {} failed, {} skipped",
                        t.passed, t.failures, t.skipped
                    )
                })
                .unwrap_or_default(),
            message: r.message.unwrap_or_default(),
            dir: r.dir.map(|d| format!("{d}/{}", r.id)).unwrap_or_default(),
        })
        .collect();
    let (upgrades_to, upgrades_from) =
        upgrades_to_and_from(&p.name, records.upgrades_of(&p.name).map_err(db)?);
    let pull_spec = p.pull_spec.clone().unwrap_or_default();
    let published = records
        .publications(&p.name)
        .map_err(db)?
        .into_iter()
        .map(|d| PublishedRow {
            links: published_links(&p.name, &d),
            kind: d.kind,
            location: d.location,
            detail: d.detail,
        })
        .collect();
    Ok(PayloadPage {
        published,
        bug_url: bug_url(&p),
        channels: p.channels.join(", "),
        pull_spec,
        runs,
        upgrades_to,
        upgrades_from,
        changelog: None,
        changelog_note: String::new(),
        from_choices: Vec::new(),
        from_selected: String::new(),
        p,
    })
}

/// Links to what this server serves of a publication: the signature (`/signatures/…`), the
/// tools (`/tools/<release>/<file>`).
fn published_links(name: &str, d: &release::state::Publication) -> Vec<(String, String)> {
    let path = std::path::Path::new(&d.location);
    let file = |p: &std::path::Path| p.file_name().and_then(|f| f.to_str()).map(str::to_string);
    match d.kind.as_str() {
        "signature" => match (path.parent().and_then(file), file(path)) {
            (Some(dir), Some(f)) => vec![(format!("/signatures/{dir}/{f}"), f)],
            _ => Vec::new(),
        },
        "tools" => {
            let mut files: Vec<String> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|f| crate::tools::servable(f))
                .collect();
            files.sort();
            files
                .into_iter()
                .map(|f| (format!("/tools/{name}/{f}"), f))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A new okd-project/okd issue, prefilled with the release's version, digest and platform.
fn bug_url(p: &PayloadRecord) -> String {
    let body = format!(
        "### Version\n\n{}\n\n### Release image\n\n{}\n\n### Digest\n\n{}\n\n### Platform\n\n(aws, gcp, metal, vsphere, none, …)\n\n### What happened\n\n",
        p.name,
        p.pull_spec.as_deref().unwrap_or(""),
        p.digest.as_deref().unwrap_or(""),
    );
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("labels", "kind/bug")
        .append_pair("title", &format!("[{}] ", p.name))
        .append_pair("body", &body)
        .finish();
    format!("https://github.com/okd-project/okd/issues/new?{q}")
}

#[cfg(test)]
mod tests {
    use super::{age, changelog_html};
    use payload::diff::{OsChange, ReleaseDiff, Side};
    use payload::rpmdb::{Changed, Package, PackageDiff};

    #[test]
    fn the_changelog_shows_the_os_change_and_its_packages() {
        let side = |name: &str| Side {
            name: name.into(),
            created: "2026-12-07T00:00:00Z".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            promoted_from: None,
        };
        let pkg = |name: &str, version: &str| Package {
            name: name.into(),
            arch: "x86_64".into(),
            epoch: None,
            version: version.into(),
            release: "1.el10".into(),
        };
        let mut d = ReleaseDiff {
            from: side("4.17.0-0.okd-scos-2026-12-06-000000"),
            to: side("4.17.0-0.okd-scos-2026-12-07-000000"),
            upgrade_from: false,
            components: Vec::new(),
            os: Some(OsChange {
                tag: "stream-coreos".into(),
                display_name: "CentOS Stream CoreOS".into(),
                version: "10.0.20250705-0".into(),
                from: Some("10.0.20250628-0".into()),
                image_ref: "q.io/okd/c@sha256:2".into(),
                from_image_ref: Some("q.io/okd/c@sha256:1".into()),
                packages: Some(PackageDiff {
                    added: vec![pkg("cri-o", "1.31.1")],
                    removed: vec![pkg("<zincati>", "0.0.30")],
                    changed: vec![Changed {
                        name: "kernel".into(),
                        arch: "x86_64".into(),
                        from: "6.12.0-55.el10".into(),
                        to: "6.12.0-60.el10".into(),
                    }],
                }),
                packages_note: None,
            }),
            new_images: Vec::new(),
            removed_images: Vec::new(),
            rebuilt_images: Vec::new(),
            updated_images: Vec::new(),
            warnings: Vec::new(),
        };
        let html = changelog_html(&d);
        for text in [
            "CentOS Stream CoreOS 10.0.20250705-0 (<code>stream-coreos</code>) (upgraded from 10.0.20250628-0)",
            "Packages: 1 changed, 1 added, 1 removed",
            "<li>kernel.x86_64 6.12.0-55.el10 → 6.12.0-60.el10</li>",
            "<li>added cri-o-1.31.1-1.el10.x86_64</li>",
            "<li>removed &#60;zincati&#62;-0.0.30-1.el10.x86_64</li>",
        ] {
            assert!(html.contains(text), "{text} in:\n{html}");
        }
        assert!(!html.contains("No changes."), "{html}");
        // The same OS image: said to be unchanged, no package list.
        let os = d.os.as_mut().unwrap();
        os.from_image_ref = Some(os.image_ref.clone());
        os.from = Some(os.version.clone());
        os.packages = None;
        let html = changelog_html(&d);
        assert!(
            html.contains("10.0.20250705-0 (<code>stream-coreos</code>) (unchanged)"),
            "{html}"
        );
        assert!(!html.contains("Packages:"), "{html}");
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(0, 12), "12s");
        assert_eq!(age(0, 40 * 60 + 5), "40m");
        assert_eq!(age(0, 5 * 3600 + 12 * 60), "5h12m");
        assert_eq!(age(0, 3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(age(10, 0), "0s");
    }
}
