//! The native, daemonless builder: run the component's build command in the checkout, then layer the
//! declared outputs onto a base image. No container engine is involved.
//!
//! The layer is deterministic: entries sorted by path, one fixed mtime, uid/gid 0 without names, modes
//! reduced to 0755 (executable) or 0644, and the parent directories of every destination included as
//! 0755 directories. The same outputs always give the same layer digest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci::compose::tar_header;

use crate::config::NativeOutput;

/// Why a native build failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The command could not be started.
    #[error("cannot run `{command}` in {}: {source}; is the program installed and on PATH?", dir.display())]
    Spawn {
        /// The command line.
        command: String,
        /// The checkout.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("`{command}` failed ({status}); see the build log {}", log.display())]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The log.
        log: PathBuf,
    },
    /// A declared output is missing or cannot be read.
    #[error("output '{}' (for {dest}): {reason}; check the recipe's `outputs` and the build log", source_path.display())]
    Output {
        /// The path in the checkout.
        source_path: PathBuf,
        /// Where it goes in the image.
        dest: String,
        /// What is wrong.
        reason: String,
    },
    /// The log file could not be written.
    #[error("build log {}: {source}", path.display())]
    Log {
        /// The log.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs `command` (no shell) in `dir` with `env` added to the environment (build arguments), appending
/// stdout and stderr to `log`.
pub fn run(
    command: &[String],
    dir: &Path,
    env: &BTreeMap<String, String>,
    log: &Path,
) -> Result<(), NativeError> {
    let line = command.join(" ");
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| NativeError::Log {
                path: log.to_path_buf(),
                source,
            })
    };
    let out = open_log()?;
    let err = out.try_clone().map_err(|source| NativeError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    let (program, args) = command.split_first().ok_or_else(|| NativeError::Spawn {
        command: line.clone(),
        dir: dir.to_path_buf(),
        source: std::io::Error::other("empty command"),
    })?;
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| NativeError::Spawn {
            command: line.clone(),
            dir: dir.to_path_buf(),
            source,
        })?;
    if !status.success() {
        return Err(NativeError::Failed {
            command: line,
            status,
            log: log.to_path_buf(),
        });
    }
    Ok(())
}

/// One entry of the layer, before it is written.
enum Entry {
    Dir,
    File { source: PathBuf, executable: bool },
    Link(PathBuf),
}

/// The layer tar of `outputs` taken from `checkout`: a file goes to its destination, a directory's
/// whole tree goes under its destination. Symlinks are kept as symlinks. Every entry has `mtime`.
pub fn layer_tar(
    checkout: &Path,
    outputs: &[NativeOutput],
    mtime: u64,
) -> Result<Vec<u8>, NativeError> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for out in outputs {
        let source = checkout.join(&out.source);
        let bad = |reason: String| NativeError::Output {
            source_path: out.source.clone(),
            dest: out.dest.clone(),
            reason,
        };
        let dest = out.dest.trim_start_matches('/').trim_end_matches('/');
        if dest.is_empty() {
            return Err(bad(
                "the image path must name a file or directory below /".into()
            ));
        }
        let meta = std::fs::symlink_metadata(&source)
            .map_err(|e| bad(format!("not produced by the build ({e})")))?;
        add_parents(&mut entries, dest);
        collect(&mut entries, &source, dest.to_string(), &meta).map_err(bad)?;
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in &entries {
        let err = |e: std::io::Error| NativeError::Output {
            source_path: PathBuf::from(path),
            dest: format!("/{path}"),
            reason: e.to_string(),
        };
        match entry {
            Entry::Dir => {
                let mut h = tar_header(tar::EntryType::Directory, 0o755, 0, mtime);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .map_err(err)?;
            }
            Entry::File { source, executable } => {
                let mut data = Vec::new();
                File::open(source)
                    .and_then(|mut f| f.read_to_end(&mut data))
                    .map_err(err)?;
                let mode = if *executable { 0o755 } else { 0o644 };
                let mut h = tar_header(tar::EntryType::Regular, mode, data.len() as u64, mtime);
                tar.append_data(&mut h, path, &data[..]).map_err(err)?;
            }
            Entry::Link(target) => {
                let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0, mtime);
                tar.append_link(&mut h, path, target).map_err(err)?;
            }
        }
    }
    tar.into_inner().map_err(|e| NativeError::Output {
        source_path: PathBuf::new(),
        dest: String::new(),
        reason: e.to_string(),
    })
}

