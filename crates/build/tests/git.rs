//! Git sources against real repositories: `file://` upstreams made with `testkit::git::Upstream`,
//! and the same upstream served over HTTP by `git http-backend` on 127.0.0.1.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use build::config::Revision;
use build::git::{GitError, GitSources};
use testkit::git::Upstream;

/// An upstream with a few files: a plain file, an executable, a symlink, a nested directory and
/// an empty file, committed on `main`.
fn upstream(tmp: &Path) -> Upstream {
    let up = Upstream::init(tmp.join("repo"));
    write(&up, "README.md", "hello\n");
    write(&up, "hack/build.sh", "#!/bin/sh\necho build\n");
    fs::set_permissions(
        up.dir().join("hack/build.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    write(&up, "images/Containerfile", "FROM scratch\n");
    write(&up, "images/deep/er/file.txt", "deep\n");
    write(&up, "empty", "");
    std::os::unix::fs::symlink("images/Containerfile", up.dir().join("Dockerfile")).unwrap();
    commit_all(&up, "files");
    up
}

fn write(up: &Upstream, path: &str, content: &str) {
    let path = up.dir().join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Commits everything in the work tree; returns the commit.
fn commit_all(up: &Upstream, message: &str) -> String {
    up.git(&["add", "-A"]);
    up.git(&["commit", "--quiet", "-m", message]);
    up.head()
}

/// What a checkout holds: path → `file 644|755 CONTENT`, `link TARGET` or `dir`.
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out);
                "dir".to_string()
            } else {
                let exec = if meta.permissions().mode() & 0o111 != 0 {
                    755
                } else {
                    644
                };
                format!("file {exec} {}", fs::read_to_string(&path).unwrap())
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn expected_files() -> BTreeMap<String, String> {
    [
        ("Dockerfile", "link images/Containerfile"),
        ("README.md", "file 644 hello\n"),
        ("empty", "file 644 "),
        ("hack", "dir"),
        ("hack/build.sh", "file 755 #!/bin/sh\necho build\n"),
        ("images", "dir"),
        ("images/Containerfile", "file 644 FROM scratch\n"),
        ("images/deep", "dir"),
        ("images/deep/er", "dir"),
        ("images/deep/er/file.txt", "file 644 deep\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn branch(name: &str) -> Revision {
    Revision::Branch(name.into())
}

fn reference(name: &str) -> Revision {
    Revision::Ref(name.into())
}

/// The object ids in each pack of a cache, by pack file name.
fn packs(cache: &Path) -> BTreeMap<String, usize> {
    let dir = cache.join("objects/pack");
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            let idx = fs::File::open(&path).unwrap();
            let out_ = Command::new("git")
                .args(["show-index", "--object-format=sha1"])
                .stdin(idx)
                .output()
                .unwrap();
            let count = String::from_utf8_lossy(&out_.stdout).lines().count();
            out.insert(path.file_name().unwrap().to_string_lossy().into(), count);
        }
    }
    out
}

#[test]
fn resolve_names_branches_tags_full_refs_and_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    let main = up.head();

    up.git(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
    let tag_object = up.git(&["rev-parse", "v1.0"]);
    assert_ne!(tag_object, main, "an annotated tag is an object of its own");
    up.git(&["tag", "light"]);
    let side = up.commit("side work");
    up.git(&["update-ref", "refs/pull/7/head", &side]);
    up.git(&["reset", "--quiet", "--hard", &main]);

    assert_eq!(sources.resolve(&url, &branch("main")).unwrap(), main);
    assert_eq!(sources.resolve(&url, &reference("v1.0")).unwrap(), main);
    assert_eq!(sources.resolve(&url, &reference("light")).unwrap(), main);
    assert_eq!(
        sources.resolve(&url, &reference("refs/tags/v1.0")).unwrap(),
        main
    );
    assert_eq!(
        sources
            .resolve(&url, &reference("refs/pull/7/head"))
            .unwrap(),
        side
    );
    // A full commit id comes back as is (lowercase), without asking the remote.
    let unknown = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
    let gone = "file:///nonexistent/repo";
    assert_eq!(
        sources.resolve(gone, &reference(unknown)).unwrap(),
        unknown.to_ascii_lowercase()
    );
    // Reading a file:// remote creates no cache.
    assert!(!tmp.path().join("cache").exists());
}

#[test]
fn a_missing_branch_or_ref_is_named_with_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();

    let err = sources.resolve(&url, &branch("release-4.99")).unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "branch 'release-4.99' does not exist in {url}; check the stream's branch or the \
             component's `branch:` override"
        )
    );
    let main = up.head();
    let err = sources
        .fetch(&url, &branch("release-4.99"), &main)
        .unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");

    let err = sources.resolve(&url, &reference("v9")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "ref 'v9' (refs/tags/v9) does not exist in {url}; check the component's `ref:` (a tag, \
             a full ref such as refs/pull/7/head, or a full 40-hex commit id; abbreviated ids are \
             not supported)"
        )
    );
    let err = sources.resolve(&url, &branch("bad..name")).unwrap_err();
    assert!(matches!(err, GitError::InvalidRefName { .. }), "{err:?}");

    let err = sources
        .resolve("file:///nonexistent/repo", &branch("main"))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GitError::Remote { .. }), "{err:?}");
    assert!(
        text.starts_with("cannot list the refs of file:///nonexistent/repo: "),
        "{text}"
    );
    assert!(
        text.contains("does not appear to be a git repository"),
        "{text}"
    );
}

