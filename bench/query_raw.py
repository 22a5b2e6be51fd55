#!/usr/bin/env python3
"""Raw-scan baseline for bench/query.mjs: Starling's endpoints computed with DuckDB from raw events.

    python bench/query_raw.py --csv raw.csv --tenants t0000,t0499 --start SECS --end SECS --now SECS
        [--samples 50] [--order tenant|time] [--threads N] [--api true]

Loads the generator's raw CSV (core/examples/gen_rollups.rs --raw) into an in-memory DuckDB table once
(sorted by tenant_id, ts by default, so DuckDB's zone maps skip other tenants: the favourable layout for
the baseline), then times only the queries: per tenant and endpoint, `samples` runs after two warm-up
runs. Sessions are rebuilt from page hits (first hit gives the session's attributes), as the rollups do.
Progress goes to stderr; a JSON document with latencies (ms) and each query's first result row goes to
stdout.

`--api true` adds the questions of issue #14 that bench/query.mjs asks `POST /v0/query` and `POST
/v0/funnel` (names in API_QUERIES: goals, a goal filter, a property breakdown, goal x property, the 4-step
funnel unfiltered and with browser = chrome), for the generator's `--goals true --funnels true` data,
with every result row in `all` (raw counts: bench/query.mjs derives the rates and compares).
"""

import argparse
import json
import sys
import time

import duckdb

HITS = "FROM events WHERE tenant_id = $t AND ts >= $s AND ts < $e AND action = 'page_hit' AND NOT is_bot"


def session_top(expr, skip_empty=False):
    """Top list over sessions keyed by an attribute of the session's first (or last) hit."""
    where = " WHERE k0 <> ''" if skip_empty else ""
    return (
        f"SELECT k0, count(*) AS visits, sum(pv) AS hits FROM (SELECT {expr} AS k0, count(*) AS pv {HITS} "
        f"GROUP BY session_id){where} GROUP BY k0 ORDER BY visits DESC, k0 LIMIT 50"
    )


QUERIES = {
    "kpis": (
        "SELECT f // 86400 AS bucket, count(*) AS visits, count(DISTINCT v) AS visitors, sum(pv) AS pageviews, "
        "sum(CASE WHEN pv = 1 THEN 1 ELSE 0 END) AS bounces, sum(l - f) AS duration FROM (SELECT "
        f"arg_min(visitor_id, ts) AS v, min(ts) AS f, max(ts) AS l, count(*) AS pv {HITS} GROUP BY session_id) "
        "GROUP BY bucket ORDER BY bucket"
    ),
    "kpis_summary": (
        "SELECT count(*) AS visits, count(DISTINCT v) AS visitors, sum(pv) AS pageviews, "
        "sum(CASE WHEN pv = 1 THEN 1 ELSE 0 END) AS bounces, sum(l - f) AS duration FROM (SELECT "
        f"arg_min(visitor_id, ts) AS v, min(ts) AS f, max(ts) AS l, count(*) AS pv {HITS} GROUP BY session_id)"
    ),
    "top_pages": (
        f"SELECT pathname, count(DISTINCT session_id) AS visits, count(*) AS hits {HITS} "
        "GROUP BY pathname ORDER BY visits DESC, pathname LIMIT 50"
    ),
    "top_sources": session_top("arg_min(source, ts)"),
    "top_browsers": session_top("arg_min(browser, ts)"),
    "top_os": session_top("arg_min(os, ts)"),
    "top_devices": session_top("arg_min(device, ts)"),
    "top_locations": session_top("arg_min(country, ts)"),
    "top_campaigns": (
        "SELECT k0, k1, k2, count(*) AS visits, sum(pv) AS hits FROM (SELECT arg_min(utm_campaign, ts) AS k0, "
        f"arg_min(utm_source, ts) AS k1, arg_min(utm_medium, ts) AS k2, count(*) AS pv {HITS} GROUP BY session_id) "
        "WHERE k0 <> '' GROUP BY k0, k1, k2 ORDER BY visits DESC, k0, k1, k2 LIMIT 50"
    ),
    "entry_pages": session_top("arg_min(pathname, ts)"),
    "exit_pages": session_top("arg_max(pathname, ts)"),
    "trend": (
        "SELECT ts // 60 AS minute, count(DISTINCT session_id) AS visits FROM events WHERE tenant_id = $t "
        "AND ts >= $now - ($now % 60) - 1740 AND action = 'page_hit' AND NOT is_bot GROUP BY minute ORDER BY minute"
    ),
    "current_visitors": (
        "SELECT count(DISTINCT session_id) AS visits FROM events WHERE tenant_id = $t AND ts >= $now - 300 "
        "AND action = 'page_hit' AND NOT is_bot"
    ),
    "domains": (
        "SELECT domain, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS total_hits FROM events "
        "WHERE tenant_id = $t AND action = 'page_hit' AND NOT is_bot GROUP BY domain ORDER BY total_hits DESC, domain"
    ),
    "actions": (
        "SELECT domain, action, arg_max(payload, ts) AS last_payload, max(ts) AS last_seen, count(*) AS total "
        "FROM events WHERE tenant_id = $t AND NOT is_bot GROUP BY domain, action ORDER BY last_seen DESC, domain, action"
    ),
}

