import { expect } from 'chai';
import diagnostics_channel from 'node:diagnostics_channel';
import { EXT_TYPE_URL, decodeHttpRbac, type HttpConnectionManager } from '@trellis/api';
import type { HttpContext } from '../src/http/context.js';
import { normalizePathLayer } from '../src/http/layers/normalize-path.js';
import { rbacLayer } from '../src/http/layers/rbac.js';
import type { AuthzEvent } from '../src/authz/events.js';

type Obj = Record<string, unknown>;
const ANY = { any: true };

function hcm(filters: Obj[], o: Partial<HttpConnectionManager> = {}): HttpConnectionManager {
  return {
    kind: 'http', statPrefix: 's', rds: null, routeConfig: null, codecType: 'AUTO', streamIdleTimeoutMs: null,
    normalizePath: false, mergeSlashes: false, useRemoteAddress: false,
    httpFilters: filters.map((f) => ({ name: 'envoy.filters.http.rbac', type: EXT_TYPE_URL.rbacHttp, config: decodeHttpRbac(f, 'tc') })),
    ...o,
  } as HttpConnectionManager;
}

/** A context with a recording response; enough for the layers under test. */
function ctxFor(h: HttpConnectionManager, path: string, headers: Record<string, string> = {}): HttpContext & { reply: { status: number; body: string; headers: Obj } | null } {
  const c = {
    reply: null as { status: number; body: string; headers: Obj } | null,
    conn: { instance: 'i', direction: 'inbound', listener: 'l', hcm: h, sourceIp: '10.0.0.1', destIp: '10.0.0.2', destPort: 9080, peerPrincipal: null, tls: false },
    method: 'GET', authority: 'web', path, headers, h2: false, responseFlags: '-', responseHeadersToAdd: [], responseHeadersToRemove: [], responseBytes: 0,
  } as unknown as HttpContext & { reply: { status: number; body: string; headers: Obj } | null };
  (c as unknown as { res: unknown }).res = {
    headersSent: false,
    writeHead: (status: number, hs: Obj) => { c.reply = { status, body: '', headers: hs }; },
    end: (body?: string) => { c.reply!.body = body ?? ''; },
  };
  return c;
}

describe('proxy layers: rbac and normalize-path', () => {
  it('an HCM without RBAC filters passes through untouched', () => {
    let called = 0;
    const ctx = ctxFor(hcm([]), '/admin');
    rbacLayer()(() => { called++; })(ctx);
    expect(called).to.equal(1);
    expect(ctx.metadata).to.equal(undefined);
  });

  it('denies with 403 `RBAC: access denied`, details naming the policy, no response flag; publishes the denial', () => {
    const events: AuthzEvent[] = [];
    const on = (m: unknown) => events.push(m as AuthzEvent);
    diagnostics_channel.subscribe('trellis:proxy:authz', on);
    try {
      const h = hcm([{ rules: { action: 'DENY', policies: { 'deny-admin': { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [ANY] } } }, rules_stat_prefix: 'r.' }]);
      let called = 0;
      const ctx = ctxFor(h, '/admin?x');
      rbacLayer()(() => { called++; })(ctx);
      expect(called).to.equal(0);
      expect(ctx.reply).to.deep.include({ status: 403, body: 'RBAC: access denied' });
      expect(ctx.responseCodeDetails).to.equal('rbac_access_denied_matched_policy[deny-admin]');
      expect(ctx.responseFlags).to.equal('-');
      expect(events).to.deep.equal([{ instance: 'i', reporter: 'destination', protocol: 'http', sourcePrincipal: null, sourceIp: '10.0.0.1', destinationPort: 9080, statPrefix: 'r.', shadow: false, action: 'DENY', result: 'denied', policy: 'deny-admin', enforcedDenial: true }]);
    } finally {
      diagnostics_channel.unsubscribe('trellis:proxy:authz', on);
    }
  });

  it('shadow rules and LOG rules only write metadata', () => {
    const h = hcm([
      { rules: { action: 'LOG', policies: { audit: { permissions: [ANY], principals: [ANY] } } } },
      { shadow_rules: { action: 'ALLOW' }, shadow_rules_stat_prefix: 'istio_dry_run_allow_' },
    ]);
    let called = 0;
    const ctx = ctxFor(h, '/x');
    rbacLayer()(() => { called++; })(ctx);
    expect(called).to.equal(1);
    expect(ctx.metadata).to.deep.equal({
      'envoy.common': { access_log_hint: true },
      'envoy.filters.http.rbac': { istio_dry_run_allow_shadow_engine_result: 'denied' },
    });
  });

  it('normalize-path rewrites the path later layers and the upstream see, or answers 400', () => {
    const h = hcm([], { normalizePath: true, mergeSlashes: true });
    const seen: string[] = [];
    const layer = normalizePathLayer()((c) => { seen.push(c.path); });
    layer(ctxFor(h, '/public/..//%61dmin?q=/../'));
    const bad = ctxFor(h, '/%zz');
    layer(bad);
    expect(seen).to.deep.equal(['/admin?q=/../']);
    expect(bad.reply?.status).to.equal(400);
    expect(bad.responseCodeDetails).to.equal('path_normalization_failed');
    const abs = ctxFor(hcm([]), 'http://details:9080//a');
    normalizePathLayer()((c) => { seen.push(`${c.authority} ${c.path}`); })(abs);
    expect(seen[1]).to.equal('details:9080 //a');
  });
});
