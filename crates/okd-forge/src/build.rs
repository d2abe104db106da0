//! `okd-forge build` and `okd-forge watch`: reconcile the configured streams with their branches.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use build::config::Config;
use build::git::GitSources;
use build::run::{self, Events, Forge, ImageKey, ImageResult, Request, Status};
use build::state::State;
use clap::Args;
use comfy_table::{presets, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::config::ConfigFile;
use crate::image::Access;
use crate::Output;

/// Arguments of `build`.
#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Only this stream (repeatable; default: every stream).
    #[arg(long = "stream", value_name = "STREAM")]
    streams: Vec<String>,
    /// Only this component (repeatable; default: every component).
    #[arg(long = "component", value_name = "COMPONENT")]
    components: Vec<String>,
    /// Builds at once (default: `parallelism` from the configuration).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Build this git ref instead of the configured branch, e.g. refs/pull/123/head, and do not
    /// promote the result (test a pull request). Needs --component.
    #[arg(long = "ref", value_name = "REF", requires = "components")]
    git_ref: Option<String>,
    /// Rebuild even when the inputs were built before (the cache is bypassed).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `watch`.
#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Only this stream (repeatable; default: every stream).
    #[arg(long = "stream", value_name = "STREAM")]
    streams: Vec<String>,
    /// Seconds between polls of the branch heads.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Builds at once (default: `parallelism` from the configuration).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    #[command(flatten)]
    access: Access,
}

/// The git sources `build` uses.
pub fn git_sources(config: &Config) -> GitSources {
    GitSources::new(run::dirs(config).1.join("build-git"))
}

/// Opens everything a reconcile needs (see [`Forge::open`]).
pub fn forge(config: Config, access: &Access) -> Result<Forge> {
    Ok(Forge::open(config, access.options(None)?)?)
}

/// Run `build`.
pub async fn build(args: BuildArgs, output: Output) -> Result<()> {
    let config = args.config.load()?;
    let jobs = args.jobs.map_or(config.parallelism.get(), |j| j as usize);
    let mut req = Request {
        streams: args.streams,
        components: args.components,
        jobs,
        git_ref: args.git_ref,
        force: BTreeSet::new(),
    };
    if args.force {
        req.force = config.streams.keys().cloned().collect();
    }
    let forge = Arc::new(forge(config, &args.access)?);
    if req.git_ref.is_none() {
        crate::os::poll_before_build(&forge, &req.streams, output).await;
    }
    let results = reconcile(&forge, &req, output).await?;
    report(&results, output)
}

