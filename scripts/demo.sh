#!/usr/bin/env bash
# okd-forge's main job as it stands today, on the embedded defaults and without network access:
#   1. start a local Distribution registry and push busybox base images to it (made with umoci)
#   2. create three git repositories (a CVO stand-in, an operator with manifests, an operand)
#   3. `okd-forge build`: build them with the native builder (no container engine), push the images
#      to the registry, promote them into the stream okd-scos-4.17; a second run builds nothing
#   4. `okd-forge controller sync`: the release controller cuts a payload from the stream, pushes it,
#      runs its verification jobs as local processes (one reads the payload back and writes JUnit
#      results; the upgrade job has nothing to upgrade from yet) and accepts it; show and extract it
#   5. test a pull request to the operand with `okd-forge test-pr` (an ephemeral payload, nothing
#      promoted), merge it, build again (only the operand), and let the controller cut, verify and
#      accept the next payload; diff the two with the changelog
#   6. stable releases: the first payload was promoted to 4.17.0-okd-scos.0 at once (promote:
#      every 14d); the second, upgrade-tested from it, is promoted by hand to .1, with the edge
#      .0 -> .1 in `release edges`. With --serve, `okd-forge serve` then shows it all on
#      http://127.0.0.1:8080/ until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
install_packages docker-registry umoci busybox-static git
require_programs docker-registry umoci busybox git cargo

cargo build --release --locked -q
forge=target/release/okd-forge
work=var/demo
rm -rf "$work"
mkdir -p "$work"

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
registry=127.0.0.1:$port
echo "==> local registry on $registry"

echo "==> a base image: the host's busybox"
umoci init --layout "$work/bases"
umoci new --image "$work/bases:busybox"
umoci unpack --image "$work/bases:busybox" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sh"
umoci repack --image "$work/bases:busybox" "$work/bundle"
umoci config --image "$work/bases:busybox" --config.cmd /bin/sh
set -x
$forge image copy -q "oci:$work/bases:busybox" "docker://$registry/okd/base:busybox"
{ set +x; } 2>/dev/null

echo "==> upstream repositories in $work/upstream, each with a release-4.17 branch"
# git as a fresh machine has it: no identity configured.
g() { git -C "$work/upstream/$1" -c user.name="OKD demo" -c user.email=demo@okd.invalid "${@:2}"; }
repo() { # repo NAME: commit the files written into $work/upstream/NAME, branch release-4.17
  g "$1" init -q -b main
  g "$1" add -A
  g "$1" commit -q -m "$1: initial import"
  g "$1" branch release-4.17
}
mkdir -p "$work/upstream/"{cluster-version-operator,demo-operator/manifests,demo-operand}
cat > "$work/upstream/cluster-version-operator/cluster-version-operator.sh" <<'SH'
#!/bin/sh
echo "cluster-version-operator stand-in: $*"
SH
cat > "$work/upstream/demo-operator/demo-operator.sh" <<'SH'
#!/bin/sh
echo "demo-operator: running $OPERAND_IMAGE"
SH
cat > "$work/upstream/demo-operator/manifests/image-references" <<'YAML'
kind: ImageStream
apiVersion: image.openshift.io/v1
spec:
  tags:
  - name: demo-operator
    from: { kind: DockerImage, name: "placeholder.url.oc.will.replace.this.org/placeholdernamespace:demo-operator" }
  - name: demo-operand
    from: { kind: DockerImage, name: "placeholder.url.oc.will.replace.this.org/placeholdernamespace:demo-operand" }
