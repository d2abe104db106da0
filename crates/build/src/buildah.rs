//! The Containerfile builder: rewrites the `FROM` lines of a Containerfile the way ci-operator does
//! (variant base-image substitutions, image `inputs`, the image's `from`), then builds it with
//! `buildah --runtime runc bud` in okd-forge's own buildah storage and exports the result to an OCI
//! layout by digest.
//!
//! The flow, as the orchestrator drives it:
//! 1. read the Containerfile, [`rewrite_from`] it with the image's [`FromRules`];
//! 2. [`from_images`] of the rewritten text: the external images the build needs; the caller resolves
//!    each to a digest (for its input hash) and to a reference buildah can read (`oci:/store:tag`,
//!    `oci:/store@sha256:…`, `docker://host/repo@sha256:…`);
//! 3. [`Buildah::build`]: pulls each resolved reference into the storage, names it
//!    `localhost/okd-forge/input:<image id>`, points the Containerfile at those names, runs `buildah
//!    bud --pull=never` with the build arguments and labels, pushes the image to a new OCI layout
//!    (tag `image`) and removes it from the storage again. buildah's output goes to the build's log.
//!
//! ```
//! use std::collections::BTreeMap;
//! use build::buildah::{from_images, rewrite_from, FromRules};
//!
//! let text = "FROM registry.ci.openshift.org/ocp/builder:rhel-9 AS builder\n\
//!             RUN make\n\
//!             FROM registry.ci.openshift.org/ocp/4.17:base-rhel9\n\
//!             COPY --from=builder /src/bin /usr/bin/\n";
//! let inputs = BTreeMap::from([(
//!     "quay.io/okd/builder:go1.22".to_string(),
//!     vec!["registry.ci.openshift.org/ocp/builder:rhel-9".to_string()],
//! )]);
//! let rules = FromRules {
//!     base_images: &BTreeMap::new(),
//!     inputs: &inputs,
//!     last_stage: Some("quay.io/okd/scos-base:4.17"),
//! };
//! let (out, subs) = rewrite_from(text, &rules).unwrap();
//! assert_eq!(subs.len(), 2);
//! assert_eq!(from_images(&out), ["quay.io/okd/builder:go1.22", "quay.io/okd/scos-base:4.17"]);
//! ```
//!
//! buildah runs with its own storage under the root given to [`Buildah::new`] (overlay driver by
//! default, its own storage.conf and TMPDIR), so the user's images are never touched and several
//! builds can share one root at once. Pulled inputs stay there as a cache; each built image is removed
//! once exported. `oci:` references are read through a one-image layout made per build (see
//! `pull_source`), because buildah 1.28 cannot pull by digest from a layout and derives the local
//! image name from the layout's path (which fails for paths with upper-case letters or `.tmp` parts).
//!
//! Output is reproducible where buildah allows: with [`BuildRequest::timestamp`] set, the image is
//! built with `--timestamp` and in OCI format, so the same inputs give the same manifest digest (the
//! Docker format records a random container hostname in the config). The OCI format drops the
//! Docker-only `HEALTHCHECK`, `SHELL` and `ONBUILD` settings, as `buildah --format oci` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// The tag the built image gets in [`BuildRequest::out_layout`].
pub const OUT_TAG: &str = "image";

/// The repository that pulled input images are named in: `localhost/okd-forge/input:<image id>`.
const INPUT_REPO: &str = "localhost/okd-forge/input";

/// The repository that images being built are named in until they are exported.
const BUILD_REPO: &str = "localhost/okd-forge/build";

/// What went wrong in a rewrite or a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildahError {
    /// buildah or runc cannot be run.
    #[error(
        "{detail}; okd-forge builds Containerfiles with buildah and runc: install them \
         (Debian/Ubuntu: apt-get install buildah runc; Fedora: dnf install buildah runc)"
    )]
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// A Containerfile line that cannot be understood (from [`rewrite_from`] / [`from_images`]).
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the instruction.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The same as [`BuildahError::Syntax`], in a named Containerfile (from [`Buildah::build`]).
    #[error("{containerfile}:{line}: {message}")]
    Containerfile {
        /// The Containerfile.
        containerfile: String,
        /// 1-based line of the instruction.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Two `inputs` replace the same name.
    #[error(
        "inputs '{first}' and '{second}' both replace '{name}'; list each name under one input"
    )]
    AmbiguousInput {
        /// The name listed twice.
        name: String,
        /// One input.
        first: String,
        /// The other input.
        second: String,
    },
    /// Images of the Containerfile that the caller did not resolve.
    #[error(
        "{containerfile}: no reference was resolved for {}; every image of from_images() needs one \
         (an image written with ${{VAR}} can only be replaced by an exact base_images/inputs entry)",
        quoted(images)
    )]
    Unresolved {
        /// The Containerfile.
        containerfile: String,
        /// The images without a reference.
        images: Vec<String>,
    },
    /// A resolved reference okd-forge cannot use.
    #[error("{containerfile}: resolved reference '{reference}' for '{image}': {reason}")]
    BadReference {
        /// The Containerfile.
        containerfile: String,
        /// The image text in the Containerfile.
        image: String,
        /// The reference given for it.
        reference: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot read", ...).
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A buildah command failed.
    #[error(
        "building {containerfile}: {step} failed ({status}){}; buildah's output is in {}",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        log.display()
    )]
    Failed {
        /// The Containerfile.
        containerfile: String,
        /// What was running: a buildah command, or the Containerfile step `bud` stopped at.
        step: String,
        /// How it ended ("exit status 1").
        status: String,
        /// buildah's own error message, when it printed one.
        detail: Option<String>,
        /// The log file.
        log: PathBuf,
    },
}

fn quoted(images: &[String]) -> String {
    images
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ------------------------------------------------------------------------------------------------
// FROM rewriting
// ------------------------------------------------------------------------------------------------

/// How the FROM lines of a Containerfile are rewritten, following ci-operator.
///
/// Matching is on the exact image text as written. A name that is a stage defined earlier in the
/// file (`FROM builder`, `COPY --from=builder`, `COPY --from=0`) is never substituted, except by
/// `last_stage`, which replaces the last `FROM` unconditionally (as ci-operator's `from` does).
#[derive(Debug, Clone, Copy)]
pub struct FromRules<'a> {
    /// Variant base-image substitutions: image → the image it is built from. Applies to the images
    /// of `FROM` and of `COPY --from`.
    pub base_images: &'a BTreeMap<String, String>,
    /// Image `inputs`: replacement image → the names it replaces (`FROM <name>`, or `COPY
    /// --from=<name>` where the name is an external image, not a stage). Wins over `base_images`.
    pub inputs: &'a BTreeMap<String, Vec<String>>,
    /// `from`: replaces the image of the last stage's FROM (its `AS` name is kept).
    pub last_stage: Option<&'a str>,
}

