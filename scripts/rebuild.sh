#!/usr/bin/env bash
# Rebuilds a tenant's D1 rollups from the R2 archive, one UTC day at a time, with progress.
#   scripts/rebuild.sh TENANT FROM TO        (dates YYYY-MM-DD, inclusive)
#   scripts/rebuild.sh TENANT FROM TO --full (first deletes ALL of the tenant's rollups, all time)
# Talks to STARLING_URL (default http://127.0.0.1:${PORT:-8787}) with ADMIN_TOKEN (env or .dev.vars).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
[ $# -ge 3 ] || die "usage: scripts/rebuild.sh TENANT FROM TO [--full]   (dates as YYYY-MM-DD)"
tenant=$1 from=$2 to=$3 full=${4:-}
url=${STARLING_URL:-http://127.0.0.1:${PORT:-8787}}
token=${ADMIN_TOKEN:-$(grep -s '^ADMIN_TOKEN=' .dev.vars | cut -d= -f2-)}
[ -n "$token" ] || die "no ADMIN_TOKEN: set it in the environment (production) or run scripts/dev.sh once (local)"
date -d "$from" >/dev/null 2>&1 && date -d "$to" >/dev/null 2>&1 || die "FROM and TO must be dates as YYYY-MM-DD"
call() {
  local out
  out=$(curl -sS -X POST -H "Authorization: Bearer $token" -w '\n%{http_code}' "$url$1") || die "cannot reach $url: is Starling running?"
  [ "$(tail -n1 <<<"$out")" = 200 ] || die "$1 failed: $(head -n -1 <<<"$out")"
  head -n -1 <<<"$out"
}
start=$(date +%s)
if [ "$full" = --full ]; then
  call "/v0/admin/rebuild/reset?tenant_id=$tenant&full=true" >/dev/null
else
  call "/v0/admin/rebuild/reset?tenant_id=$tenant&date_from=$from&date_to=$to" >/dev/null
fi
days=0 events=0
d=$from
total=$(( ($(date -d "$to" +%s) - $(date -d "$from" +%s)) / 86400 + 1 ))
while [ "$(date -d "$d" +%s)" -le "$(date -d "$to" +%s)" ]; do
  n=$(call "/v0/admin/rebuild/day?tenant_id=$tenant&day=$d" | sed -E 's/.*"events":([0-9]+).*/\1/')
  days=$((days + 1)) events=$((events + n))
  step "[$days/$total] $d: $n events"
  d=$(date -d "$d + 1 day" +%F)
done
summary "rebuild: tenant $tenant, $days day(s), $events events replayed in $(($(date +%s) - start)) s"
