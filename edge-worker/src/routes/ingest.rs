//! `POST /v0/events?name=analytics_events`: Tinybird's Events API.
//!
//! Verify the token → bind the tenant → parse, quarantine and enrich in the core → put the batch on the
//! queue → `202 {"successful_rows", "quarantined_rows"}`. The response is sent only after the queue
//! accepted the batch (durable); if it fails nothing is acknowledged and the client gets a 503 to retry.
//! Any Content-Type is accepted (NDJSON, JSON, text/plain beacons, none), as Tinybird does.

use starling_core::body::{self, BodyLimits, BodyReader, Shape};
use starling_core::claims::AppendGrant;
use starling_core::event::{EnrichedEvent, Quarantined, QueueBatch, SpoolRef};
use starling_core::idempotency;
use starling_core::ingest::{self, Geo, IngestContext, Limits};
use starling_core::pack::pack;
use starling_core::plan::Quota;
use starling_core::ratelimit::Decision;
use starling_core::tenant;
use starling_core::time::day_string;
use worker::{Env, Request, Response};

use super::auth::{authenticate, Caller, Need};
use super::{now_ms, param, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::spool;
use crate::{env, limiter, store};

/// Queue messages are limited to 128 KB; stay well below with the JSON envelope.
const MAX_MESSAGE_BYTES: usize = 100 * 1024;
/// `sendBatch` takes at most 100 messages and 256 KB.
const MAX_SEND_BATCH_BYTES: usize = 240 * 1024;

/// Handles an ingest request.
pub async fn post_events(
    mut req: Request,
    env: &Env,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let started = now_ms();
    let step = |outcome: &mut Outcome, name: &'static str| {
        outcome
            .steps
            .push((name, u64::try_from(now_ms() - started).unwrap_or(0)));
    };
    let params = query_pairs(&req);
    let datasource = param(&params, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "missing 'name' parameter: use /v0/events?name=analytics_events".into(),
            )
        })?;
    let caller = authenticate(&req, env, &params, Need::Append(datasource), outcome).await?;
    step(outcome, "auth");
    let origin = req.headers().get("Origin").ok().flatten();
    if let Some(t) = &caller.state.tenant {
        if !tenant::origin_allowed(&t.allowed_origins, origin.as_deref()) {
            return Err(ApiError::OriginNotAllowed);
        }
    }
    // From here `request_id` names the request's batches (`{id}-{n}`, `{id}-p{n}`): with an idempotency
    // key it is the key's hash, so a request resent with its key is applied once (core::idempotency).
    let keyed = match param(&params, idempotency::PARAM) {
        Some(key) => Some(
            idempotency::batch_base(caller.tenant.as_str(), key)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        ),
        None => None,
    };
    let request_id = keyed.as_deref().unwrap_or(request_id);
    // A tenant whose events of the hour are used up is refused before its body is read: a flood of
    // large over-quota requests then costs about what a trivial response costs.
    let events_per_hour = caller.limits.per_hour(&caller.plan, Quota::Events);
    if let Some(d) = limiter::exhausted(caller.tenant.as_str(), Quota::Events, events_per_hour) {
        return Err(ApiError::EventsQuota(d));
    }
    let grant = AppendGrant {
        tenant: caller.tenant.clone(),
        fixed: caller.fixed.clone(),
    };
    let now = now_ms();

    let limits = Limits::default();
    let content_length = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|n| n.parse::<usize>().ok());
    let gzip = req
        .headers()
        .get("Content-Encoding")
        .ok()
        .flatten()
        .is_some_and(|e| e.to_ascii_lowercase().contains("gzip"));
    let ip = req
        .headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .unwrap_or_default();
    let header_ua = req.headers().get("User-Agent").ok().flatten();
    let geo = geo(&req);
    let db = store::d1::db(env)?;
    let salt = store::salt::for_day(&db, &day_string(now.div_euclid(1000)))
        .await
        .map_err(|e| ApiError::Unavailable(format!("salt: {e}")))?;
    step(outcome, "salt");
    let ctx = IngestContext {
        grant: &grant,
        now_ms: now,
        ip: &ip,
        header_user_agent: header_ua.as_deref(),
        geo: &geo,
        salt: &salt,
        limits: &limits,
    };
    // Beacons and small batches (a known length up to 1 MiB, not compressed) are read whole; anything
    // else (gzip, large, no Content-Length) is read as a stream and spooled chunk by chunk.
    if gzip || content_length.is_none_or(|n| n > limits.max_body_bytes) {
        return streamed(
            &mut req,
            env,
            request_id,
            outcome,
            &caller,
            &ctx,
            gzip,
            content_length,
            &params,
        )
        .await;
    }
    let body = req
        .bytes()
        .await
        .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
    step(outcome, "body");
    let result = ingest::process(&body, &ctx)?;
    step(outcome, "parse");
    let (accepted, quarantined) = (result.events.len(), result.quarantined.len());
    let limit = take_events(env, &caller, accepted).await?;
    step(outcome, "quota");
    outcome.rows = Some(accepted);
    outcome.quarantined = Some(quarantined);

    // The consumer drops batches of an older tenant generation (an erasure in between).
    let generation = caller.state.generation();
    let rows = accepted + quarantined;
    let mut batches = if rows > spool::inline_max_rows(env) {
        spooled(
            env,
            request_id,
            grant.tenant.as_str(),
            now,
            generation,
            result,
        )
        .await
    } else {
        chunk(
            request_id,
            grant.tenant.as_str(),
            now,
            result.events,
            result.quarantined,
        )
    };
    batches
        .iter_mut()
        .for_each(|b| b.generation = Some(generation));
    // "spool": the R2 objects written (large requests) or the inline batches cut; "queue": sent.
    step(outcome, "spool");
    enqueue(env, batches).await?;
    step(outcome, "queue");

    accepted_response(&params, accepted, quarantined, &limit)
}

