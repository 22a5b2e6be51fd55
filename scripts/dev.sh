#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds, applies D1 migrations, starts Starling under
# `wrangler dev` (workerd + local D1/R2/Queues) on 127.0.0.1:${PORT:-8787}, seeds a demo tenant on first
# run, prints the URL and tokens, and runs until stopped (Ctrl-C). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
PORT=${PORT:-8787}
bash scripts/setup.sh

if [ ! -f .dev.vars ]; then
  step "creating .dev.vars with a random SIGNING_KEY and ADMIN_TOKEN"
  umask 077
  printf 'SIGNING_KEY=%s\nADMIN_TOKEN=%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >.dev.vars
fi
# The worker refuses to serve with a SIGNING_KEY under 32 bytes (tracker tokens are public, a short key
# can be brute-forced from one): say so before starting anything.
key=$(sed -n 's/^SIGNING_KEY=//p' .dev.vars | tr -d '"')
[ "${#key}" -ge 32 ] || die "SIGNING_KEY in .dev.vars is shorter than 32 bytes: replace it with a random one (e.g. \$(openssl rand -hex 32)) or delete .dev.vars to get a new one"
[ -f scripts/build-tracker.sh ] && bash scripts/build-tracker.sh
[ -f scripts/build-www.sh ] && bash scripts/build-www.sh
bash scripts/build-worker.sh

step "applying D1 migrations (local)"
node_modules/.bin/wrangler d1 migrations apply DB --local >/dev/null
node_modules/.bin/wrangler d1 migrations apply SILO_1 --local >/dev/null

if curl -fsS "http://127.0.0.1:$PORT/v0/health" >/dev/null 2>&1; then
  die "port $PORT is already in use (is Starling already running?): stop it or set PORT=<other port>"
fi
step "starting wrangler dev on 127.0.0.1:$PORT"
log=$(mktemp)
# The local queue keeps messages in memory only: spool every accepted request to R2 before its 202
# (SPOOL_INLINE_MAX_ROWS=0), and fire the minute cron ourselves (crons never fire locally), so the
# spool sweep applies whatever the local queue loses or stalls on. Production needs neither.
node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$PORT" --show-interactive-dev-session=false \
  --test-scheduled --var SPOOL_INLINE_MAX_ROWS:0 >"$log" 2>&1 &
pid=$!
( while sleep 60; do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/__scheduled?cron=*+*+*+*+*" 2>/dev/null || true; done ) &
cron=$!
trap 'kill $pid $cron 2>/dev/null; rm -f "$log"' EXIT INT TERM
for _ in $(seq 1 180); do
  grep -q "Ready on http" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; die "wrangler dev exited; its output is above"; }
  sleep 1
done
grep -q "Ready on http" "$log" || { tail -50 "$log" >&2; die "wrangler dev did not become ready in 180 s"; }

url="http://127.0.0.1:$PORT"
step "onboarding the demo tenant through the admin API (scripts/onboard.mjs)"
onboard=$(node scripts/onboard.mjs --url "$url" --tenant demo --name "Demo" --plan enterprise --json) \
  || die "onboarding the demo tenant failed: see the error above"
tracker=$(node -e 'console.log(JSON.parse(process.argv[1]).tracker_token)' "$onboard")
read=$(node -e 'console.log(JSON.parse(process.argv[1]).read_token)' "$onboard")
marker=.wrangler/state/.starling-demo-seeded
if [ ! -f "$marker" ]; then
  step "seeding the demo tenant with 7 days of traffic"
  node scripts/seed.mjs --url "$url" --token "$tracker" --days 7 --visits-per-day 120 && touch "$marker"
fi
summary "Starling is running at $url"
cat <<EOT
  dashboard:      $url/dashboard/#token=$read
  embed sample:   $url/embed/#token=$read
  tracker token:  $tracker
  read token:     $read
  try:            curl -H "Authorization: Bearer $read" "$url/v0/pipes/kpis.json"
  admin API:      $url/v0/openapi.json (ADMIN_TOKEN is in .dev.vars)
Press Ctrl-C to stop. Logs follow.
EOT
tail -n +1 -f "$log" &
wait $pid
