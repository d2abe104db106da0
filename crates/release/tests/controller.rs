//! The release controller end to end on embedded defaults: real payloads assembled from real
//! images in an OCI layout store, a real SQLite state file, and time from an injected clock. The
//! jobs run through a scripted executor (the executors themselves are tested for real in
//! tests/jobs.rs and tests/podman.rs), so the tests are deterministic and never sleep.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use build::run::Forge;
use futures_util::future::BoxFuture;
use oci::Layout;
use release::controller::{Clock, Controller, CrashHook};
use release::jobs::{Execution, Executor, Invocation, JobState};
use release::lifecycle::{Override, Phase};
use release::state::{Records, RunState};
use testkit::release::ReleaseSet;

const STREAM: &str = "okd-scos-4.17";
const T0: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z

struct FakeClock(AtomicI64);

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl FakeClock {
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

/// Succeeds every run unless told otherwise; records what each run saw.
#[derive(Default)]
struct Scripted {
    /// Per job: results of the next runs (true: success); then success.
    results: Mutex<HashMap<String, VecDeque<bool>>>,
    /// Per run: job name and its environment.
    seen: Mutex<Vec<(String, BTreeMap<String, String>)>>,
}

impl Scripted {
    fn fail(&self, job: &str, times: usize) {
        self.results
            .lock()
            .unwrap()
            .entry(job.into())
            .or_default()
            .extend(std::iter::repeat_n(false, times));
    }

    fn runs_of(&self, job: &str) -> Vec<BTreeMap<String, String>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(j, _)| j == job)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

impl Executor for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn execute<'a>(&'a self, inv: Invocation<'a>) -> BoxFuture<'a, Execution> {
        let job = inv.run.job.name.clone();
        let env = inv.env("/artifacts", "/shared");
        let ok = self
            .results
            .lock()
            .unwrap()
            .get_mut(&job)
            .and_then(VecDeque::pop_front)
            .unwrap_or(true);
        self.seen.lock().unwrap().push((job, env));
        Box::pin(async move {
            Execution {
                state: if ok {
                    JobState::Succeeded
                } else {
                    JobState::Failed
                },
                exit_code: Some(if ok { 0 } else { 1 }),
                notes: Vec::new(),
            }
        })
    }
}

struct Site {
    dir: tempfile::TempDir,
    forge: Arc<Forge>,
    clock: Arc<FakeClock>,
    jobs: Arc<Scripted>,
}

const JOBS: &str = r#"
      verify:
        e2e: { command: [./e2e.sh], max_retries: 1 }
        upgrade: { command: [./upgrade.sh], upgrade_from: previous, optional: true }"#;

impl Site {
    /// A site whose stream has the standard images and this `release:` block body.
    fn new(release: &str) -> Site {
        Site::with_streams(release, "")
    }

    /// [`Site::new`], with more streams (`streams:` entries, indented by two).
    fn with_streams(release: &str, more: &str) -> Site {
        Site::with_config("", release, more)
    }

    /// [`Site::with_streams`], with more top-level settings (`top`, whole lines).
    fn with_config(top: &str, release: &str, more: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "{top}store: var/store\nstate: var/forge.db\nleases: {{ quota: 1 }}\nvariants: {{ okd-scos: {{}} }}\n\
             streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n    \
             release:\n      name: 4.17.0-0.okd-scos\n{release}\n{more}"
        );
        let path = dir.path().join("forge.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = build::config::load(&path).unwrap();
        let forge = Forge::open(config, Default::default()).unwrap();
        let site = Site {
            dir,
            forge: Arc::new(forge),
            clock: Arc::new(FakeClock(AtomicI64::new(T0))),
            jobs: Arc::new(Scripted::default()),
        };
        site.promote(ReleaseSet::standard("amd64"));
        site
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("var/store")
    }

    /// Writes `set` into the store and promotes it into the stream, as builds do.
    fn promote(&self, set: ReleaseSet) {
        let inputs = set.write(&self.store());
        for (tag, c) in &inputs.components {
            self.forge
                .state
                .promote(STREAM, tag, &c.digest.to_string(), None)
                .unwrap();
        }
    }

    /// The stream with a changed `cli` image (new content, new hash).
    fn change(&self, n: usize) {
        let set = ReleaseSet::standard("amd64").edit("cli", |i| {
            i.label("io.openshift.build.commit.id", &format!("{n:040}"))
        });
        self.promote(set);
    }

    fn controller(&self) -> Arc<Controller> {
        self.controller_with(None)
    }

    fn controller_with(&self, crash: Option<CrashHook>) -> Arc<Controller> {
        let mut c = Controller::new(
            self.forge.clone(),
            self.jobs.clone(),
            self.dir.path().join("var/jobs"),
            self.clock.clone(),
        )
        .unwrap()
        .with_check(
            "pushed",
            Arc::new(|_forge, p| {
                Box::pin(async move {
                    release::controller::CheckOutcome {
                        passed: p.digest.is_some(),
                        findings: Vec::new(),
                    }
                })
            }),
        );
        if let Some(hook) = crash {
            c = c.with_crash_hook(hook);
        }
        Arc::new(c)
    }

