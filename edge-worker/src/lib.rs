//! Starling's Cloudflare Worker: the thin I/O shell around `starling-core`.
//!
//! `fetch` routes HTTP requests (ingest, analytics endpoints, admin, static assets), `queue` consumes
//! accepted event batches into R2 and the D1 rollups, `scheduled` prunes short-lived state and
//! enforces each tenant's retention. Every
//! decision is made in the core crate; this crate reads requests, calls the core, and talks to D1, R2,
//! Queues and the Cache API. Errors become JSON responses in exactly one place ([`error::ApiError`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod consumer;
mod cors;
mod denials;
mod env;
mod error;
mod limiter;
mod log;
mod query_usage;
mod random;
mod routes;
mod store;
mod tenant_state;
mod timezone;

use worker::{
    event, Context, Env, MessageBatch, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    log::configure(&env);
    Ok(routes::handle(req, env, &ctx).await)
}

#[event(queue)]
async fn queue(
    batch: MessageBatch<starling_core::event::QueueBatch>,
    env: Env,
    _ctx: Context,
) -> Result<()> {
    log::configure(&env);
    if batch.queue() == env::EVENTS_DLQ {
        consumer::park_dead_letters(batch, &env).await;
    } else {
        consumer::consume(batch, &env).await;
    }
    // Never return Err: in worker 0.8.7 that panics in the macro and resets the instance; failures are
    // retried per message inside `consume`.
    Ok(())
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    log::configure(&env);
    // Every run (the minute cron and the hourly one) applies spooled batches whose message is late.
    store::spool::sweep(&env).await;
    if event.cron() != env::SWEEP_CRON {
        store::maintenance::prune(&env).await;
        store::retention::run(&env).await;
        store::segments::seal(&env).await;
    }
}
