import { expect } from 'chai';
import { PassThrough, type Readable } from 'node:stream';
import { TYPE_URL, decodeAny, decodeEnvoyResource, encodeAny, type RetryPolicy, type RouteConfig } from '@trellis/api';
import { backoffMs } from '../src/http/retry/backoff.js';
import { RequestBody } from '../src/http/retry/request-body.js';
import { releaseRetry, retryLimit, tryAcquireRetry } from '../src/http/retry/retry-budget.js';
import { compileRetry, requestMayRetry, retryReasonForFailure, retryReasonForResponse } from '../src/http/retry/retry-policy.js';

/** A RetryPolicy as the proxy decodes it from RDS (through the real protobuf encoding). */
function policyOf(retry: Record<string, unknown>): RetryPolicy {
  const rc = decodeEnvoyResource(TYPE_URL.route, decodeAny(encodeAny(TYPE_URL.route, {
    name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', retry_policy: retry } }] }],
  }))) as RouteConfig;
  const a = rc.virtualHosts[0].routes[0].action;
  if (a.kind !== 'route' || !a.retryPolicy) throw new Error('no retry policy');
  return a.retryPolicy;
}

describe('proxy: retry back-off (full jitter, injected randomness)', () => {
  it('retry n waits in [0, base × (2ⁿ − 1)), capped at max', () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, 25, 250, top))).to.deep.equal([24, 74, 174, 249, 249]);
    expect([1, 2, 3].map((n) => backoffMs(n, 25, 250, () => 0))).to.deep.equal([0, 0, 0]);
    expect(backoffMs(2, 100, 1000, () => 0.5)).to.equal(150);
  });
});

describe('proxy: retry budget', () => {
  it('limit = min(max_retries, max(3, 20% of active requests))', () => {
    expect(retryLimit(0, 4294967295)).to.equal(3);
    expect(retryLimit(10, 4294967295)).to.equal(3);
    expect(retryLimit(100, 4294967295)).to.equal(20);
    expect(retryLimit(100, 5)).to.equal(5);
    expect(retryLimit(1, 1)).to.equal(1);
  });
  it('slots are taken up to the limit and given back', () => {
    const s = { rqActive: 10, retriesActive: 0 };
    expect([1, 2, 3, 4].map(() => tryAcquireRetry(s, 4294967295))).to.deep.equal([true, true, true, false]);
    releaseRetry(s);
    expect(tryAcquireRetry(s, 4294967295)).to.equal(true);
    s.rqActive = 25; // 20% of 25 = 5
    expect(tryAcquireRetry(s, 4294967295)).to.equal(true);
    expect(tryAcquireRetry(s, 4294967295)).to.equal(true);
    expect(tryAcquireRetry(s, 4294967295)).to.equal(false);
    expect(tryAcquireRetry({ rqActive: 100, retriesActive: 1 }, 1)).to.equal(false);
  });
});

describe('proxy: retry policy decoding (RDS retry_policy)', () => {
  it('fills Envoy\'s defaults', () => {
    const p = policyOf({ retry_on: '5xx' });
    expect(p).to.deep.include({ retryOn: ['5xx'], numRetries: 1, perTryTimeoutMs: null, perTryIdleTimeoutMs: null, retriableStatusCodes: [], hostSelectionRetryMaxAttempts: 1, retryHostPredicates: [] });
    expect(p.backOff).to.deep.equal({ baseIntervalMs: 25, maxIntervalMs: 250 });
  });
  it('decodes what the control plane sends (Istio\'s default policy) and the rest of the message', () => {
    const p = policyOf({
      retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', num_retries: { value: 2 }, retriable_status_codes: [503],
      retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
      host_selection_retry_max_attempts: 5, per_try_timeout: { nanos: 500_000_000 }, per_try_idle_timeout: { seconds: 2 },
      retry_back_off: { base_interval: { nanos: 100_000_000 } }, retriable_headers: [{ name: 'X-Retry', string_match: { exact: 'yes' } }],
    });
    expect(p).to.deep.include({ numRetries: 2, retriableStatusCodes: [503], hostSelectionRetryMaxAttempts: 5, perTryTimeoutMs: 500, perTryIdleTimeoutMs: 2000, retryHostPredicates: ['envoy.retry_host_predicates.previous_hosts'] });
    expect(p.backOff).to.deep.equal({ baseIntervalMs: 100, maxIntervalMs: 1000 });
    expect(p.retriableHeaders[0].name).to.equal('x-retry');
    expect(compileRetry(p)!.previousHosts).to.equal(true);
  });
  it('rejects a back-off without base_interval or with max below base, naming the field', () => {
    expect(() => policyOf({ retry_on: '5xx', retry_back_off: { max_interval: { seconds: 1 } } })).to.throw(/retry_policy\.retry_back_off\.base_interval: required/);
    expect(() => policyOf({ retry_on: '5xx', retry_back_off: { base_interval: { seconds: 2 }, max_interval: { seconds: 1 } } })).to.throw(/retry_back_off\.max_interval: must be at least base_interval/);
  });
});

