//! `okd-forge serve`: listens, answers over real HTTP on loopback, stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("forge.yaml");
    std::fs::write(
        &path,
        "store: var/store\nstate: var/forge.db\nvariants: { okd-scos: {} }\nstreams:\n  \
         okd-scos-4.17:\n    variant: okd-scos\n    branch: release-4.17\n    \
         release: { name: 4.17.0-0.okd-scos }\n",
    )
    .unwrap();
    path
}

/// A GET over a fresh connection: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn serve_answers_on_the_printed_url_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_okd-forge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    assert_eq!(
        get(&addr, "/healthz"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    let (status, body) = get(&addr, "/api/v1/releasestreams/all");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "4.17.0-0.okd-scos": [], "stable": [] })
    );
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success(), "a clean stop on SIGTERM");
}

#[test]
fn an_empty_token_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_okd-forge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--token-file")
        .arg(&token)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&token.display().to_string()) && err.contains("empty"),
        "{err}"
    );
}