# The generator's goals and funnel (core/examples/gen_rollups.rs `bench_goals`, `bench_funnel`): an event
# goal matches a custom event's action, a page goal a page hit's path (`*` = any run: LIKE with %).
GOALS = [("Signup", "event", "signup"), ("CTA", "event", "click_cta"), ("Pricing", "page", "/pricing"), ("Blog", "page", "/blog%")]
FUNNEL = ["/", "/pricing", "/about", "/blog%"]

# Events of the range (bots never count); visits = sessions with page hits, their attributes from the
# first hit (as the rollups), `pv` their page hits.
API_BASE = (
    "WITH ev AS (SELECT * FROM events WHERE tenant_id = $t AND ts >= $s AND ts < $e AND NOT is_bot), "
    "sess AS (SELECT session_id, arg_min(visitor_id, ts) AS v, arg_min(browser, ts) AS browser, count(*) AS pv "
    "FROM ev WHERE action = 'page_hit' GROUP BY session_id), "
    "gev AS ("
    + " UNION ALL ".join(
        f"SELECT session_id, visitor_id, '{name}' AS goal FROM ev WHERE "
        + (f"action = '{m}'" if kind == "event" else f"action = 'page_hit' AND pathname {'LIKE' if '%' in m else '='} '{m}'")
        for name, kind, m in GOALS
    )
    + ")"
)


def funnel_sql(where):
    """Visits and visitors per step: the earliest hit of step k after the step k-1 hit (greedy, in time order)."""
    ctes = []
    for i, m in enumerate(FUNNEL, 1):
        match = f"h.pathname {'LIKE' if '%' in m else '='} '{m}'"
        if i == 1:
            ctes.append(f"s1 AS (SELECT h.session_id, min(h.ts) AS t FROM hits h WHERE {match} GROUP BY h.session_id)")
        else:
            ctes.append(
                f"s{i} AS (SELECT h.session_id, min(h.ts) AS t FROM hits h JOIN s{i - 1} p ON h.session_id = p.session_id "
                f"AND h.ts > p.t WHERE {match} GROUP BY h.session_id)"
            )
    steps = " UNION ALL ".join(
        f"SELECT {i} AS step, count(*) AS visits, count(DISTINCT sess.v) AS visitors FROM s{i} JOIN sess USING (session_id)"
        for i in range(1, len(FUNNEL) + 1)
    )
    return (
        f"{API_BASE}, hits AS (SELECT ev.session_id, ev.ts, ev.pathname FROM ev JOIN sess USING (session_id) "
        f"WHERE ev.action = 'page_hit' AND {where}), {', '.join(ctes)} SELECT * FROM ({steps}) ORDER BY step"
    )


