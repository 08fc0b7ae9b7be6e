#!/usr/bin/env bash
# Installs the tools the chart tests (tests/chart) need, into a cache outside the repo:
#
#   helm                 built from source with `go install`: release downloads are not
#                        reachable from CI, the Go module proxy is.
#   promtool             unpacked from Debian's prometheus package, without installing
#                        (and so starting) the Prometheus server; `go install` of promtool
#                        also works but compiles for ~6 minutes instead of ~2 seconds.
#   prometheus           the server, unpacked from the same package (kept in the cache, so
#                        one download serves both), for the test that runs the chart's
#                        alert rules and dashboard queries against a real scrape
#                        (tests/integration/test_prometheus.py). The `go install` fallback
#                        builds a server without its web UI, which that test does not use.
#   kubernetes-validate  from PyPI, in its own virtualenv: it ships the Kubernetes JSON
#                        schemas, so validating manifests needs no network.
#
# Idempotent: a tool already at its pinned version is skipped, so a re-run costs about a
# second. Usage:
#
#   devenv/tools/install.sh            # TRACE_STREAM_CACHE overrides ~/.cache/trace-stream
#
# The tests look in $TRACE_STREAM_CACHE/bin themselves; add it to PATH for a shell.
set -euo pipefail

HELM_VERSION=v3.22.0
KUBERNETES_VALIDATE_VERSION=1.37.0
# Fallback only, for machines without apt: the Go module version of Prometheus v3
# (promtool and the server).
PROMTOOL_GO_VERSION=v0.316.0

CACHE_DIR=${TRACE_STREAM_CACHE:-$HOME/.cache/trace-stream}
BIN_DIR=$CACHE_DIR/bin

log() { printf 'tools/install.sh: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed: $2"; }

helm_version() {
    "$BIN_DIR/helm" version --template '{{.Version}}' 2>/dev/null || true
}

# Kubernetes minor version matching helm's client-go (v0.N.x is Kubernetes 1.N), as
# helm's release builds compute it.
helm_kubernetes_minor() {
    local gomod
    gomod=$(GOTOOLCHAIN=local go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [[ -f $gomod ]] || die "go mod download helm.sh/helm/v3@$HELM_VERSION gave no go.mod"
    awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$gomod"
}

install_helm() {
    if [[ -x $BIN_DIR/helm && $(helm_version) == "$HELM_VERSION" ]]; then
        log "helm $HELM_VERSION: already in $BIN_DIR"
        return
    fi
    need go "install Go (the helm build needs the version its go.mod names, or newer)"
    log "helm $HELM_VERSION: building with go install (a few minutes on a cold Go cache)"
    local minor pkg=helm.sh/helm/v3
    minor=$(helm_kubernetes_minor)
    [[ $minor =~ ^[0-9]+$ ]] || die "cannot read the k8s.io/client-go version from helm's go.mod"
    # The -X flags are the ones helm's release Makefile sets: the version that
    # `helm version` reports (which the check above relies on), and the Kubernetes
    # version that `helm template` and `helm lint` assume, 1.20 otherwise.
    # GOTOOLCHAIN=local fails loudly instead of fetching another Go toolchain.
    GOBIN=$BIN_DIR GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath -ldflags "-s -w \
        -X $pkg/internal/version.version=$HELM_VERSION \
        -X $pkg/pkg/chartutil.k8sVersionMinor=$minor \
        -X $pkg/pkg/lint/rules.k8sVersionMinor=$minor" \
        "$pkg/cmd/helm@$HELM_VERSION"
    [[ $(helm_version) == "$HELM_VERSION" ]] ||
        die "built helm reports version '$(helm_version)', expected $HELM_VERSION"
}

# Debian's prometheus package, downloaded once into the cache (it is never installed:
# that would start the server); prints its path. A subshell, so the EXIT trap cleans
# the temp dir however the function ends.
prometheus_deb() (
    local deb_dir=$CACHE_DIR/deb
    local cached
    cached=$(find "$deb_dir" -maxdepth 1 -name 'prometheus_*.deb' 2>/dev/null | sort | tail -n1)
    if [[ -n $cached ]] && dpkg-deb --info "$cached" >/dev/null 2>&1; then
        echo "$cached"
        return
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "prometheus: downloading Debian's prometheus package (promtool and the server)"
    # The sandbox user (_apt) cannot write into a private temp dir; download as ourselves.
    download() { (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus); }
    if ! download; then
        # No package lists yet (fresh machine), or stale ones naming a removed version.
        log "prometheus: refreshing apt's package lists (apt-get update) and retrying"
        apt-get update -qq >&2 || die "apt-get update failed (run as root?)"
        download || die "apt-get download prometheus failed"
    fi
    mkdir -p "$deb_dir"
    rm -f "$deb_dir"/prometheus_*.deb
    mv "$tmp"/prometheus_*.deb "$deb_dir/"
    find "$deb_dir" -maxdepth 1 -name 'prometheus_*.deb' | sort | tail -n1
)

# Installs ./usr/bin/<name> of the package (promtool or prometheus) into $BIN_DIR,
# unless a working one is there; without apt, builds it with go install instead.
install_from_prometheus_deb() {
    local name=$1 deb
    if [[ -x $BIN_DIR/$name ]] && "$BIN_DIR/$name" --version >/dev/null 2>&1; then
        log "$name: already in $BIN_DIR ($("$BIN_DIR/$name" --version 2>&1 | head -n1))"
        return
    fi
    if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
        deb=$(prometheus_deb)
        dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/bin/$name" >"$BIN_DIR/$name.tmp" ||
            die "no ./usr/bin/$name in $deb"
        chmod 0755 "$BIN_DIR/$name.tmp"
        mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
    else
        need go "install Go, or run on Debian/Ubuntu where $name comes from apt"
        log "$name: no apt here; building $PROMTOOL_GO_VERSION with go install (~6 minutes)"
        GOBIN=$BIN_DIR GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
            "github.com/prometheus/prometheus/cmd/$name@$PROMTOOL_GO_VERSION"
    fi
    "$BIN_DIR/$name" --version >/dev/null 2>&1 || die "installed $name does not run"
    log "$name: installed ($("$BIN_DIR/$name" --version 2>&1 | head -n1))"
}

install_kubernetes_validate() {
    local venv=$CACHE_DIR/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
    local link=$BIN_DIR/kubernetes-validate
    if [[ -x $link && $("$link" --version 2>/dev/null) == "$KUBERNETES_VALIDATE_VERSION" ]]; then
        log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: already in $BIN_DIR"
        return
    fi
    local python=${PYTHON:-python3}
    need "$python" "install Python 3 with the venv module, or set PYTHON"
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: installing from PyPI into $venv"
    # Its own virtualenv, so the project's .venv stays exactly what pyproject.toml says.
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "$python -m venv failed"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" ||
        die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
    ln -sfn "$venv/bin/kubernetes-validate" "$link"
    [[ $("$link" --version) == "$KUBERNETES_VALIDATE_VERSION" ]] ||
        die "kubernetes-validate reports '$("$link" --version)'"
}

main() {
    mkdir -p "$BIN_DIR"
    install_helm
    install_from_prometheus_deb promtool
    install_from_prometheus_deb prometheus
    install_kubernetes_validate
    log "done: helm, promtool, prometheus and kubernetes-validate are in $BIN_DIR"
}

main "$@"
