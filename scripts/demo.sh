#!/usr/bin/env bash
# okd-forge's main job as it stands today, on the embedded defaults: images move between a registry and
# the embedded store (the OCI layout var/store), every byte checked against its digest.
#   1. build a small busybox image with umoci (no network needed)
#   2. push it to a local Distribution registry
#   3. pull it into the embedded store, inspect it, list tags, garbage-collect the store
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
install_packages docker-registry umoci busybox-static
require_programs docker-registry umoci busybox cargo

cargo build --release --locked -q
forge=target/release/okd-forge
work=var/demo
rm -rf "$work"
mkdir -p "$work"

echo "==> building a busybox image with umoci in $work/src"
umoci init --layout "$work/src"
umoci new --image "$work/src:busybox"
umoci unpack --image "$work/src:busybox" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
umoci repack --image "$work/src:busybox" "$work/bundle"
umoci config --image "$work/src:busybox" --config.cmd /bin/busybox \
  --config.label io.openshift.build.versions=busybox=1.35.0

# A free loopback port: one nothing answers on.
port=""
for _ in $(seq 100); do
  p=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port found on 127.0.0.1" >&2; exit 1; }
cat > "$work/registry.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $PWD/$work/registry }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port, secret: demo }
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "==> local registry on 127.0.0.1:$port"

set -x
$forge image copy "oci:$work/src:busybox" "docker://127.0.0.1:$port/okd/busybox:v1"
$forge image copy "docker://127.0.0.1:$port/okd/busybox:v1" "docker://127.0.0.1:$port/okd/mirror:v1"
$forge image copy "docker://127.0.0.1:$port/okd/busybox:v1" oci:var/store:busybox
$forge image inspect oci:var/store:busybox
$forge image tags "docker://127.0.0.1:$port/okd/busybox"
$forge store gc
