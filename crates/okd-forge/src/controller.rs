//! `okd-forge controller run|sync`, and the payload records: `okd-forge release
//! list|show|accept|reject|keep|promote|edges|block-edge`.

use std::sync::Arc;
use std::time::Duration;

use ::release::controller::{rfc3339, Controller, Report, SystemClock};
use ::release::jobs::{Executor, KubernetesExecutor, LocalExecutor, PodmanExecutor};
use ::release::lifecycle::Override;
use ::release::state::Records;
use anyhow::{bail, Context, Result};
use build::config::Config;
use build::run::{self, Forge};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{presets, Table};
use serde_json::json;

use crate::config::ConfigFile;
use crate::image::{print_json, Access};
use crate::Output;

/// `controller` subcommands.
#[derive(Subcommand)]
pub enum ControllerCommand {
    /// Reconcile until stopped: cut payloads when streams change, verify, decide, collect garbage.
    Run(RunArgs),
    /// One reconcile: cut what is due, run the due jobs to their end, record the verdicts, collect
    /// garbage; then exit. Running it again with nothing new changes nothing.
    Sync(SyncArgs),
}

/// Where jobs run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    /// Local processes, in the job's run directory.
    Local,
    /// Podman containers of each job's `image` (`podman --runtime runc run`).
    Podman,
    /// One Kubernetes pod per run, of the job's `image` (kubeconfig, or in-cluster; see
    /// docs/guide/kubernetes.md).
    Kubernetes,
}

/// What both `controller` subcommands take.
#[derive(Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Where verification jobs run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    executor: ExecutorKind,
    #[command(flatten)]
    kubernetes: KubernetesArgs,
    #[command(flatten)]
    access: Access,
}

/// Settings of `--executor kubernetes`.
#[derive(Args)]
pub struct KubernetesArgs {
    /// The namespace of the job pods (default: the kubeconfig context's, or okd-forge's own pod's).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// The service account of the job pods (default: the namespace's `default`).
    #[arg(long, value_name = "NAME")]
    service_account: Option<String>,
    /// An image pull secret for the job pods (repeatable).
    #[arg(long = "image-pull-secret", value_name = "NAME")]
    image_pull_secrets: Vec<String>,
    /// The image of the container that sends the artifacts back (needs sh, tar, gzip, base64).
    #[arg(long, value_name = "IMAGE")]
    artifacts_image: Option<String>,
}

impl KubernetesArgs {
    async fn executor(&self) -> Result<KubernetesExecutor> {
        let mut e = KubernetesExecutor::infer(self.namespace.as_deref()).await?;
        if let Some(sa) = &self.service_account {
            e = e.with_service_account(sa);
        }
        for s in &self.image_pull_secrets {
            e = e.with_image_pull_secret(s);
        }
        if let Some(i) = &self.artifacts_image {
            e = e.with_artifacts_image(i);
        }
        Ok(e)
    }
}

/// Arguments of `controller run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: ControllerArgs,
    /// Seconds between passes when nothing is due sooner.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
}

/// Arguments of `controller sync`.
#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    common: ControllerArgs,
}

/// Opens the controller; holds `var/controller.lock` so that one controller runs per state.
async fn open(a: &ControllerArgs) -> Result<(Arc<Controller>, std::fs::File)> {
    let config = a.config.load()?;
    if !config.streams.values().any(|s| s.release.is_some()) {
        bail!(
            "{}: no stream has a `release:` block; add one (docs/guide/controller.md)",
            a.config.config.display()
        );
    }
    let (var, _) = run::dirs(&config);
    std::fs::create_dir_all(&var).with_context(|| format!("create {}", var.display()))?;
    let lock = lock(&var, &config)?;
    Ok((controller(config, a).await?, lock))
}

/// A controller on `config` (no lock: `test-pr` runs beside a running controller).
async fn controller(config: Config, a: &ControllerArgs) -> Result<Arc<Controller>> {
    let var = run::dirs(&config).0;
    let executor: Arc<dyn Executor> = match a.executor {
        ExecutorKind::Local => Arc::new(LocalExecutor::new()),
        ExecutorKind::Podman => Arc::new(PodmanExecutor::new()),
        ExecutorKind::Kubernetes => Arc::new(a.kubernetes.executor().await?),
    };
    let forge = Forge::open(config, a.access.options(None)?)?;
    let controller = Controller::new(
        Arc::new(forge),
        executor,
        var.join("jobs"),
        Arc::new(SystemClock),
    )?;
    Ok(Arc::new(controller))
}

