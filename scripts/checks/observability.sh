#!/usr/bin/env bash
# Issue 6 proof against a real Prometheus; see scripts/observability-check.sh.
exec "$(dirname "$0")/../observability-check.sh" "$@"