#[test]
fn fetch_then_checkout_writes_the_exact_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    let rev = branch("main");

    let commit = sources.resolve(&url, &rev).unwrap();
    let dest = tmp.path().join("work/src");
    let err = sources.checkout(&url, &commit, &dest).unwrap_err();
    assert!(matches!(err, GitError::NotFetched { .. }), "{err:?}");

    sources.fetch(&url, &rev, &commit).unwrap();
    let cache = sources.repo_dir(&url).unwrap();
    assert!(
        cache.starts_with(tmp.path().join("cache/file")),
        "{}",
        cache.display()
    );
    assert!(cache.join("HEAD").is_file());

    sources.checkout(&url, &commit, &dest).unwrap();
    assert_eq!(listing(&dest), expected_files());

    // The destination must be new or empty.
    let err = sources.checkout(&url, &commit, &dest).unwrap_err();
    assert!(
        matches!(err, GitError::DestinationNotEmpty { .. }),
        "{err:?}"
    );
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    sources.checkout(&url, &commit, &empty).unwrap();
    assert_eq!(listing(&empty), expected_files());

    // read_file reads one file of the commit, following symlinks inside it.
    let read = |path: &str| sources.read_file(&url, &commit, Path::new(path)).unwrap();
    assert_eq!(
        read("images/Containerfile").as_deref(),
        Some(&b"FROM scratch\n"[..])
    );
    assert_eq!(read("Dockerfile").as_deref(), Some(&b"FROM scratch\n"[..]));
    assert_eq!(
        read("./hack/../README.md").as_deref(),
        Some(&b"hello\n"[..])
    );
    assert_eq!(read("images"), None);
    assert_eq!(read("nope"), None);
    assert_eq!(read("../outside"), None);
}

#[test]
fn a_second_fetch_is_incremental() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    for i in 0..50 {
        write(
            &up,
            &format!("vendor/m{i}/lib.go"),
            &format!("package m{i}\n"),
        );
    }
    commit_all(&up, "vendor");
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    let rev = branch("main");

    let first = sources.resolve(&url, &rev).unwrap();
    sources.fetch(&url, &rev, &first).unwrap();
    let cache = sources.repo_dir(&url).unwrap();
    let before = packs(&cache);
    assert_eq!(before.len(), 1, "{before:?}");
    // A fetch of a commit already there does nothing.
    sources.fetch(&url, &rev, &first).unwrap();
    assert_eq!(packs(&cache), before);

    write(&up, "images/deep/er/file.txt", "deeper\n");
    let second = commit_all(&up, "change one file");
    assert_eq!(sources.resolve(&url, &rev).unwrap(), second);
    sources.fetch(&url, &rev, &second).unwrap();
    let after = packs(&cache);
    assert_eq!(after.len(), 2, "{after:?}");
    for (pack, count) in &before {
        assert_eq!(after.get(pack), Some(count), "the first pack stays");
    }
    let (_, new) = after
        .iter()
        .find(|(p, _)| !before.contains_key(*p))
        .unwrap();
    // The commit, the root tree, images, images/deep, images/deep/er and the blob, plus the
    // bases of deltas a thin pack refers to.
    assert!(
        (6..=8).contains(new),
        "only the new objects came: {after:?}"
    );
    assert!(before.values().all(|n| *n > 100), "{before:?}");

    let dest = tmp.path().join("second");
    sources.checkout(&url, &second, &dest).unwrap();
    let got = listing(&dest);
    assert_eq!(got["images/deep/er/file.txt"], "file 644 deeper\n");
    assert_eq!(got["vendor/m49/lib.go"], "file 644 package m49\n");
    assert_eq!(
        got.len(),
        expected_files().len() + 101,
        "vendor and 50 modules"
    );
}