describe('proxy: retry conditions (Envoy retry_on semantics)', () => {
  const c = (retryOn: string, extra: Record<string, unknown> = {}) => compileRetry(policyOf({ retry_on: retryOn, num_retries: { value: 2 }, ...extra }))!;
  const resp = (on: string, status: number, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) => retryReasonForResponse(c(on, extra), status, headers);
  it('5xx, gateway-error, retriable-4xx, retriable-status-codes', () => {
    expect([500, 502, 503, 504, 404].map((s) => resp('5xx', s))).to.deep.equal(['5xx', '5xx', '5xx', '5xx', null]);
    expect([500, 502, 503, 504, 501].map((s) => resp('gateway-error', s))).to.deep.equal([null, 'gateway-error', 'gateway-error', 'gateway-error', null]);
    expect([409, 408, 500].map((s) => resp('retriable-4xx', s))).to.deep.equal(['retriable-4xx', null, null]);
    expect([503, 429, 500].map((s) => resp('retriable-status-codes', s, {}, { retriable_status_codes: [503, 429] }))).to.deep.equal(['retriable-status-codes', 'retriable-status-codes', null]);
    // listed codes do nothing without the condition
    expect(resp('connect-failure', 503, {}, { retriable_status_codes: [503] })).to.equal(null);
  });
  it('gRPC conditions read grpc-status of the response head (trailers-only responses)', () => {
    const on = 'cancelled,deadline-exceeded,resource-exhausted,unavailable';
    expect(['1', '4', '8', '14', '13', '0'].map((g) => resp(on, 200, { 'grpc-status': g }))).to.deep.equal(['cancelled', 'deadline-exceeded', 'resource-exhausted', 'unavailable', null, null]);
    expect(resp('unavailable', 200, {})).to.equal(null);
    expect(resp('internal', 200, { 'grpc-status': '13' })).to.equal('internal');
  });
  it('retriable-headers and envoy-ratelimited', () => {
    const extra = { retriable_headers: [{ name: 'x-upstream-retry', string_match: { exact: 'please' } }, { name: ':status', string_match: { exact: '418' } }] };
    expect(resp('retriable-headers', 200, { 'x-upstream-retry': 'please' }, extra)).to.equal('retriable-headers');
    expect(resp('retriable-headers', 418, {}, extra)).to.equal('retriable-headers');
    expect(resp('retriable-headers', 200, { 'x-upstream-retry': 'no' }, extra)).to.equal(null);
    expect(resp('envoy-ratelimited', 429, { 'x-envoy-ratelimited': 'true' })).to.equal('envoy-ratelimited');
  });
  it('failures without a response', () => {
    const f = (on: string) => (['connect_failure', 'refused', 'reset', 'per_try_timeout'] as const).map((k) => retryReasonForFailure(c(on), k));
    expect(f('connect-failure')).to.deep.equal(['connect-failure', null, null, null]);
    expect(f('refused-stream')).to.deep.equal([null, 'refused-stream', null, null]);
    expect(f('reset')).to.deep.equal(['reset', 'reset', 'reset', 'reset']);
    expect(f('5xx')).to.deep.equal(['5xx', '5xx', '5xx', '5xx']);
    expect(f('gateway-error')).to.deep.equal(['gateway-error', 'gateway-error', 'gateway-error', 'gateway-error']);
    expect(f('unavailable,cancelled,retriable-status-codes')).to.deep.equal([null, null, null, null]);
  });
  it('no policy, num_retries 0 or no known condition never retries', () => {
    expect(compileRetry(null)).to.equal(null);
    expect(compileRetry(policyOf({ retry_on: '5xx', num_retries: { value: 0 } }))).to.equal(null);
    expect(compileRetry(policyOf({ retry_on: 'something-new' }))).to.equal(null);
  });
  it('retriable_request_headers limit which requests may be retried', () => {
    const p = c('5xx', { retriable_request_headers: [{ name: ':method', string_match: { exact: 'GET' } }] });
    expect(requestMayRetry(p, (n) => (n === ':method' ? 'GET' : undefined))).to.equal(true);
    expect(requestMayRetry(p, (n) => (n === ':method' ? 'POST' : undefined))).to.equal(false);
    expect(requestMayRetry(c('5xx'), () => undefined)).to.equal(true);
  });
});

describe('proxy: replayable request body', () => {
  const readAll = (r: Readable | Buffer): Promise<string> => {
    if (Buffer.isBuffer(r)) return Promise.resolve(r.toString());
    return new Promise((resolve, reject) => { let s = ''; r.on('data', (c: Buffer) => (s += c.toString())); r.on('end', () => resolve(s)); r.on('error', reject); });
  };
  it('a second reader gets the bytes so far, then the rest as it arrives', async () => {
    const src = new PassThrough();
    const body = new RequestBody(src, 1024);
    const first = body.open() as Readable;
    const got: string[] = [];
    first.on('data', (c: Buffer) => got.push(c.toString()));
    src.write('abc');
    await new Promise((r) => setImmediate(r));
    expect(got).to.deep.equal(['abc']);
    body.detach();
    const second = body.open();
    const all = readAll(second);
    src.end('def');
    expect(await all).to.equal('abcdef');
    expect(body.replayable).to.equal(true);
    // complete and held: a Buffer
    expect((await readAll(body.open()))).to.equal('abcdef');
    expect(Buffer.isBuffer(body.open())).to.equal(true);
  });
  it('prefetch reads a body of known length whole, then every attempt gets the same Buffer', async () => {
    const src = new PassThrough();
    const body = new RequestBody(src, 1024);
    let ready = false;
    body.prefetch(() => { ready = true; });
    src.write('abc');
    src.end('def');
    for (let i = 0; i < 10 && !ready; i++) await new Promise((r) => setImmediate(r));
    expect(ready).to.equal(true);
    const a = body.open();
    expect(Buffer.isBuffer(a) && a.toString()).to.equal('abcdef');
    expect(body.open()).to.equal(a);
  });
  it('past the limit the copy is dropped: the body streams on but cannot be replayed', async () => {
    const src = new PassThrough();
    const body = new RequestBody(src, 4);
    const all = readAll(body.open());
    src.write('abc');
    src.end('defgh');
    expect(await all).to.equal('abcdefgh');
    expect(body.replayable).to.equal(false);
  });
});