/// Rewrites the images of `containerfile`'s `FROM` and `COPY --from` instructions with `rules`;
/// everything else stays byte for byte (comments, continuations, CRLF line ends, flags, `AS`
/// names). Returns the new text and the substitutions applied, as (original, replacement), each
/// pair once, in the order they first occur.
pub fn rewrite_from(
    containerfile: &str,
    rules: &FromRules,
) -> Result<(String, Vec<(String, String)>), BuildahError> {
    let mut replaces: BTreeMap<&str, &str> = BTreeMap::new();
    for (input, names) in rules.inputs {
        for name in names {
            if let Some(first) = replaces.insert(name, input) {
                if first != input {
                    return Err(BuildahError::AmbiguousInput {
                        name: name.clone(),
                        first: first.to_string(),
                        second: input.clone(),
                    });
                }
            }
        }
    }
    rewrite_sites(containerfile, |site| {
        if site.last_from {
            if let Some(image) = rules.last_stage {
                return Some(image.to_string());
            }
        }
        if site.stage_ref {
            return None;
        }
        replaces
            .get(site.image)
            .map(|s| s.to_string())
            .or_else(|| rules.base_images.get(site.image).cloned())
    })
}

/// The external images `containerfile` refers to with `FROM` and `COPY --from`, in order of first
/// use: neither stages of the file, nor `scratch`. After [`rewrite_from`], these are the images the
/// caller resolves for [`BuildRequest::resolved`]. (A line the parser cannot read is skipped;
/// [`rewrite_from`] reports it.)
pub fn from_images(containerfile_text: &str) -> Vec<String> {
    let mut seen = Vec::<String>::new();
    let _ = visit_sites(&parse(containerfile_text), |site| {
        if !site.stage_ref
            && !site.image.eq_ignore_ascii_case("scratch")
            && !seen.iter().any(|s| s == site.image)
        {
            seen.push(site.image.to_string());
        }
        None
    });
    seen
}

/// Replaces every external image of `FROM` and `COPY --from` that `map` has.
fn map_images(
    text: &str,
    map: &BTreeMap<String, String>,
) -> Result<(String, Vec<(String, String)>), BuildahError> {
    rewrite_sites(text, |site| {
        (!site.stage_ref)
            .then(|| map.get(site.image).cloned())
            .flatten()
    })
}

/// Where an image is named: the image of a `FROM`, or the `--from` of a `COPY`.
struct Site<'t> {
    /// The image text as written.
    image: &'t str,
    /// It is the last `FROM` of the file.
    last_from: bool,
    /// It names a stage defined earlier (or a stage index, for `COPY --from`).
    stage_ref: bool,
}

/// One instruction, joined over its continuation lines.
struct Instruction {
    /// 1-based line of its first line.
    line: usize,
    /// The joined text, without escape characters before line ends or comment lines.
    logical: String,
    /// The offset in the original text of each byte of `logical`.
    offsets: Vec<usize>,
    /// Whitespace-separated words of `logical`, as ranges into it.
    words: Vec<Range<usize>>,
}

impl Instruction {
    fn word(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(|r| &self.logical[r.clone()])
    }

    fn keyword_is(&self, keyword: &str) -> bool {
        self.word(0)
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    }

    /// The range of the original text that `logical[r]` came from.
    fn original(&self, r: &Range<usize>) -> Range<usize> {
        self.offsets[r.start]..self.offsets[r.end - 1] + 1
    }

    fn syntax(&self, message: impl Into<String>) -> BuildahError {
        BuildahError::Syntax {
            line: self.line,
            message: message.into(),
        }
    }
}

/// The escape character from a `# escape=` parser directive at the top of the file, else `\`.
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = directive.split_once('=') else {
            break;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        if key.eq_ignore_ascii_case("escape") && value.trim() == "`" {
            return '`';
        }
    }
    '\\'
}

/// Splits a Containerfile into instructions, as the Dockerfile parser does: blank and comment lines
/// between instructions are skipped, a line ending in the escape character (then optional spaces
/// or tabs) continues on the next line, and blank and comment lines inside a continuation are
/// dropped.
fn parse(text: &str) -> Vec<Instruction> {
    let escape = escape_char(text);
    // (offset, line without its terminator), 1-based numbering by index + 1.
    let mut lines = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let content = raw.strip_suffix('\n').unwrap_or(raw);
        let content = content.strip_suffix('\r').unwrap_or(content);
        lines.push((offset, content));
        offset += raw.len();
    }
    let skip = |content: &str| {
        let t = content.trim_start();
        t.is_empty() || t.starts_with('#')
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if skip(lines[i].1) {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut logical = String::new();
        let mut offsets = Vec::new();
        loop {
            let (start, content) = lines[i];
            i += 1;
            let body = content.trim_end_matches([' ', '\t']);
            let piece = body.strip_suffix(escape);
            let continues = piece.is_some();
            let piece = piece.unwrap_or(content);
            logical.push_str(piece);
            offsets.extend(start..start + piece.len());
            if !continues {
                break;
            }
            while i < lines.len() && skip(lines[i].1) {
                i += 1;
            }
            if i == lines.len() {
                break;
            }
        }
        let mut words = Vec::new();
        let mut word_start = None;
        for (j, c) in logical.char_indices() {
            match (c.is_whitespace(), word_start) {
                (true, Some(s)) => {
                    words.push(s..j);
                    word_start = None;
                }
                (false, None) => word_start = Some(j),
                _ => {}
            }
        }
        if let Some(s) = word_start {
            words.push(s..logical.len());
        }
        out.push(Instruction {
            line,
            logical,
            offsets,
            words,
        });
    }
    out
}

