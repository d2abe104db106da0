//! `forge.yaml`: parsed into [`raw`] types (what the user wrote), then validated into the [`model`]
//! (what the program uses). Every error names `file:line:column` and the field.

pub mod model;
pub mod policy;
pub mod raw;
pub mod release;

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

pub use model::{
    Component, Config, GitScheme, GitUrl, Image, Minor, NativeOutput, OsSource, Promotion, Publish,
    PublishRepos, Rebuild, Recipe, Revision, Signing, Store, Stream, StreamImage, Variant,
    DEFAULT_STORE_NAME,
};
pub use raw::RawConfig;
pub use release::{
    default_stable_template, Checks, PayloadPrefix, Promote, PublishAction, Release, Schedule,
    UpgradeFrom, Verify,
};

/// The configuration file used when none is given.
pub const DEFAULT_FILE: &str = "forge.yaml";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML, does not have the expected shape, or breaks a rule; one
    /// problem per line.
    #[error("{}", Problems(problems))]
    Invalid {
        /// Every problem found, in file order for parse errors, in check order otherwise.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] error (empty otherwise).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// One thing wrong in a configuration file, shown as `FILE:LINE:COLUMN: FIELD: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as it was named.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: u64,
    /// 1-based column, 0 if unknown.
    pub column: u64,
    /// The field, as `streams.okd-scos-4.17.variant` or `components.mco.images[0].to`; empty for
    /// the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(file: &str, at: Location, field: String, message: String) -> Problem {
        Problem {
            file: file.to_string(),
            line: at.line(),
            column: at.column(),
            field,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads and validates the configuration file at `path`; relative paths in it are resolved
/// against its directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Absolute, so that what the file names (layouts buildah reads, the state, the store) stays
    // where it is whatever directory a later step runs in.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    parse(&text, &path.display().to_string(), &base)
}

/// Parses and validates configuration `text`; `file` names it in errors and relative paths are
/// resolved against `base`.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let raw = parse_raw(text, file)?;
    model::validate(raw, file, base)
}

/// Parses `text` into the raw types without checking the rules beyond YAML shape.
pub fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    let field = RefCell::new(String::new());
    let options = serde_saphyr::Options {
        with_snippet: false,
        ..Default::default()
    };
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, RawConfig>(de).map_err(|e| {
            *field.borrow_mut() = field_path(e.path());
            e.into_inner()
        })
    })
    .map_err(|e| {
        let e = e.without_snippet();
        let message = message(e);
        let mut problem = Problem::new(
            file,
            e.location().unwrap_or(Location::UNKNOWN),
            field.take(),
            message,
        );
        refine_unknown_field(text, &mut problem);
        ConfigError::Invalid {
            problems: vec![problem],
        }
    })
}

/// serde-saphyr places an unknown field at the start of its mapping: move it to the key itself,
/// the first `KEY:` from there on.
fn refine_unknown_field(text: &str, p: &mut Problem) {
    let Some(name) = p
        .message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    else {
        return;
    };
    if p.line == 0 || name.is_empty() {
        return;
    }
    // Byte offset of the mapping's start.
    let line_start: usize = text
        .split_inclusive('\n')
        .take(p.line as usize - 1)
        .map(str::len)
        .sum();
    let start = text[line_start..]
        .char_indices()
        .nth(p.column.saturating_sub(1) as usize)
        .map_or(text.len(), |(i, _)| line_start + i);
    let mut from = start;
    while let Some(i) = text[from..].find(name) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].trim_start_matches([' ', '\t', '"', '\'']);
        let quoted_before = before.is_some_and(|c| c == '"' || c == '\'');
        let key_start = quoted_before
            || before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',' || c == '-');
        if key_start && after.starts_with(':') {
            let key = if quoted_before { at - 1 } else { at };
            let line_begin = text[..key].rfind('\n').map_or(0, |n| n + 1);
            p.line = text[..key].matches('\n').count() as u64 + 1;
            p.column = text[line_begin..key].chars().count() as u64 + 1;
            return;
        }
        from = at + name.len();
    }
}

/// The JSON Schema of `forge.yaml` (of [`RawConfig`]).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or_default()
}

/// The message of a parse error without the location serde-saphyr appends.
fn message(e: &serde_saphyr::Error) -> String {
    if let serde_saphyr::Error::Unexpected { expected, .. } = e {
        let expected = match *expected {
            "sequence start" => "a list",
            "mapping start" => "a mapping",
            "string scalar" => "a string",
            other => other,
        };
        return format!("wrong type: expected {expected}");
    }
    let text = e.to_string();
    for number in ["u8", "u16", "u32", "u64", "usize"] {
        if text.starts_with(&format!("invalid {number}")) {
            return "wrong type: expected a whole number".to_string();
        }
    }
    match e.location() {
        Some(at) => {
            let suffix = format!(" at line {}, column {}", at.line(), at.column());
            text.strip_suffix(&suffix).unwrap_or(&text).to_string()
        }
        None => text,
    }
}

/// A serde path as `a.b[0].c`, without the `value` level of [`serde_saphyr::Spanned`].
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            // The level serde_saphyr::Spanned adds (a user key `value` under a Spanned map is
            // also dropped; that costs only a less precise field name).
            Segment::Map { key } if key == "value" => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}
