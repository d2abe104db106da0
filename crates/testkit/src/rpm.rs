//! rpm databases made by the real rpm (Debian's `rpm`: `rpmbuild` and `rpm --dbpath`), for OS
//! images whose packages okd-forge reads.

use std::path::Path;
use std::process::Command;

use crate::{require, run_ok};

/// The `rpmdb.sqlite` (its bytes) of a system with `packages` installed, each `(name, version,
/// release)`: every package is built by `rpmbuild` as an empty noarch package, then recorded with
/// `rpm --dbpath DIR -i --justdb`.
pub fn database(packages: &[(&str, &str, &str)]) -> Vec<u8> {
    require("rpmbuild");
    let tmp = tempfile::tempdir().expect("temp dir");
    let top = tmp.path().join("top");
    let spec = tmp.path().join("p.spec");
    std::fs::write(
        &spec,
        "Name: %{pkgname}\nVersion: %{pkgver}\nRelease: %{pkgrel}\nSummary: test package\n\
         License: MIT\nBuildArch: noarch\n%description\ntest\n%files\n",
    )
    .expect("write the spec");
    for (name, version, release) in packages {
        run_ok(
            Command::new("rpmbuild")
                .arg("-bb")
                .arg("--define")
                .arg(format!("_topdir {}", top.display()))
                .args(["--define", &format!("pkgname {name}")])
                .args(["--define", &format!("pkgver {version}")])
                .args(["--define", &format!("pkgrel {release}")])
                .arg(&spec),
        );
    }
    let db = tmp.path().join("db");
    std::fs::create_dir_all(&db).expect("create the db dir");
    let dbpath = |cmd: &mut Command| {
        cmd.arg("--dbpath")
            .arg(&db)
            .args(["--define", "_db_backend sqlite"]);
    };
    let mut init = Command::new("rpm");
    dbpath(&mut init);
    run_ok(init.arg("--initdb"));
    let rpms = top.join("RPMS/noarch");
    let mut files: Vec<_> = std::fs::read_dir(&rpms)
        .expect("rpmbuild's output")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut install = Command::new("rpm");
    dbpath(&mut install);
    run_ok(
        install
            .args([
                "-i",
                "--justdb",
                "--nodeps",
                "--noscripts",
                "--ignorearch",
                "--ignoreos",
            ])
            .args(&files),
    );
    read(&db.join("rpmdb.sqlite"))
}

/// What `rpm -qa` prints of the database `rpmdb.sqlite` (one `NAME-VERSION-RELEASE.ARCH` a line,
/// sorted): the independent reading to compare okd-forge's with.
pub fn query_all(rpmdb_sqlite: &[u8]) -> Vec<String> {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("rpmdb.sqlite"), rpmdb_sqlite).expect("write the db");
    let out = run_ok(Command::new("rpm").arg("--dbpath").arg(tmp.path()).args([
        "--define",
        "_db_backend sqlite",
        "-qa",
    ]));
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
