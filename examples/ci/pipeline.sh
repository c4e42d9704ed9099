#!/bin/sh
# The pipeline of docs/ci.md: import the repository's modules, run the deployment, and leave
# its verdict (the exit code), a JUnit report and the report bundles for the CI system.
#
#   examples/ci/pipeline.sh [MODULES.yaml] [DEPLOYMENT]
#
# With SLIPSTREAM_URL and SLIPSTREAM_TOKEN set, it uses that server. Without them it starts a
# throwaway one (the `slipstream` binary on PATH, data in a temporary directory, listening on
# $SLIPSTREAM_LISTEN or 127.0.0.1:8080) with an administrator `ci`, and stops and removes it
# at the end (its log is kept as slipstream-server.log).
set -eu
modules=${1:-examples/ci/modules.yaml}
deployment=${2:-ci/system}
out=${SLIPSTREAM_OUT:-.}

if [ -z "${SLIPSTREAM_URL:-}" ]; then
    data=$(mktemp -d)
    listen=${SLIPSTREAM_LISTEN:-127.0.0.1:8080}
    slipstream serve --listen "$listen" --data-dir "$data" > "$data/server.log" 2>&1 &
    server=$!
    # At the end the server is stopped and everything it made goes: its data directory (its
    # log is kept beside the verdict) and, for a root server, where its local instances
    # worked (docs/operations.md).
    cleanup() {
        kill "$server" 2>/dev/null
        wait "$server" 2>/dev/null || true
        cp "$data/server.log" "$out/slipstream-server.log" 2>/dev/null || true
        id=$(cat "$data/server-id" 2>/dev/null || true)
        if [ -n "$id" ]; then rm -rf "/var/tmp/slipstream/$id"; fi
        rm -rf "$data"
    }
    trap cleanup EXIT
    for _ in $(seq 100); do grep -q "listening on" "$data/server.log" 2>/dev/null && break; sleep 0.1; done
    password=$(head -c 18 /dev/urandom | base64)
    SLIPSTREAM_ADMIN_PASSWORD="$password" slipstream admin create ci --data-dir "$data"
    export XDG_CONFIG_HOME="$data/config"
    SLIPSTREAM_PASSWORD="$password" slipstream login "http://$listen" --user ci
fi

slipstream import "$modules"
slipstream run "$deployment" --keep-running never --timeout 600 --wait \
    --junit "$out/junit.xml" --reports "$out/reports"