YAML
cat > "$work/upstream/demo-operator/manifests/deployment.yaml" <<'YAML'
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
cat > "$work/upstream/demo-operand/demo-operand.sh" <<'SH'
#!/bin/sh
echo "demo-operand for @TAGS@"
SH
chmod 0755 "$work"/upstream/*/*.sh
for r in cluster-version-operator demo-operator demo-operand; do repo "$r"; done

echo "==> $work/forge.yaml"
up="file://$PWD/$work/upstream"
cat > "$work/forge.yaml" <<YAML
store: docker://$registry/okd/content   # built images go to the registry
state: ./forge.db                   # relative to this file: var/demo/forge.db (logs, caches next to it)
variants:
  okd-scos: { build_args: { TAGS: scos } }   # the environment of native build commands
components:
  cluster-version-operator:
    git: $up/cluster-version-operator
    images:
      - to: cluster-version-operator
        native:
          command: [sh, -c, 'mkdir -p _out && cp cluster-version-operator.sh _out/cluster-version-operator']
          outputs: ["_out/cluster-version-operator:/usr/bin/cluster-version-operator"]
          base: $registry/okd/base:busybox
  demo-operator:
    git: $up/demo-operator
    images:
      - to: demo-operator
        labels: { io.openshift.release.operator: "true" }   # payloads take manifests from operators
        native:
          command: [sh, -c, 'mkdir -p _out && cp demo-operator.sh _out/demo-operator']
          outputs: ["_out/demo-operator:/usr/bin/demo-operator", "manifests:/manifests"]
          base: $registry/okd/base:busybox
  demo-operand:
    git: $up/demo-operand
    images:
      - to: demo-operand
        versions: { kubernetes: 1.31.1 }
        native:
          command: [sh, -c, 'mkdir -p _out && sed "s/@TAGS@/\$TAGS/" demo-operand.sh > _out/demo-operand && chmod +x _out/demo-operand']
          outputs: ["_out/demo-operand:/usr/bin/demo-operand"]
          base: $registry/okd/base:busybox
streams:
  okd-scos-4.17:
    variant: okd-scos
    branch: release-4.17
    release:                        # what the release controller does with the stream
      name: 4.17.0-0.okd-scos       # payloads: 4.17.0-0.okd-scos-<UTC YYYY-MM-DD-HHMMSS>
      max_unready: 1
      verify:
        e2e:                        # blocking; run as a local process with ci-operator's environment
          command: [sh, -c, '"\$FORGE" release info "\$RELEASE_IMAGE_LATEST" --output json > "\$ARTIFACT_DIR/release-info.json" && printf "<testsuite name=\\"e2e\\"><testcase name=\\"payload reads back\\"/></testsuite>" > "\$ARTIFACT_DIR/junit.xml"']
          env: { FORGE: $PWD/$forge }
          max_retries: 1
        upgrade:                    # informing; from every earlier stable release
          command: [sh, -c, 'echo "upgrade from \$RELEASE_IMAGE_INITIAL to \$RELEASE_IMAGE_LATEST"']
          upgrade_from: all_previous_stable
          optional: true
      promote: { every: 14d }       # stable releases 4.17.0-okd-scos.N, channels stable-4, stable-4.17
YAML
cat "$work/forge.yaml"

cfg=(--config "$work/forge.yaml")
# The names of the stream's payloads, oldest first.
payloads() { $forge release list okd-scos-4.17 "${cfg[@]}" --output json | sed -n 's/^ *"name": "\(4\.17\.0-0\.[^"]*\)",*$/\1/p' | sort; }
set -x
$forge config check "${cfg[@]}"
$forge build "${cfg[@]}"
$forge build "${cfg[@]}"
$forge image inspect "docker://$registry/okd/content:okd-scos-4.17_demo-operand"
$forge stream tags okd-scos-4.17 "${cfg[@]}"
$forge controller sync "${cfg[@]}"
{ set +x; } 2>/dev/null
first=$(payloads | tail -1)
set -x
$forge release list "${cfg[@]}"
$forge release show "$first" "${cfg[@]}"
$forge release info "docker://$registry/okd/content:$first"
$forge release extract "docker://$registry/okd/content:$first" --to "$work/manifests"
cat "$work/manifests/0000_50_demo-operator_deployment.yaml"
$forge controller sync "${cfg[@]}"
{ set +x; } 2>/dev/null

echo "==> a pull request to demo-operand: test it on the Accepted payload, merge it, build, verify the next payload"
sed -i 's/^echo "demo-operand for/echo "demo-operand v2 for/' "$work/upstream/demo-operand/demo-operand.sh"
g demo-operand checkout -q -b fix release-4.17
g demo-operand commit -q -am "OCPBUGS-1234: demo-operand says which version it is"
g demo-operand checkout -q release-4.17
set -x
$forge test-pr --stream okd-scos-4.17 --component demo-operand --ref refs/heads/fix "${cfg[@]}"
g demo-operand merge -q --no-ff fix -m "Merge pull request #2 from demo/fix" \
  -m "OCPBUGS-1234: demo-operand says which version it is"
$forge build "${cfg[@]}"
$forge stream history okd-scos-4.17 demo-operand "${cfg[@]}"
$forge controller sync "${cfg[@]}"
{ set +x; } 2>/dev/null
second=$(payloads | tail -1)
set -x
$forge release list "${cfg[@]}"
$forge release diff "docker://$registry/okd/content:$first" "docker://$registry/okd/content:$second" --changelog
{ set +x; } 2>/dev/null

echo "==> the first payload became 4.17.0-okd-scos.0 at once; promote the second by hand: an edge from .0"
set -x
$forge release promote "$second" "${cfg[@]}"
$forge release edges "${cfg[@]}"
{ set +x; } 2>/dev/null

if [ "${1:-}" = "--serve" ]; then
  echo "==> serving the dashboard, the release-controller API and metrics (Ctrl-C stops)"
  $forge serve "${cfg[@]}" --listen 127.0.0.1:8080 || true
fi
echo "==> to browse it: $forge serve ${cfg[*]}   (or scripts/demo.sh --serve)"
