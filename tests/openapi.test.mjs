// The OpenAPI document (edge-worker/openapi.json) against itself and against the real worker.
//
// Structural tests need no worker: `node --test --test-name-pattern='^document' tests/openapi.test.mjs`.
// The worker tests rely on the router's contract: the route is resolved before authentication, so an unknown
// path is 404 and a known path with a method it does not serve is 405, whatever the credentials. Every probe
// is sent without credentials (never the admin token), so a documented DELETE cannot erase anything.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startWorker } from './lib/worker.mjs';

const doc = JSON.parse(readFileSync(join(ROOT, 'edge-worker/openapi.json'), 'utf8'));

/** The HTTP methods an OpenAPI path item may hold, and the ones probed for 405. */
const OPERATION_KEYS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const PROBED = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** Paths answered without any token. */
const PUBLIC = new Set(['/v0/health', '/v0/openapi.json']);
/** Harmless values for path parameters: a tenant nobody creates, ids nothing has. */
const PROBE_VALUES = { tenant_id: 'openapi-probe', token_id: 'probe', key_id: 'probe' };
/** Undocumented paths the worker must not serve. */
const UNKNOWN_PATHS = ['/v0/nope', '/v0/admin/nope', '/v0/pipes/', '/v0/pipes/kpis', '/v0/admin/tenants/openapi-probe/nope'];

/** Every operation: `{ path, method (upper case), op, item }`. */
function operations() {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    OPERATION_KEYS.filter((m) => item[m]).map((m) => ({ path, method: m.toUpperCase(), op: item[m], item })),
  );
}

/** Resolves a local `$ref` (`#/a/b~1c`) in the document; throws when it does not resolve. */
function resolvePointer(ref) {
  assert.ok(ref.startsWith('#/'), `only local $refs are used: ${ref}`);
  let node = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    assert.ok(node !== null && typeof node === 'object' && Object.hasOwn(node, key), `$ref does not resolve: ${ref}`);
    node = node[key];
  }
  return node;
}

/** Follows `$ref`s until a node without one. */
function deref(node) {
  const seen = new Set();
  while (node && typeof node.$ref === 'string') {
    assert.ok(!seen.has(node.$ref), `$ref cycle at ${node.$ref}`);
    seen.add(node.$ref);
    node = resolvePointer(node.$ref);
  }
  return node;
}

/** Every `$ref` string in the document with where it is. */
function refs(node, at = '#', out = []) {
  if (Array.isArray(node)) {
    for (const [i, v] of node.entries()) refs(v, `${at}/${i}`, out);
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push({ ref: v, at });
      else refs(v, `${at}/${k}`, out);
    }
  }
  return out;
}

/** The names of `{param}` segments in a path template. */
const templateParams = (path) => [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);

/** The path with harmless values for its parameters. */
const concrete = (path) => path.replace(/\{([^}]+)\}/g, (_, name) => encodeURIComponent(PROBE_VALUES[name] ?? 'probe'));

