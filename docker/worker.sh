#!/bin/sh
# The Prefect worker of the vitalgru stack (docker/compose.yaml; runs as well outside it).
# Makes sure the work pool exists, registers the deployments of prefect.yaml with their
# schedules (again on every start, so an edited prefect.yaml takes effect on restart), then
# polls the pool for flow runs. Needs PREFECT_API_URL; extra arguments go to
# `prefect worker start` (e.g. --run-once).
set -eu
cd "$(dirname "$0")/.."
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server, e.g. http://prefect-server:4200/api}"
pool=vitalgru  # the work_pool of every deployment in prefect.yaml
prefect work-pool inspect "$pool" >/dev/null 2>&1 \
    || prefect work-pool create "$pool" --type process
prefect --no-prompt deploy --all
exec prefect worker start --pool "$pool" "$@"