/// `202 {"successful_rows", "quarantined_rows"}` (`200` with `wait=true`, as Tinybird answers).
fn accepted_response(
    params: &[(String, String)],
    accepted: usize,
    quarantined: usize,
    limit: &Decision,
) -> Result<Response, ApiError> {
    let success = if param(params, "wait") == Some("true") {
        Success::Ok
    } else {
        Success::Accepted
    };
    let mut resp = error::json(
        &serde_json::json!({
            "successful_rows": accepted,
            "quarantined_rows": quarantined,
        }),
        success,
    )?;
    limiter::headers(&mut resp, limit);
    Ok(resp)
}

/// Counts a request's accepted events against the plan's events per hour, all or none (`429` when they
/// do not fit); returns the tighter of the request and event decisions, for the headers.
async fn take_events(env: &Env, caller: &Caller, accepted: usize) -> Result<Decision, ApiError> {
    let mut limit = caller.limit;
    if accepted == 0 {
        return Ok(limit);
    }
    let per_hour = caller.limits.per_hour(&caller.plan, Quota::Events);
    let events = limiter::take(
        env,
        caller.tenant.as_str(),
        Quota::Events,
        per_hour,
        "",
        None,
        u32::try_from(accepted).unwrap_or(u32::MAX),
    )
    .await?;
    if !events.allowed {
        return Err(ApiError::EventsQuota(events));
    }
    if events.remaining < limit.remaining {
        limit = events;
    }
    Ok(limit)
}

