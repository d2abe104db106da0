#!/usr/bin/env bash
# okd-forge's main job as it stands today, on the embedded defaults: component images move between a
# registry and the embedded store (the OCI layout var/store), and release payloads are cut from them.
#   1. build small images with umoci (no network needed): a CVO stand-in, an operator, an operand
#   2. push them to a local Distribution registry
#   3. pull one into the embedded store, inspect it, list tags
#   4. cut a release payload into the store, show it, extract it; change the operand, cut another, diff
#   5. garbage-collect the store
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
  --config.label org.opencontainers.image.title=busybox

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
set +x

# image NAME: a copy of the busybox image whose top layer adds the files in $work/files/NAME (if any),
# with labels from the remaining arguments; pushed to the registry, its pull spec by digest printed.
image() {
  local name=$1; shift
  umoci tag --image "$work/src:busybox" "$name"
  rm -rf "$work/b-$name"
  umoci unpack --image "$work/src:$name" "$work/b-$name" >/dev/null
  [ -d "$work/files/$name" ] && cp -r "$work/files/$name/." "$work/b-$name/rootfs/"
  umoci repack --image "$work/src:$name" "$work/b-$name"
  local labels=()
  for l in "$@"; do labels+=(--config.label "$l"); done
  umoci config --image "$work/src:$name" "${labels[@]}"
  $forge image copy -q "oci:$work/src:$name" "docker://127.0.0.1:$port/okd/content:$name" \
    --digestfile "$work/digest" >/dev/null
  echo "127.0.0.1:$port/okd/content@$(cat "$work/digest")"
}

echo "==> building component images: a CVO stand-in, an operator with manifests, an operand"
mkdir -p "$work/files/cvo/usr/bin" "$work/files/operator/manifests"
printf '#!/bin/sh\necho "cluster-version-operator stand-in: $*"\n' > "$work/files/cvo/usr/bin/cluster-version-operator"
chmod 0755 "$work/files/cvo/usr/bin/cluster-version-operator"
cat > "$work/files/operator/manifests/image-references" <<'YAML'
kind: ImageStream
apiVersion: image.openshift.io/v1
spec:
  tags:
  - name: demo-operator
    from: { kind: DockerImage, name: "placeholder.url.oc.will.replace.this.org/placeholdernamespace:demo-operator" }
  - name: demo-operand
    from: { kind: DockerImage, name: "placeholder.url.oc.will.replace.this.org/placeholdernamespace:demo-operand" }
YAML
cat > "$work/files/operator/manifests/deployment.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo-operator
  namespace: openshift-demo
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
spec:
  template:
    spec:
      containers:
      - name: operator
        image: placeholder.url.oc.will.replace.this.org/placeholdernamespace:demo-operator
        env:
        - { name: OPERAND_IMAGE, value: "placeholder.url.oc.will.replace.this.org/placeholdernamespace:demo-operand" }
        - { name: RELEASE_VERSION, value: "0.0.1-snapshot" }
YAML
cvo=$(image cvo io.openshift.build.source-location=https://github.com/openshift/cluster-version-operator)
operator=$(image operator io.openshift.release.operator=true \
  io.openshift.build.source-location=https://github.com/openshift/demo-operator io.openshift.build.commit.id=1111111)
operand=$(image operand io.openshift.build.source-location=https://github.com/openshift/demo-operand \
  io.openshift.build.commit.id=2222222 io.openshift.build.versions=kubernetes=1.31.1)
printf 'cluster-version-operator=%s\ndemo-operator=%s\ndemo-operand=%s\n' "$cvo" "$operator" "$operand" > "$work/images.txt"
cat "$work/images.txt"

first=4.17.0-0.okd-scos-2026-11-24-100000
second=4.17.0-0.okd-scos-2026-11-24-110000
set -x
$forge release new --name "$first" --mapping-file "$work/images.txt" --to oci:var/store
$forge release info "oci:var/store:$first"
$forge release extract "oci:var/store:$first" --to "$work/manifests"
cat "$work/manifests/0000_50_demo-operator_deployment.yaml"
set +x
echo "==> the operand changes (a new commit); cut the next payload and compare"
operand2=$(image operand io.openshift.build.source-location=https://github.com/openshift/demo-operand \
  io.openshift.build.commit.id=3333333 io.openshift.build.versions=kubernetes=1.31.2)
set -x
$forge release new --name "$second" --mapping-file "$work/images.txt" "demo-operand=$operand2" \
  --previous "$first" --to oci:var/store
$forge release diff "oci:var/store:$first" "oci:var/store:$second"
$forge store gc
