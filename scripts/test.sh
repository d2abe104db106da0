#!/usr/bin/env bash
# The test command: install the real peers the tests run against (Debian packages), then run the whole
# suite — cargo fmt --check, clippy with warnings as errors, every test with cargo-nextest, and doc tests.
# A peer that is missing makes its tests fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests run these real peers: a Distribution registry, skopeo and umoci as independent clients,
# openssl for test certificates, and podman (with runc: crun fails on these machines) to pull and run
# release payloads built on a busybox-static CVO stand-in (tests/release_podman.rs; each run gets its
# own containers.conf with default_ulimits = [], which these machines need), buildah (with runc) for
# Containerfile component builds (crates/build/tests/buildah.rs, tests/build.rs), and git for the
# component repositories the build tests create, headless Chromium with its WebDriver
# (chromedriver) for the dashboard test of `okd-forge demo` (tests/demo.rs), wrk, which the
# update-graph benchmark uses, and rpm (rpmbuild, rpm --dbpath), which makes the rpm databases of
# the OS images the OS tests build (payload/tests/rpmdb.rs, tests/os.rs).
. scripts/lib/packages.sh
install_packages docker-registry skopeo umoci openssl ca-certificates podman buildah runc busybox-static git gnupg \
  chromium chromium-driver fonts-dejavu-core wrk rpm
require_programs docker-registry skopeo umoci openssl podman buildah runc busybox git chromium chromedriver \
  wrk rpm rpmbuild cargo cargo-nextest

# Disk: a one-off build keeps no incremental cache (it roughly doubles target/). The free space is
# printed before and after, so that a CI run that runs out of disk says how much it had.
export CARGO_INCREMENTAL=0
df -h . /tmp | sed 's/^/disk: /'
trap 'df -h . /tmp | sed "s/^/disk: /"; du -sh target 2>/dev/null | sed "s/^/disk: /"' EXIT

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo nextest run"
cargo nextest run --workspace --locked --profile ci
echo "==> doc tests"
cargo test --workspace --doc --locked