pub(crate) async fn reconcile(
    forge: &Arc<Forge>,
    req: &Request,
    output: Output,
) -> Result<Vec<ImageResult>> {
    let progress = Arc::new(BuildProgress::new(output == Output::Json));
    let results = run::reconcile(forge.clone(), req, progress.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    progress.finish();
    Ok(results)
}

/// Prints the summary; an error when any image failed.
pub(crate) fn report(results: &[ImageResult], output: Output) -> Result<()> {
    let failed = results.iter().filter(|r| r.failed()).count();
    if output == Output::Json {
        crate::image::print_json(&serde_json::json!({ "images": results, "failed": failed }));
    } else {
        println!("{}", table(results));
        let count = |f: fn(&Status) -> bool| results.iter().filter(|r| f(&r.status)).count();
        println!(
            "{} image(s): {} built, {} reused from the cache, {} imported, {} unchanged, {} failed.",
            results.len(),
            count(|s| matches!(s, Status::Built)),
            count(|s| matches!(s, Status::Cached)),
            count(|s| matches!(s, Status::Imported)),
            count(|s| matches!(s, Status::Unchanged)),
            failed,
        );
    }
    if failed > 0 {
        bail!("{failed} image(s) failed; see the table above and the build logs");
    }
    Ok(())
}

fn table(results: &[ImageResult]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header([
        "STREAM", "IMAGE", "COMMIT", "RESULT", "DIGEST", "TIME", "LOG",
    ]);
    for r in results {
        let result = match &r.status {
            Status::Unchanged => "unchanged".to_string(),
            Status::Cached => "cached".into(),
            Status::Built => "built".into(),
            Status::Imported => "imported".into(),
            Status::Failed(e) => format!("FAILED: {e}"),
            Status::Skipped(e) => format!("skipped: {e}"),
        };
        let result = if r.promoted {
            format!("{result}, promoted")
        } else {
            result
        };
        let result = match &r.os {
            Some(os) => format!("{result}, {}", os_gate(os)),
            None => result,
        };
        t.add_row([
            r.key.stream.clone(),
            r.key.tag.clone(),
            r.commit
                .as_deref()
                .map_or("-", |c| &c[..c.len().min(12)])
                .to_string(),
            result,
            r.digest
                .as_deref()
                .map_or("-".into(), |d| d.chars().take(19).collect()),
            format!("{:.1}s", r.seconds),
            // The log of a failure; successful builds' logs are under var/logs/builds/.
            r.log
                .as_ref()
                .filter(|_| r.failed())
                .map_or("-".into(), |l| l.display().to_string()),
        ]);
    }
    t
}

/// What the OS gate did with an OS image (see `build::osgate`).
fn os_gate(os: &build::run::OsResult) -> String {
    use build::osgate::Proposal;
    let v = &os.version;
    match &os.gate {
        None => format!("OS {v}"),
        Some(Proposal::Testing | Proposal::Retesting) => {
            format!("OS {v}: to be verified by the stream's next payload")
        }
        Some(Proposal::StillTesting) => format!("OS {v}: being verified"),
        Some(Proposal::Rejected(p)) => format!("OS {v}: rejected by {p}, not proposed again"),
    }
}

/// Run `watch`: poll, build what changed, force rebuilds on each stream's `rebuild` schedule.
pub async fn watch(args: WatchArgs, output: Output) -> Result<()> {
    let config = args.config.load()?;
    let jobs = args.jobs.map_or(config.parallelism.get(), |j| j as usize);
    let forge = Arc::new(forge(config, &args.access)?);
    let interval = Duration::from_secs(args.interval);
    eprintln!(
        "watching {} stream(s) every {}s; stop with Ctrl-C",
        if args.streams.is_empty() {
            forge.config.streams.len()
        } else {
            args.streams.len()
        },
        args.interval
    );
    loop {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let force = due_rebuilds(&forge, now)?;
        for s in &force {
            eprintln!("{s}: scheduled rebuild");
        }
        crate::os::poll_before_build(&forge, &args.streams, output).await;
        let req = Request {
            streams: args.streams.clone(),
            components: Vec::new(),
            jobs,
            git_ref: None,
            force: force.clone(),
        };
        let results = reconcile(&forge, &req, output).await?;
        for s in &force {
            forge.state.set_last_forced(s, now)?;
        }
        let changed: Vec<&ImageResult> = results
            .iter()
            .filter(|r| r.status != Status::Unchanged)
            .collect();
        if !changed.is_empty() {
            let owned: Vec<ImageResult> = changed.into_iter().cloned().collect();
            if let Err(e) = report(&owned, output) {
                eprintln!("error: {e:#}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Streams whose `rebuild` schedule has an occurrence between the last forced rebuild and `now`. A
/// stream seen for the first time starts its schedule now.
fn due_rebuilds(forge: &Forge, now: i64) -> Result<BTreeSet<String>> {
    let mut due = BTreeSet::new();
    for (name, s) in &forge.config.streams {
        let Some(r) = &s.rebuild else { continue };
        match forge.state.last_forced(name)? {
            None => forge.state.set_last_forced(name, now)?,
            Some(last) if run::rebuild_due(r, last, now) => {
                due.insert(name.clone());
            }
            Some(_) => {}
        }
    }
    Ok(due)
}

/// A line per image on a terminal (its phase), plus an overall bar; plain log lines otherwise.
struct BuildProgress {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    lines: Mutex<std::collections::HashMap<ImageKey, ProgressBar>>,
    quiet: bool,
}

impl BuildProgress {
    fn new(quiet: bool) -> BuildProgress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let multi = terminal.then(MultiProgress::new);
        let total = multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] [{wide_bar}] {pos}/{len} images {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        BuildProgress {
            multi,
            total,
            lines: Mutex::default(),
            quiet,
        }
    }

    fn finish(&self) {
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
    }
}

impl Events for BuildProgress {
    fn planned(&self, total: usize) {
        if let Some(t) = &self.total {
            t.set_length(total as u64);
        }
    }

    fn phase(&self, key: &ImageKey, phase: &str) {
        let Some(multi) = &self.multi else {
            if !self.quiet && phase != "resolving" {
                eprintln!("{key}: {phase}");
            }
            return;
        };
        let mut lines = self.lines.lock().expect("lines");
        let line = lines.entry(key.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix}: {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_prefix(key.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        line.set_message(phase.to_string());
    }

    fn finished(&self, r: &ImageResult) {
        if let Some(line) = self.lines.lock().expect("lines").remove(&r.key) {
            line.finish_and_clear();
        }
        let what = match &r.status {
            Status::Unchanged => None,
            Status::Cached => Some("reused from the cache".to_string()),
            Status::Built => Some(format!("built in {:.1}s", r.seconds)),
            Status::Imported => Some("imported".to_string()),
            Status::Failed(e) => Some(format!("FAILED: {e}")),
            Status::Skipped(e) => Some(format!("skipped: {e}")),
        };
        match (&self.total, what) {
            (Some(t), Some(w)) => {
                t.println(format!("{}: {w}", r.key));
                t.inc(1);
            }
            (Some(t), None) => t.inc(1),
            (None, Some(w)) if !self.quiet => eprintln!("{}: {w}", r.key),
            _ => {}
        }
    }
}

/// Arguments of `stream tags`.
#[derive(Args)]
pub struct StreamTagsArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The stream.
    stream: String,
}

/// Arguments of `stream history`.
#[derive(Args)]
pub struct StreamHistoryArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The stream.
    stream: String,
    /// The tag.
    tag: String,
}

/// Arguments of `stream builds`.
#[derive(Args)]
pub struct StreamBuildsArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The stream.
    stream: String,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,
}

/// `stream` subcommands.
#[derive(clap::Subcommand)]
pub enum StreamCommand {
    /// The images a stream has now, one TAG=PULLSPEC line each: a mapping file for `release new
    /// --mapping-file` (a layout store's images are named by `store_name:` and found in the store
    /// by digest).
    Tags(StreamTagsArgs),
    /// Every digest a stream tag has pointed at, newest first.
    History(StreamHistoryArgs),
    /// The stream's builds, newest first: what, from which commit, the outcome and the log.
    Builds(StreamBuildsArgs),
}

/// Run a `stream` command.
pub fn stream(cmd: StreamCommand, output: Output) -> Result<()> {
    let (config, name) = match &cmd {
        StreamCommand::Tags(a) => (a.config.load()?, &a.stream),
        StreamCommand::History(a) => (a.config.load()?, &a.stream),
        StreamCommand::Builds(a) => (a.config.load()?, &a.stream),
    };
    config.stream_named(name).map_err(anyhow::Error::msg)?;
    let state = State::open(&config.state)?;
    match &cmd {
        StreamCommand::Tags(_) => {
            let tags = state.stream_tags(name)?;
            if output == Output::Json {
                crate::image::print_json(&tags);
                return Ok(());
            }
            for t in tags {
                println!("{}={}@{}", t.tag, config.store_name, t.digest);
            }
        }
        StreamCommand::Builds(a) => {
            let builds = state.builds(Some(name), a.limit)?;
            if output == Output::Json {
                crate::image::print_json(&builds);
                return Ok(());
            }
            let mut t = Table::new();
            t.load_preset(presets::NOTHING);
            t.set_header([
                "ID", "STARTED", "IMAGE", "COMMIT", "STATUS", "DIGEST", "LOG",
            ]);
            for b in builds {
                let status = match &b.error {
                    Some(e) => format!("{}: {e}", b.status),
                    None => b.status.to_string(),
                };
                t.add_row([
                    b.id.to_string(),
                    b.started,
                    b.build.tag,
                    b.build.commit.chars().take(12).collect(),
                    status,
                    b.digest
                        .map_or("-".into(), |d| d.chars().take(19).collect()),
                    b.build
                        .log_path
                        .map_or("-".into(), |l| l.display().to_string()),
                ]);
            }
            println!("{t}");
        }
        StreamCommand::History(a) => {
            let events = state.tag_history(name, &a.tag)?;
            if output == Output::Json {
                crate::image::print_json(&events);
                return Ok(());
            }
            for e in events {
                let build = e.build_id.map_or("-".to_string(), |b| format!("build {b}"));
                println!("{}  {}  {build}", e.at, e.digest);
            }
        }
    }
    Ok(())
}