/// Calls `replace` for every image site of the instructions in order; collects the edits it asks
/// for as (range of the original text, original, replacement).
fn visit_sites(
    instructions: &[Instruction],
    mut replace: impl FnMut(&Site) -> Option<String>,
) -> Result<Vec<(Range<usize>, String, String)>, BuildahError> {
    let last_from = instructions.iter().rposition(|i| i.keyword_is("FROM"));
    let mut stages: Vec<String> = Vec::new();
    let mut edits = Vec::new();
    for (n, ins) in instructions.iter().enumerate() {
        let mut edit = |range: Range<usize>, site: &Site| {
            if let Some(new) = replace(site) {
                if new != site.image {
                    edits.push((ins.original(&range), site.image.to_string(), new));
                }
            }
        };
        if ins.keyword_is("FROM") {
            let mut w = 1;
            while ins.word(w).is_some_and(|x| x.starts_with("--")) {
                w += 1;
            }
            let (Some(range), Some(image)) = (ins.words.get(w).cloned(), ins.word(w)) else {
                return Err(ins.syntax("FROM names no image"));
            };
            let stage_name = match ins.word(w + 1) {
                None => None,
                Some(a) if a.eq_ignore_ascii_case("AS") => match ins.word(w + 2) {
                    Some(name) if ins.word(w + 3).is_none() => Some(name.to_ascii_lowercase()),
                    _ => return Err(ins.syntax("expected FROM [--flags] IMAGE [AS NAME]")),
                },
                Some(_) => return Err(ins.syntax("expected FROM [--flags] IMAGE [AS NAME]")),
            };
            let site = Site {
                image,
                last_from: Some(n) == last_from,
                stage_ref: stages.contains(&image.to_ascii_lowercase()),
            };
            edit(range, &site);
            // Unnamed stages are referred to by index only.
            stages.push(stage_name.unwrap_or_default());
        } else if ins.keyword_is("COPY") {
            let mut w = 1;
            while let Some(flag) = ins.word(w).filter(|x| x.starts_with("--")) {
                if flag
                    .get(..7)
                    .is_some_and(|f| f.eq_ignore_ascii_case("--from="))
                {
                    let range = ins.words[w].start + 7..ins.words[w].end;
                    if range.is_empty() {
                        return Err(ins.syntax("COPY --from= names no stage or image"));
                    }
                    let image = &ins.logical[range.clone()];
                    let is_index = image.bytes().all(|b| b.is_ascii_digit());
                    let site = Site {
                        image,
                        last_from: false,
                        stage_ref: is_index || stages.contains(&image.to_ascii_lowercase()),
                    };
                    edit(range, &site);
                }
                w += 1;
            }
        }
    }
    Ok(edits)
}

/// Parses `text`, asks `replace` about every image site and applies its answers.
fn rewrite_sites(
    text: &str,
    replace: impl FnMut(&Site) -> Option<String>,
) -> Result<(String, Vec<(String, String)>), BuildahError> {
    let edits = visit_sites(&parse(text), replace)?;
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut subs: Vec<(String, String)> = Vec::new();
    for (range, old, new) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(&new);
        at = range.end;
        if !subs.iter().any(|(o, n)| *o == old && *n == new) {
            subs.push((old, new));
        }
    }
    out.push_str(&text[at..]);
    Ok((out, subs))
}

// ------------------------------------------------------------------------------------------------
// Running buildah
// ------------------------------------------------------------------------------------------------

/// Where the Containerfile comes from.
#[derive(Debug, Clone, Copy)]
pub enum ContainerfileSource<'a> {
    /// A file, relative to the context.
    Path(&'a Path),
    /// The text itself (`containerfile_literal`).
    Text(&'a str),
}

/// One Containerfile build.
#[derive(Debug, Clone, Copy)]
pub struct BuildRequest<'a> {
    /// The build context (checkout directory plus the image's context).
    pub context: &'a Path,
    /// The Containerfile.
    pub containerfile: ContainerfileSource<'a>,
    /// How its FROM lines are rewritten.
    pub rules: FromRules<'a>,
    /// Every image of [`from_images`] (after [`rewrite_from`]) → a reference buildah can pull:
    /// `oci:/abs/layout:tag`, `oci:/abs/layout@sha256:…` (pinned: read from the layout's blobs
    /// whatever its tags say now), `docker://host/repo@sha256:…`.
    pub resolved: &'a BTreeMap<String, String>,
    /// Build arguments, already merged (variant, then image).
    pub build_args: &'a BTreeMap<String, String>,
    /// Labels to set on the image (the io.openshift.build.* stamps).
    pub labels: &'a BTreeMap<String, String>,
    /// Creation time of the image and of the files its steps write (unix seconds); `None`: now.
    pub timestamp: Option<i64>,
    /// Pull `docker://` references without TLS verification (loopback registries).
    pub insecure_registries: bool,
    /// The build's log; buildah's output is appended to it.
    pub log: &'a Path,
    /// The OCI layout to export to (created if missing); the image is tagged [`OUT_TAG`].
    pub out_layout: &'a Path,
}

/// buildah, with okd-forge's own storage.
#[derive(Debug, Clone)]
pub struct Buildah {
    root: PathBuf,
    driver: String,
    program: PathBuf,
}

impl Buildah {
    /// `root`: buildah storage for okd-forge (`root/storage`, `root/run`, `root/tmp`, and
    /// `root/storage.conf` so that the machine's storage.conf does not apply). The storage driver
    /// is overlay. Checks nothing yet.
    pub fn new(root: impl Into<PathBuf>) -> Buildah {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Buildah {
            root,
            driver: "overlay".into(),
            program: PathBuf::from("buildah"),
        }
    }

    /// The same, with another containers/storage driver (`vfs` where overlay mounts are not
    /// possible; slower, copies every layer). A storage root keeps the driver it was created with.
    pub fn with_storage_driver(mut self, driver: &str) -> Buildah {
        self.driver = driver.into();
        self
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `buildah` with the global flags and environment that select okd-forge's storage.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.env("CONTAINERS_STORAGE_CONF", self.root.join("storage.conf"))
            .env("TMPDIR", self.root.join("tmp"))
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .arg("--storage-driver")
            .arg(&self.driver);
        cmd
    }

    /// Creates the storage directories and storage.conf.
    fn prepare(&self) -> Result<(), BuildahError> {
        for dir in ["storage", "run", "tmp"] {
            let path = self.root.join(dir);
            fs::create_dir_all(&path).map_err(|source| BuildahError::Io {
                action: "cannot create buildah's storage directory",
                path,
                source,
            })?;
        }
        let conf = format!(
            "# okd-forge's buildah storage (written by okd-forge)\n[storage]\ndriver = {:?}\n\
             graphroot = {:?}\nrunroot = {:?}\n",
            self.driver,
            self.root.join("storage").display().to_string(),
            self.root.join("run").display().to_string(),
        );
        let path = self.root.join("storage.conf");
        if fs::read_to_string(&path).ok().as_deref() != Some(conf.as_str()) {
            let tmp = self.root.join(format!("tmp/storage.conf.{}", unique()));
            fs::write(&tmp, &conf)
                .and_then(|()| fs::rename(&tmp, &path))
                .map_err(|source| BuildahError::Io {
                    action: "cannot write",
                    path,
                    source,
                })?;
        }
        Ok(())
    }

