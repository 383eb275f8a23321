#!/usr/bin/env bash
# helm, built once from its Go module into the gitignored deploy/.tools (~80 s, 1.1 GB peak): `make deploy-check`
# lints and renders the chart with it, and `make test` needs it for tests/unit/test_helm_chart.py.
# A build from the module path carries no release ldflags (`helm version` says v3.22, and its default
# Kubernetes version is 1.20), so the built version is kept in a stamp and callers always give --kube-version.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=deploy/.tools
HELM_VERSION=v3.22.0
mkdir -p "$TOOLS"
if [[ ! -x $TOOLS/helm || $(cat "$TOOLS/helm.version" 2>/dev/null) != "$HELM_VERSION" ]]; then
  command -v go >/dev/null || { echo "build_helm: Go is needed (helm is built from its Go module)" >&2; exit 1; }
  echo "building helm $HELM_VERSION from its Go module into $TOOLS (about 80 s, once)"
  GOBIN=$PWD/$TOOLS go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$TOOLS/helm.version"
fi