/** Required query parameters with a harmless value (e.g. `name=analytics_events` for ingest). */
function requiredQuery({ op, item }) {
  const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref);
  const q = new URLSearchParams();
  for (const p of params.filter((p) => p.in === 'query' && p.required)) {
    const schema = deref(p.schema ?? {});
    const value =
      p.name === 'name'
        ? 'analytics_events'
        : schema.format === 'date'
          ? '2026-01-01'
          : p.name === 'tenant_id'
            ? PROBE_VALUES.tenant_id
            : 'probe';
    q.set(p.name, value);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------- the document alone

test('document: OpenAPI 3.1 with info and the three security schemes', () => {
  assert.match(doc.openapi, /^3\.1\./);
  assert.equal(typeof doc.info?.title, 'string');
  assert.equal(typeof doc.info?.version, 'string');
  const schemes = doc.components?.securitySchemes ?? {};
  for (const name of ['trackerToken', 'readToken', 'adminToken']) {
    assert.equal(schemes[name]?.type, 'http', name);
    assert.equal(schemes[name]?.scheme, 'bearer', name);
  }
  assert.equal(schemes.trackerToken.bearerFormat, 'JWT');
  assert.equal(schemes.readToken.bearerFormat, 'JWT');
});

test('document: every operation has a unique operationId, a summary, a description, responses and security', () => {
  const ops = operations();
  assert.ok(ops.length > 0);
  const ids = new Map();
  const tags = new Set((doc.tags ?? []).map((t) => t.name));
  const schemes = doc.components.securitySchemes;
  for (const { path, method, op } of ops) {
    const where = `${method} ${path}`;
    assert.equal(typeof op.operationId, 'string', `${where}: operationId`);
    assert.match(op.operationId, /^[A-Za-z0-9_]+$/, `${where}: operationId`);
    assert.ok(!ids.has(op.operationId), `${where}: operationId ${op.operationId} also used by ${ids.get(op.operationId)}`);
    ids.set(op.operationId, where);
    assert.ok(typeof op.summary === 'string' && op.summary.trim(), `${where}: summary`);
    assert.ok(typeof op.description === 'string' && op.description.trim(), `${where}: description`);
    assert.ok(op.responses && Object.keys(op.responses).length > 0, `${where}: responses`);
    assert.ok(
      Object.keys(op.responses).some((c) => /^2\d\d$/.test(c)),
      `${where}: a success response`,
    );
    for (const t of op.tags ?? []) assert.ok(tags.has(t), `${where}: tag '${t}' is not declared`);
    // No global security: each operation says what it needs ([] = public).
    assert.ok(Array.isArray(op.security), `${where}: security`);
    for (const req of op.security)
      for (const name of Object.keys(req)) assert.ok(schemes[name], `${where}: unknown security scheme ${name}`);
    const names = op.security.flatMap((r) => Object.keys(r));
    if (PUBLIC.has(path)) assert.deepEqual(names, [], `${where} is public`);
    else if (path.startsWith('/v0/admin/')) assert.deepEqual(names, ['adminToken'], `${where} is admin only`);
    else assert.ok(names.includes('trackerToken') || names.includes('readToken'), `${where}: a tenant token`);
  }
});

test('document: every $ref resolves', () => {
  const all = refs(doc);
  assert.ok(all.length > 0);
  for (const { ref, at } of all) {
    try {
      deref({ $ref: ref });
    } catch (e) {
      assert.fail(`${at}: ${e.message}`);
    }
  }
});

test('document: path parameters match the path templates', () => {
  for (const { path, method, op, item } of operations()) {
    const declared = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref);
    const inPath = declared.filter((p) => p.in === 'path');
    for (const name of templateParams(path)) {
      const p = inPath.find((d) => d.name === name);
      assert.ok(p, `${method} ${path}: path parameter {${name}} is not declared`);
      assert.equal(p.required, true, `${method} ${path}: path parameter {${name}} must be required`);
    }
    for (const p of inPath) assert.ok(templateParams(path).includes(p.name), `${method} ${path}: '${p.name}' is not in the path`);
    const keys = declared.map((p) => `${p.in}:${p.name}`);
    assert.equal(new Set(keys).size, keys.length, `${method} ${path}: a parameter is declared twice`);
  }
});

test('document: the components the API promises, and error responses are {error}', () => {
  const { schemas, responses } = doc.components;
  for (const name of [
    'Tenant',
    'TenantInput',
    'TokenMintRequest',
    'TokenMinted',
    'TokenMetadata',
    'TenantKey',
    'Usage',
    'AuditEntry',
    'Error',
    'PipeResponse',
    'IngestResponse',
    'Settings',
  ])
    assert.ok(schemas[name], `schema ${name}`);
  assert.deepEqual(schemas.Error.required, ['error']);
  assert.equal(schemas.Error.properties.error.type, 'string');
  assert.deepEqual([...schemas.PipeResponse.required].sort(), ['data', 'meta', 'rows', 'statistics']);
  assert.deepEqual([...schemas.IngestResponse.required].sort(), ['quarantined_rows', 'successful_rows']);
  const tooMany = deref(responses.TooManyRequests);
  for (const h of ['Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'])
    assert.ok(tooMany.headers?.[h], `429 header ${h}`);
  assert.ok(deref(responses.ServiceUnavailable).headers?.['Retry-After'], '503 Retry-After');
  for (const { path, method, op } of operations()) {
    for (const [code, resp] of Object.entries(op.responses)) {
      if (Number(code) < 400) continue;
      const schema = deref(resp).content?.['application/json']?.schema;
      assert.equal(schema?.$ref, '#/components/schemas/Error', `${method} ${path} ${code}: an Error body`);
    }
  }
});

