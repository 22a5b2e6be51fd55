//! The R2 archive's rows: one NDJSON object per consumer group (not per batch), each row tagged with
//! the batch it came in, so the archive can be read back exactly once.
//!
//! A group whose D1 transaction fails has already written its objects; its batches are then applied
//! one by one, and each writes its rows again under its own object. [`Reader`] keeps the rows of a
//! batch from the first object of a folder that holds them and skips the later copies, so a rebuild
//! or an export counts each accepted event once whichever path applied it. Rows written before the
//! `batch_id` tag existed are always kept (each batch had its own object then).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::event::{EnrichedEvent, Quarantined};

#[derive(Serialize)]
struct Tagged<'a, T> {
    batch_id: &'a str,
    #[serde(flatten)]
    row: &'a T,
}

#[derive(Deserialize)]
struct TaggedEvent {
    #[serde(default)]
    batch_id: Option<String>,
    #[serde(flatten)]
    event: EnrichedEvent,
}

/// Appends one NDJSON line per event, tagged with `batch_id`, to `out`; returns the bytes appended.
pub fn append_events(out: &mut String, batch_id: &str, events: &[&EnrichedEvent]) -> usize {
    append(out, batch_id, events)
}

/// Appends one NDJSON line per quarantined row, tagged with `batch_id`, to `out`; returns the bytes
/// appended.
pub fn append_quarantined(out: &mut String, batch_id: &str, rows: &[Quarantined]) -> usize {
    let rows: Vec<&Quarantined> = rows.iter().collect();
    append(out, batch_id, &rows)
}

fn append<T: Serialize>(out: &mut String, batch_id: &str, rows: &[&T]) -> usize {
    let start = out.len();
    for row in rows {
        // Serializing plain structs of strings and numbers cannot fail.
        if let Ok(line) = serde_json::to_string(&Tagged {
            batch_id,
            row: *row,
        }) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.len() - start
}

/// Reads the objects of one archive folder (one tenant, day and hour) in order, each batch's rows once.
#[derive(Debug, Default)]
pub struct Reader {
    seen: HashSet<String>,
}

impl Reader {
    /// A reader for a new folder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events of one object whose batches were not read from an earlier object of the folder, and
    /// the number of lines that did not parse.
    pub fn read_object(&mut self, text: &str) -> (Vec<EnrichedEvent>, usize) {
        let mut here: HashSet<String> = HashSet::new();
        let (mut events, mut bad) = (Vec::new(), 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<TaggedEvent>(line) {
                Ok(TaggedEvent {
                    batch_id: Some(id), ..
                }) if self.seen.contains(&id) => {}
                Ok(TaggedEvent { batch_id, event }) => {
                    if let Some(id) = batch_id {
                        here.insert(id);
                    }
                    events.push(event);
                }
                Err(_) => bad += 1,
            }
        }
        self.seen.extend(here);
        (events, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i64) -> EnrichedEvent {
        EnrichedEvent {
            ts: n,
            tenant_id: "acme".into(),
            action: "page_hit".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_written_by_its_group_and_again_alone_is_read_once() {
        let (a, b) = ([ev(1), ev(2)], [ev(3)]);
        let mut group = String::new();
        append_events(&mut group, "req-a", &a.iter().collect::<Vec<_>>());
        append_events(&mut group, "req-b", &b.iter().collect::<Vec<_>>());
        // The group's transaction failed; each batch was then applied on its own.
        let mut alone_a = String::new();
        append_events(&mut alone_a, "req-a", &a.iter().collect::<Vec<_>>());
        let mut alone_b = String::new();
        append_events(&mut alone_b, "req-b", &b.iter().collect::<Vec<_>>());
        let mut r = Reader::new();
        let mut all = Vec::new();
        for object in [&group, &alone_a, &alone_b] {
            let (events, bad) = r.read_object(object);
            assert_eq!(bad, 0);
            all.extend(events);
        }
        assert_eq!(all, vec![ev(1), ev(2), ev(3)]);
    }

    #[test]
    fn rows_archived_before_the_tag_are_all_kept() {
        let old = format!(
            "{}\n{}\n",
            serde_json::to_string(&ev(1)).unwrap(),
            serde_json::to_string(&ev(1)).unwrap()
        );
        let mut r = Reader::new();
        assert_eq!(r.read_object(&old).0.len(), 2);
        assert_eq!(r.read_object(&old).0.len(), 2);
    }

    #[test]
    fn a_tagged_row_reads_back_as_the_event_and_counts_its_bytes() {
        let mut out = String::new();
        let n = append_events(&mut out, "b1", &[&ev(7)]);
        assert_eq!(n, out.len());
        assert!(out.starts_with("{\"batch_id\":\"b1\","));
        let (events, bad) = Reader::new().read_object(&format!("{out}not json\n"));
        assert_eq!((events, bad), (vec![ev(7)], 1));
    }
}
