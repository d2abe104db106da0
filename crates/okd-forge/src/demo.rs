//! `okd-forge demo`: the whole pipeline on one machine, on the embedded defaults only (an OCI layout
//! store, SQLite, local processes, the native builder), with no external tool and no network.
//!
//! It writes five upstream git repositories (a CVO stand-in, two operators with `/manifests` and
//! `image-references` (DNS, machine-config), the OKD layer of the OS image, an installer with a
//! binary), a base image, two CentOS Stream CoreOS releases and the stream metadata naming the
//! first, and a `forge.yaml`, then runs okd-forge's own commands on them, in this process:
//! build (the OS image on the stream's OS release), cut a payload, verify it (an e2e job and an
//! upgrade job, both `okd-forge demo-job`), accept it (and with it the OS) and promote the stable
//! release `.0`; then it moves the stream metadata to the second OS release, merges a pull request
//! into one repository and goes round again, promoting `.1` with the tested edge from `.0`.
//! Finally it serves the dashboard, the API, the update graph and the registry view, and prints
//! the URL.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use build::gitwrite::{Files, Repo};
use clap::{Args, Parser, ValueEnum};
use release::lifecycle::Phase;
use release::state::Records;

use crate::{Cli, Output};

/// The file that marks a directory as the demo's own, so that a rerun may empty it.
const MARKER: &str = ".okd-forge-demo";
/// The stream the demo builds.
const STREAM: &str = "okd-scos-4.17";
/// Its branch.
const BRANCH: &str = "release-4.17";
/// The environment variables that tell `demo-job` where the store is.
const STORE_ENV: &str = "OKD_FORGE_DEMO_STORE";
const STORE_NAME_ENV: &str = "OKD_FORGE_DEMO_STORE_NAME";
/// The CentOS Stream CoreOS releases the stream follows: the first, then the second.
const OS_RELEASES: [&str; 2] = ["9.0.20261201-0", "9.0.20261208-0"];

/// What `demo` takes.
#[derive(Args)]
pub struct DemoArgs {
    /// The directory to work in; emptied first if an earlier demo made it.
    #[arg(long, value_name = "DIR", default_value = "var/demo")]
    dir: PathBuf,
    /// The loopback port to serve on (0: any free port; the URL printed says which).
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    port: u16,
}

/// Which verification job `demo-job` plays.
#[derive(Clone, Copy, ValueEnum)]
pub enum JobKind {
    /// Reads the payload back (`release info`).
    E2e,
    /// Reads the upgrade's source and target back and checks that they differ.
    Upgrade,
}

/// What `demo-job` takes.
#[derive(Args)]
pub struct JobArgs {
    /// The job to play.
    #[arg(value_enum)]
    kind: JobKind,
}

/// Runs the demo, then serves its result until interrupted.
pub async fn demo(a: DemoArgs, output: Output) -> Result<()> {
    // Listen first: the port goes into forge.yaml, so that the payload's pull specs name this
    // server's registry view and `podman pull`, skopeo and oc can read them from it.
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, a.port));
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}; choose another --port"))?;
    let port = listener.local_addr()?.port();
    let dir = prepare(&a.dir)?;
    let config_file = dir.join("forge.yaml");
    let config_arg = config_file.display().to_string();

    step(&format!(
        "a base image and the CentOS Stream CoreOS releases {} in {}; stream metadata at {}",
        OS_RELEASES.join(" and "),
        dir.join("bases").display(),
        dir.join("os/c9s.json").display()
    ));
    base_images(&dir)?;
    os_metadata(&dir, OS_RELEASES[0], "2026-12-01T00:00:00Z")?;
    step(&format!(
        "upstream repositories in {}, each with a {BRANCH} branch",
        dir.join("upstream").display()
    ));
    let now = release::jobs::now();
    let repos = upstream(&dir, now - 3600)?;
    std::fs::write(&config_file, forge_yaml(&dir, port)?)
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    step(&format!("{config_arg}:"));
    print!("{}", std::fs::read_to_string(&config_file)?);

    run(&["config", "check", "--config", &config_arg]).await?;
    run(&["build", "--config", &config_arg]).await?;
    let first = cut_and_verify(&config_file, None).await?;

    step(&format!(
        "the stream metadata moves to CentOS Stream CoreOS {}, and a pull request to \
         cluster-dns-operator is merged into release-4.17",
        OS_RELEASES[1]
    ));
    os_metadata(&dir, OS_RELEASES[1], "2026-12-08T00:00:00Z")?;
    repos.merge_pull_request(now)?;
    run(&["build", "--config", &config_arg]).await?;
    let second = cut_and_verify(&config_file, Some(&first.name)).await?;
    let store = dir.join("store").display().to_string();
    let (from, to) = (
        format!("oci:{store}:{}", first.name),
        format!("oci:{store}:{}", second.name),
    );
    let cache = dir.join("cache").display().to_string();
    let diff = [
        "release",
        "diff",
        "--changelog",
        "--store",
        &store,
        "--cache",
        &cache,
        &from,
        &to,
    ];
    if let Err(e) = run(&diff).await {
        // The changelog needs the git program; the rest of the demo does not.
        eprintln!("warning: no changelog: {e:#}");
    }
    step("the first payload became the stable release 4.17.0-okd-scos.0 at once (promote: every 14d); promote the second by hand");
    run(&["release", "promote", "--config", &config_arg, &second.name]).await?;
    run(&["release", "edges", "--config", &config_arg]).await?;
    run(&["release", "list", "--config", &config_arg]).await?;

    step("serving the dashboard, the release-controller API, the update graph and the registry view (Ctrl-C stops)");
    let config = build::config::load(&config_file)?;
    let forge = build::run::Forge::open(config, oci::RegistryOptions::default())?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    crate::serve::serve_listener(server::App::new(Arc::new(forge)), listener, output).await
}

