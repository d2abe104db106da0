//! `okd-forge config …`: check `forge.yaml`, print its JSON Schema, import ci-operator and
//! release-controller configs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::Output;

/// Configuration commands.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration, then print a summary (components, images, streams).
    ///
    /// Every problem is reported as FILE:LINE:COLUMN: FIELD: MESSAGE. With --git, every
    /// component's branch or ref is also looked up in its repository, for every stream.
    Check(CheckArgs),
    /// Print the JSON Schema of forge.yaml (for editors and linters).
    Schema,
    /// Convert OpenShift CI (ci-operator) configuration files into forge.yaml.
    ///
    /// All files merge into one configuration: one component per org/repo, one variant per
    /// ci-operator variant, one stream per variant and promotion target. The result is printed
    /// (or written to --output-file); every field that could not be mapped is reported on stderr
    /// as FILE: FIELD: not mapped (REASON).
    ImportCiOperator(ImportArgs),
    /// Convert release-controller stream configurations (ReleaseConfig JSON) into the release:
    /// settings of forge.yaml streams.
    ///
    /// Each file becomes one stream, named after its payload prefix (4.20.0-0.okd-scos →
    /// okd-scos-4.20): the result is a forge.yaml fragment, streams: { NAME: { release: ... } },
    /// to merge into a configuration that defines those streams. Verification jobs get a
    /// command that fails, naming their Prow job, until they are given a real one. Every field
    /// that could not be mapped is reported on stderr as FILE: FIELD: not mapped (REASON); with
    /// --output json the result is {config, notes}.
    ImportReleaseController(ImportRcArgs),
}

/// Arguments of `config check`.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    file: ConfigFile,
    /// Also resolve every component's branch or ref for every stream in its git repository
    /// (reads the remotes, as `okd-forge build` does first).
    #[arg(long)]
    git: bool,
}

/// Arguments of `config import-ci-operator`.
#[derive(Args)]
pub struct ImportArgs {
    /// ci-operator configuration files (openshift/release ci-operator/config/ORG/REPO/*.yaml).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Write forge.yaml here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// Arguments of `config import-release-controller`.
#[derive(Args)]
pub struct ImportRcArgs {
    /// ReleaseConfig files (openshift/release core-services/release-controller/_releases/*.json).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The stream's name, instead of the one that follows from `name` (one file only).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Write the result here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// Which configuration file to read.
#[derive(Args)]
pub struct ConfigFile {
    /// The configuration file.
    #[arg(long, value_name = "FILE", env = "OKD_FORGE_CONFIG", default_value = build::config::DEFAULT_FILE)]
    pub config: PathBuf,
}

impl ConfigFile {
    /// Loads and validates the file.
    pub fn load(&self) -> Result<build::config::Config> {
        Ok(build::config::load(&self.config)?)
    }
}

/// What `config check` reports.
#[derive(Serialize)]
struct Summary {
    file: String,
    components: usize,
    images: usize,
    variants: Vec<String>,
    streams: Vec<StreamSummary>,
}

#[derive(Serialize)]
struct StreamSummary {
    name: String,
    variant: String,
    branch: String,
    minor: String,
    images: usize,
    promoted: usize,
    /// The OS source followed and the OS image's tag, when the stream follows an OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<String>,
}

pub fn run(command: ConfigCommand, output: Output) -> Result<()> {
    match command {
        ConfigCommand::Check(CheckArgs { file, git }) => {
            let config = file.load()?;
            if git {
                check_git(&config)?;
            }
            let summary = Summary {
                file: file.config.display().to_string(),
                components: config.components.len(),
                images: config.image_count(),
                variants: config.variants.keys().cloned().collect(),
                streams: config
                    .streams
                    .iter()
                    .map(|(name, s)| StreamSummary {
                        name: name.clone(),
                        variant: s.variant.clone(),
                        branch: s.branch.clone(),
                        minor: s.minor.to_string(),
                        images: s.images.len() + s.promotion.additional_images.len(),
                        promoted: s.images.iter().filter(|i| i.promoted).count()
                            + if s.promotion.disabled {
                                0
                            } else {
                                s.promotion.additional_images.len()
                            },
                        os: s.os.as_ref().map(|o| {
                            format!(
                                "{} built on {}",
                                config.os_tag(name).unwrap_or("-"),
                                o.location()
                            )
                        }),
                    })
                    .collect(),
            };
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
                return Ok(());
            }
            println!(
                "{}: OK: {} components, {} images, {} variants, {} streams",
                summary.file,
                summary.components,
                summary.images,
                summary.variants.len(),
                summary.streams.len()
            );
            let width = summary
                .streams
                .iter()
                .map(|s| s.name.len())
                .max()
                .unwrap_or(0);
            for s in &summary.streams {
                println!(
                    "  {:width$}  variant {}, branch {} ({}), {} images, {} promoted{}",
                    s.name,
                    s.variant,
                    s.branch,
                    s.minor,
                    s.images,
                    s.promoted,
                    s.os.as_deref()
                        .map(|o| format!(", OS {o}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        ConfigCommand::ImportCiOperator(args) => import(&args),
        ConfigCommand::ImportReleaseController(args) => import_rc(&args, output),
        ConfigCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&build::config::schema())?
            );
            Ok(())
        }
    }
}

/// Resolves every (stream, component) revision, a few remotes at a time; one error line each.
fn check_git(config: &build::config::Config) -> Result<()> {
    let sources = crate::build::git_sources(config);
    let mut wanted = std::collections::BTreeSet::new();
    for stream in config.streams.keys() {
        for component in config.components.keys() {
            let rev = config.revision(component, stream).expect("both exist");
            wanted.insert((config.components[component].git.url.clone(), rev));
        }
    }
    let queue = std::sync::Mutex::new(wanted.into_iter().collect::<Vec<_>>());
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let Some((url, rev)) = queue.lock().expect("queue").pop() else {
                    return;
                };
                if let Err(e) = sources.resolve(&url, &rev) {
                    errors.lock().expect("errors").push(e.to_string());
                }
            });
        }
    });
    let mut errors = errors.into_inner().expect("errors");
    errors.sort();
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "{} branch(es) or ref(s) could not be resolved",
            errors.len()
        );
    }
    Ok(())
}

