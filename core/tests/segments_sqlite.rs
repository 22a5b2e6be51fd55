//! Saved segments on SQLite with the real migrations: the statements of `starling_core::segments`, and
//! a segment used in `/v0/query` and the pipes answering exactly what the same filters given inline
//! answer, for its own tenant only.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::claims::TenantId;
use starling_core::event::EnrichedEvent;
use starling_core::query::{self, FixedOffset, Request};
use starling_core::segments;

mod common;
use common::Rng;

/// 2025-04-02 12:20:00 UTC.
const NOW: i64 = 1_743_596_400;

fn create(conn: &Connection, tenant: &str, body: Value) -> Option<Value> {
    let s = segments::validate(&body).unwrap();
    common::rows(conn, &segments::insert(tenant, &s, NOW))
        .first()
        .map(segments::to_json)
}

#[test]
fn ids_count_per_tenant_are_never_reused_and_the_cap_holds() {
    let conn = common::migrated_db();
    let f = json!([["is", "visit:country", ["DE"]]]);
    let a = create(&conn, "t1", json!({"name": "A", "filters": f})).unwrap();
    let b = create(&conn, "t1", json!({"name": "B", "filters": f})).unwrap();
    let other = create(&conn, "t2", json!({"name": "Theirs", "filters": f})).unwrap();
    assert_eq!(
        (a["id"].clone(), b["id"].clone(), other["id"].clone()),
        (json!(1), json!(2), json!(1))
    );
    assert_eq!(a["filters"], f);
    assert_eq!(a["created"], json!(NOW));

    // Delete: once, then no row changes; the id is not reused.
    assert_eq!(common::exec(&conn, &segments::delete("t1", 2, NOW)), 1);
    assert_eq!(common::exec(&conn, &segments::delete("t1", 2, NOW)), 0);
    let c = create(&conn, "t1", json!({"name": "C", "filters": f})).unwrap();
    assert_eq!(c["id"], json!(3));
    let names: Vec<Value> = common::rows(&conn, &segments::list("t1"))
        .iter()
        .map(|r| segments::to_json(r)["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("A"), json!("C")]);
    // The tombstone holds neither name nor filters.
    let raw: (String, String) = conn
        .query_row(
            "SELECT name, filters FROM segments WHERE tenant_id = 't1' AND id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(raw, (String::new(), "[]".into()));

    // Another tenant's id reads and deletes nothing.
    assert!(common::rows(&conn, &segments::select(&tid("t2"), &[3])).is_empty());
    assert_eq!(common::exec(&conn, &segments::delete("t2", 3, NOW)), 0);
    assert_eq!(
        common::rows(&conn, &segments::select(&tid("t1"), &[1, 3, 2])).len(),
        2
    );
    assert_eq!(
        common::rows(&conn, &segments::select(&tid("t1"), &[])).len(),
        0
    );

    // The cap counts live segments only.
    for i in 0..(segments::MAX_SEGMENTS - 2) {
        assert!(create(&conn, "t1", json!({"name": format!("n{i}"), "filters": f})).is_some());
    }
    assert!(create(&conn, "t1", json!({"name": "one too many", "filters": f})).is_none());
    common::exec(&conn, &segments::delete("t1", 1, NOW));
    assert!(create(&conn, "t1", json!({"name": "fits again", "filters": f})).is_some());
    // Erasure reaches the table.
    for s in starling_core::lifecycle::erase("t1") {
        common::exec(&conn, &s);
    }
    assert!(common::rows(&conn, &segments::list("t1")).is_empty());
    assert_eq!(common::rows(&conn, &segments::list("t2")).len(), 1);
}

fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(5);
    let mut out = Vec::new();
    for tenant in ["t1", "t2"] {
        for s in 0..300 {
            let mut ts = NOW - 9 * 86_400 + rng.below(9 * 86_400 - 3600) as i64;
            let browser = rng.pick(&["chrome", "firefox", "safari"]);
            let country = rng.pick(&["DE", "FR", "US"]);
            let device = rng.pick(&["desktop", "mobile"]);
            let visitor = format!("{tenant}-v{}-{}", rng.below(30), ts.div_euclid(86_400));
            for h in 0..(1 + rng.below(4)) {
                let path = rng.pick(&["/", "/pricing", "/blog/a", "/docs"]);
                out.push(EnrichedEvent {
                    ts: ts * 1000,
                    tenant_id: tenant.into(),
                    action: "page_hit".into(),
                    locale: "en-US".into(),
                    payload: "{}".into(),
                    domain: format!("{tenant}.example"),
                    session_id: Some(format!("{tenant}-{s}")),
                    visitor_id: visitor.clone(),
                    pathname: if h == 0 { "/".into() } else { path.into() },
                    href: format!("https://{tenant}.example{path}"),
                    browser: browser.into(),
                    os: "linux".into(),
                    device: device.into(),
                    country: country.into(),
                    source: rng.pick(&["", "google.com", "t.co"]).into(),
                    ..Default::default()
                });
                ts += 30 + rng.below(300) as i64;
            }
        }
    }
    out.sort_by_key(|e| e.ts);
    out
}

fn tid(tenant: &str) -> TenantId {
    TenantId::for_tests(tenant).unwrap()
}

fn fixed(tenant: &str) -> BTreeMap<String, String> {
    [("tenant_id".to_owned(), tenant.to_owned())].into()
}

fn api(
    conn: &Connection,
    tenant: &str,
    body: &Value,
    segs: &query::Segments,
) -> Result<(Value, String), query::QueryError> {
    let fixed = fixed(tenant);
    let plan = query::plan_query_with_segments(
        &query::ApiRequest {
            body,
            tenant: &TenantId::for_tests(tenant).unwrap(),
            fixed: &fixed,
            now_secs: NOW,
            tz: &FixedOffset(0),
        },
        segs,
    )?;
    let results = plan
        .statements
        .iter()
        .map(|s| common::rows(conn, s))
        .collect();
    Ok((
        query::assemble_query(&plan, results).unwrap(),
        plan.cache_key(),
    ))
}

fn pipe(
    conn: &Connection,
    tenant: &str,
    name: &str,
    params: &[(&str, &str)],
    seg: Option<(i64, &Value)>,
) -> Result<(Value, String), query::QueryError> {
    let fixed = fixed(tenant);
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let plan = query::plan_with_segment(
        &Request {
            pipe: name,
            params: &params,
            tenant: &TenantId::for_tests(tenant).unwrap(),
            fixed: &fixed,
            now_secs: NOW,
            tz: &FixedOffset(0),
        },
        seg,
    )?;
    let results = plan
        .statements
        .iter()
        .map(|s| common::rows(conn, s))
        .collect();
    let out = query::assemble(&plan, results).unwrap();
    Ok((serde_json::to_value(&out.data).unwrap(), plan.cache_key()))
}

#[test]
fn a_segment_answers_what_its_filters_answer_inline() {
    let mut conn = common::migrated_db();
    for chunk in fixture().chunks(500) {
        common::apply(&mut conn, chunk, NOW).unwrap();
    }
    let seg_filters = json!([
        ["is", "visit:device", ["mobile"]],
        [
            "or",
            [
                ["contains", "event:page", ["/blog"]],
                ["is", "visit:country", ["DE"]]
            ]
        ]
    ]);
    let made = create(
        &conn,
        "t1",
        json!({"name": "Mobile readers", "filters": seg_filters}),
    )
    .unwrap();
    let id = made["id"].as_i64().unwrap();
    let segs = segments::resolved(&common::rows(
        &conn,
        &segments::select(
            &tid("t1"),
            &query::segment_ids(&json!({"filters": [["is", "segment", [id]]]})),
        ),
    ));
    assert_eq!(segs.get(&id), Some(&seg_filters));

    let metrics = json!([
        "visitors",
        "visits",
        "pageviews",
        "bounce_rate",
        "visit_duration"
    ]);
    for (dims, extra) in [
        (json!([]), json!([])),
        (
            json!(["time:day"]),
            json!([["is", "visit:browser", ["firefox"]]]),
        ),
        (json!(["visit:source"]), json!([])),
    ] {
        let mut with_segment: Vec<Value> = extra.as_array().unwrap().clone();
        with_segment.push(json!(["is", "segment", [id]]));
        let mut inline: Vec<Value> = extra.as_array().unwrap().clone();
        inline.extend(seg_filters.as_array().unwrap().iter().cloned());
        let body = |filters: Vec<Value>| {
            json!({
                "metrics": metrics, "date_range": "7d", "dimensions": dims, "filters": filters,
                "include": {"comparisons": {"mode": "previous_period"}},
            })
        };
        let (a, key_a) = api(&conn, "t1", &body(with_segment.clone()), &segs).unwrap();
        let (b, _) = api(&conn, "t1", &body(inline.clone()), &segs).unwrap();
        let (all, _) = api(&conn, "t1", &body(extra.as_array().unwrap().clone()), &segs).unwrap();
        assert_eq!(a["results"], b["results"], "{dims} {extra}");
        assert!(!a["results"].as_array().unwrap().is_empty());
        assert_ne!(
            a["results"], all["results"],
            "the segment filters something"
        );
        // An edited segment (same id) gets another cache key.
        let mut edited = segs.clone();
        edited.insert(id, json!([["is", "visit:device", ["desktop"]]]));
        let (c, key_c) = api(&conn, "t1", &body(with_segment), &edited).unwrap();
        assert_ne!(key_a, key_c);
        assert_ne!(a["results"], c["results"]);
    }

    // The pipes: segment=<id> AND-ed with the request's filters equals the filters inline... and the
    // pipes' own filter params stay in force.
    let seg = Some((id, &seg_filters));
    for (name, params) in [
        (
            "kpis",
            vec![("date_from", "2025-03-25"), ("date_to", "2025-04-01")],
        ),
        (
            "kpis_summary",
            vec![
                ("date_from", "2025-03-25"),
                ("date_to", "2025-04-01"),
                ("include_previous_period", "true"),
            ],
        ),
        (
            "top_pages",
            vec![
                ("date_from", "2025-03-25"),
                ("date_to", "2025-04-01"),
                ("browser", "chrome"),
            ],
        ),
        (
            "top_sources",
            vec![("date_from", "2025-03-25"), ("date_to", "2025-04-01")],
        ),
    ] {
        let (with, key_with) = pipe(&conn, "t1", name, &params, seg).unwrap();
        let (without, key_without) = pipe(&conn, "t1", name, &params, None).unwrap();
        assert_ne!(key_with, key_without, "{name}");
        assert_ne!(with, without, "{name}: the segment filters something");
        // The same numbers from /v0/query with the filters inline, for the totals.
        if name == "kpis_summary" {
            let (q, _) = api(
                &conn,
                "t1",
                &json!({
                    "metrics": ["visits", "pageviews"], "date_range": ["2025-03-25", "2025-04-01"],
                    "filters": seg_filters,
                }),
                &segs,
            )
            .unwrap();
            assert_eq!(with[0]["visits"], q["results"][0]["metrics"][0], "{name}");
            assert_eq!(
                with[0]["pageviews"], q["results"][0]["metrics"][1],
                "{name}"
            );
        }
        if name == "top_pages" {
            let text = with.to_string();
            assert!(!text.contains("t2."), "{text}");
        }
    }
    // A pipe without the dashboard filters refuses a segment, naming it.
    match pipe(&conn, "t1", "current_visitors", &[], seg) {
        Err(query::QueryError::InvalidParam { name, .. }) => assert_eq!(name, "segment"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        query::segment_param(&[("segment".into(), "7".into())], &fixed("t1")).unwrap(),
        Some(7)
    );
    assert!(query::segment_param(&[("segment".into(), "x".into())], &fixed("t1")).is_err());
    let mut pinned = fixed("t1");
    pinned.insert("segment".into(), "2".into());
    assert_eq!(
        query::segment_param(&[("segment".into(), "7".into())], &pinned).unwrap(),
        Some(2),
        "a token's fixed segment wins"
    );

    // Another tenant's id resolves to nothing, and the planner answers as for a missing id.
    let theirs = segments::resolved(&common::rows(&conn, &segments::select(&tid("t2"), &[id])));
    assert!(theirs.is_empty());
    let body =
        json!({"metrics": ["visits"], "date_range": "7d", "filters": [["is", "segment", [id]]]});
    for segs in [&theirs, &BTreeMap::new()] {
        match api(&conn, "t2", &body, segs) {
            Err(query::QueryError::InvalidParam { name, .. }) => {
                assert_eq!(name, "filters[0][2][0]")
            }
            other => panic!("{other:?}"),
        }
    }
    for (filters, field) in [
        (json!([["is_not", "segment", [id]]]), "filters[0][0]"),
        (json!([["is", "segment", [id, id + 1]]]), "filters[0][2]"),
        (json!([["is", "segment", ["1"]]]), "filters[0][2]"),
    ] {
        let body = json!({"metrics": ["visits"], "date_range": "7d", "filters": filters});
        match api(&conn, "t1", &body, &segs) {
            Err(query::QueryError::InvalidParam { name, .. }) => {
                assert_eq!(name, field, "{filters}")
            }
            other => panic!("{filters}: {other:?}"),
        }
    }
}

#[test]
fn only_a_settings_write_scope_writes_segments_and_tenant_keys_never_carry_one() {
    use starling_core::claims::{
        authorize_tenant_doc, confine_to_key_tenant, AuthError, Claims, Scope, TenantDoc, READ,
        SETTINGS_READ, SETTINGS_WRITE,
    };
    let claims = |kinds: &[&str]| Claims {
        workspace_id: None,
        name: None,
        token_id: None,
        issued_at: None,
        exp: i64::MAX,
        nbf: None,
        scopes: kinds
            .iter()
            .map(|k| Scope {
                kind: (*k).into(),
                resource: Some("*".into()),
                fixed_params: fixed("t1"),
            })
            .collect(),
        rps: None,
    };
    for kinds in [&[READ][..], &[SETTINGS_READ], &[READ, SETTINGS_READ]] {
        assert_eq!(
            authorize_tenant_doc(&claims(kinds), TenantDoc::SettingsWrite).err(),
            Some(AuthError::TenantDocNotInScope(TenantDoc::SettingsWrite)),
            "{kinds:?}"
        );
    }
    let grant = authorize_tenant_doc(&claims(&[SETTINGS_WRITE]), TenantDoc::SettingsWrite).unwrap();
    assert_eq!(grant.tenant.as_str(), "t1");
    // Listing is reading the settings: a dashboard token may.
    assert!(authorize_tenant_doc(&claims(&[READ]), TenantDoc::Settings).is_ok());
    // A token signed with a tenant's own key is read-only.
    assert_eq!(
        confine_to_key_tenant(claims(&[SETTINGS_WRITE]), "t1").err(),
        Some(AuthError::ReadOnlyKey)
    );
}
