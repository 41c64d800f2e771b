#!/usr/bin/env bash
# Static checks of deploy/, for machines where no container can run: `make deploy-check`
# runs them all, tests/test_deploy.py each one (so `make test` fails on what they find).
#
#   deploy/check.sh [STEP...]    steps: dockerfile compose k8s prometheus (default: all)
#
# dockerfile  hadolint on deploy/Dockerfile, failing on anything it reports
# compose     deploy/compose.yaml against the compose-spec JSON schema (check-jsonschema's
#             copy), as `docker compose config` would check it
# k8s         deploy/k8s/*.yaml against Kubernetes' own schemas for $K8S_VERSION, strict
#             (kubernetes-validate ships them: no download)
# prometheus  promtool check config on deploy/prometheus.yml; where promtool cannot be had
#             (`make deploy-check` unpacks it from Debian's prometheus package), a YAML parse
#
# BIN: the folder of the tools and Python (default .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-.venv/bin}
K8S_VERSION=${K8S_VERSION:-1.30.0}

dockerfile() {
  "$bin/hadolint" --failure-threshold info deploy/Dockerfile
}

compose() {
  "$bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
}

k8s() {
  "$bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" deploy/k8s/*.yaml
}

prometheus() {
  local promtool
  promtool=$(command -v "$bin/promtool" || command -v promtool || true)
  if [ -n "$promtool" ]; then
    "$promtool" check config deploy/prometheus.yml
  else
    echo "promtool not found: deploy/prometheus.yml is only parsed as YAML"
    "$bin/python" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' deploy/prometheus.yml
  fi
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(dockerfile compose k8s prometheus)
for step in "${steps[@]}"; do
  case $step in
    dockerfile | compose | k8s | prometheus) ;;
    *) echo "unknown step: $step (dockerfile, compose, k8s, prometheus)" >&2; exit 2 ;;
  esac
  echo "== $step"
  "$step"
done
