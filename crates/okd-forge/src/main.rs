//! `okd-forge`: the OKD release pipeline. This binary only parses arguments and wires the stage crates
//! together; see `docs/` for the user guide.

mod build;
mod config;
mod controller;
mod demo;
mod image;
mod mirror;
mod os;
mod progress;
mod release;
mod serve;
mod sign;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// The OKD release pipeline: build, release, verify, promote, mirror and serve OKD.
#[derive(Parser)]
#[command(name = "okd-forge", version, about, max_term_width = 100)]
struct Cli {
    /// Output format for results (progress always goes to stderr).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts: one JSON document on stdout.
    Json,
    /// Markdown (`release diff`; other commands print text).
    Markdown,
}

// Parsed once per run; boxing the arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Build the configured components from git and promote them into their streams.
    Build(build::BuildArgs),
    /// Check the configuration (forge.yaml), print its JSON Schema, import ci-operator configs.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run the release controller: cut payloads from the streams, verify, accept or reject, collect
    /// garbage.
    #[command(subcommand)]
    Controller(controller::ControllerCommand),
    /// Run the whole pipeline on generated repositories, on the embedded defaults (no external
    /// tool, no network), then serve the result: builds, payloads, verification, stable releases.
    Demo(demo::DemoArgs),
    /// A verification job of `okd-forge demo` (run by the demo's release controller).
    #[command(hide = true)]
    DemoJob(demo::JobArgs),
    /// Copy, inspect and list images in registries and OCI layouts.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// The OS each stream follows (Fedora CoreOS, CentOS Stream CoreOS): status, poll, pin.
    #[command(subcommand)]
    Os(os::OsCommand),
    /// Build, inspect, extract and compare release payloads (like `oc adm release`).
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Serve the dashboard, the release-controller API, the update graph (/graph), a read-only
    /// registry view of the store (/v2/) and metrics.
    Serve(serve::ServeArgs),
    /// Maintain the embedded content store (an OCI image-layout directory).
    #[command(subcommand)]
    Store(image::StoreCommand),
    /// Show what the build stage promoted into a stream, and each tag's history.
    #[command(subcommand)]
    Stream(build::StreamCommand),
    /// Test a change: build a component at a git ref, overlay it on the stream's latest Accepted
    /// payload, run the stream's checks and jobs; promote nothing.
    TestPr(controller::TestPrArgs),
    /// Poll the components' branches and build what changed; rebuild streams on their schedule.
    Watch(build::WatchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli.command, cli.output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
async fn dispatch(command: Command, output: Output) -> anyhow::Result<()> {
    match command {
        Command::Build(a) => build::build(a, output).await,
        Command::Config(c) => config::run(c, output),
        Command::Controller(c) => controller::run(c, output).await,
        Command::Demo(a) => demo::demo(a, output).await,
        Command::DemoJob(a) => demo::job(a).await,
        Command::Image(c) => image::run(c, output).await,
        Command::Os(c) => os::run(c, output).await,
        Command::Serve(a) => serve::serve(a, output).await,
        Command::Store(c) => image::run_store(c, output).await,
        Command::Release(c) => release::run(c, output).await,
        Command::Stream(c) => build::stream(c, output),
        Command::TestPr(a) => controller::test_pr(a, output).await,
        Command::Watch(a) => build::watch(a, output).await,
    }
}
