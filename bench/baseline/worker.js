// Trivial baseline for the ingest benchmark: reads the body and answers like /v0/events, with no
// auth, parsing, enrichment or I/O. Measures what workerd and the load generator cost by themselves.
export default {
  async fetch(request) {
    const body = await request.text();
    const rows = body.split('\n').filter((l) => l.trim()).length;
    return new Response(JSON.stringify({ successful_rows: rows, quarantined_rows: 0 }), {
      status: 202,
      headers: { 'content-type': 'application/json' },
    });
  },
};