fn add_parents(entries: &mut BTreeMap<String, Entry>, dest: &str) {
    let mut parents = BTreeSet::new();
    let mut p = Path::new(dest).parent();
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
        parents.insert(dir.to_string_lossy().into_owned());
        p = dir.parent();
    }
    for dir in parents {
        entries.entry(dir).or_insert(Entry::Dir);
    }
}

fn collect(
    entries: &mut BTreeMap<String, Entry>,
    source: &Path,
    dest: String,
    meta: &std::fs::Metadata,
) -> Result<(), String> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(source).map_err(|e| e.to_string())?;
        entries.insert(dest, Entry::Link(target));
    } else if kind.is_file() {
        entries.insert(
            dest,
            Entry::File {
                source: source.to_path_buf(),
                executable: meta.permissions().mode() & 0o111 != 0,
            },
        );
    } else if kind.is_dir() {
        entries.insert(dest.clone(), Entry::Dir);
        let mut children: Vec<_> = std::fs::read_dir(source)
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        children.sort_by_key(|c| c.file_name());
        for c in children {
            let name = c.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("{} is not UTF-8", c.path().display()))?;
            let meta = std::fs::symlink_metadata(c.path()).map_err(|e| e.to_string())?;
            collect(entries, &c.path(), format!("{dest}/{name}"), &meta)?;
        }
    } else {
        return Err(format!(
            "{} is neither a file, a directory nor a symlink",
            source.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(tar: &[u8]) -> Vec<(String, u32, u64, String)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
                let mut body = String::new();
                if h.entry_type().is_symlink() {
                    body = e.link_name().unwrap().unwrap().display().to_string();
                } else {
                    e.read_to_string(&mut body).unwrap();
                }
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    body,
                )
            })
            .collect()
    }

    #[test]
    fn outputs_become_a_sorted_fixed_layer() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path();
        std::fs::create_dir_all(co.join("_out/share/b")).unwrap();
        std::fs::write(co.join("_out/tool"), "bin").unwrap();
        std::fs::set_permissions(co.join("_out/tool"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(co.join("_out/share/z.txt"), "z").unwrap();
        std::fs::write(co.join("_out/share/b/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("z.txt", co.join("_out/share/link")).unwrap();
        let outputs = [
            NativeOutput {
                source: "_out/tool".into(),
                dest: "/usr/bin/tool".into(),
            },
            NativeOutput {
                source: "_out/share".into(),
                dest: "/usr/share/tool/".into(),
            },
        ];
        let tar = layer_tar(co, &outputs, 1_700_000_000).unwrap();
        let t = 1_700_000_000;
        let got = list(&tar);
        let want = [
            ("usr/", 0o755, ""),
            ("usr/bin/", 0o755, ""),
            ("usr/bin/tool", 0o755, "bin"),
            ("usr/share/", 0o755, ""),
            ("usr/share/tool/", 0o755, ""),
            ("usr/share/tool/b/", 0o755, ""),
            ("usr/share/tool/b/a.txt", 0o644, "a"),
            ("usr/share/tool/link", 0o777, "z.txt"),
            ("usr/share/tool/z.txt", 0o644, "z"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(p, m, b)| (p.to_string(), *m, t, b.to_string()))
            .collect();
        assert_eq!(got, want);
        // Same inputs, same bytes, whatever the files' own times.
        std::fs::write(co.join("_out/share/z.txt"), "z").unwrap();
        assert_eq!(layer_tar(co, &outputs, t).unwrap(), tar);
    }

    #[test]
    fn a_missing_output_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = [NativeOutput {
            source: "bin/installer".into(),
            dest: "/usr/bin/installer".into(),
        }];
        let e = layer_tar(dir.path(), &outputs, 0).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "output 'bin/installer' (for /usr/bin/installer): not produced by the build"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_failing_command_points_at_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let env = BTreeMap::from([("TAGS".to_string(), "scos".to_string())]);
        let cmd = ["sh", "-c", "echo tags=$TAGS; exit 3"].map(String::from);
        let e = run(&cmd, dir.path(), &env, &log).unwrap_err().to_string();
        assert!(e.contains("failed (exit status: 3)"), "{e}");
        assert!(
            e.ends_with(&format!("see the build log {}", log.display())),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "tags=scos\n");
    }
}
