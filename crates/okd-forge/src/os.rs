//! `okd-forge os …`: the OS releases each stream follows (`os:` in forge.yaml), and pins.

use std::sync::Arc;

use anyhow::{bail, Result};
use build::config::Config;
use build::osgate::{self, OsStatus, PollOutcome};
use build::run::Forge;
use clap::{Args, Subcommand};

use crate::config::ConfigFile;
use crate::image::{print_json, Access};
use crate::Output;

/// OS commands.
#[derive(Subcommand)]
pub enum OsCommand {
    /// Where each stream's OS stands: its source, the releases found, the OS image the stream
    /// has, the one being tested in its payloads, a rejected one, the pin, the last poll.
    Status(StatusArgs),
    /// Read each stream's OS source once and record a new release (`build` and `watch` do this
    /// first). A source that cannot be read, or that went backwards, keeps what was recorded and
    /// makes the command fail.
    Poll(PollArgs),
    /// Build the stream's OS image on this release, whatever newer ones appear (a revert, or a
    /// hold). The image still enters the stream only through an Accepted payload.
    Pin(PinArgs),
    /// Follow the stream's OS source again: build on its newest release.
    Unpin(UnpinArgs),
}

/// Arguments of `os status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Only this stream (default: every stream that follows an OS).
    stream: Option<String>,
}

/// Arguments of `os poll`.
#[derive(Args)]
pub struct PollArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Only this stream (repeatable; default: every stream that follows an OS).
    #[arg(long = "stream", value_name = "STREAM")]
    streams: Vec<String>,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `os pin`.
#[derive(Args)]
pub struct PinArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The stream.
    stream: String,
    /// The OS release (`39.20231101.3.0`): a recorded one, or, when the stream's `os:` names an
    /// `image` repository, any release found there as `REPO:VERSION`.
    version: String,
    /// Why (shown by `os status` and the dashboard).
    #[arg(long, default_value = "pinned by hand")]
    reason: String,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `os unpin`.
#[derive(Args)]
pub struct UnpinArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The stream.
    stream: String,
}

/// Runs an `os` command.
pub async fn run(cmd: OsCommand, output: Output) -> Result<()> {
    match cmd {
        OsCommand::Status(a) => status(a, output),
        OsCommand::Poll(a) => {
            let config = a.config.load()?;
            let streams = select(&config, &a.streams)?;
            let forge = crate::build::forge(config, &a.access)?;
            let outcomes = poll(&forge, &streams).await?;
            if output == Output::Json {
                let map: serde_json::Map<String, serde_json::Value> = outcomes
                    .iter()
                    .map(|(s, o)| (s.clone(), serde_json::to_value(o).expect("serialises")))
                    .collect();
                print_json(&map);
            } else {
                for (s, o) in &outcomes {
                    println!("{s}: {}", describe(o));
                }
            }
            let failed: Vec<&str> = outcomes
                .iter()
                .filter(|(_, o)| matches!(o, PollOutcome::Failed { .. }))
                .map(|(s, _)| s.as_str())
                .collect();
            if !failed.is_empty() {
                bail!(
                    "the OS source of {} could not be polled; what was recorded is kept",
                    failed.join(", ")
                );
            }
            Ok(())
        }
        OsCommand::Pin(a) => {
            let config = a.config.load()?;
            select(&config, std::slice::from_ref(&a.stream))?;
            let forge = crate::build::forge(config, &a.access)?;
            let now = osgate::now();
            // The version as recorded (a release found now is recorded in its canonical form).
            let version = match osgate::release(&forge.state, &a.stream, &a.version)? {
                Some(r) => r.version,
                None => match osgate::record_version(&forge, &a.stream, &a.version, now).await? {
                    Ok(r) => r.version,
                    Err(e) => bail!("cannot pin {} to OS {}: {e}", a.stream, a.version),
                },
            };
            osgate::pin(&forge.state, &a.stream, &version, &a.reason, now)?;
            if output == Output::Json {
                print_json(&serde_json::json!({ "stream": a.stream, "pinned": version }));
            } else {
                println!(
                    "{} is pinned to OS {version}: its next build uses it, and a payload carrying \
                     it decides whether it enters the stream",
                    a.stream
                );
            }
            Ok(())
        }
        OsCommand::Unpin(a) => {
            let config = a.config.load()?;
            select(&config, std::slice::from_ref(&a.stream))?;
            let state = build::state::State::open(&config.state)?;
            let was = osgate::unpin(&state, &a.stream)?;
            if output == Output::Json {
                print_json(&serde_json::json!({ "stream": a.stream, "unpinned": was }));
            } else if was {
                println!("{} follows its OS source again", a.stream);
            } else {
                println!("{} was not pinned", a.stream);
            }
            Ok(())
        }
    }
}