#[test]
fn pull_request_refs_and_commits_off_the_branch_are_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    let main = up.head();

    up.branch("pr", &main);
    write(&up, "pr.txt", "from the pull request\n");
    let pr = commit_all(&up, "pull request work");
    up.checkout("main");
    up.git(&["branch", "-D", "pr"]);
    up.git(&["update-ref", "refs/pull/7/head", &pr]);

    let rev = reference("refs/pull/7/head");
    assert_eq!(sources.resolve(&url, &rev).unwrap(), pr);
    sources.fetch(&url, &rev, &pr).unwrap();
    let dest = tmp.path().join("pr");
    sources.checkout(&url, &pr, &dest).unwrap();
    assert_eq!(
        fs::read_to_string(dest.join("pr.txt")).unwrap(),
        "from the pull request\n"
    );

    // The branch was force-pushed after the commit was resolved: the commit is fetched by id.
    let rev = branch("main");
    write(&up, "lost.txt", "soon unreachable from main\n");
    let lost = commit_all(&up, "to be dropped");
    up.git(&["reset", "--quiet", "--hard", &main]);
    let newer = up.commit("replacement");
    sources.fetch(&url, &rev, &lost).unwrap();
    sources.fetch(&url, &rev, &newer).unwrap();
    let dest = tmp.path().join("lost");
    sources.checkout(&url, &lost, &dest).unwrap();
    assert!(dest.join("lost.txt").is_file());

    // A commit the remote does not have at all, with its branch or pinned as the `ref:`.
    let missing = "0123456789012345678901234567890123456789";
    let err = sources.fetch(&url, &rev, missing).unwrap_err();
    assert!(matches!(err, GitError::CommitNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(missing), "{err}");
    let err = sources
        .fetch(&url, &reference(missing), missing)
        .unwrap_err();
    assert!(matches!(err, GitError::CommitNotFound { .. }), "{err:?}");
}

#[test]
fn trees_with_unsafe_names_are_not_checked_out() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let blob = up.git(&["rev-parse", "HEAD:README.md"]);
    let mut mktree = Command::new("git")
        .arg("-C")
        .arg(up.dir())
        .arg("mktree")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let entries = format!("100644 blob {blob}\tREADME.md\n100644 blob {blob}\t.git\n");
    mktree
        .stdin
        .take()
        .unwrap()
        .write_all(entries.as_bytes())
        .unwrap();
    let out = mktree.wait_with_output().unwrap();
    assert!(out.status.success());
    let tree = String::from_utf8(out.stdout).unwrap();
    let evil = up.git(&["commit-tree", tree.trim(), "-m", "evil"]);
    up.git(&["update-ref", "refs/heads/evil", &evil]);

    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    sources.fetch(&url, &branch("evil"), &evil).unwrap();
    let err = sources
        .checkout(&url, &evil, &tmp.path().join("out"))
        .unwrap_err();
    assert!(matches!(err, GitError::UnsafePath { .. }), "{err:?}");
    assert!(err.to_string().contains("'.git'"), "{err}");
}

#[test]
fn concurrent_fetches_of_one_repository_share_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    let rev = branch("main");
    let commit = up.head();

    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| sources.fetch(&url, &rev, &commit)))
            .collect();
        for handle in handles {
            handle.join().unwrap().unwrap();
        }
    });
    let cache = sources.repo_dir(&url).unwrap();
    assert_eq!(
        packs(&cache).len(),
        1,
        "one fetch, the others found the commit"
    );
    sources
        .checkout(&url, &commit, &tmp.path().join("out"))
        .unwrap();
    assert_eq!(listing(&tmp.path().join("out")), expected_files());
}

#[test]
fn submodules_become_empty_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let main = up.head();
    // A gitlink entry, as `git submodule add` makes, without needing the submodule itself.
    up.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{main},vendor/sub"),
    ]);
    up.git(&["commit", "--quiet", "-m", "submodule"]);
    let commit = up.head();
    let sources = GitSources::new(tmp.path().join("cache"));
    let url = up.url();
    sources.fetch(&url, &branch("main"), &commit).unwrap();
    let dest = tmp.path().join("out");
    sources.checkout(&url, &commit, &dest).unwrap();
    let mut expected = expected_files();
    expected.insert("vendor".into(), "dir".into());
    expected.insert("vendor/sub".into(), "dir".into());
    assert_eq!(listing(&dest), expected);
}