/// A gzip, large or unsized body (up to 10 MiB on the wire, NDJSON): read as it streams, refused with
/// `413` as soon as it passes a limit (never read further), processed and spooled to R2 a chunk of at
/// most 1,000 lines at a time, so memory stays bounded by a chunk. Chunks are written as uncommitted
/// parts; only when the whole body was read and its events fit the quota is the commit marker written
/// and are the pointers queued, so a refused request leaves nothing that the sweep would apply.
#[allow(clippy::too_many_arguments)]
async fn streamed(
    req: &mut Request,
    env: &Env,
    request_id: &str,
    outcome: &mut Outcome,
    caller: &Caller,
    ctx: &IngestContext<'_>,
    gzip: bool,
    content_length: Option<usize>,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let body_limits = BodyLimits::default();
    if content_length.is_some_and(|n| n > body_limits.max_wire_bytes) {
        return Err(ingest::IngestError::BodyTooLarge {
            limit: body_limits.max_wire_bytes,
        }
        .into());
    }
    let bucket = store::archive::bucket(env)?;
    let mut parts: Vec<(String, QueueBatch)> = Vec::new();
    let generation = caller.state.generation();
    let read = read_streamed(
        req,
        &bucket,
        (request_id, generation),
        ctx,
        gzip,
        body_limits,
        &mut parts,
    )
    .await;
    let fail = |e: ApiError, parts: Vec<(String, QueueBatch)>| async {
        let keys = parts.into_iter().map(|(k, _)| k).collect();
        let _ = spool::delete(&bucket, keys).await;
        Err(e)
    };
    let (accepted, quarantined) = match read {
        Ok(counts) => counts,
        Err(e) => return fail(e, parts).await,
    };
    if accepted + quarantined == 0 {
        return fail(ingest::IngestError::EmptyBody.into(), parts).await;
    }
    let limit = match take_events(env, caller, accepted).await {
        Ok(l) => l,
        Err(e) => return fail(e, parts).await,
    };
    if let Err(e) = spool::commit(&bucket, ctx.now_ms, request_id).await {
        return fail(ApiError::Unavailable(format!("spool commit: {e}")), parts).await;
    }
    outcome.rows = Some(accepted);
    outcome.quarantined = Some(quarantined);
    let pointers = parts
        .into_iter()
        .map(|(key, p)| QueueBatch {
            spool: Some(SpoolRef {
                key,
                rows: p.rows(),
            }),
            events: Vec::new(),
            quarantined: Vec::new(),
            ..p
        })
        .collect();
    enqueue(env, pointers).await?;
    accepted_response(params, accepted, quarantined, &limit)
}