fn import(args: &ImportArgs) -> Result<()> {
    let mut files = Vec::new();
    for path in &args.paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    let imported = build::import::import(&files)?;
    let yaml = imported.to_yaml();
    // The result must be a valid forge.yaml; anything else is a bug of the importer.
    let name = args
        .output_file
        .as_ref()
        .map_or("<imported forge.yaml>".to_string(), |p| {
            p.display().to_string()
        });
    build::config::parse(&yaml, &name, std::path::Path::new("."))
        .context("the imported configuration does not validate (an importer bug)")?;
    match &args.output_file {
        Some(out) => {
            std::fs::write(out, &yaml).with_context(|| format!("cannot write {}", out.display()))?
        }
        None => print!("{yaml}"),
    }
    for note in &imported.notes {
        eprintln!("{note}");
    }
    Ok(())
}

/// A note of `config import-release-controller --output json`.
#[derive(Serialize)]
struct NoteJson<'a> {
    file: &'a str,
    path: &'a str,
    reason: &'a str,
}

fn import_rc(args: &ImportRcArgs, output: Output) -> Result<()> {
    if args.stream.is_some() && args.paths.len() != 1 {
        anyhow::bail!(
            "--stream names the stream of one file, but {} files were given",
            args.paths.len()
        );
    }
    let mut files = Vec::new();
    for path in &args.paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    let imported = build::import_rc::import(&files, args.stream.as_deref())?;
    let text = if output == Output::Json {
        let notes: Vec<NoteJson> = imported
            .notes
            .iter()
            .map(|n| NoteJson {
                file: &n.file,
                path: &n.path,
                reason: &n.reason,
            })
            .collect();
        let doc = serde_json::json!({ "config": imported.to_json(), "notes": notes });
        format!("{}\n", serde_json::to_string_pretty(&doc)?)
    } else {
        imported.to_yaml()
    };
    match &args.output_file {
        Some(out) => {
            std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?
        }
        None => print!("{text}"),
    }
    if output != Output::Json {
        for note in &imported.notes {
            eprintln!("{note}");
        }
    }
    Ok(())
}