/// Takes `var/controller.lock`, held while the returned file is open.
fn lock(var: &std::path::Path, config: &Config) -> Result<std::fs::File> {
    let lock_path = var.join("controller.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another okd-forge controller runs on {} (it holds {}); stop it first",
            config.state.display(),
            lock_path.display()
        );
    }
    Ok(lock)
}

/// Run a `controller` command.
pub async fn run(cmd: ControllerCommand, output: Output) -> Result<()> {
    match cmd {
        ControllerCommand::Sync(a) => {
            let (c, _lock) = open(&a.common).await?;
            let report = c.settle().await?;
            print_report(&report, output);
            Ok(())
        }
        ControllerCommand::Run(a) => {
            let (c, _lock) = open(&a.common).await?;
            eprintln!("controller running; stop with Ctrl-C (running jobs are stopped)");
            let interval = Duration::from_secs(a.interval);
            loop {
                let report = c.pass().await?;
                if report.changed() || !report.problems.is_empty() {
                    print_report(&report, output);
                }
                // Sleep until something is due, a job ends, or the interval passes.
                let now = ::release::jobs::now();
                let sleep = match c.next_due()? {
                    Some(t) => Duration::from_secs((t - now).max(1) as u64).min(interval),
                    None => interval,
                };
                let wait = async {
                    if c.busy() {
                        // Poll for ends of jobs at least every few seconds.
                        tokio::time::sleep(sleep.min(Duration::from_secs(5))).await;
                    } else {
                        tokio::time::sleep(sleep).await;
                    }
                };
                tokio::select! {
                    _ = wait => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
    }
}

fn print_report(r: &Report, output: Output) {
    if output == Output::Json {
        print_json(r);
        return;
    }
    for (stream, decision) in &r.streams {
        println!("{stream}: {decision}");
    }
    for (stream, status) in &r.promotion {
        println!("{stream}: promotion {status}");
    }
    for a in &r.actions {
        println!("{a}");
    }
    for p in &r.problems {
        eprintln!("warning: {p}");
    }
}

/// Arguments of `release list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only this stream (default: every stream with a `release:` block).
    stream: Option<String>,
    #[command(flatten)]
    config: ConfigFile,
}

/// Arguments of `release show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The payload's name.
    name: String,
    #[command(flatten)]
    config: ConfigFile,
}

/// Arguments of `release accept` and `release reject`.
#[derive(Args)]
pub struct DecideArgs {
    /// The payload's name.
    name: String,
    /// Why (recorded with the override and shown with the payload).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    config: ConfigFile,
}

/// Arguments of `release keep`.
#[derive(Args)]
pub struct KeepArgs {
    /// The payload's name.
    name: String,
    /// Let garbage collection remove it again.
    #[arg(long)]
    unpin: bool,
    #[command(flatten)]
    config: ConfigFile,
}

/// Arguments of `release promote`.
#[derive(Args)]
pub struct PromoteArgs {
    /// The Accepted payload.
    name: String,
    /// The stable release's name (default: the stream's next X.Y.Z-SUFFIX.N, as 4.17.0-okd-scos.3).
    #[arg(long = "name", value_name = "VERSION")]
    stable: Option<String>,
    #[command(flatten)]
    config: ConfigFile,
    #[command(flatten)]
    access: Access,
}

/// `release promote`.
pub async fn promote(a: PromoteArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let forge = Forge::open(config, a.access.options(None)?)?;
    let c = Controller::without_jobs(Arc::new(forge))?;
    let p = c.promote(&a.name, a.stable.as_deref()).await?;
    match output {
        Output::Json => print_json(&p),
        _ if !p.promoted => println!("{}: promoted as {} before; nothing to do", p.from, p.name),
        _ => {
            println!("{}: promoted as the stable release {}", p.from, p.name);
            println!("  pull spec: {}", p.pull_spec);
            println!(
                "  previous:  {}",
                if p.previous.is_empty() {
                    "none (no upgrade from a stable release passed into it)".to_string()
                } else {
                    p.previous.join(", ")
                }
            );
            print_publications(&p.published);
        }
    }
    match p.publish_error {
        Some(e) => bail!(
            "{} is promoted, but publishing it stopped: {e}\nfix that, then run `okd-forge release publish {}`",
            p.name,
            p.name
        ),
        None => Ok(()),
    }
}

/// Arguments of `release publish`.
#[derive(Args)]
pub struct PublishArgs {
    /// The stable release.
    name: String,
    #[command(flatten)]
    config: ConfigFile,
    #[command(flatten)]
    access: Access,
}

/// `release publish`: publish a stable release as `publish:` asks (mirror, sign, tools), doing
/// only the steps not done yet; the controller does this on promotion.
pub async fn publish(a: PublishArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    if config.publish.mirror.is_none()
        && config.publish.signing.is_none()
        && config.publish.tools.is_none()
    {
        bail!(
            "{}: nothing to publish: give `publish:` a release and content repository, signing or tools",
            a.config.config.display()
        );
    }
    let forge = Forge::open(config, a.access.options(None)?)?;
    let c = Controller::without_jobs(Arc::new(forge))?;
    let all = c.publish_stable(&a.name).await?;
    match output {
        Output::Json => print_json(&all),
        _ => {
            println!("{}: published", a.name);
            print_publications(&all);
        }
    }
    Ok(())
}

fn print_publications(all: &[release::state::Publication]) {
    for p in all {
        println!(
            "  {:<10} {} ({})",
            format!("{}:", p.kind),
            p.location,
            p.detail
        );
    }
}

/// Arguments of `release edges`.
#[derive(Args)]
pub struct EdgesArgs {
    #[command(flatten)]
    config: ConfigFile,
}

/// Arguments of `release block-edge`.
#[derive(Args)]
pub struct BlockEdgeArgs {
    /// The stable release upgraded from.
    from: String,
    /// The stable release upgraded to.
    to: String,
    /// The risk, shown with the conditional edge.
    #[arg(long, required_unless_present = "unblock")]
    reason: Option<String>,
    /// A link about the risk (a bug).
    #[arg(long, conflicts_with = "unblock")]
    url: Option<String>,
    /// Remove the block.
    #[arg(long)]
    unblock: bool,
    #[command(flatten)]
    config: ConfigFile,
}

/// `release edges`.
pub fn edges(a: EdgesArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let state = state(&config)?;
    let edges = Records::new(&state).edges()?;
    if output == Output::Json {
        print_json(&edges);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(["FROM", "TO", "RUNS", "EDGE"]);
    for e in &edges {
        let passed = e.runs.iter().filter(|r| r.succeeded).count();
        let state = match (&e.blocked, e.tested()) {
            (Some(b), _) => format!(
                "conditional: {}{}",
                b.reason,
                b.url
                    .as_ref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default()
            ),
            (None, true) => "tested".to_string(),
            (None, false) => "untested (no run passed)".to_string(),
        };
        t.add_row([
            e.from.clone(),
            e.to.clone(),
            format!("{passed} passed, {} failed", e.runs.len() - passed),
            state,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `release block-edge`.
pub fn block_edge(a: BlockEdgeArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let state = state(&config)?;
    let records = Records::new(&state);
    for name in [&a.from, &a.to] {
        if records.payload(name)?.is_none_or(|p| p.stable_of.is_none()) {
            bail!("no stable release named '{name}'; `okd-forge release edges` lists the edges");
        }
    }
    let block = a
        .reason
        .as_deref()
        .filter(|_| !a.unblock)
        .map(|r| (r, a.url.as_deref()));
    let changed = records.block_edge(&a.from, &a.to, block, ::release::jobs::now())?;
    match output {
        Output::Json => print_json(&json!({
            "from": a.from, "to": a.to, "blocked": !a.unblock, "changed": changed
        })),
        _ if a.unblock && !changed => println!("{} → {}: was not blocked", a.from, a.to),
        _ if a.unblock => println!("{} → {}: unblocked", a.from, a.to),
        _ => println!(
            "{} → {}: blocked; the update graph serves it as a conditional edge",
            a.from, a.to
        ),
    }
    Ok(())
}

fn state(config: &Config) -> Result<build::state::State> {
    Ok(build::state::State::open(&config.state)?)
}

/// `release list`.
pub fn list(a: ListArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let streams: Vec<String> = match &a.stream {
        Some(s) if config.streams.get(s).is_some_and(|s| s.release.is_some()) => vec![s.clone()],
        Some(s) => bail!(
            "stream '{s}' has no `release:` block in {}",
            a.config.config.display()
        ),
        None => config
            .streams
            .iter()
            .filter(|(_, s)| s.release.is_some())
            .map(|(n, _)| n.clone())
            .collect(),
    };
    let state = state(&config)?;
    let records = Records::new(&state);
    let mut all = Vec::new();
    for s in &streams {
        for p in records.payloads(s)? {
            let runs = records.runs(&p.name)?;
            all.push((p, runs));
        }
    }
    if output == Output::Json {
        let v: Vec<_> = all
            .iter()
            .map(|(p, runs)| json!({ "payload": p, "runs": runs }))
            .collect();
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(["NAME", "PHASE", "CREATED", "VERIFICATION", "REASON"]);
    for (p, runs) in &all {
        let mut jobs: Vec<String> = Vec::new();
        for r in runs {
            let line = format!("{} {}", r.job, r.state.as_str());
            if let Some(i) = jobs
                .iter()
                .position(|j| j.split(' ').next() == Some(&r.job))
            {
                jobs[i] = line;
            } else {
                jobs.push(line);
            }
        }
        t.add_row([
            p.name.clone(),
            p.phase.to_string() + if p.keep { " (kept)" } else { "" },
            rfc3339(p.created),
            jobs.join(", "),
            match &p.stable_of {
                Some(of) => format!("stable release, promoted from {of}"),
                None => p.reason.clone().unwrap_or_default(),
            },
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `release show`.
pub fn show(a: ShowArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let state = state(&config)?;
    let records = Records::new(&state);
    let Some(p) = records.payload(&a.name)? else {
        bail!(
            "no payload named '{}'; `okd-forge release list` shows the payloads",
            a.name
        );
    };
    let runs = records.runs(&p.name)?;
    let events = records.events(None, Some(&p.name), 200)?;
    let published = records.publications(&p.name)?;
    if output == Output::Json {
        print_json(
            &json!({ "payload": p, "runs": runs, "events": events, "published": published }),
        );
        return Ok(());
    }
    println!("Name:      {}", p.name);
    println!("Stream:    {}", p.stream);
    println!(
        "Phase:     {}{}",
        p.phase,
        if p.keep { " (kept)" } else { "" }
    );
    if let Some(r) = &p.reason {
        println!("Reason:    {r}");
    }
    if let Some(of) = &p.stable_of {
        println!("Stable:    promoted from {of}");
    }
    println!("Created:   {}", rfc3339(p.created));
    if let Some(s) = &p.pull_spec {
        println!("Pull spec: {s}");
    }
    println!("Images:    {}", p.inputs.len());
    if !published.is_empty() {
        println!("Published:");
        print_publications(&published);
    }
    if !runs.is_empty() {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.set_header(["JOB", "ATTEMPT", "STATE", "TESTS", "DETAIL", "ARTIFACTS"]);
        for r in &runs {
            let tests = r.tests.as_ref().map_or(String::new(), |t| {
                format!(
                    "{} passed, {} failed, {} skipped",
                    t.passed, t.failures, t.skipped
                )
            });
            t.add_row([
                r.job.clone(),
                r.attempt.to_string(),
                r.state.as_str().to_string(),
                tests,
                r.message.clone().unwrap_or_default(),
                r.dir
                    .as_ref()
                    .map(|d| format!("{d}/{}", r.id))
                    .unwrap_or_default(),
            ]);
        }
        println!("\nVerification:\n{t}");
    }
    println!("\nEvents:");
    for e in events.iter().rev() {
        println!("  {}  {:<13} {}", rfc3339(e.at), e.kind, e.message);
    }
    Ok(())
}

/// `release accept` and `release reject`.
pub fn decide(a: DecideArgs, accept: bool, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let state = state(&config)?;
    let decision = if accept {
        Override::Accept(a.reason.clone())
    } else {
        Override::Reject(a.reason.clone())
    };
    let before = Records::new(&state).decide_by_hand(&a.name, &decision, ::release::jobs::now())?;
    let after = if accept { "Accepted" } else { "Rejected" };
    match output {
        Output::Json => print_json(
            &json!({ "name": a.name, "from": before, "to": after.to_lowercase(), "reason": a.reason }),
        ),
        _ => println!("{}: {before} → {after} (by hand: {})", a.name, a.reason),
    }
    Ok(())
}

/// `release keep`.
pub fn keep(a: KeepArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let state = state(&config)?;
    if !Records::new(&state).keep(&a.name, !a.unpin, ::release::jobs::now())? {
        bail!(
            "no payload named '{}'; `okd-forge release list` shows the payloads",
            a.name
        );
    }
    let what = if a.unpin {
        "unpinned"
    } else {
        "kept: garbage collection leaves it"
    };
    match output {
        Output::Json => print_json(&json!({ "name": a.name, "keep": !a.unpin })),
        _ => println!("{}: {what}", a.name),
    }
    Ok(())
}

/// Arguments of `test-pr`.
#[derive(Args)]
pub struct TestPrArgs {
    /// The stream whose latest Accepted payload the change is tested on.
    #[arg(long)]
    stream: String,
    /// The component to build.
    #[arg(long)]
    component: String,
    /// The git ref to build: a full ref (refs/pull/123/head, refs/heads/NAME), a tag, or a 40-hex
    /// commit id.
    #[arg(long = "ref", value_name = "REF")]
    git_ref: String,
    #[command(flatten)]
    common: ControllerArgs,
}

/// `test-pr`: build a component at a ref, overlay it on the stream's latest Accepted payload as an
/// ephemeral payload, run the stream's checks and jobs once, report; promote nothing.
pub async fn test_pr(a: TestPrArgs, output: Output) -> Result<()> {
    let config = a.common.config.load()?;
    let c = controller(config, &a.common).await?;
    c.test_base(&a.stream)?;
    let forge = c.forge().clone();
    let req = build::run::Request {
        streams: vec![a.stream.clone()],
        components: vec![a.component.clone()],
        jobs: forge.config.parallelism.get(),
        git_ref: Some(a.git_ref.clone()),
        force: Default::default(),
    };
    let results = crate::build::reconcile(&forge, &req, Output::Json).await?;
    if results.iter().any(|r| r.failed()) {
        crate::build::report(&results, output)?;
    }
    let overlay: std::collections::BTreeMap<String, String> = results
        .iter()
        .filter_map(|r| Some((r.key.tag.clone(), r.digest.clone()?)))
        .collect();
    if overlay.is_empty() {
        bail!(
            "component '{}' builds no image of stream '{}'; nothing to test",
            a.component,
            a.stream
        );
    }
    let commit = results
        .iter()
        .find_map(|r| r.commit.clone())
        .unwrap_or_default();
    let label = format!("test-{}", &commit[..commit.len().min(12)]);
    let report = c.test_payload(&a.stream, &overlay, &label).await?;
    if output == Output::Json {
        print_json(&json!({ "images": results, "test": report }));
    } else {
        println!(
            "Tested {} ({} at {}) on {}: {}",
            report.payload,
            a.component,
            commit,
            report.base,
            if report.passed { "passed" } else { "FAILED" }
        );
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.set_header(["CHECK/JOB", "RESULT", "TESTS", "DETAIL", "ARTIFACTS"]);
        for r in &report.results {
            let tests = r.tests.as_ref().map_or(String::new(), |t| {
                format!(
                    "{} passed, {} failed, {} skipped",
                    t.passed, t.failures, t.skipped
                )
            });
            t.add_row([
                r.name.clone() + if r.optional { " (optional)" } else { "" },
                r.state.as_str().to_string(),
                tests,
                r.message.clone().unwrap_or_default(),
                r.dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ]);
        }
        println!("{t}");
    }
    if !report.passed {
        bail!(
            "a blocking check or job failed on {}; nothing was promoted",
            report.payload
        );
    }
    Ok(())
}