API_QUERIES = {
    # Per goal: converted visitors, goal events; `total_visitors` is the conversion rate's divisor.
    "goals_table": (
        f"{API_BASE} SELECT goal, count(DISTINCT visitor_id) AS conversions, count(*) AS events, "
        "(SELECT count(DISTINCT v) FROM sess) AS total_visitors FROM gev GROUP BY goal ORDER BY conversions DESC, goal"
    ),
    "goal_conversions": (
        f"{API_BASE} SELECT goal, count(DISTINCT visitor_id) AS conversions FROM gev GROUP BY goal ORDER BY conversions DESC, goal"
    ),
    # The visits that completed Signup.
    "goal_filter": (
        f"{API_BASE} SELECT count(DISTINCT v) AS visitors, count(*) AS visits, sum(pv) AS pageviews, "
        "sum(CASE WHEN pv = 1 THEN 1 ELSE 0 END) AS bounces FROM sess "
        "WHERE session_id IN (SELECT session_id FROM gev WHERE goal = 'Signup')"
    ),
    "props_plan": (
        f"{API_BASE} SELECT value, count(DISTINCT visitor_id) AS visitors, count(*) AS events FROM "
        "(SELECT visitor_id, json_extract_string(payload, '$.plan') AS value FROM ev) WHERE value IS NOT NULL "
        "GROUP BY value ORDER BY visitors DESC, value"
    ),
    # The property keys by events (the dashboard's property picker): every key of every event's properties.
    "prop_keys": (
        f"{API_BASE} SELECT key, count(*) AS events FROM "
        "(SELECT unnest(json_keys(payload)) AS key FROM ev WHERE payload <> '{}') "
        "GROUP BY key ORDER BY events DESC, key"
    ),
    # Signup's conversions that carried the value (Plausible's goal x property; the value sits on the goal's event).
    "goal_props": (
        f"{API_BASE} SELECT value, count(DISTINCT visitor_id) AS visitors, count(*) AS events FROM "
        "(SELECT visitor_id, json_extract_string(payload, '$.plan') AS value FROM ev WHERE action = 'signup') "
        "WHERE value IS NOT NULL GROUP BY value ORDER BY visitors DESC, value"
    ),
    "funnel_4": funnel_sql("true"),
    "funnel_4_chrome": funnel_sql("sess.browser = 'chrome'"),
}

COLUMNS = {
    "ts": "BIGINT",
    "tenant_id": "VARCHAR",
    "domain": "VARCHAR",
    "action": "VARCHAR",
    "session_id": "VARCHAR",
    "visitor_id": "VARCHAR",
    "pathname": "VARCHAR",
    "source": "VARCHAR",
    "utm_source": "VARCHAR",
    "utm_medium": "VARCHAR",
    "utm_campaign": "VARCHAR",
    "browser": "VARCHAR",
    "os": "VARCHAR",
    "device": "VARCHAR",
    "country": "VARCHAR",
    "is_bot": "BOOLEAN",
    "payload": "VARCHAR",
}


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--tenants", required=True)
    ap.add_argument("--start", type=int, required=True)
    ap.add_argument("--end", type=int, required=True)
    ap.add_argument("--now", type=int, required=True)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--order", choices=["tenant", "time"], default="tenant")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--endpoints", default=",".join(QUERIES))
    ap.add_argument("--api", default="false")
    a = ap.parse_args()
    queries = dict(QUERIES)
    names = a.endpoints.split(",")
    if a.api == "true":
        queries.update(API_QUERIES)
        names += list(API_QUERIES)

    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    order = "tenant_id, ts" if a.order == "tenant" else "ts"
    t0 = time.perf_counter()
    cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
    con.execute(
        f"CREATE TABLE events AS SELECT * FROM read_csv($p, header = true, columns = {{{cols}}}) ORDER BY {order}",
        {"p": a.csv},
    )
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    load_s = time.perf_counter() - t0
    print(f"query_raw: loaded {rows} raw events in {load_s:.1f} s (duckdb {duckdb.__version__}, {threads} threads, order by {order})", file=sys.stderr)

    out = {"duckdb": duckdb.__version__, "threads": threads, "rows": rows, "load_seconds": round(load_s, 2), "order": order, "tenants": {}}
    for tenant in a.tenants.split(","):
        params = {"t": tenant, "s": a.start, "e": a.end, "now": a.now}
        res = {}
        for name in names:
            sql = queries[name]
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            for _ in range(2):
                first = con.execute(sql, used).fetchall()
            lat = []
            for _ in range(a.samples):
                t = time.perf_counter()
                con.execute(sql, used).fetchall()
                lat.append((time.perf_counter() - t) * 1000)
            desc = [d[0] for d in con.execute(sql, used).description]
            cell = lambda v: v if isinstance(v, (int, float, str)) or v is None else str(v)
            res[name] = {
                "p50_ms": round(pct(lat, 50), 3),
                "p95_ms": round(pct(lat, 95), 3),
                "samples": len(lat),
                "rows": len(first),
                "first": dict(zip(desc, [cell(v) for v in first[0]])) if first else None,
            }
            if name in API_QUERIES:
                res[name]["all"] = [dict(zip(desc, [cell(v) for v in r])) for r in first]
            print(f"query_raw: {tenant} {name}: p50 {res[name]['p50_ms']:.1f} ms, p95 {res[name]['p95_ms']:.1f} ms", file=sys.stderr)
        out["tenants"][tenant] = res
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