/// The streams named (each must follow an OS), or every stream that follows one.
fn select(config: &Config, named: &[String]) -> Result<Vec<String>> {
    let following: Vec<String> = config
        .streams
        .iter()
        .filter(|(_, s)| s.os.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    for n in named {
        config.stream_named(n).map_err(anyhow::Error::msg)?;
        if !following.contains(n) {
            bail!("stream '{n}' follows no OS: give it an `os:` source in forge.yaml");
        }
    }
    Ok(if named.is_empty() {
        following
    } else {
        named.to_vec()
    })
}

/// Polls each of `streams`' OS sources, in turn.
pub(crate) async fn poll(forge: &Forge, streams: &[String]) -> Result<Vec<(String, PollOutcome)>> {
    let mut out = Vec::new();
    for s in streams {
        out.push((s.clone(), osgate::poll(forge, s, osgate::now()).await?));
    }
    Ok(out)
}

/// Polls the OS sources of the streams a build or watch covers (all when `streams` is empty),
/// reporting on stderr; a failed poll is a warning, the builds go on with what was recorded.
pub(crate) async fn poll_before_build(forge: &Arc<Forge>, streams: &[String], output: Output) {
    let selected: Vec<String> = forge
        .config
        .streams
        .iter()
        .filter(|(n, s)| s.os.is_some() && (streams.is_empty() || streams.contains(n)))
        .map(|(n, _)| n.clone())
        .collect();
    match poll(forge, &selected).await {
        Ok(outcomes) => {
            for (s, o) in outcomes {
                match &o {
                    PollOutcome::Same { .. } => {}
                    PollOutcome::New { .. } if output != Output::Json => {
                        eprintln!("{s}: {}", describe(&o))
                    }
                    PollOutcome::New { .. } => {}
                    PollOutcome::Failed { .. } => eprintln!("warning: {s}: {}", describe(&o)),
                }
            }
        }
        Err(e) => eprintln!("warning: polling the OS sources: {e:#}"),
    }
}

fn describe(o: &PollOutcome) -> String {
    match o {
        PollOutcome::New { release, warnings } => {
            let mut s = format!(
                "new OS release {} ({} for builds)",
                release.version, release.base
            );
            for w in warnings {
                s.push_str(&format!("\n  warning: {w}"));
            }
            s
        }
        PollOutcome::Same { version } => format!("no new OS release (newest: {version})"),
        PollOutcome::Failed { error } => format!("OS poll failed: {error}"),
    }
}

fn status(a: StatusArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let named: Vec<String> = a.stream.into_iter().collect();
    let streams = select(&config, &named)?;
    let state = build::state::State::open(&config.state)?;
    let mut all: Vec<OsStatus> = Vec::new();
    for s in &streams {
        if let Some(st) = osgate::status(&config, &state, s)? {
            all.push(st);
        }
    }
    if output == Output::Json {
        print_json(&all);
        return Ok(());
    }
    if all.is_empty() {
        println!("no stream follows an OS (give one an `os:` source in forge.yaml)");
    }
    for st in &all {
        print!("{}", text(st));
    }
    Ok(())
}

/// The `os status` text of one stream.
fn text(st: &OsStatus) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{}", st.stream);
    let _ = writeln!(s, "  {:<11}{}", "source:", st.source);
    let tag = st.tag.as_deref().unwrap_or("-");
    match &st.current {
        Some(c) => {
            let _ = writeln!(
                s,
                "  {:<11}{tag} {} ({}{})",
                "in stream:",
                c.version.as_deref().unwrap_or("version unknown"),
                c.digest,
                c.payload
                    .as_deref()
                    .map(|p| format!(", accepted with {p}"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(s, "  {:<11}{tag}: no OS image yet", "in stream:");
        }
    }
    match (&st.desired, &st.problem) {
        (Some(v), _) => {
            let _ = writeln!(s, "  {:<11}{v}", "builds on:");
        }
        (None, Some(p)) => {
            let _ = writeln!(s, "  {:<11}nothing: {p}", "builds on:");
        }
        _ => {}
    }
    if let Some(p) = &st.pin {
        let _ = writeln!(s, "  {:<11}{} ({})", "pinned:", p.version, p.reason);
    }
    if let Some(c) = &st.testing {
        let _ = writeln!(
            s,
            "  {:<11}{} ({}): the stream's next payload carries it",
            "testing:", c.version, c.digest
        );
    }
    if let Some(c) = &st.rejected {
        let _ = writeln!(
            s,
            "  {:<11}{} ({}): {}",
            "rejected:",
            c.version,
            c.digest,
            c.reason.as_deref().unwrap_or("")
        );
    }
    if let Some(p) = &st.poll {
        let at = time::OffsetDateTime::from_unix_timestamp(p.at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<11}{at}: {}{}",
            "polled:",
            if p.ok { "" } else { "FAILED: " },
            p.message
        );
    }
    if !st.releases.is_empty() {
        let list: Vec<&str> = st
            .releases
            .iter()
            .take(5)
            .map(|r| r.version.as_str())
            .collect();
        let more = st.releases.len().saturating_sub(5);
        let _ = writeln!(
            s,
            "  {:<11}{}{}",
            "releases:",
            list.join(", "),
            if more > 0 {
                format!(" (+{more} older)")
            } else {
                String::new()
            }
        );
    }
    s
}