    /// `buildah --version` and `runc --version` work, and the storage can be opened; else an error
    /// saying what to install (or, for the storage, what failed).
    pub fn check(&self) -> Result<(), BuildahError> {
        for (program, mut cmd) in [
            ("buildah", Command::new(&self.program)),
            ("runc", Command::new("runc")),
        ] {
            let out = cmd
                .arg("--version")
                .output()
                .map_err(|e| BuildahError::Unavailable {
                    detail: format!("cannot run `{program} --version`: {e}"),
                })?;
            if !out.status.success() {
                return Err(BuildahError::Unavailable {
                    detail: format!(
                        "`{program} --version` failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
        }
        self.prepare()?;
        let out = self
            .command()
            .args(["images", "--quiet"])
            .output()
            .map_err(|e| BuildahError::Unavailable {
                detail: format!("cannot run buildah: {e}"),
            })?;
        if !out.status.success() {
            return Err(BuildahError::Unavailable {
                detail: format!(
                    "buildah cannot open its storage in {} with the {} driver ({}): {}",
                    self.root.display(),
                    self.driver,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    /// Builds and exports to a new OCI layout at `req.out_layout` (tag [`OUT_TAG`]); returns the
    /// manifest digest there ("sha256:…"). The built image does not stay in buildah's storage; the
    /// pulled inputs do (they are reused by later builds).
    pub fn build(&self, req: &BuildRequest) -> Result<String, BuildahError> {
        let (name, text) = match req.containerfile {
            ContainerfileSource::Path(p) => {
                let path = req.context.join(p);
                let text = fs::read_to_string(&path).map_err(|source| BuildahError::Io {
                    action: "cannot read Containerfile",
                    path: path.clone(),
                    source,
                })?;
                (path.display().to_string(), text)
            }
            ContainerfileSource::Text(t) => (
                format!(
                    "the inline Containerfile (context {})",
                    req.context.display()
                ),
                t.to_string(),
            ),
        };
        let in_file = |e: BuildahError| match e {
            BuildahError::Syntax { line, message } => BuildahError::Containerfile {
                containerfile: name.clone(),
                line,
                message,
            },
            e => e,
        };
        let (text, subs) = rewrite_from(&text, &req.rules).map_err(in_file)?;
        let images = from_images(&text);
        let unresolved: Vec<String> = images
            .iter()
            .filter(|i| !req.resolved.contains_key(*i))
            .cloned()
            .collect();
        if !unresolved.is_empty() {
            return Err(BuildahError::Unresolved {
                containerfile: name.clone(),
                images: unresolved,
            });
        }
        let out_layout =
            std::path::absolute(req.out_layout).map_err(|source| BuildahError::Io {
                action: "cannot resolve",
                path: req.out_layout.to_path_buf(),
                source,
            })?;
        if out_layout.to_string_lossy().contains(':') {
            return Err(BuildahError::Io {
                action: "cannot export to",
                path: out_layout,
                source: std::io::Error::other("an OCI layout path for buildah cannot contain ':'"),
            });
        }

        self.prepare()?;
        let work = WorkDir::create(self.root.join("tmp").join(format!("build-{}", unique())))?;
        let mut log = Log::open(req.log)?;
        let mut header = format!("==> okd-forge: building {name}\n");
        for (old, new) in &subs {
            let _ = writeln!(header, "    FROM substitution: {old} -> {new}");
        }
        log.note(&header)?;
        let fail = |step: String, status: String, detail: Option<String>| BuildahError::Failed {
            containerfile: name.clone(),
            step,
            status,
            detail,
            log: req.log.to_path_buf(),
        };

        // Pull every input and name it by its image id.
        let mut local = BTreeMap::new();
        for (n, image) in images.iter().enumerate() {
            let reference = &req.resolved[image];
            let bad = |reason: String| BuildahError::BadReference {
                containerfile: name.clone(),
                image: image.clone(),
                reference: reference.clone(),
                reason,
            };
            // buildah names an oci: pull `localhost/<dir name>`: unique per build, so concurrent
            // builds never take each other's name.
            let pin = format!("input-{}-{n}", unique());
            let source = pull_source(reference, &work.0, &pin).map_err(bad)?;
            let pull_command = || {
                let mut pull = self.command();
                pull.current_dir(&work.0).args(["pull", "--quiet"]);
                if reference.starts_with("docker://") {
                    if req.insecure_registries {
                        pull.arg("--tls-verify=false");
                    }
                    // A digest names one image: pull it only once.
                    let policy = if reference.contains('@') {
                        "missing"
                    } else {
                        "always"
                    };
                    pull.args(["--policy", policy]);
                } else {
                    // oci: pulls are all named localhost/<path>:latest, whatever their tag.
                    pull.args(["--policy", "always"]);
                }
                pull.arg(&source);
                pull
            };
            let step = format!("buildah pull {reference} (for {image})");
            let mut out = log.run(pull_command(), &step, true)?;
            // When two builds pull the same image into one storage at once, containers-storage
            // can lose the name of one pull ("locating pulled image … in containers storage");
            // pulling again finds the image and names it.
            for _ in 0..2 {
                let lost = out
                    .error_line
                    .as_deref()
                    .is_some_and(|e| e.contains("locating pulled image"));
                if out.status.success() || !lost {
                    break;
                }
                out = log.run(pull_command(), &step, true)?;
            }
            if !out.status.success() {
                return Err(fail(step, out.status_text(), out.error_line));
            }
            let id = out.stdout.lines().last().unwrap_or("").trim().to_string();
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(fail(
                    step,
                    "no image id".into(),
                    Some(format!("buildah pull printed {:?}", out.stdout.trim())),
                ));
            }
            let tagged = format!("{INPUT_REPO}:{id}");
            let mut tag = self.command();
            tag.args(["tag", &id, &tagged]);
            let step = format!("buildah tag {id} {tagged}");
            let out = log.run(tag, &step, false)?;
            if !out.status.success() {
                return Err(fail(step, out.status_text(), out.error_line));
            }
            if source.starts_with("oci:") {
                // Drop the pull's own name (the image keeps the one by id).
                let mut untag = self.command();
                untag.args(["rmi", &format!("localhost/{pin}:latest")]);
                let _ = log.run(untag, "buildah rmi (the pull's name)", false);
            }
            local.insert(image.clone(), tagged);
        }
        let (text, _) = map_images(&text, &local).map_err(in_file)?;
        let file = work.0.join("Containerfile");
        fs::write(&file, &text).map_err(|source| BuildahError::Io {
            action: "cannot write",
            path: file.clone(),
            source,
        })?;
        log.note(&format!(
            "==> okd-forge: the Containerfile as built ({})\n{text}{}",
            file.display(),
            if text.ends_with('\n') { "" } else { "\n" }
        ))?;

        // Build under a name of its own, so that concurrent builds of the same image do not
        // remove each other's result.
        let built = format!("{BUILD_REPO}:{}", unique());
        let _untag = Untag {
            buildah: self,
            name: &built,
        };
        let mut bud = self.command();
        bud.args([
            "bud",
            "--runtime",
            "runc",
            "--pull=never",
            "--format",
            "oci",
            "--layers=false",
            "--no-cache",
            "--force-rm",
            "--identity-label=false",
            "--tag",
            &built,
        ]);
        if let Some(t) = req.timestamp {
            bud.arg("--timestamp").arg(t.to_string());
        }
        for (k, v) in req.build_args {
            bud.arg("--build-arg").arg(format!("{k}={v}"));
        }
        for (k, v) in req.labels {
            bud.arg("--label").arg(format!("{k}={v}"));
        }
        bud.arg("--file").arg(&file).arg(req.context);
        let out = log.run(bud, "buildah bud", false)?;
        if !out.status.success() {
            let step = out
                .last_step
                .as_deref()
                .map(|s| format!("buildah bud at {s}"))
                .unwrap_or_else(|| "buildah bud".into());
            return Err(fail(step, out.status_text(), out.error_line));
        }

        // Export.
        if let Some(parent) = out_layout.parent() {
            fs::create_dir_all(parent).map_err(|source| BuildahError::Io {
                action: "cannot create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let digest_file = work.0.join("digest");
        let mut push = self.command();
        push.args(["push", "--quiet", "--format", "oci"])
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(&built)
            .arg(format!("oci:{}:{OUT_TAG}", out_layout.display()));
        let step = format!("buildah push to {}", out_layout.display());
        let out = log.run(push, &step, false)?;
        if !out.status.success() {
            return Err(fail(step, out.status_text(), out.error_line));
        }
        let digest = fs::read_to_string(&digest_file)
            .map_err(|source| BuildahError::Io {
                action: "cannot read buildah's digest file",
                path: digest_file.clone(),
                source,
            })?
            .trim()
            .to_string();
        if !is_sha256(&digest) {
            return Err(fail(
                step,
                "no digest".into(),
                Some(format!("the digest file holds {digest:?}")),
            ));
        }
        log.note(&format!(
            "==> okd-forge: built {digest} into {}\n",
            out_layout.display()
        ))?;
        Ok(digest)
    }
}

/// The reference [`BuildRequest::resolved`] takes for an image okd-forge resolved:
/// `oci:/layout@sha256:…` / `oci:/layout:tag` for a layout, `docker://host/repo@sha256:…` for a
/// registry.
pub fn buildah_ref(image: &oci::ImageRef) -> String {
    image.to_string()
}

/// A process-wide unique suffix: pid, then a counter.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The source to give `buildah pull` (run in `work`) for a resolved reference.
///
/// buildah 1.28 names an image pulled from `oci:PATH` `localhost/PATH`, and fails when PATH is not
/// a valid image name (upper case, a `.tmp…` component); the oci transport cannot read
/// `oci:PATH@sha256:…` either. So every `oci:` reference becomes a one-image layout `work/name`
/// (pulled as the relative `oci:name:pinned`) whose `blobs` is a link to the layout's blobs and
/// whose index names the image the reference selects, by digest: the tag is read once, here.
fn pull_source(reference: &str, work: &Path, name: &str) -> Result<String, String> {
    let Some(rest) = reference.strip_prefix("oci:") else {
        return Ok(reference.to_string());
    };
    // oci:PATH@DIGEST, oci:PATH:TAG or oci:PATH (the only image); PATH is absolute.
    let (layout, selector) = match rest.rsplit_once('@') {
        Some((layout, digest)) => (layout, Some((true, digest))),
        None => match rest.rsplit_once(':') {
            Some((layout, tag)) => (layout, Some((false, tag))),
            None => (rest, None),
        },
    };
    let layout = Path::new(layout);
    if !layout.is_absolute() {
        return Err("the layout path must be absolute".into());
    }
    let digest = match selector {
        Some((true, digest)) if is_sha256(digest) => digest.to_string(),
        Some((true, digest)) => return Err(format!("'{digest}' is not a sha256 digest")),
        Some((false, tag)) => layout_entry(layout, |annotation| annotation == Some(tag))
            .map_err(|e| format!("{e} tagged '{tag}'"))?,
        None => layout_entry(layout, |_| true)?,
    };
    let pin = work.join(name);
    let io = |e: std::io::Error| format!("cannot write {}: {e}", pin.display());
    fs::create_dir_all(pin.join("blobs/sha256")).map_err(io)?;
    let (digest, media_type, size) = pin_manifest(layout, &digest, &pin)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": { "org.opencontainers.image.ref.name": "pinned" },
        }],
    });
    fs::write(pin.join("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}").map_err(io)?;
    fs::write(pin.join("index.json"), index.to_string()).map_err(io)?;
    Ok(format!("oci:{name}:pinned"))
}

/// Links the blobs of manifest `digest` of `layout` into the pinned layout `pin` and returns the manifest
/// buildah reads: (digest, media type, size). containers/image's oci transport only reads OCI media
/// types, so a Docker schema 2 image (what the native builder and the payload write) gets an
/// equivalent OCI manifest over the same config and layer blobs; of a Docker list, the host's image.
fn pin_manifest(
    layout: &Path,
    digest: &str,
    pin: &Path,
) -> Result<(String, String, usize), String> {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let blob = |d: &str| layout.join("blobs/sha256").join(&d[7..]);
    let link = |d: &str| -> Result<(), String> {
        let to = pin.join("blobs/sha256").join(&d[7..]);
        if to.exists() {
            return Ok(());
        }
        std::os::unix::fs::symlink(blob(d), &to)
            .map_err(|e| format!("cannot link {}: {e}", to.display()))
    };
    let bytes = fs::read(blob(digest))
        .map_err(|e| format!("cannot read {}: {e}", blob(digest).display()))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a manifest: {e}", blob(digest).display()))?;
    let media_type = doc.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
    let is_list = doc.get("manifests").is_some();
    if is_list && media_type == oci::media_type::DOCKER_LIST {
        let arch = oci::manifest::host_arch();
        let child = doc["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["platform"]["architecture"] == arch)
            .and_then(|m| m["digest"].as_str())
            .ok_or_else(|| format!("{digest} has no image for {arch}"))?;
        return pin_manifest(layout, child, pin);
    }
    let children: Vec<&str> = if is_list {
        doc["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["digest"].as_str())
            .collect()
    } else {
        Vec::new()
    };
    for c in children {
        link(c)?;
        let child: serde_json::Value =
            serde_json::from_slice(&fs::read(blob(c)).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        link_image_blobs(&child, &link)?;
    }
    if is_list {
        link(digest)?;
        let mt = if media_type.is_empty() {
            "application/vnd.oci.image.index.v1+json"
        } else {
            media_type
        };
        return Ok((digest.to_string(), mt.to_string(), bytes.len()));
    }
    link_image_blobs(&doc, &link)?;
    if media_type != oci::media_type::DOCKER_MANIFEST {
        link(digest)?;
        return Ok((digest.to_string(), OCI_MANIFEST.to_string(), bytes.len()));
    }
    let oci_type = |mt: &str| {
        match mt {
            oci::media_type::DOCKER_CONFIG => "application/vnd.oci.image.config.v1+json",
            oci::media_type::DOCKER_LAYER_GZIP => oci::media_type::OCI_LAYER_GZIP,
            "application/vnd.docker.image.rootfs.diff.tar" => oci::media_type::OCI_LAYER_TAR,
            other => other,
        }
        .to_string()
    };
    let mut converted = doc.clone();
    converted["mediaType"] = OCI_MANIFEST.into();
    converted["config"]["mediaType"] =
        oci_type(doc["config"]["mediaType"].as_str().unwrap_or("")).into();
    if let Some(layers) = converted["layers"].as_array_mut() {
        for l in layers {
            let mt = oci_type(l["mediaType"].as_str().unwrap_or(""));
            l["mediaType"] = mt.into();
        }
    }
    let out = serde_json::to_vec(&converted).map_err(|e| e.to_string())?;
    let new = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out))
    );
    let path = pin.join("blobs/sha256").join(&new[7..]);
    fs::write(&path, &out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((new, OCI_MANIFEST.to_string(), out.len()))
}

fn link_image_blobs(
    manifest: &serde_json::Value,
    link: &dyn Fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    let config = manifest["config"]["digest"].as_str().into_iter();
    let layers = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str());
    for d in config.chain(layers) {
        if !is_sha256(d) {
            return Err(format!("'{d}' is not a sha256 digest"));
        }
        link(d)?;
    }
    Ok(())
}

/// The digest of the single entry of `layout`'s index.json whose tag annotation `wanted` accepts.
fn layout_entry(layout: &Path, wanted: impl Fn(Option<&str>) -> bool) -> Result<String, String> {
    let path = layout.join("index.json");
    let text = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let index: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not an OCI index: {e}", path.display()))?;
    let found: Vec<&str> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| wanted(m["annotations"]["org.opencontainers.image.ref.name"].as_str()))
        .filter_map(|m| m["digest"].as_str())
        .collect();
    match found[..] {
        [digest] if is_sha256(digest) => Ok(digest.to_string()),
        [] => Err(format!("{} has no image", layout.display())),
        _ => Err(format!("{} has more than one image", layout.display())),
    }
}

/// A directory removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(path: PathBuf) -> Result<WorkDir, BuildahError> {
        fs::create_dir_all(&path).map_err(|source| BuildahError::Io {
            action: "cannot create",
            path: path.clone(),
            source,
        })?;
        Ok(WorkDir(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes the name of the image being built when dropped (which removes the image unless another
/// name keeps it).
struct Untag<'a> {
    buildah: &'a Buildah,
    name: &'a str,
}

impl Drop for Untag<'_> {
    fn drop(&mut self) {
        let _ = self
            .buildah
            .command()
            .args(["rmi", self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// How much of the end of a command's output is searched for its error.
const TAIL: u64 = 64 * 1024;

/// The build's log file, appended to.
struct Log {
    path: PathBuf,
    file: fs::File,
}

/// How a command ended, with what the log learnt from it.
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    /// The last `STEP …` line buildah printed.
    last_step: Option<String>,
    /// The last `Error: …` line buildah printed, without the prefix.
    error_line: Option<String>,
}

impl Ran {
    fn status_text(&self) -> String {
        self.status.to_string()
    }
}

impl Log {
    fn open(path: &Path) -> Result<Log, BuildahError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| BuildahError::Io {
                action: "cannot create the log directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|source| BuildahError::Io {
                action: "cannot open the build log",
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Log {
            path: path.to_path_buf(),
            file,
        })
    }

    fn io(&self, source: std::io::Error) -> BuildahError {
        BuildahError::Io {
            action: "cannot write the build log",
            path: self.path.clone(),
            source,
        }
    }

    fn note(&mut self, text: &str) -> Result<(), BuildahError> {
        self.file.write_all(text.as_bytes()).map_err(|e| self.io(e))
    }

    /// Runs `cmd` with its stderr (and stdout, unless `capture`) appended to the log; captured
    /// stdout is returned and logged too.
    fn run(&mut self, mut cmd: Command, step: &str, capture: bool) -> Result<Ran, BuildahError> {
        let shown: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.note(&format!("==> okd-forge: {step}\n$ {}\n", shown.join(" ")))?;
        let start = self.file.seek(SeekFrom::End(0)).map_err(|e| self.io(e))?;
        let stderr = self.file.try_clone().map_err(|e| self.io(e))?;
        cmd.stdin(Stdio::null()).stderr(stderr);
        if capture {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(self.file.try_clone().map_err(|e| self.io(e))?);
        }
        let out = cmd.output().map_err(|e| BuildahError::Unavailable {
            detail: format!("cannot run {}: {e}", shown[0]),
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.note(&stdout)?;
        // buildah's last words: its error, and the step it was at.
        let end = self.file.seek(SeekFrom::End(0)).map_err(|e| self.io(e))?;
        let mut written = Vec::new();
        self.file
            .seek(SeekFrom::Start(start.max(end.saturating_sub(TAIL))))
            .and_then(|_| (&self.file).read_to_end(&mut written))
            .map_err(|e| self.io(e))?;
        let written = String::from_utf8_lossy(&written);
        let last_step = written
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("STEP ") || (l.starts_with('[') && l.contains("] STEP ")))
            .filter_map(|l| l.find("STEP ").map(|i| l[i..].to_string()))
            .next_back();
        let error_line = written
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Error: "))
            .next_back()
            .map(str::to_string);
        Ok(Ran {
            status: out.status,
            stdout,
            last_step,
            error_line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn inputs(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    /// Rewrites with the given rules; panics on error.
    fn rw(
        text: &str,
        base: &[(&str, &str)],
        ins: &[(&str, &[&str])],
        last: Option<&str>,
    ) -> (String, Vec<(String, String)>) {
        let base = map(base);
        let ins = inputs(ins);
        let rules = FromRules {
            base_images: &base,
            inputs: &ins,
            last_stage: last,
        };
        rewrite_from(text, &rules).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pairs(subs: &[(&str, &str)]) -> Vec<(String, String)> {
        subs.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const OCP: &str = "registry.ci.openshift.org/ocp/4.17:base-rhel9";
    const BUILDER: &str = "registry.ci.openshift.org/ocp/builder:rhel-9-golang-1.22-openshift-4.17";

    #[test]
    fn base_image_substitution_keeps_everything_else() {
        let text =
            format!("# a comment\nARG X=1\nFROM {OCP}\nRUN echo hi  # not a comment\nLABEL a=b\n");
        let (out, subs) = rw(&text, &[(OCP, "quay.io/okd/scos:base")], &[], None);
        assert_eq!(out, text.replace(OCP, "quay.io/okd/scos:base"));
        assert_eq!(subs, pairs(&[(OCP, "quay.io/okd/scos:base")]));
    }

    #[test]
    fn nothing_to_do_is_identity() {
        let text = "FROM a\r\nRUN x \\\r\n  y\r\n\r\n# c\r\nFROM b AS c\r\n";
        let (out, subs) = rw(text, &[("z", "y")], &[], None);
        assert_eq!(out, text);
        assert!(subs.is_empty());
    }

    #[test]
    fn keywords_are_case_insensitive_and_flags_and_names_are_kept() {
        let text = format!("from --platform=linux/amd64 {BUILDER} as Builder\nfrom {OCP}\n");
        let (out, _) = rw(&text, &[(OCP, "base")], &[("go", &[BUILDER])], None);
        assert_eq!(
            out,
            "from --platform=linux/amd64 go as Builder\nfrom base\n"
        );
    }

    #[test]
    fn inputs_win_over_base_images_and_last_stage_wins_over_both() {
        let text = format!("FROM {BUILDER} AS builder\nFROM {OCP}\n");
        let (out, subs) = rw(
            &text,
            &[(BUILDER, "variant-builder"), (OCP, "variant-base")],
            &[("input-builder", &[BUILDER]), ("input-base", &[OCP])],
            Some("from-image"),
        );
        assert_eq!(out, "FROM input-builder AS builder\nFROM from-image\n");
        assert_eq!(
            subs,
            pairs(&[(BUILDER, "input-builder"), (OCP, "from-image")])
        );
    }

    #[test]
    fn last_stage_replaces_only_the_last_from_keeping_its_name() {
        let text = "FROM a AS one\nFROM a AS two\nFROM a AS three\nRUN true\n";
        let (out, subs) = rw(text, &[], &[], Some("base"));
        assert_eq!(
            out,
            "FROM a AS one\nFROM a AS two\nFROM base AS three\nRUN true\n"
        );
        assert_eq!(subs, pairs(&[("a", "base")]));
        // Even when the last stage is built on an earlier stage (as ci-operator's `from` does).
        let (out, _) = rw("FROM x AS b\nFROM b\n", &[], &[], Some("base"));
        assert_eq!(out, "FROM x AS b\nFROM base\n");
    }

    #[test]
    fn stage_names_are_never_substituted() {
        let text = "FROM img AS builder\nFROM builder AS test\nCOPY --from=builder /a /b\nFROM Builder\nCOPY --from=0 /x /y\n";
        let (out, subs) = rw(
            text,
            &[("builder", "nope"), ("0", "nope")],
            &[("input", &["builder", "img"])],
            None,
        );
        assert_eq!(out, text.replacen("FROM img", "FROM input", 1));
        assert_eq!(subs, pairs(&[("img", "input")]));
    }

    #[test]
    fn a_name_used_before_its_stage_is_defined_is_an_image() {
        // ci-operator only treats names of earlier stages as stages.
        let text = "FROM a\nCOPY --from=later /x /y\nFROM b AS later\n";
        let (out, _) = rw(text, &[], &[("input", &["later"])], None);
        assert_eq!(out, "FROM a\nCOPY --from=input /x /y\nFROM b AS later\n");
    }

    #[test]
    fn copy_from_external_images_is_rewritten() {
        let cli = "registry.ci.openshift.org/ocp/4.17:cli";
        let text = format!(
            "FROM {OCP}\nCOPY --chown=0:0 --from={cli} /usr/bin/oc /usr/bin/oc\nCOPY --FROM={cli} [\"/a\", \"/b\"]\nCOPY src /dst\n"
        );
        let (out, subs) = rw(&text, &[(OCP, "base")], &[("cli", &[cli])], None);
        assert_eq!(
            out,
            "FROM base\nCOPY --chown=0:0 --from=cli /usr/bin/oc /usr/bin/oc\nCOPY --FROM=cli [\"/a\", \"/b\"]\nCOPY src /dst\n"
        );
        assert_eq!(subs, pairs(&[(OCP, "base"), (cli, "cli")]));
        // ADD has no --from; a --from in a RUN is not an image reference.
        let text = "FROM a\nADD --from=a x y\nRUN echo --from=a\n";
        assert_eq!(
            rw(text, &[("a", "b")], &[], None).0,
            text.replacen("FROM a", "FROM b", 1)
        );
    }

    #[test]
    fn continuations_and_comments_inside_them() {
        let text = "FROM \\\n  # the builder\n   builder:1 \\\n   AS b\nRUN a \\\n\n FROM notaninstruction\nFROM\tbase:1\n";
        let (out, subs) = rw(text, &[("builder:1", "B"), ("base:1", "X")], &[], None);
        assert_eq!(
            out,
            "FROM \\\n  # the builder\n   B \\\n   AS b\nRUN a \\\n\n FROM notaninstruction\nFROM\tX\n"
        );
        assert_eq!(subs.len(), 2);
        // A continuation with trailing blanks after the backslash, and CRLF.
        let text = "FROM a \\ \t\r\n  AS s\r\nFROM s\r\n";
        let (out, _) = rw(text, &[("a", "b")], &[], None);
        assert_eq!(out, "FROM b \\ \t\r\n  AS s\r\nFROM s\r\n");
    }

    #[test]
    fn escape_directive() {
        let text = "# escape=`\nFROM a `\n  AS x\nRUN dir c:\\\nFROM x\n";
        let (out, _) = rw(text, &[("a", "b"), ("x", "no")], &[], None);
        assert_eq!(out, "# escape=`\nFROM b `\n  AS x\nRUN dir c:\\\nFROM x\n");
    }

    #[test]
    fn args_before_from_and_variable_images() {
        let text = "ARG BASE=quay.io/x:1\nFROM ${BASE}\nFROM $BASE AS two\nFROM quay.io/x:1\n";
        let (out, subs) = rw(text, &[("quay.io/x:1", "y")], &[], None);
        assert_eq!(
            out,
            "ARG BASE=quay.io/x:1\nFROM ${BASE}\nFROM $BASE AS two\nFROM y\n"
        );
        assert_eq!(subs.len(), 1);
        // An exact entry replaces the variable text.
        let (out, _) = rw(text, &[("${BASE}", "z")], &[], None);
        assert!(out.contains("FROM z\n"), "{out}");
        assert_eq!(from_images(text), ["${BASE}", "$BASE", "quay.io/x:1"]);
    }

    #[test]
    fn no_trailing_newline_and_from_in_a_token() {
        let (out, _) = rw("FROM a", &[("a", "bb")], &[], None);
        assert_eq!(out, "FROM bb");
        // Only the image word is replaced, not every occurrence of its text.
        let (out, _) = rw("FROM a AS a2\nRUN echo a\n", &[("a", "b")], &[], None);
        assert_eq!(out, "FROM b AS a2\nRUN echo a\n");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let base = BTreeMap::new();
        let ins = BTreeMap::new();
        let rules = FromRules {
            base_images: &base,
            inputs: &ins,
            last_stage: None,
        };
        let err = |text: &str| rewrite_from(text, &rules).unwrap_err().to_string();
        assert_eq!(err("FROM a\n\nFROM\n"), "line 3: FROM names no image");
        assert_eq!(
            err("FROM a AS\n"),
            "line 1: expected FROM [--flags] IMAGE [AS NAME]"
        );
        assert_eq!(
            err("FROM a b\n"),
            "line 1: expected FROM [--flags] IMAGE [AS NAME]"
        );
        assert_eq!(
            err("FROM a\nCOPY --from= x y\n"),
            "line 2: COPY --from= names no stage or image"
        );
    }

    #[test]
    fn an_input_name_listed_twice_is_an_error() {
        let base = BTreeMap::new();
        let ins = inputs(&[("one", &["x"]), ("two", &["x"])]);
        let rules = FromRules {
            base_images: &base,
            inputs: &ins,
            last_stage: None,
        };
        assert_eq!(
            rewrite_from("FROM x\n", &rules).unwrap_err().to_string(),
            "inputs 'one' and 'two' both replace 'x'; list each name under one input"
        );
    }

    #[test]
    fn from_images_lists_external_images_once() {
        let text = "FROM b:1 AS builder\nFROM scratch AS empty\nFROM SCRATCH\nCOPY --from=builder /a /a\nCOPY --from=c:1 /a /a\nCOPY --from=1 /a /a\nFROM b:1\nCOPY --from=c:1 /b /b\n";
        assert_eq!(from_images(text), ["b:1", "c:1"]);
        assert!(from_images("").is_empty());
        assert!(from_images("FROM\n").is_empty());
    }

    #[test]
    fn map_images_maps_external_references_only() {
        let text = "FROM a AS a2\nFROM a2\nCOPY --from=a /x /x\nCOPY --from=a2 /y /y\n";
        let (out, _) = map_images(text, &map(&[("a", "L"), ("a2", "no")])).unwrap();
        assert_eq!(
            out,
            "FROM L AS a2\nFROM a2\nCOPY --from=L /x /x\nCOPY --from=a2 /y /y\n"
        );
    }

    #[test]
    fn oci_references_become_a_one_image_layout_by_digest() {
        let dir = std::env::temp_dir().join(format!("okd-forge-pin-test-{}", unique()));
        let _guard = WorkDir::create(dir.clone()).unwrap();
        let store = dir.join("Store");
        fs::create_dir_all(store.join("blobs/sha256")).unwrap();
        let manifest =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let (hex, other) = ("ab".repeat(32), "cd".repeat(32));
        fs::write(store.join("blobs/sha256").join(&hex), manifest).unwrap();
        let tagged = |tag: &str, hex: &str| {
            serde_json::json!({"digest": format!("sha256:{hex}"),
                "annotations": {"org.opencontainers.image.ref.name": tag}})
        };
        let write_index = |entries: Vec<serde_json::Value>| {
            let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
            fs::write(store.join("index.json"), index.to_string()).unwrap();
        };
        write_index(vec![tagged("a", &hex), tagged("b", &other)]);
        let work = dir.join("work");
        let check = |reference: &str, name: &str| {
            let src = pull_source(reference, &work, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(src, format!("oci:{name}:pinned"));
            let pin = work.join(name);
            let index: serde_json::Value =
                serde_json::from_slice(&fs::read(pin.join("index.json")).unwrap()).unwrap();
            assert_eq!(index["manifests"][0]["digest"], format!("sha256:{hex}"));
            assert_eq!(index["manifests"][0]["size"], manifest.len());
            assert_eq!(
                index["manifests"][0]["mediaType"],
                "application/vnd.oci.image.manifest.v1+json"
            );
            assert!(pin.join("blobs/sha256").join(&hex).is_file());
        };
        let store_text = store.display().to_string();
        check(&format!("oci:{store_text}@sha256:{hex}"), "by-digest");
        check(&format!("oci:{store_text}:a"), "by-tag");
        let err = |reference: &str| pull_source(reference, &work, "x").unwrap_err();
        assert!(err(&format!("oci:{store_text}:c")).contains("has no image tagged 'c'"));
        assert!(err(&format!("oci:{store_text}")).contains("more than one image"));
        write_index(vec![tagged("a", &hex)]);
        check(&format!("oci:{store_text}"), "only");
        assert!(err("oci:/s@sha256:zz").contains("not a sha256 digest"));
        assert!(err(&format!("oci:rel@sha256:{hex}")).contains("absolute"));
        assert!(err(&format!("oci:{store_text}@sha256:{other}")).contains("cannot read"));
        // Everything else is given to buildah as it is.
        for r in ["docker://h/r@sha256:00", "containers-storage:x"] {
            assert_eq!(pull_source(r, &work, "x").unwrap(), r);
        }
    }

    #[test]
    fn digests() {
        assert!(is_sha256(&format!("sha256:{}", "0a".repeat(32))));
        assert!(!is_sha256(&format!("sha256:{}", "0A".repeat(32))));
        assert!(!is_sha256("sha256:00"));
    }
}
