//! The prior state of the visits a batch touches (`open_visits`, `visitor_days`): read in one D1
//! round trip before the rollup statements are built (`starling_core::rollup::prior_lookup`).

use starling_core::event::EnrichedEvent;
use starling_core::rollup::{self, PriorState};
use worker::{D1Database, Result};

use super::d1;

/// Adds the prior state of `tenant`'s `events` to `prior`.
pub async fn load_prior(
    db: &D1Database,
    tenant: &str,
    events: &[EnrichedEvent],
    prior: &mut PriorState,
) -> Result<()> {
    let lookups = rollup::prior_lookup(tenant, events);
    if lookups.is_empty() {
        return Ok(());
    }
    for rows in d1::rows_batch(db, &lookups).await? {
        prior.add_rows(tenant, &rows);
    }
    Ok(())
}