/// Reads, processes and writes the parts of a streamed body; returns (accepted, quarantined) rows.
/// NDJSON is processed a chunk at a time; a JSON array or a pretty-printed object is read whole, up
/// to the whole-body limit (1 MiB), and processed as one document.
async fn read_streamed(
    req: &mut Request,
    bucket: &worker::Bucket,
    (request_id, generation): (&str, i64),
    ctx: &IngestContext<'_>,
    gzip: bool,
    body_limits: BodyLimits,
    parts: &mut Vec<(String, QueueBatch)>,
) -> Result<(usize, usize), ApiError> {
    use futures_util::StreamExt;
    let chunk_limits = Limits {
        max_body_bytes: body_limits.chunk_bytes + Limits::default().max_line_bytes,
        max_rows: body_limits.chunk_rows,
        ..Limits::default()
    };
    let chunk_ctx = IngestContext {
        limits: &chunk_limits,
        ..*ctx
    };
    let mut reader = BodyReader::new(gzip, body_limits);
    let mut stream = req
        .stream()
        .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
    let mut counts = (0, 0);
    let mut shape = None;
    let mut done = false;
    while !done {
        match stream.next().await {
            Some(Ok(bytes)) => reader.push(&bytes)?,
            Some(Err(e)) => {
                return Err(ApiError::BadRequest(format!(
                    "could not read the body: {e}"
                )))
            }
            None => {
                reader.finish()?;
                done = true;
            }
        }
        if shape.is_none() {
            shape = body::shape(reader.buffered(), done);
        }
        match shape {
            Some(Shape::Lines) => {
                while let Some((before, chunk)) = reader.next_chunk(done) {
                    let mut result = match ingest::process(&chunk, &chunk_ctx) {
                        Ok(r) => r,
                        Err(ingest::IngestError::EmptyBody) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    for q in &mut result.quarantined {
                        q.line += before;
                    }
                    write_parts(
                        bucket,
                        (request_id, generation),
                        ctx,
                        result,
                        parts,
                        &mut counts,
                    )
                    .await?;
                }
            }
            Some(Shape::Whole) if reader.decoded_bytes() > ctx.limits.max_body_bytes => {
                return Err(ingest::IngestError::BodyTooLarge {
                    limit: ctx.limits.max_body_bytes,
                }
                .into());
            }
            Some(Shape::Whole) if done => {
                let whole = reader.next_chunk(true).map(|(_, b)| b).unwrap_or_default();
                let result = ingest::process(&whole, ctx)?;
                write_parts(
                    bucket,
                    (request_id, generation),
                    ctx,
                    result,
                    parts,
                    &mut counts,
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(counts)
}

/// Writes processed rows to the spool as uncommitted parts of at most [`spool::OBJECT_MAX_ROWS`]
/// rows, keeping only each part's envelope (the rows are in R2 then), and adds to the counts.
async fn write_parts(
    bucket: &worker::Bucket,
    (request_id, generation): (&str, i64),
    ctx: &IngestContext<'_>,
    result: ingest::Outcome,
    parts: &mut Vec<(String, QueueBatch)>,
    counts: &mut (usize, usize),
) -> Result<(), ApiError> {
    counts.0 += result.events.len();
    counts.1 += result.quarantined.len();
    let mut events = result.events.into_iter().peekable();
    let mut quarantined = result.quarantined.into_iter().peekable();
    while events.peek().is_some() || quarantined.peek().is_some() {
        let mut part = QueueBatch {
            batch_id: spool::part_id(request_id, parts.len()),
            tenant_id: ctx.grant.tenant.as_str().to_owned(),
            received_at: ctx.now_ms,
            events: events.by_ref().take(spool::OBJECT_MAX_ROWS).collect(),
            quarantined: Vec::new(),
            spool: None,
            generation: Some(generation),
        };
        let room = spool::OBJECT_MAX_ROWS - part.events.len();
        part.quarantined = quarantined.by_ref().take(room).collect();
        let key = spool::key(ctx.now_ms, &part.batch_id);
        spool::put(bucket, &key, &part)
            .await
            .map_err(|e| ApiError::Unavailable(format!("spool: {e}")))?;
        let rows = part.rows();
        parts.push((
            key,
            QueueBatch {
                events: Vec::new(),
                quarantined: Vec::new(),
                spool: Some(SpoolRef {
                    key: String::new(),
                    rows,
                }),
                ..part
            },
        ));
    }
    Ok(())
}

fn geo(req: &Request) -> Geo {
    let cf = req.cf();
    Geo {
        country: cf.and_then(|c| c.country()).unwrap_or_default(),
        region: cf.and_then(|c| c.region()).unwrap_or_default(),
        city: cf.and_then(|c| c.city()).unwrap_or_default(),
    }
}

/// Writes a large request's rows to the R2 spool, in objects of at most [`spool::OBJECT_MAX_ROWS`]
/// rows, and returns one pointer message per object. Each object is written before the request is
/// answered, so its events are durable whatever happens to the message. If R2 refuses, the rows travel
/// inline instead (queue messages are durable too; only the local runtime's broker is not).
async fn spooled(
    env: &Env,
    request_id: &str,
    tenant: &str,
    now: i64,
    generation: i64,
    result: ingest::Outcome,
) -> Vec<QueueBatch> {
    let mut parts: Vec<QueueBatch> = Vec::new();
    let new_part = |n: usize| QueueBatch {
        batch_id: format!("{request_id}-s{n}"),
        tenant_id: tenant.to_owned(),
        received_at: now,
        events: Vec::new(),
        quarantined: Vec::new(),
        spool: None,
        generation: Some(generation),
    };
    // Events first, then quarantined rows in the room left, at most OBJECT_MAX_ROWS rows per part.
    let mut events = result.events.into_iter().peekable();
    let mut quarantined = result.quarantined.into_iter().peekable();
    while events.peek().is_some() || quarantined.peek().is_some() {
        let mut part = new_part(parts.len());
        part.events = events.by_ref().take(spool::OBJECT_MAX_ROWS).collect();
        part.quarantined = quarantined
            .by_ref()
            .take(spool::OBJECT_MAX_ROWS - part.events.len())
            .collect();
        parts.push(part);
    }
    let written = match store::archive::bucket(env) {
        Ok(bucket) => {
            let writes = parts.iter().map(|p| {
                let key = spool::key(now, &p.batch_id);
                let bucket = &bucket;
                async move { spool::put(bucket, &key, p).await.map(|()| key) }
            });
            futures_util::future::join_all(writes)
                .await
                .into_iter()
                .collect::<worker::Result<Vec<String>>>()
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(keys) => parts
            .into_iter()
            .zip(keys)
            .map(|(p, key)| QueueBatch {
                spool: Some(SpoolRef {
                    key,
                    rows: p.rows(),
                }),
                events: Vec::new(),
                quarantined: Vec::new(),
                ..p
            })
            .collect(),
        Err(e) => {
            crate::log::event(
                crate::log::Level::Warn,
                "spool_put",
                &serde_json::json!({ "request_id": request_id, "error": e.to_string() }),
            );
            let (events, quarantined) =
                parts
                    .into_iter()
                    .fold((Vec::new(), Vec::new()), |(mut ev, mut q), mut p| {
                        ev.append(&mut p.events);
                        q.append(&mut p.quarantined);
                        (ev, q)
                    });
            chunk(request_id, tenant, now, events, quarantined)
        }
    }
}

/// Splits a request's rows into queue batches below the message size limit, with stable ids.
fn chunk(
    request_id: &str,
    tenant: &str,
    now: i64,
    events: Vec<EnrichedEvent>,
    quarantined: Vec<Quarantined>,
) -> Vec<QueueBatch> {
    // Rows are moved once into their batch: boxing the large variant would allocate per event.
    #[allow(clippy::large_enum_variant)]
    enum Row {
        Event(EnrichedEvent),
        Quarantined(Quarantined),
    }
    let rows = events
        .into_iter()
        .map(Row::Event)
        .chain(quarantined.into_iter().map(Row::Quarantined));
    let weight = |r: &Row| match r {
        Row::Event(e) => json_len(e).unwrap_or(MAX_MESSAGE_BYTES),
        Row::Quarantined(q) => q.row.len() + 64,
    };
    pack(rows, MAX_MESSAGE_BYTES, usize::MAX, weight)
        .into_iter()
        .enumerate()
        .map(|(n, group)| {
            let mut batch = QueueBatch {
                batch_id: format!("{request_id}-{n}"),
                tenant_id: tenant.to_owned(),
                received_at: now,
                events: Vec::new(),
                quarantined: Vec::new(),
                spool: None,
                generation: None,
            };
            for row in group {
                match row {
                    Row::Event(e) => batch.events.push(e),
                    Row::Quarantined(q) => batch.quarantined.push(q),
                }
            }
            batch
        })
        .collect()
}

/// The length of a value's JSON, counted without building the string.
fn json_len<T: serde::Serialize>(value: &T) -> Option<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).ok()?;
    Some(count.0)
}

async fn enqueue(env: &Env, batches: Vec<QueueBatch>) -> Result<(), ApiError> {
    if batches.is_empty() {
        return Ok(());
    }
    let queue = env
        .queue(env::EVENTS)
        .map_err(|e| ApiError::Unavailable(format!("queue binding: {e}")))?;
    let size = |b: &QueueBatch| json_len(b).unwrap_or(MAX_MESSAGE_BYTES);
    for group in pack(batches, MAX_SEND_BATCH_BYTES, 100, size) {
        send(&queue, group).await?;
    }
    Ok(())
}

async fn send(queue: &worker::Queue, group: Vec<QueueBatch>) -> Result<(), ApiError> {
    let result = match <[QueueBatch; 1]>::try_from(group) {
        Ok([one]) => queue.send(one).await,
        Err(group) => queue.send_batch(group).await,
    };
    result.map_err(|e| ApiError::Unavailable(format!("queue send: {e}")))
}