/// Prints a step's heading.
fn step(what: &str) {
    println!("==> {what}");
}

/// Runs one okd-forge command in this process, as the user would type it.
async fn run(args: &[&str]) -> Result<()> {
    println!("==> okd-forge {}", args.join(" "));
    let cli = Cli::try_parse_from(std::iter::once("okd-forge").chain(args.iter().copied()))
        .context("the demo built a command line okd-forge does not accept")?;
    Box::pin(crate::dispatch(cli.command, Output::Text))
        .await
        .with_context(|| format!("`okd-forge {}` failed", args.join(" ")))
}

/// Makes `dir` empty and marked as the demo's; returns it absolute.
fn prepare(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !dir.join(MARKER).is_file() {
                bail!(
                    "{} is not empty and no earlier demo made it; choose another --dir",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot empty {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by okd-forge demo; a rerun empties this directory\n",
    )?;
    Ok(std::path::absolute(dir)?)
}

/// The images of the layout `bases`: the base the components are layered onto, tagged `base`,
/// with the `/etc/os-release` of CentOS Stream 9 (which the stream's base-image policy allows);
/// and each of [`OS_RELEASES`], tagged with its version, with the os-release of CentOS Stream
/// CoreOS and the `version` label CoreOS images carry.
fn base_images(dir: &Path) -> Result<()> {
    let layout = oci::Layout::create(dir.join("bases"))?;
    let centos = "NAME=\"CentOS Stream\"\nVERSION=\"9\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\n\
                  VERSION_ID=\"9\"\nPRETTY_NAME=\"CentOS Stream 9 (okd-forge demo base)\"\n";
    one_layer_image(dir, &layout, "base", centos, None)?;
    for v in OS_RELEASES {
        let scos = format!(
            "NAME=\"CentOS Stream CoreOS\"\nID=\"scos\"\nID_LIKE=\"rhel fedora\"\n\
             VERSION_ID=\"9\"\nVERSION=\"{v}\"\nOSTREE_VERSION=\"{v}\"\n"
        );
        one_layer_image(dir, &layout, v, &scos, Some(v))?;
    }
    Ok(())
}

/// An image of one layer holding `/etc/os-release`, labelled `version` when given, tagged `tag`.
fn one_layer_image(
    dir: &Path,
    layout: &oci::Layout,
    tag: &str,
    os_release: &str,
    version: Option<&str>,
) -> Result<()> {
    let root = tempfile::tempdir_in(dir)?;
    std::fs::create_dir_all(root.path().join("etc"))?;
    std::fs::write(root.path().join("etc/os-release"), os_release)?;
    let outputs = [build::config::NativeOutput {
        source: "etc".into(),
        dest: "/etc".into(),
    }];
    let tar = build::native::layer_tar(root.path(), &outputs, 0)?;
    let layer = oci::compose::Layer::from_tar(&tar);
    let (manifest, (cfg_desc, cfg)) = oci::compose::docker_image_on(
        &format!("the demo image {tag}"),
        serde_json::json!({}),
        &[],
        &layer,
        "1970-01-01T00:00:00Z",
        |obj| {
            if let (Some(v), Some(c)) = (version, obj["config"].as_object_mut()) {
                c.insert("Labels".into(), serde_json::json!({ "version": v }));
            }
        },
    )?;
    layout.write_blob_bytes(&layer.digest, &layer.gzip)?;
    layout.write_blob_bytes(&cfg_desc.digest, &cfg)?;
    layout.put_manifest(&manifest, Some(tag), true)?;
    Ok(())
}

/// Writes `os/c9s.json`: CoreOS stream metadata whose release, for the architecture builds run
/// on, is `version`.
fn os_metadata(dir: &Path, version: &str, modified: &str) -> Result<()> {
    let doc = serde_json::json!({
        "stream": "c9s",
        "metadata": { "last-modified": modified, "generator": "okd-forge demo" },
        "architectures": {
            build::osgate::build_arch(): {
                "artifacts": { "qemu": { "release": version, "formats": {} } }
            }
        }
    });
    let path = dir.join("os/c9s.json");
    std::fs::create_dir_all(dir.join("os"))?;
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The upstream repositories and what the demo changes in them.
struct Upstream {
    dns: Repo,
    dns_files: Files,
    dns_head: build::gitwrite::ObjectId,
}

/// A file's content: (bytes, executable).
fn file(text: &str, executable: bool) -> (Vec<u8>, bool) {
    (text.as_bytes().to_vec(), executable)
}

/// An operator's `manifests/image-references`: the payload tags its manifests use.
fn image_references(tags: &[&str]) -> String {
    let mut s =
        String::from("kind: ImageStream\napiVersion: image.openshift.io/v1\nspec:\n  tags:\n");
    for t in tags {
        let _ = writeln!(
            s,
            "  - name: {t}\n    from: {{ kind: DockerImage, name: \"placeholder.url.oc.will.replace.this.org/placeholdernamespace:{t}\" }}"
        );
    }
    s
}

/// An operator's Deployment manifest, with the image of `tag`.
fn deployment(name: &str, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: openshift-{name}\n  annotations:\n    include.release.openshift.io/self-managed-high-availability: \"true\"\nspec:\n  template:\n    spec:\n      containers:\n      - name: operator\n        image: placeholder.url.oc.will.replace.this.org/placeholdernamespace:{tag}\n        env:\n        - {{ name: RELEASE_VERSION, value: \"0.0.1-snapshot\" }}\n"
    )
}

/// An operator repository's files: its binary stand-in and its manifests, which use the image of
/// `tag`; its image-references names `tag` and `others` (the payload keeps only the tags some
/// operator's image-references names, as `oc adm release new` does).
fn operator(name: &str, tag: &str, others: &[&str], says: &str) -> Files {
    let mut refs = vec![tag];
    refs.extend(others);
    Files::from([
        (
            format!("bin/{name}"),
            file(&format!("#!/bin/sh\necho \"{says}\"\n"), true),
        ),
        (
            "manifests/image-references".into(),
            file(&image_references(&refs), false),
        ),
        (
            format!("manifests/0000_50_{name}_02-deployment.yaml"),
            file(&deployment(name, tag), false),
        ),
    ])
}

/// Writes the five repositories, each with one commit on the release branch at `time`.
fn upstream(dir: &Path, time: i64) -> Result<Upstream> {
    let up = dir.join("upstream");
    let dns_files = operator("dns-operator", "cluster-dns-operator", &[], "dns-operator");
    let repos: Vec<(&str, Files)> = vec![
        (
            "cluster-version-operator",
            Files::from([(
                "bin/cluster-version-operator".into(),
                file(
                    "#!/bin/sh\necho \"cluster-version-operator stand-in: $*\"\n",
                    true,
                ),
            )]),
        ),
        (
            "machine-config-operator",
            operator(
                "machine-config-operator",
                "machine-config-operator",
                &["rhel-coreos"],
                "machine-config-operator: the OS image is $OS_IMAGE",
            ),
        ),
        ("cluster-dns-operator", dns_files.clone()),
        (
            "os",
            Files::from([(
                "usr/share/okd/release".into(),
                file("OKD 4.17 on CentOS Stream CoreOS (okd-forge demo)\n", false),
            )]),
        ),
        (
            "installer",
            Files::from([
                (
                    "bin/openshift-install".into(),
                    file(
                        "#!/bin/sh\necho \"openshift-install 4.17 (okd-forge demo)\"\n",
                        true,
                    ),
                ),
                (
                    "manifests/image-references".into(),
                    file(&image_references(&["installer"]), false),
                ),
            ]),
        ),
    ];
    let mut dns = None;
    for (name, files) in repos {
        let repo = Repo::init(up.join(name))?;
        let head = repo.commit(
            BRANCH,
            &files,
            &format!("{name}: initial import"),
            &[],
            time,
        )?;
        if name == "cluster-dns-operator" {
            dns = Some((repo, head));
        }
    }
    let (dns, dns_head) = dns.expect("the dns operator is one of the repositories");
    Ok(Upstream {
        dns,
        dns_files,
        dns_head,
    })
}

impl Upstream {
    /// A pull request to cluster-dns-operator: a commit on a branch, merged with a merge commit
    /// that names the pull request, as GitHub merges.
    fn merge_pull_request(&self, time: i64) -> Result<()> {
        let subject = "OCPBUGS-1234: dns-operator says which version it is";
        let mut files = self.dns_files.clone();
        files.insert(
            "bin/dns-operator".into(),
            file(
                "#!/bin/sh\necho \"dns-operator v2 for $RELEASE_VERSION\"\n",
                true,
            ),
        );
        let fix = self
            .dns
            .commit("fix", &files, subject, &[self.dns_head], time - 60)?;
        self.dns.commit(
            BRANCH,
            &files,
            &format!("Merge pull request #2 from demo/fix\n\n{subject}\n"),
            &[self.dns_head, fix],
            time,
        )?;
        Ok(())
    }
}

/// The demo's forge.yaml: the five components on the base, one stream with two verification
/// jobs and a promotion schedule.
fn forge_yaml(dir: &Path, port: u16) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find okd-forge's own executable")?;
    let exe = exe.display();
    let up = dir.join("upstream");
    let up = up.display();
    let store = dir.join("store");
    let store_name = format!("127.0.0.1:{port}/okd");
    let mut y = format!(
        "# Written by `okd-forge demo`: the embedded defaults, no external tool, no network.
store: ./store                      # an OCI image layout: {store}
store_name: {store_name}         # the payload's pull specs name `okd-forge serve`'s /v2/
state: ./forge.db
variants:
  okd-scos: {{}}
components:
",
        store = store.display()
    );
    let images: [(&str, &str, &[&str], &str); 5] = [
        (
            "cluster-version-operator",
            "cluster-version-operator",
            &["bin/cluster-version-operator:/usr/bin/cluster-version-operator"],
            "",
        ),
        (
            "machine-config-operator",
            "machine-config-operator",
            &["bin/machine-config-operator:/usr/bin/machine-config-operator", "manifests:/manifests"],
            "        labels: { io.openshift.release.operator: \"true\" }   # payloads take manifests from operators\n",
        ),
        (
            "cluster-dns-operator",
            "cluster-dns-operator",
            &["bin/dns-operator:/usr/bin/dns-operator", "manifests:/manifests"],
            "        labels: { io.openshift.release.operator: \"true\" }\n",
        ),
        (
            "os",
            "rhel-coreos",
            &["usr/share/okd/release:/usr/share/okd/release"],
            "        os: true                      # built on the stream's OS release, which its payloads verify\n",
        ),
        (
            "installer",
            "installer",
            &["bin/openshift-install:/usr/bin/openshift-install", "manifests:/manifests"],
            "        versions: { kubernetes: 1.30.7 }
        labels: { io.openshift.release.operator: \"true\" }   # its image-references keeps `installer` in the payload\n",
        ),
    ];
    for (component, to, outputs, extra) in images {
        let outputs: Vec<String> = outputs.iter().map(|o| format!("\"{o}\"")).collect();
        let _ = write!(
            y,
            "  {component}:
    git: file://{up}/{component}
    images:
      - to: {to}
{extra}        native:                       # no command: the outputs are files of the checkout
          outputs: [{outputs}]
          base: oci:bases:base
",
            outputs = outputs.join(", ")
        );
    }
    // What demo-job reads the payloads with; its cache stays under the demo's directory too.
    let env = format!(
        "{{ {STORE_ENV}: \"oci:{store}\", {STORE_NAME_ENV}: \"{store_name}\", OKD_FORGE_CACHE: \"{cache}\" }}",
        store = store.display(),
        cache = dir.join("cache").display()
    );
    let _ = write!(
        y,
        "streams:
  {STREAM}:
    variant: okd-scos
    branch: {BRANCH}
    os:                                 # the OS it follows: CentOS Stream CoreOS releases
      metadata: ./os/c9s.json
      image: oci:bases                  # release V is oci:bases:V
    release:
      name: 4.17.0-0.okd-scos           # payloads 4.17.0-0.okd-scos-<UTC YYYY-MM-DD-HHMMSS>
      max_unready: 1
      verify:
        e2e:                            # blocking: reads the payload back
          command: [{exe}, demo-job, e2e]
          env: {env}
        upgrade:                        # informing: from every earlier stable release
          command: [{exe}, demo-job, upgrade]
          env: {env}
          upgrade_from: all_previous_stable
          optional: true
      promote: {{ every: 14d }}           # stable releases 4.17.0-okd-scos.N
"
    );
    Ok(y)
}

/// Runs `controller sync` until it has cut a payload newer than `previous` and decided on it
/// (a payload's name has one-second resolution, so the controller may wait a second); returns
/// it, Accepted.
async fn cut_and_verify(
    config_file: &Path,
    previous: Option<&str>,
) -> Result<release::state::PayloadRecord> {
    let config_arg = config_file.display().to_string();
    for _ in 0..10 {
        run(&["controller", "sync", "--config", &config_arg]).await?;
        let p = newest_payload(config_file)?;
        if Some(p.name.as_str()) == previous
            || !matches!(p.phase, Phase::Accepted | Phase::Rejected)
        {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        ensure!(
            p.phase == Phase::Accepted,
            "the payload {} was rejected: {}; see `okd-forge release show {} --config {config_arg}`",
            p.name,
            p.reason.as_deref().unwrap_or("no reason recorded"),
            p.name
        );
        return Ok(p);
    }
    bail!("the release controller cut no new payload from {STREAM} in 10 passes; see `okd-forge release list --config {config_arg}`")
}

/// The stream's newest payload (not a stable release).
fn newest_payload(config_file: &Path) -> Result<release::state::PayloadRecord> {
    let config = build::config::load(config_file)?;
    let state = build::state::State::open(&config.state)?;
    let payloads = Records::new(&state).payloads(STREAM)?;
    payloads
        .into_iter()
        .filter(|p| p.stable_of.is_none())
        .max_by_key(|p| (p.created, p.name.clone()))
        .with_context(|| format!("the controller cut no payload from {STREAM}"))
}

/// `okd-forge demo-job`: a verification job of the demo, run by the local executor with
/// ci-operator's environment. Writes JUnit results into `$ARTIFACT_DIR`.
pub async fn job(a: JobArgs) -> Result<()> {
    let env = |k: &str| std::env::var(k).with_context(|| format!("${k} is not set"));
    let (store, name) = (env(STORE_ENV)?, env(STORE_NAME_ENV)?);
    let local = |pull_spec: &str| match pull_spec.strip_prefix(name.as_str()) {
        Some(rest) => format!("{store}{rest}"),
        None => pull_spec.to_string(),
    };
    let latest = env("RELEASE_IMAGE_LATEST")?;
    let initial = env("RELEASE_IMAGE_INITIAL")?;
    let artifacts = PathBuf::from(env("ARTIFACT_DIR")?);
    let (suite, cases): (&str, Vec<(String, &str)>) = match a.kind {
        JobKind::E2e => (
            "e2e",
            vec![("the payload reads back".into(), latest.as_str())],
        ),
        JobKind::Upgrade => {
            ensure!(
                initial != latest,
                "an upgrade job needs RELEASE_IMAGE_INITIAL other than RELEASE_IMAGE_LATEST"
            );
            (
                "upgrade",
                vec![
                    (
                        format!("the upgrade source {initial} reads back"),
                        initial.as_str(),
                    ),
                    (
                        format!("the upgrade target {latest} reads back"),
                        latest.as_str(),
                    ),
                ],
            )
        }
    };
    let mut xml = String::new();
    let mut failed = Vec::new();
    for (case, pull_spec) in &cases {
        let image = local(pull_spec);
        match run(&["release", "info", &image]).await {
            Ok(()) => {
                let _ = writeln!(xml, "  <testcase name=\"{}\"/>", escape(case));
            }
            Err(e) => {
                let _ = writeln!(
                    xml,
                    "  <testcase name=\"{}\"><failure message=\"{}\"/></testcase>",
                    escape(case),
                    escape(&format!("{e:#}"))
                );
                failed.push(case.clone());
            }
        }
    }
    let junit = format!(
        "<testsuite name=\"{suite}\" tests=\"{}\" failures=\"{}\">\n{xml}</testsuite>\n",
        cases.len(),
        failed.len()
    );
    std::fs::create_dir_all(&artifacts)?;
    std::fs::write(artifacts.join(format!("junit_{suite}.xml")), junit)?;
    ensure!(failed.is_empty(), "failed: {}", failed.join("; "));
    Ok(())
}

/// Escapes text for an XML attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
