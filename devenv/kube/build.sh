#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by the chart install tests
# (tests/chart/test_install.py) into a cache outside the repository:
#
#   kube-apiserver, kube-controller-manager, kube-scheduler
#                 k8s.io/kubernetes, with each staging module (k8s.io/api, ...) replaced by
#                 its published v0.N.x of the same minor version (go.mod here); the mains
#                 in cmd/ are copies of upstream's. The -X flags set the version the
#                 server reports (v0.0.0-master otherwise).
#   etcd          go.etcd.io/etcd/server/v3 at the version Kubernetes requires.
#   kwok          sigs.k8s.io/kwok: simulated nodes on which pods become Ready without
#                 running containers; its stage files are copied from the same module.
#   crds/         the CustomResourceDefinitions the chart's optional objects need:
#                 ServiceMonitor and PrometheusRule from the prometheus-operator module,
#                 ScaledObject from KEDA's.
#
# Everything comes from the Go module proxy. About 10 minutes and ~400 MB of binaries on
# 2 cores with a cold Go cache; keyed on the Kubernetes version, so a re-run with the
# binaries present costs about a second. Usage:
#
#   devenv/kube/build.sh        # TRACE_STREAM_CACHE overrides ~/.cache/trace-stream
#
# Prints the directory holding bin/, stages/ and crds/.
set -euo pipefail
cd "$(dirname "$0")"

KUBERNETES_VERSION=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)
KWOK_VERSION=$(awk '$1 == "sigs.k8s.io/kwok" { print $2 }' go.mod)
PROMETHEUS_OPERATOR_VERSION=v0.85.0
KEDA_VERSION=v2.21.0
CACHE_DIR=${TRACE_STREAM_CACHE:-$HOME/.cache/trace-stream}
OUT=$CACHE_DIR/kube-$KUBERNETES_VERSION
COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

log() { printf 'kube/build.sh: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

complete() {
    local cmd
    for cmd in "${COMMANDS[@]}"; do
        [[ -x $OUT/bin/$cmd ]] || return 1
    done
    [[ -f $OUT/stages/stages.yaml && -f $OUT/.complete ]]
}

# The directory of a module version in Go's module cache, downloading it if needed.
module_dir() {
    (cd / && GOFLAGS= GOTOOLCHAIN=local go mod download -json "$1") | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p'
}

fetch_crds() {
    local crds=$OUT/crds-$PROMETHEUS_OPERATOR_VERSION-$KEDA_VERSION operator keda kind
    [[ -f $crds/.complete ]] && return
    rm -rf "$crds"
    mkdir -p "$crds"
    operator=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
    keda=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
    for kind in servicemonitors prometheusrules; do
        cp "$operator/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$crds/" ||
            die "no $kind CRD in prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
    done
    cp "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" "$crds/" ||
        die "no ScaledObject CRD in keda $KEDA_VERSION"
    chmod u+w "$crds"/*.yaml
    touch "$crds/.complete"
    ln -sfn "$(basename "$crds")" "$OUT/crds"
}

if complete; then
    fetch_crds
    log "Kubernetes $KUBERNETES_VERSION control plane: already in $OUT"
    echo "$OUT"
    exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed (the build needs Go $(awk '$1 == "go" { print $2 }' go.mod) or newer)"
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/stages"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

minor=${KUBERNETES_VERSION#v1.}
minor=${minor%%.*}
version_pkg=k8s.io/component-base/version
ldflags="-s -w -X $version_pkg.gitVersion=$KUBERNETES_VERSION -X $version_pkg.gitMajor=1"
ldflags+=" -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"

start=$SECONDS
log "building Kubernetes $KUBERNETES_VERSION, etcd and KWOK $KWOK_VERSION into $OUT (about 10 minutes on a cold Go cache)"
for cmd in "${COMMANDS[@]}"; do
    log "  $cmd"
    go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/$cmd" "./cmd/$cmd" || die "go build of $cmd failed"
done

# KWOK's "fast" stages: a node becomes Ready at once, a pod Ready, a Job's pod Succeeded.
kwok_dir=$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")
[[ -d $kwok_dir/kustomize/stage ]] || die "no kustomize/stage in sigs.k8s.io/kwok@$KWOK_VERSION"
for stage in "$kwok_dir"/kustomize/stage/node/fast/*.yaml "$kwok_dir"/kustomize/stage/pod/fast/*.yaml; do
    [[ $(basename "$stage") == kustomization.yaml ]] && continue
    printf -- '---\n'
    cat "$stage"
done >"$OUT/stages/stages.yaml"

version=$("$OUT/bin/kube-apiserver" --version)
[[ $version == "Kubernetes $KUBERNETES_VERSION" ]] || die "kube-apiserver reports '$version'"
fetch_crds
touch "$OUT/.complete"
log "done in $((SECONDS - start)) s: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
