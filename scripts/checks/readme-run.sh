#!/usr/bin/env bash
# The README's run command works as written on a fresh copy of the tree: it takes the command
# from README.md (the first ```sh block after the "**Run**" line), runs it in a clean git copy
# of the working tree, waits until the devnet reports every node ready, runs every command the
# devnet printed under "try:" exactly as printed, stops it with Ctrl-C (SIGINT to its process
# group) and checks it exits cleanly, leaves no process and writes nothing git would track.
# Any failing step ends the check with one line `readme-run: FAIL: <step>: ...`.
#
# Builds go to the repository's target dir (CARGO_TARGET_DIR, else ./target). Cargo names a
# workspace crate's artifacts by its path relative to the workspace root, and tar keeps the
# files' mtimes, so the copy reuses what the repository built (and the other way round).
# Measured on 2 busy cores: 739 s with no release build in the target dir, 166 s after a change
# to the node crate, 13 s with an up-to-date one (then the drills' release build is instant).
# Deadlines: READMERUN_BUILD_SECS (default 900) for the build and start, then
# READMERUN_READY_SECS (default 120) for every node to be ready.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
build_secs=${READMERUN_BUILD_SECS:-900}
ready_secs=${READMERUN_READY_SECS:-120}
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/readme-run.XXXXXX")
copy=$work/qnet-node
log=$work/run.log
pgid=

fail() {
  echo "readme-run: FAIL: $*"
  if [ -s "$log" ]; then
    echo "--- last lines of the run's output ($log is removed on exit):"
    tail -n 30 "$log"
  fi
  exit 1
}

group_alive() { [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; }

cleanup() {
  if group_alive; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 50); do group_alive || break; sleep 0.2; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
elapsed() { echo $(($(date +%s) - started)); }

# 1. The command, from the README itself.
cmd=$(awk '
  found && /^```sh[[:space:]]*$/ { inside = 1; next }
  inside && /^```/ { exit }
  inside { print }
  /^\*\*Run\*\*/ { found = 1 }
' README.md)
[ -n "$cmd" ] || fail "find the run command: no \`\`\`sh block after a **Run** line in README.md"
echo "readme-run: the README's run command: $cmd"

# 2. A clean copy: tracked and untracked-not-ignored files of the working tree, one commit.
mkdir -p "$copy"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do
    if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
  done |
  tar --null -T - -cf - | tar -xf - -C "$copy" ||
  fail "copy the tree: tar of the working tree's files into $copy failed"
(
  cd "$copy"
  git init -q
  git add -A
  git -c user.name=readme-run -c user.email=readme-run@localhost commit -qm snapshot
) || fail "copy the tree: git init/commit in the copy failed"

# Ports of the default devnet (base 19000, three per node) must be free, or the run would
# fail for a reason that is not the README's.
for port in $(seq 19000 19017); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "free ports: 127.0.0.1:$port is in use (another devnet?); the default devnet needs 19000-19017"
  fi
done

# 3. Run it exactly as written, in its own process group (job control makes the background
# job a group of its own and, unlike a plain `&`, keeps SIGINT deliverable, as in a terminal).
set -m
(cd "$copy" && CARGO_TARGET_DIR="$target" exec bash -c "$cmd") </dev/null >"$log" 2>&1 &
pid=$!
set +m
pgid=$pid

wait_for() { # wait_for SECONDS PATTERN: polls the log until PATTERN appears
  local until=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$until" ]; do
    if grep -qE "$2" "$log"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 2
    sleep 2
  done
  return 1
}

rc=0
wait_for "$build_secs" '^devnet: [0-9]+ nodes in' || rc=$?
case $rc in
  0) echo "readme-run: built and started in $(elapsed)s" ;;
  1) fail "build and start: no 'devnet: N nodes in' line within ${build_secs}s" ;;
  *) fail "build and start: the command exited before the devnet started" ;;
esac
rc=0
wait_for "$ready_secs" '^devnet: (all [0-9]+ nodes ready|[0-9]+/[0-9]+ nodes ready)' || rc=$?
case $rc in
  0) ;;
  1) fail "readiness: no readiness line within ${ready_secs}s of the start" ;;
  *) fail "readiness: the devnet exited before its nodes were ready" ;;
esac
grep -qE '^devnet: all [0-9]+ nodes ready' "$log" ||
  fail "readiness: $(grep -E '^devnet: [0-9]+/[0-9]+ nodes ready' "$log")"
echo "readme-run: $(grep -E '^devnet: all [0-9]+ nodes ready' "$log") ($(elapsed)s in all)"
wait_for 10 '^devnet: running' || fail "readiness: no 'devnet: running' line after the ready line"

# 4. Every printed "try:" command, exactly as printed, from the copy's root; the first
# `curl` must answer JSON that is not an error object.
mapfile -t tries < <(awk '
  /^try:/ { on = 1; sub(/^try:[[:space:]]+/, ""); print; next }
  on && /^      [^ ]/ { sub(/^[[:space:]]+/, ""); print; next }
  { on = 0 }
' "$log")
[ ${#tries[@]} -gt 0 ] || fail "try commands: the devnet printed no 'try:' line"
checked_json=
for line in "${tries[@]}"; do
  out=$(cd "$copy" && timeout 60 bash -c "$line" 2>&1) ||
    fail "try command exited $?: $line"$'\n'"$out"
  if [ -z "$checked_json" ] && [[ $line == curl* ]]; then
    printf '%s' "$out" | python3 -c '
import json, sys
body = json.load(sys.stdin)
sys.exit(1 if isinstance(body, dict) and "error" in body else 0)
' || fail "try command answered no JSON (or an error): $line"$'\n'"$out"
    checked_json=1
  fi
  echo "readme-run: ok: $line"
done
[ -n "$checked_json" ] || fail "try commands: no curl line among them"

# 5. Ctrl-C: SIGINT to the process group, a clean exit within 30 s, nothing left behind.
kill -INT -- "-$pgid" || fail "ctrl-c: cannot signal process group $pgid"
stopped=
for _ in $(seq 150); do
  if ! kill -0 "$pid" 2>/dev/null; then stopped=1; break; fi
  sleep 0.2
done
[ -n "$stopped" ] || fail "ctrl-c: the command still runs 30 s after SIGINT"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "ctrl-c: the command exited with status $rc"
grep -q '^devnet: stopped' "$log" || fail "ctrl-c: no 'devnet: stopped' line"
for _ in $(seq 50); do group_alive || break; sleep 0.2; done
if group_alive; then
  left=$(ps -eo pid=,pgid=,args= | awk -v g="$pgid" '$2 == g { print }' | tr '\n' ';')
  fail "ctrl-c: processes left behind: $left"
fi
pgid=
dirty=$(cd "$copy" && git status --porcelain)
[ -z "$dirty" ] || fail "git status: the run left files git would track: $dirty"

echo "readme-run: ok in $(elapsed)s"
