#!/usr/bin/env bash
# `make deploy-check` (CI, after `make lint`): the Helm chart linted and rendered with both values files and
# every rendered manifest validated against the Kubernetes schemas; the Dockerfiles linted (hadolint); the
# compose file validated against the compose-spec schema. Real tools, built or fetched from what is reachable here (no Docker engine, no
# kubeconform schema download): helm from its Go module, the schemas from PyPI (kubernetes-validate) and
# from the compose-spec Go module (compose-go).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
TOOLS=deploy/.tools
COMPOSE_GO_VERSION=v2.10.1
KUBE_VERSION=${KUBE_VERSION:-1.33.0}
CHART=deploy/helm/ragloop
OUT=$TOOLS/rendered
mkdir -p "$TOOLS" "$OUT"
command -v go >/dev/null || { echo "deploy-check: Go is needed (helm and the compose-spec schema come from Go modules)" >&2; exit 1; }

deploy/build_helm.sh
HELM=$TOOLS/helm

# One render per shape: the small and large values, the defaults with and without KEDA and the
# Prometheus Operator present (auto-detection), with the optional parts (Ingress, training Job) on.
declare -A RENDERS=(
  [small]="-f $CHART/values-small.yaml --set trainerJob.enabled=true"
  [large]="-f $CHART/values-large.yaml --set trainerJob.enabled=true"
  [default-hpa]="--set secrets.apiKeys=key=default --set gateway.ingress.enabled=true"
  [default-keda]="--set secrets.apiKeys=key=default --api-versions keda.sh/v1alpha1 --api-versions monitoring.coreos.com/v1"
)
for values in "-f $CHART/values-small.yaml" "-f $CHART/values-large.yaml" "--set secrets.apiKeys=key=default"; do
  # shellcheck disable=SC2086 # the values are word lists on purpose
  "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" $values
done
for name in "${!RENDERS[@]}"; do
  # shellcheck disable=SC2086
  "$HELM" template ragloop "$CHART" --kube-version "$KUBE_VERSION" ${RENDERS[$name]} > "$OUT/$name.yaml"
  # --strict: unknown fields are errors. CRD kinds (ScaledObject, ServiceMonitor) have no schema there and
  # are checked by tests/unit/test_helm_chart.py instead.
  "$PYTHON" -m kubernetes_validate -k "$KUBE_VERSION" --strict --quiet --no-warn "$OUT/$name.yaml"
  echo "validated $OUT/$name.yaml: $(grep -c '^kind:' "$OUT/$name.yaml") manifests"
done

# Dockerfiles: hadolint (the lint extra ships its static binary). No Docker engine here to build them;
# tests/unit/test_dockerfiles.py checks what the images promise (non-root, healthcheck, pinned bases, the lock).
"$(dirname "$PYTHON")/hadolint" deploy/docker/Dockerfile deploy/docker/Dockerfile.gpu
echo "hadolint: deploy/docker/Dockerfile, Dockerfile.gpu clean"

# compose: the compose-spec JSON schema from compose-go, the library `docker compose` itself loads files with.
SCHEMA_DIR=$(go mod download -json "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
"$PYTHON" deploy/validate_compose.py --schema "$SCHEMA_DIR/schema/compose-spec.json" deploy/compose/compose.yaml