    fn records(&self) -> Records<'_> {
        Records::new(&self.forge.state)
    }

    fn phases(&self) -> Vec<(String, Phase)> {
        let mut v: Vec<_> = self
            .records()
            .payloads(STREAM)
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.phase))
            .collect();
        v.reverse();
        v
    }

    fn event_kinds(&self, payload: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .records()
            .events(None, Some(payload), 1000)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        v.reverse();
        v
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

const FIRST: &str = "4.17.0-0.okd-scos-2026-11-24-000000";

#[test]
fn a_payload_is_cut_verified_and_accepted_then_the_next_upgrades_from_it() {
    let site = Site::new(&format!("      min_interval: 1h{JOBS}"));
    let rt = rt();
    let c = site.controller();
    let report = rt.block_on(c.settle()).unwrap();
    assert_eq!(report.streams[STREAM], format!("created {FIRST}"));
    assert_eq!(
        site.phases(),
        [(FIRST.to_string(), Phase::Accepted)],
        "{:#?}",
        site.records().runs(FIRST).unwrap()
    );

    // The payload is in the store under its name and reads back as a release.
    let p = site.records().payload(FIRST).unwrap().unwrap();
    let layout = Layout::open(site.store()).unwrap();
    assert!(layout.tags().unwrap().contains(&FIRST.to_string()));
    let digest = p.digest.clone().unwrap();
    assert_eq!(
        p.pull_spec.as_deref(),
        Some(format!("okd-forge.local/okd@{digest}").as_str())
    );
    let info = rt
        .block_on(payload::info::load(
            &site.forge.sources,
            &format!("docker://{}", p.pull_spec.as_ref().unwrap())
                .parse()
                .unwrap(),
            None,
        ))
        .unwrap();
    assert_eq!(info.name(), FIRST);
    assert_eq!(p.inputs.len(), ReleaseSet::standard("amd64").images.len());

    // The blocking job ran with ci-operator's environment; the upgrade job had nothing to
    // upgrade from and passed without running, as the release controller does.
    let e2e = site.jobs.runs_of("e2e");
    assert_eq!(e2e.len(), 1);
    assert_eq!(
        e2e[0]["RELEASE_IMAGE_LATEST"],
        *p.pull_spec.as_ref().unwrap()
    );
    assert_eq!(e2e[0]["JOB_NAME"], format!("{FIRST}-e2e"));
    assert!(e2e[0]["OKD_FORGE_STORE"].ends_with("var/store"));
    assert!(site.jobs.runs_of("upgrade").is_empty());
    let runs = site.records().runs(FIRST).unwrap();
    let upgrade = runs.iter().find(|r| r.job == "upgrade").unwrap();
    assert_eq!(upgrade.state, RunState::Skipped);
    assert!(upgrade
        .message
        .as_ref()
        .unwrap()
        .contains("no Accepted payload"));
    // The built-in checks ran and passed on the real payload: the OS image is CentOS Stream
    // CoreOS, the other fixtures have no os-release.
    let check = |name: &str| runs.iter().find(|r| r.job == name).unwrap().clone();
    assert_eq!(check("consistency").state, RunState::Succeeded);
    let policy = check("base-image-policy");
    assert_eq!(policy.state, RunState::Succeeded, "{policy:?}");
    let notes = policy.message.unwrap();
    assert!(
        notes.contains("OS bases: no os-release (5 images), scos 9 (1 image)"),
        "{notes}"
    );
    // The event log: creation, then the three checks and both jobs (in any order), then the
    // verdict.
    let kinds = site.event_kinds(FIRST);
    assert_eq!(kinds[..2], ["created", "ready"]);
    assert_eq!(kinds.last().map(String::as_str), Some("accepted"));
    let mut middle = kinds[2..kinds.len() - 1].to_vec();
    middle.sort();
    assert_eq!(
        middle,
        ["run-finished"; 5]
            .into_iter()
            .chain(["run-started"; 5])
            .collect::<Vec<_>>()
    );

    // A pass with nothing new does nothing.
    let again = rt.block_on(c.settle()).unwrap();
    assert!(!again.changed(), "{again:?}");
    assert_eq!(again.streams[STREAM], "unchanged");

    // New content: not before min_interval; then the next payload upgrades from the first.
    site.change(1);
    site.clock.advance(600);
    let r = rt.block_on(c.settle()).unwrap();
    assert!(
        r.streams[STREAM].starts_with("waiting until 2026-11-24T01:00:00Z"),
        "{r:?}"
    );
    assert_eq!(
        c.next_due().unwrap(),
        Some(T0 + 3600),
        "the controller knows when to come back"
    );
    site.clock.advance(3000);
    rt.block_on(c.settle()).unwrap();
    let second = "4.17.0-0.okd-scos-2026-11-24-010000";
    assert_eq!(
        site.phases(),
        [
            (FIRST.to_string(), Phase::Accepted),
            (second.to_string(), Phase::Accepted)
        ]
    );
    let upgrade = site.jobs.runs_of("upgrade");
    assert_eq!(upgrade.len(), 1);
    assert_eq!(
        upgrade[0]["RELEASE_IMAGE_INITIAL"],
        *p.pull_spec.as_ref().unwrap()
    );
    assert_eq!(upgrade[0]["JOB_NAME"], format!("{second}-upgrade"));
}

#[test]
fn an_accepted_payload_is_published_to_a_floating_tag_and_inherited_by_another_stream() {
    const OKD: &str = "okd-4.17";
    let site = Site::with_streams(
        "      publish:
        tag: { tag_ref: scos-4.17 }
        okd: { stream: okd-4.17, exclude_tags: [cli, hyperkube] }",
        "  okd-4.17:\n    variant: okd-scos\n    branch: release-4.17\n    release: { name: 4.17.0-0.okd }\n",
    );
    // The target stream builds its own cli and hyperkube; inheritance must leave them alone.
    let own = ReleaseSet::standard("amd64")
        .edit("cli", |i| {
            i.label("io.openshift.build.commit.id", &"7".repeat(40))
        })
        .write(&site.store());
    let own_cli = own.components["cli"].digest.to_string();
    site.forge
        .state
        .promote(OKD, "cli", &own_cli, None)
        .unwrap();
    let own_hyperkube = own.components["hyperkube"].digest.to_string();
    site.forge
        .state
        .promote(OKD, "hyperkube", &own_hyperkube, None)
        .unwrap();

    let rt = rt();
    let c = site.controller();
    let report = rt.block_on(c.settle()).unwrap();
    let published: Vec<String> = report
        .actions
        .iter()
        .filter(|a| matches!(a, release::controller::Action::Published { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        published,
        [
            format!("{FIRST}: published (tag): tag scos-4.17 points at it"),
            format!("{FIRST}: published (okd): 6 image(s) copied into stream okd-4.17 (0 unchanged, 2 excluded)"),
        ]
    );
    let source = site.records().payload(FIRST).unwrap().unwrap();
    assert_eq!(source.phase, Phase::Accepted);

    // Every tag but the excluded ones, at the source payload's digests; the target's own cli and
    // hyperkube kept.
    let target: BTreeMap<String, String> = site
        .forge
        .state
        .stream_tags(OKD)
        .unwrap()
        .into_iter()
        .map(|t| (t.tag, t.digest))
        .collect();
    let mut expected: BTreeMap<String, String> = source
        .inputs
        .iter()
        .filter(|(t, _)| !["cli", "hyperkube"].contains(&t.as_str()))
        .map(|(t, d)| (t.clone(), d.clone()))
        .collect();
    expected.insert("cli".into(), own_cli.clone());
    expected.insert("hyperkube".into(), own_hyperkube);
    assert_eq!(target, expected);

    // The target stream cut and accepted its own payload from what it inherited.
    let okd = site.records().payloads(OKD).unwrap();
    assert_eq!(okd.len(), 1, "{okd:?}");
    assert_eq!(okd[0].name, "4.17.0-0.okd-2026-11-24-000000");
    assert_eq!(okd[0].phase, Phase::Accepted, "{:?}", okd[0].reason);
    assert_eq!(okd[0].inputs, expected);

    // The floating tag points at the Accepted payload.
    let layout = Layout::open(site.store()).unwrap();
    let tagged = layout
        .get_manifest(Some(&oci::Selector::Tag("scos-4.17".into())))
        .unwrap();
    assert_eq!(Some(tagged.digest.to_string()), source.digest);

    // Done once: another pass publishes nothing again.
    assert!(site
        .event_kinds(FIRST)
        .contains(&"published-okd".to_string()));
    let again = rt.block_on(c.settle()).unwrap();
    assert!(!again.changed(), "{again:?}");
}

/// The payload's name, `previous` and image-references as tag → digest, read back from the store.
fn read_back(site: &Site, pull_spec: &str) -> (String, Vec<String>, BTreeMap<String, String>) {
    let info = rt()
        .block_on(payload::info::load(
            &site.forge.sources,
            &format!("docker://{pull_spec}").parse().unwrap(),
            None,
        ))
        .unwrap();
    let refs = info
        .references
        .spec
        .tags
        .iter()
        .map(|t| {
            let from = t.from.as_ref().unwrap().name.clone();
            (t.name.clone(), from.rsplit_once('@').unwrap().1.to_string())
        })
        .collect();
    let previous = info.metadata.as_ref().unwrap().previous.clone();
    (info.name().to_string(), previous, refs)
}

#[test]
fn an_accepted_payload_is_promoted_by_hand_to_a_stable_release_with_its_upgrade_edges() {
    let site = Site::new(&format!("      min_interval: 1h{JOBS}"));
    let rt = rt();
    let c = site.controller();
    rt.block_on(c.settle()).unwrap();
    let first = site.records().payload(FIRST).unwrap().unwrap();

    let p = rt.block_on(c.promote(FIRST, None)).unwrap();
    assert_eq!(
        (p.name.as_str(), p.from.as_str(), p.promoted),
        ("4.17.0-okd-scos.0", FIRST, true)
    );
    assert!(
        p.previous.is_empty(),
        "nothing upgraded from a stable release yet"
    );
    // Restamped: its own name, every component image digest for digest, read back as a release.
    let (name, previous, refs) = read_back(&site, &p.pull_spec);
    let (_, _, first_refs) = read_back(&site, first.pull_spec.as_ref().unwrap());
    assert_eq!((name.as_str(), previous.len()), ("4.17.0-okd-scos.0", 0));
    assert_eq!(refs, first_refs);
    assert_ne!(Some(&p.pull_spec), first.pull_spec.as_ref());
    let layout = Layout::open(site.store()).unwrap();
    assert!(layout.tags().unwrap().contains(&p.name));
    let stable = site.records().payload(&p.name).unwrap().unwrap();
    assert_eq!(
        (stable.phase, stable.keep, stable.stable_of.as_deref()),
        (Phase::Accepted, true, Some(FIRST))
    );
    assert_eq!(site.event_kinds(&p.name), ["promoted"]);
    // Again: nothing new. A stable release is no payload to promote, and cuts nothing.
    let again = rt.block_on(c.promote(FIRST, None)).unwrap();
    assert_eq!(
        (again.name.as_str(), again.promoted),
        ("4.17.0-okd-scos.0", false)
    );
    let err = rt
        .block_on(c.promote(&p.name, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a stable release already"), "{err}");
    let quiet = rt.block_on(c.settle()).unwrap();
    assert!(!quiet.changed(), "{quiet:?}");

    // The next payload: its `previous` upgrade job starts from the newest Accepted payload, not
    // from the stable release.
    site.change(1);
    site.clock.advance(3600);
    rt.block_on(c.settle()).unwrap();
    let second = "4.17.0-0.okd-scos-2026-11-24-010000";
    assert_eq!(
        site.records().payload(second).unwrap().unwrap().phase,
        Phase::Accepted
    );
    assert_eq!(
        site.jobs.runs_of("upgrade")[0]["RELEASE_IMAGE_INITIAL"],
        *first.pull_spec.as_ref().unwrap()
    );
    // An upgrade run from the stable release into it succeeds (recorded as the controller
    // records runs): the next stable release has it in `previous`. A failed one does not count.
    let records = site.records();
    for (attempt, state) in [(1, RunState::Failed), (2, RunState::Succeeded)] {
        let id = records
            .start_run(
                &release::state::NewRun {
                    payload: second,
                    job: "upgrade-from-stable",
                    kind: release::state::RunKind::Job,
                    attempt,
                    initial: Some(&p.pull_spec),
                    dir: None,
                },
                T0 + 3700,
            )
            .unwrap()
            .unwrap();
        records
            .finish_run(
                id,
                &release::state::RunEnd {
                    state,
                    message: None,
                    tests: None,
                },
                T0 + 3800,
            )
            .unwrap();
    }
    let next = rt.block_on(c.promote(second, None)).unwrap();
    assert_eq!(next.name, "4.17.0-okd-scos.1");
    assert_eq!(next.previous, ["4.17.0-okd-scos.0"]);
    let (name, previous, _) = read_back(&site, &next.pull_spec);
    assert_eq!(
        (name.as_str(), previous),
        ("4.17.0-okd-scos.1", next.previous.clone())
    );
    // A name of one's own; one that exists is refused.
    let err = rt
        .block_on(c.promote(second, Some("4.17.0-okd-scos.0")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists already"), "{err}");
}

#[test]
fn every_period_promotes_a_stable_release_upgrade_tested_from_every_earlier_one() {
    const DAY: i64 = 86_400;
    let site = Site::new(
        "      verify:
        e2e: { command: [./e2e.sh] }
        upgrade: { command: [./upgrade.sh], upgrade_from: all_previous_stable, max_retries: 1 }
      promote: { every: 14d }",
    );
    let rt = rt();
    let c = site.controller();
    let stable = |n: usize| format!("4.17.0-okd-scos.{n}");
    let spec = |name: &str| {
        site.records()
            .payload(name)
            .unwrap()
            .unwrap()
            .pull_spec
            .unwrap()
    };

    // Period 1: the first payload has no stable release to upgrade from; it becomes .0 at once.
    let r = rt.block_on(c.settle()).unwrap();
    assert_eq!(
        r.promotion[STREAM],
        format!("promoted {FIRST} as {}", stable(0))
    );
    let s0 = c.records().payload(&stable(0)).unwrap().unwrap();
    assert_eq!(s0.channels, ["stable-4", "stable-4.17"]);
    let r = rt.block_on(c.settle()).unwrap();
    assert_eq!(r.promotion[STREAM], "next due 2026-12-08T00:00:00Z");
    assert_eq!(
        c.next_due().unwrap(),
        Some(T0 + 14 * DAY),
        "controller run wakes for it"
    );

    // Period 2: the upgrade from .0 is flaky: it fails, is retried after its backoff, passes.
    site.change(1);
    site.clock.advance(14 * DAY);
    site.jobs.fail("upgrade", 1);
    let r = rt.block_on(c.settle()).unwrap();
    assert_eq!(
        r.promotion[STREAM],
        "due; no Accepted payload newer than the last promoted one"
    );
    // Kept in the records for the dashboard and the API, with the time it became so.
    assert_eq!(
        c.records().promotion_status(STREAM).unwrap(),
        Some((r.promotion[STREAM].clone(), T0 + 14 * DAY))
    );
    let second = "4.17.0-0.okd-scos-2026-12-08-000000";
    assert_eq!(
        c.records().payload(second).unwrap().unwrap().phase,
        Phase::Ready
    );
    site.clock.advance(60);
    let r = rt.block_on(c.settle()).unwrap();
    assert_eq!(
        r.promotion[STREAM],
        format!("promoted {second} as {}", stable(1))
    );
    let upgrades = site.jobs.runs_of("upgrade");
    assert_eq!(upgrades.len(), 2, "one failed run, one retry");
    assert!(upgrades
        .iter()
        .all(|e| e["RELEASE_IMAGE_INITIAL"] == spec(&stable(0))));
    let (_, previous, _) = read_back(&site, &spec(&stable(1)));
    assert_eq!(
        previous,
        [stable(0)],
        "the edge appears once its run passed"
    );

    // Period 3: one upgrade run from each earlier stable release; .2 has both in `previous`.
    site.change(2);
    site.clock.advance(14 * DAY);
    let r = rt.block_on(c.settle()).unwrap();
    let third = "4.17.0-0.okd-scos-2026-12-22-000100";
    assert_eq!(
        r.promotion[STREAM],
        format!("promoted {third} as {}", stable(2))
    );
    let mut froms: Vec<String> = site.jobs.runs_of("upgrade")[2..]
        .iter()
        .map(|e| e["RELEASE_IMAGE_INITIAL"].clone())
        .collect();
    froms.sort();
    let mut want = vec![spec(&stable(0)), spec(&stable(1))];
    want.sort();
    assert_eq!(froms, want);
    let (name, previous, refs) = read_back(&site, &spec(&stable(2)));
    assert_eq!(name, stable(2));
    assert_eq!(previous, [stable(0), stable(1)]);
    let (_, _, third_refs) = read_back(&site, &spec(third));
    assert_eq!(refs, third_refs, "every component digest kept");
    // The runs of the third payload are named per source.
    let gates: Vec<String> = c
        .records()
        .runs(third)
        .unwrap()
        .iter()
        .filter(|r| r.job == "upgrade")
        .map(|r| format!("{} {}", r.attempt, r.state.as_str()))
        .collect();
    assert_eq!(gates, ["1 succeeded", "2 succeeded"]);

    // The upgrade edges between stable releases, with their evidence; the flaky run's failure is
    // kept as history.
    let edges = c.records().edges().unwrap();
    let summary: Vec<(String, String, Vec<bool>)> = edges
        .iter()
        .map(|e| {
            (
                e.from.clone(),
                e.to.clone(),
                e.runs.iter().map(|r| r.succeeded).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (stable(0), stable(1), vec![false, true]),
            (stable(0), stable(2), vec![true]),
            (stable(1), stable(2), vec![true]),
        ]
    );
    assert!(edges.iter().all(|e| e.tested() && e.blocked.is_none()));
    // Blocked by hand: still tested, now conditional with its risk; unblocked again.
    let url = "https://issues.redhat.com/browse/OKD-7";
    assert!(c
        .records()
        .block_edge(
            &stable(0),
            &stable(2),
            Some(("etcd fails to migrate", Some(url))),
            T0
        )
        .unwrap());
    let blocked = c.records().edges().unwrap();
    let e = blocked
        .iter()
        .find(|e| e.to == stable(2) && e.from == stable(0))
        .unwrap();
    let block = e.blocked.as_ref().unwrap();
    assert_eq!(
        (block.reason.as_str(), block.url.as_deref()),
        ("etcd fails to migrate", Some(url))
    );
    assert!(e.tested());
    assert!(site
        .event_kinds(&stable(2))
        .contains(&"edge-blocked".to_string()));
    assert!(c
        .records()
        .block_edge(&stable(0), &stable(2), None, T0)
        .unwrap());
    assert!(c
        .records()
        .edges()
        .unwrap()
        .iter()
        .all(|e| e.blocked.is_none()));
}

/// A stable release of the previous minor promoted after this minor's stable release: the
/// controller runs the missing upgrade into the stable release itself (retried when flaky) until
/// the edge has evidence.
#[test]
fn an_edge_into_an_existing_stable_release_is_tested_once_its_source_is_promoted() {
    const OLD: &str = "okd-scos-4.16";
    let site = Site::with_streams(
        "      verify:
        upgrade: { command: [./upgrade.sh], upgrade_from: all_previous_stable, max_retries: 1 }
      promote: { every: 14d }",
        "  okd-scos-4.16:\n    variant: okd-scos\n    branch: release-4.16\n    release: { name: 4.16.0-0.okd-scos }\n",
    );
    let set = ReleaseSet::standard("amd64").write(&site.store());
    for (tag, c) in &set.components {
        site.forge
            .state
            .promote(OLD, tag, &c.digest.to_string(), None)
            .unwrap();
    }
    let rt = rt();
    let c = site.controller();
    let spec = |name: &str| {
        site.records()
            .payload(name)
            .unwrap()
            .unwrap()
            .pull_spec
            .unwrap()
    };
    rt.block_on(c.settle()).unwrap();
    let new = "4.17.0-okd-scos.0";
    assert_eq!(
        site.records().payload(new).unwrap().unwrap().phase,
        Phase::Accepted
    );
    assert!(
        site.jobs.runs_of("upgrade").is_empty(),
        "nothing to upgrade from yet"
    );

    // 4.16 gets its stable release later; the edge into 4.17.0-okd-scos.0 has no evidence.
    let old_payload = site.records().payloads(OLD).unwrap()[0].name.clone();
    let old = rt.block_on(c.promote(&old_payload, None)).unwrap().name;
    assert_eq!(old, "4.16.0-okd-scos.0");
    site.jobs.fail("upgrade", 1);
    rt.block_on(c.settle()).unwrap();
    assert_eq!(
        c.next_due().unwrap(),
        Some(T0 + 60),
        "the retry is due after its backoff"
    );
    site.clock.advance(60);
    rt.block_on(c.settle()).unwrap();
    let runs = site.jobs.runs_of("upgrade");
    assert_eq!(runs.len(), 2, "a failed run and its retry");
    for env in &runs {
        assert_eq!(env["RELEASE_IMAGE_INITIAL"], spec(&old));
        assert_eq!(
            env["RELEASE_IMAGE_LATEST"],
            spec(new),
            "the stable release is tested"
        );
    }
    let edges: Vec<(String, String, Vec<bool>)> = c
        .records()
        .edges()
        .unwrap()
        .into_iter()
        .map(|e| (e.from, e.to, e.runs.iter().map(|r| r.succeeded).collect()))
        .collect();
    assert_eq!(edges, [(old.clone(), new.to_string(), vec![false, true])]);

    // With the evidence there, nothing more is launched or due.
    let again = rt.block_on(c.settle()).unwrap();
    assert!(!again.changed(), "{again:?}");
    assert_eq!(site.jobs.runs_of("upgrade").len(), 2);
}

#[test]
fn failed_jobs_are_retried_with_backoff_then_the_payload_is_rejected() {
    let site = Site::new(JOBS);
    site.jobs.fail("e2e", 2);
    let rt = rt();
    let c = site.controller();
    rt.block_on(c.settle()).unwrap();
    assert_eq!(site.phases(), [(FIRST.to_string(), Phase::Ready)]);
    // The retry waits for its backoff (1 minute after the first failure).
    assert_eq!(c.next_due().unwrap(), Some(T0 + 60));
    site.clock.advance(59);
    rt.block_on(c.settle()).unwrap();
    assert_eq!(site.jobs.runs_of("e2e").len(), 1, "not before the backoff");
    site.clock.advance(1);
    rt.block_on(c.settle()).unwrap();
    assert_eq!(site.jobs.runs_of("e2e").len(), 2);
    assert_eq!(site.phases(), [(FIRST.to_string(), Phase::Rejected)]);
    let p = site.records().payload(FIRST).unwrap().unwrap();
    assert_eq!(p.reason.as_deref(), Some("e2e failed 2 time(s)"));

    // A maintainer knows it was a flake: accepted by hand, recorded as an override.
    let before = site
        .records()
        .decide_by_hand(
            FIRST,
            &Override::Accept("known flake, TRT-123".into()),
            T0 + 100,
        )
        .unwrap();
    assert_eq!(before, Phase::Rejected);
    let p = site.records().payload(FIRST).unwrap().unwrap();
    assert_eq!(p.phase, Phase::Accepted);
    assert_eq!(
        p.decided_by_hand,
        Some(Override::Accept("known flake, TRT-123".into()))
    );
    let last = &site.records().events(None, Some(FIRST), 1).unwrap()[0];
    assert_eq!(last.kind, "override");
    assert_eq!(
        last.message,
        "Rejected → Accepted by hand: known flake, TRT-123"
    );
    // The controller leaves a decision by hand alone.
    rt.block_on(c.settle()).unwrap();
    assert_eq!(site.phases(), [(FIRST.to_string(), Phase::Accepted)]);
}

#[test]
fn one_retry_that_passes_accepts() {
    let site = Site::new(JOBS);
    site.jobs.fail("e2e", 1);
    let rt = rt();
    let c = site.controller();
    rt.block_on(c.settle()).unwrap();
    site.clock.advance(60);
    rt.block_on(c.settle()).unwrap();
    assert_eq!(site.phases(), [(FIRST.to_string(), Phase::Accepted)]);
    let states: Vec<RunState> = site
        .records()
        .runs(FIRST)
        .unwrap()
        .into_iter()
        .filter(|r| r.job == "e2e")
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [RunState::Failed, RunState::Succeeded]);
}

#[test]
fn max_unready_holds_new_payloads_back_while_one_awaits_verification() {
    let site = Site::new(&format!("      max_unready: 1{JOBS}"));
    site.jobs.fail("e2e", 1);
    let rt = rt();
    let c = site.controller();
    rt.block_on(c.settle()).unwrap();
    site.change(1);
    site.clock.advance(10);
    let r = rt.block_on(c.settle()).unwrap();
    assert_eq!(
        r.streams[STREAM],
        "blocked: 1 payload(s) await verification (max_unready: 1)"
    );
    assert_eq!(site.phases().len(), 1);
    // Once the first is accepted (its retry passes), the new content is cut.
    site.clock.advance(60);
    rt.block_on(c.settle()).unwrap();
    rt.block_on(c.settle()).unwrap();
    let phases = site.phases();
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert_eq!(phases[0].1, Phase::Accepted);
    assert_eq!(phases[1].1, Phase::Accepted);
}

#[test]
fn an_ocp_image_in_the_stream_is_rejected_by_the_base_image_policy() {
    let site = Site::new(JOBS);
    site.promote(ReleaseSet::standard("amd64").edit("cli", |i| {
        i.label("com.redhat.component", "ose-cli-container")
    }));
    let rt = rt();
    rt.block_on(site.controller().settle()).unwrap();
    let p = site.records().payload(FIRST).unwrap().unwrap();
    assert_eq!(p.phase, Phase::Rejected);
    assert_eq!(
        p.reason.as_deref(),
        Some("base-image-policy failed 1 time(s)")
    );
    let runs = site.records().runs(FIRST).unwrap();
    let policy = runs.iter().find(|r| r.job == "base-image-policy").unwrap();
    let message = policy.message.as_deref().unwrap();
    assert!(
        message.starts_with("tag 'cli' (okd-forge.local/okd@sha256:")
            && message.contains("label com.redhat.component=ose-cli-container"),
        "{message}"
    );
}

#[test]
fn jobs_take_leases_from_the_configured_pools() {
    let site = Site::new(
        "      verify:\n        a: { command: [a], leases: [quota] }\n        b: { command: [b], leases: [quota] }",
    );
    let rt = rt();
    rt.block_on(site.controller().settle()).unwrap();
    assert_eq!(site.phases(), [(FIRST.to_string(), Phase::Accepted)]);
    for job in ["a", "b"] {
        let runs = site.jobs.runs_of(job);
        assert_eq!(runs.len(), 1);
        assert_eq!(
            runs[0]["LEASED_RESOURCE"], "quota-0",
            "one lease, one holder at a time"
        );
    }
}

#[test]
fn a_payload_that_cannot_be_assembled_fails() {
    let site = Site::new(JOBS);
    // A stream without the cluster-version-operator base image.
    site.forge
        .state
        .transaction(|tx| {
            tx.execute(
                "DELETE FROM stream_tags WHERE tag = 'cluster-version-operator'",
                [],
            )
        })
        .unwrap();
    let rt = rt();
    let c = site.controller();
    rt.block_on(c.settle()).unwrap();
    let p = site.records().payload(FIRST).unwrap().unwrap();
    assert_eq!(p.phase, Phase::Failed);
    let reason = p.reason.unwrap();
    assert!(reason.contains("cluster-version-operator"), "{reason}");
    assert!(site.jobs.runs_of("e2e").is_empty());
    // Its content is not cut again; new content is.
    let r = rt.block_on(c.settle()).unwrap();
    assert_eq!(r.streams[STREAM], "unchanged");
    assert!(matches!(
        site.records()
            .decide_by_hand(FIRST, &Override::Accept("x".into()), T0),
        Err(release::state::RecordError::CannotOverride { .. })
    ));
}

#[test]
fn garbage_collection_removes_old_payloads_from_the_store_and_the_records() {
    let site = Site::new("      expires: 1h\n      verify:\n        e2e: { command: [./e2e.sh] }");
    let rt = rt();
    let c = site.controller();
    // Eight accepted payloads, an hour apart, the first one promoted, the second one pinned.
    for n in 0..8 {
        if n > 0 {
            site.change(n);
            site.clock.advance(3600);
        }
        rt.block_on(c.settle()).unwrap();
        if n == 0 {
            rt.block_on(c.promote(FIRST, None)).unwrap();
        }
        if n == 1 {
            let name = "4.17.0-0.okd-scos-2026-11-24-010000";
            site.records().keep(name, true, T0).unwrap();
        }
    }
    let stable = "4.17.0-okd-scos.0";
    let names: Vec<String> = site
        .phases()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != stable)
        .collect();
    // Kept: the newest five, and the pinned one; the first and third (older than 1h) are gone.
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(!names.contains(&FIRST.to_string()));
    assert!(names.contains(&"4.17.0-0.okd-scos-2026-11-24-010000".to_string()));
    assert!(!names.contains(&"4.17.0-0.okd-scos-2026-11-24-020000".to_string()));
    let tags = Layout::open(site.store()).unwrap().tags().unwrap();
    assert!(!tags.contains(&FIRST.to_string()));
    for n in &names {
        assert!(tags.contains(n), "{n} still in the store");
    }
    let removed = site.event_kinds(FIRST);
    assert_eq!(removed.last().map(String::as_str), Some("removed"));
    assert!(site.records().runs(FIRST).unwrap().is_empty());
    // The stable release promoted from the first one is never collected.
    let kept = site.records().payload(stable).unwrap().unwrap();
    assert_eq!(kept.stable_of.as_deref(), Some(FIRST));
    assert!(tags.contains(&stable.to_string()));
}

/// What a converged site looks like, for comparing runs with and without a crash.
fn summary(site: &Site) -> Vec<String> {
    let mut out = Vec::new();
    for (name, phase) in site.phases() {
        out.push(format!("{name} {phase}"));
        let mut counted: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let runs = site.records().runs(&name).unwrap();
        for r in &runs {
            if r.state != RunState::Interrupted {
                counted
                    .entry(r.job.clone())
                    .or_default()
                    .push(r.state.as_str());
            }
        }
        out.push(format!("{counted:?}"));
        let mut kinds = site.event_kinds(&name);
        kinds.retain(|k| !k.starts_with("run-"));
        out.push(kinds.join(","));
    }
    out.push(format!(
        "{:?}",
        Layout::open(site.store())
            .unwrap()
            .tags()
            .unwrap()
            .into_iter()
            .filter(|t| t.starts_with("4.17"))
            .collect::<Vec<_>>()
    ));
    out
}

/// Two passes to quiet: the first payload accepted, then new content and a second payload,
/// upgrade-tested from the first. Each pass runs on a controller with `hook`; when it crashes, a
/// new controller resumes, as after a restart. Whether a crash happened.
fn crash_and_resume(site: &Site, hook: &CrashHook, rt: &tokio::runtime::Runtime) -> bool {
    let mut crashed = false;
    for round in 0..2 {
        if round == 1 {
            site.change(1);
            site.clock.advance(3600);
        }
        let c = site.controller_with(Some(hook.clone()));
        if rt.block_on(c.settle()).is_err() {
            crashed = true;
            rt.block_on(c.wait());
            drop(c);
            rt.block_on(site.controller().settle()).unwrap();
        }
    }
    crashed
}

#[test]
fn a_crash_between_any_two_steps_then_a_resume_converges() {
    let rt = rt();
    // A run without a crash counts the steps.
    let site = Site::new(JOBS);
    let steps = Arc::new(AtomicUsize::new(0));
    let counter = steps.clone();
    let hook: CrashHook = Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        false
    });
    assert!(!crash_and_resume(&site, &hook, &rt));
    let want = summary(&site);
    assert_eq!(
        site.phases().iter().map(|p| p.1).collect::<Vec<_>>(),
        [Phase::Accepted, Phase::Accepted]
    );
    let total = steps.load(Ordering::SeqCst);
    assert!(total >= 12, "{total} steps");

    for k in 1..=total {
        let site = Site::new(JOBS);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let hook: CrashHook = Arc::new(move |_| counter.fetch_add(1, Ordering::SeqCst) + 1 == k);
        assert!(crash_and_resume(&site, &hook, &rt), "step {k}: no crash");
        assert_eq!(summary(&site), want, "crash at step {k}");
        assert_no_leftovers(&site.store());
    }
}

fn assert_no_leftovers(store: &Path) {
    for e in std::fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains(".tmp") && !name.starts_with('.'), "{name}");
    }
}

/// A stable release is published as `publish:` asks, against real peers: mirrored from the
/// layout store to a Distribution registry (components by digest into the content repository,
/// which the release names them by), signed with a key gpg made (gpg verifies the signature and
/// the tools' checksums), its tools extracted; every payload carries the verification ConfigMap.
/// With the registry down, the promotion stands, the failure is recorded, and a later pass
/// publishes what is missing.
#[test]
fn a_promoted_release_is_mirrored_signed_and_its_tools_published() {
    let mut registry = testkit::RegistryServer::start();
    let gpg = testkit::gpg::Gpg::new("OKD test signer <signer@okd-forge.invalid>", None);
    let keys = tempfile::tempdir().unwrap();
    let key = gpg.export(
        "--export-secret-keys",
        &["--armor"],
        &keys.path().join("key.asc"),
    );
    let host = registry.host();
    let top = format!(
        "publish:\n  release: {host}/okd/scos-release\n  content: {host}/okd/scos-content\n  \
         signing: {{ key: {key}, url: 'http://127.0.0.1:8080/signatures' }}\n  tools: var/tools\n"
    );
    let site = Site::with_config(&top, &format!("      min_interval: 1h{JOBS}"), "");
    site.promote(ReleaseSet::standard("amd64").edit("cli", |i| {
        i.add_to_top(
            testkit::release::Entry::file("usr/bin/oc", b"#!/bin/sh\necho oc\n".repeat(64))
                .mode(0o755),
        )
    }));
    let rt = rt();
    let c = site.controller();
    rt.block_on(c.settle()).unwrap();
    let first = site.records().payload(FIRST).unwrap().unwrap();
    assert_eq!(first.phase, Phase::Accepted);
    // Every payload trusts the key and the store.
    let info = |spec: &str| {
        rt.block_on(payload::info::load(
            &site.forge.sources,
            &format!("docker://{spec}").parse().unwrap(),
            None,
        ))
        .unwrap()
    };
    let cm = &info(first.pull_spec.as_ref().unwrap()).files[payload::signature::CONFIG_MAP_FILE];
    let cm = String::from_utf8(cm.data.clone()).unwrap();
    assert!(
        cm.contains("store-okd-forge: \"http://127.0.0.1:8080/signatures\"")
            && cm.contains("BEGIN PGP PUBLIC KEY BLOCK")
            && cm.contains(payload::signature::VERIFICATION_ANNOTATION),
        "{cm}"
    );

    // The registry is down: promoted all the same, publishing recorded as failed.
    registry.stop();
    let p = rt.block_on(c.promote(FIRST, None)).unwrap();
    let err = p.publish_error.clone().expect("publishing fails");
    assert!(err.contains(&host), "{err}");
    assert!(p.published.is_empty(), "{:?}", p.published);
    assert!(site
        .event_kinds(&p.name)
        .contains(&"publish-failed".to_string()));

    // Back up: the next pass publishes it.
    registry.restart();
    let report = rt.block_on(c.settle()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let published = site.records().publications(&p.name).unwrap();
    let kinds: Vec<&str> = published.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["mirror", "signature", "tools"]);
    let release_ref = format!("{host}/okd/scos-release:{}", p.name);
    assert_eq!(published[0].location, release_ref);

    // The published release is the stable release, digest for digest, and names its images in
    // the content repository, where they are.
    let digest = p.pull_spec.rsplit_once('@').unwrap().1.to_string();
    assert_eq!(
        testkit::skopeo_digest(&format!("docker://{release_ref}")),
        digest
    );
    let stable = info(&p.pull_spec);
    assert!(!stable.references.spec.tags.is_empty());
    for t in &stable.references.spec.tags {
        let spec = &t.from.as_ref().unwrap().name;
        let (repo, d) = spec.rsplit_once('@').unwrap();
        assert_eq!(repo, format!("{host}/okd/scos-content"), "{}", t.name);
        assert_eq!(
            testkit::skopeo_digest(&format!("docker://{spec}")),
            d,
            "{}",
            t.name
        );
    }

    // The signature: gpg verifies it and reads back the release's digest and published name.
    let hex = digest.trim_start_matches("sha256:");
    let sig = site
        .dir
        .path()
        .join(format!("var/signatures/sha256={hex}/signature-1"));
    assert_eq!(published[1].location, sig.display().to_string());
    let json: serde_json::Value =
        serde_json::from_slice(&gpg.run(&["--decrypt", &sig.display().to_string()])).unwrap();
    assert_eq!(
        json["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        json["critical"]["identity"]["docker-reference"],
        release_ref.as_str()
    );

    // The tools: oc, stamped archive, checksums signed.
    let tools = site.dir.path().join("var/tools").join(&p.name);
    let archive = format!("openshift-client-linux-{}.tar.gz", p.name);
    let sums = std::fs::read_to_string(tools.join("sha256sum.txt")).unwrap();
    let bytes = std::fs::read(tools.join(&archive)).unwrap();
    let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(sums.contains(&format!("{sha}  {archive}")), "{sums}");
    let asc = tools.join("sha256sum.txt.asc").display().to_string();
    let sums_path = tools.join("sha256sum.txt").display().to_string();
    let status =
        String::from_utf8(gpg.run(&["--status-fd", "1", "--verify", &asc, &sums_path])).unwrap();
    assert!(
        status.contains(&format!("VALIDSIG {}", gpg.fingerprint)),
        "{status}"
    );
    assert!(!tools.with_file_name(format!(".{}.tmp", p.name)).exists());

    // Done: publishing again changes nothing.
    let again = rt.block_on(c.publish_stable(&p.name)).unwrap();
    assert_eq!(again, published);
    let quiet = rt.block_on(c.settle()).unwrap();
    assert!(!quiet.changed(), "{quiet:?}");
}