test('document: one path per pipe, exactly the pipes the core serves', () => {
  const source = readFileSync(join(ROOT, 'core/src/query/pipes.rs'), 'utf8');
  const list = source.match(/pub(?:\(crate\))? const PIPES: &\[&str\] = &\[([^\]]*)\]/);
  assert.ok(list, 'PIPES in core/src/query/pipes.rs');
  const core = [...list[1].matchAll(/"([a-z_]+)"/g)].map((m) => m[1]).sort();
  const documented = Object.keys(doc.paths)
    .filter((p) => p.startsWith('/v0/pipes/'))
    .map((p) => p.match(/^\/v0\/pipes\/([a-z_]+)\.json$/)?.[1])
    .sort();
  assert.deepEqual(documented, core);
  for (const name of core) {
    const op = doc.paths[`/v0/pipes/${name}.json`].get;
    assert.ok(op, `GET /v0/pipes/${name}.json`);
    assert.deepEqual(Object.keys(doc.paths[`/v0/pipes/${name}.json`]), ['get'], `${name}: GET only`);
  }
});

// ---------------------------------------------------------------- against the worker

let w;
const worker = async () => (w ??= await startWorker({ fastQueues: true, shared: true }));
after(async () => {
  await w?.stop();
});

/** A call without any credentials; the parsed body when it is JSON. */
async function anonymous(method, path) {
  const hasBody = ['POST', 'PUT', 'PATCH'].includes(method);
  const r = await (await worker()).fetch(path, {
    method,
    headers: hasBody ? { 'Content-Type': 'application/json' } : {},
    body: hasBody ? '{}' : undefined,
  });
  let json;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body, headers: r.headers };
}

const assertJsonError = (r, where) => {
  assert.equal(typeof r.json?.error, 'string', `${where}: ${r.status} with a JSON {"error"} body, got ${r.body.slice(0, 200)}`);
};

test('worker: GET /v0/openapi.json serves this document as JSON', async () => {
  const r = await (await worker()).fetch('/v0/openapi.json');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json\b/);
  assert.deepEqual(JSON.parse(r.body), doc);
});

test('worker: every documented operation is routed, and refuses an anonymous call unless public', async () => {
  for (const entry of operations()) {
    const { path, method } = entry;
    const url = concrete(path) + requiredQuery(entry);
    const where = `${method} ${url} (documented as ${method} ${path})`;
    const r = await anonymous(method, url);
    assert.ok(r.status !== 404 && r.status !== 405, `${where}: the worker does not serve it (${r.status} ${r.body.slice(0, 200)})`);
    if (PUBLIC.has(path)) {
      assert.equal(r.status, 200, `${where}: public`);
      continue;
    }
    assertJsonError(r, where);
    assert.equal(r.status, 401, `${where}: without credentials it must be 401, got ${r.status} ${r.body.slice(0, 200)}`);
  }
});

test('worker: every method a path does not document is 405', async () => {
  for (const [path, item] of Object.entries(doc.paths)) {
    const documented = PROBED.filter((m) => item[m.toLowerCase()]);
    const others = PROBED.filter((m) => !documented.includes(m));
    assert.ok(others.length > 0, `${path} documents every method`);
    for (const method of others) {
      const where = `${method} ${concrete(path)} (documented: ${documented.join(', ')})`;
      const r = await anonymous(method, concrete(path));
      assert.equal(r.status, 405, `${where}: got ${r.status} ${r.body.slice(0, 200)}`);
      assertJsonError(r, where);
      const allow = r.headers.get('allow');
      if (allow) {
        const allowed = allow
          .split(',')
          .map((m) => m.trim().toUpperCase())
          .filter((m) => PROBED.includes(m));
        assert.deepEqual(allowed.sort(), [...documented].sort(), `${where}: Allow: ${allow}`);
      }
    }
  }
});

test('worker: undocumented paths are 404', async () => {
  for (const path of UNKNOWN_PATHS) {
    const r = await anonymous('GET', path);
    assert.equal(r.status, 404, `GET ${path}: got ${r.status} ${r.body.slice(0, 200)}`);
    assertJsonError(r, `GET ${path}`);
  }
});