/// A minimal HTTP/1.1 server on 127.0.0.1 that runs `git http-backend` as a CGI program for every
/// request, over the repositories in `root`, asking for Basic credentials `u:p` when `auth`.
struct GitHttp {
    port: u16,
}

impl GitHttp {
    fn start(root: PathBuf, auth: bool) -> GitHttp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let root = root.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, auth);
                });
            }
        });
        GitHttp { port }
    }

    fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

/// Answers one request on `stream` (then closes it).
fn serve(stream: std::net::TcpStream, root: &Path, auth: bool) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("/"),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((k, v)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
    if auth && headers.get("authorization").map(String::as_str) != Some("Basic dTpw") {
        let body = "authentication required\n";
        write!(
            out,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    if headers
        .get("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        write!(out, "HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = headers.get("content-length") {
        body.resize(len.parse().unwrap_or(0), 0);
        reader.read_exact(&mut body)?;
    }
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = headers.get(header) {
            cmd.env(var, value);
        }
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    let _ = writer.join();
    let cgi = output.stdout;
    let split = cgi
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let split = split.or_else(|| cgi.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head_len, sep) = split.unwrap_or((0, 0));
    let head = String::from_utf8_lossy(&cgi[..head_len]);
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for header in head.lines() {
        match header.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => response.push_str(&format!("{header}\r\n")),
            None => {}
        }
    }
    let content = &cgi[head_len + sep..];
    write!(
        out,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    out.write_all(content)?;
    out.flush()
}

#[test]
fn http_remotes_resolve_fetch_incrementally_and_check_out() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let server = GitHttp::start(tmp.path().to_path_buf(), false);
    let url = server.url("repo");
    let sources = GitSources::new(tmp.path().join("cache"));
    let rev = branch("main");

    let commit = sources.resolve(&url, &rev).unwrap();
    assert_eq!(commit, up.head());
    let err = sources.resolve(&url, &branch("release-4.99")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "branch 'release-4.99' does not exist in {url}; check the stream's branch or the \
             component's `branch:` override"
        )
    );
    let err = sources
        .fetch(&url, &branch("release-4.99"), &commit)
        .unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");

    sources.fetch(&url, &rev, &commit).unwrap();
    let dest = tmp.path().join("out");
    sources.checkout(&url, &commit, &dest).unwrap();
    assert_eq!(listing(&dest), expected_files());

    let cache = sources.repo_dir(&url).unwrap();
    let before = packs(&cache);
    write(&up, "README.md", "hello again\n");
    let second = commit_all(&up, "second");
    assert_eq!(sources.resolve(&url, &rev).unwrap(), second);
    sources.fetch(&url, &rev, &second).unwrap();
    // Incremental over http too: the first pack stays, only the new objects arrive (as a small
    // pack, or loose when `git fetch` unpacks them).
    let after = packs(&cache);
    assert!(
        before.iter().all(|(name, n)| after.get(name) == Some(n)),
        "{before:?} {after:?}"
    );
    let dest = tmp.path().join("out2");
    sources.checkout(&url, &second, &dest).unwrap();
    assert_eq!(
        fs::read_to_string(dest.join("README.md")).unwrap(),
        "hello again\n"
    );
}

/// gix refuses to send credentials in clear text over http, so this goes through the CLI
/// fallback, which takes them from the credential helper.
#[test]
fn http_credentials_come_from_git_credential_helpers() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(tmp.path());
    let server = GitHttp::start(tmp.path().to_path_buf(), true);
    let url = server.url("repo");
    let sources = GitSources::new(tmp.path().join("cache"));
    let rev = branch("main");

    // No credentials: a prompt would block, so it must fail at once, naming the URL.
    let err = sources.resolve(&url, &rev).unwrap_err();
    assert!(matches!(err, GitError::Remote { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot list the refs of {url}: ")),
        "{text}"
    );
    assert!(text.contains("terminal prompts disabled"), "{text}");

    // A helper in the cache's git configuration; global and system helpers are found the same
    // way.
    let cache = sources.repo_dir(&url).unwrap();
    assert!(
        cache.join("HEAD").is_file(),
        "the cache was created on demand"
    );
    let helper = "!f() { echo username=u; echo password=p; }; f";
    testkit::run_ok(Command::new("git").arg("--git-dir").arg(&cache).args([
        "config",
        "credential.helper",
        helper,
    ]));

    let commit = sources.resolve(&url, &rev).unwrap();
    assert_eq!(commit, up.head());
    sources.fetch(&url, &rev, &commit).unwrap();
    let dest = tmp.path().join("out");
    sources.checkout(&url, &commit, &dest).unwrap();
    assert_eq!(listing(&dest), expected_files());
}
