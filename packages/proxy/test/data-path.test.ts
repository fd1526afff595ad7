import { expect } from 'chai';
import net from 'node:net';
import tls from 'node:tls';
import { TYPE_URL, EXT_TYPE_URL, decodeAny, decodeEnvoyResource, encodeAny, type ClusterLoadAssignmentConfig, type ListenerConfig } from '@trellis/api';
import { selectFilterChain } from '../src/net/filter-chain.js';
import { detect, parseClientHello, peek } from '../src/net/detect.js';
import { inCidr } from '../src/net/cidr.js';
import { HostSet } from '../src/lb/hosts.js';
import { forwardableRequestHeaders, forwardableResponseHeaders } from '../src/http/hop-by-hop.js';
import { type HttpContext, addHeader, compose, type Layer } from '../src/http/context.js';
import { serviceOfCluster } from '../src/telemetry/metrics.js';

const tcp = (cluster: string) => [{ name: 'tcp', typed_config: { '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: 's', cluster } }];
const listenerOf = (chains: Record<string, unknown>[]) => decodeEnvoyResource(TYPE_URL.listener, decodeAny(encodeAny(TYPE_URL.listener, { name: 'l', filter_chains: chains }))) as ListenerConfig;
const chainName = (l: ListenerConfig, f: Partial<Parameters<typeof selectFilterChain>[1]>) =>
  selectFilterChain(l, { destIp: '10.0.0.1', destPort: 80, transportProtocol: 'raw_buffer', serverName: null, applicationProtocols: [], ...f })?.name ?? null;

describe('proxy: filter chain selection (Envoy order)', () => {
  const l = listenerOf([
    { name: 'port-8080', filter_chain_match: { destination_port: { value: 8080 } }, filters: tcp('a') },
    { name: 'port-8080-tls', filter_chain_match: { destination_port: { value: 8080 }, transport_protocol: 'tls' }, filters: tcp('a') },
    { name: 'port-8080-tls-h2', filter_chain_match: { destination_port: { value: 8080 }, transport_protocol: 'tls', application_protocols: ['h2'] }, filters: tcp('a') },
    { name: 'net-10/8', filter_chain_match: { prefix_ranges: [{ address_prefix: '10.0.0.0', prefix_len: { value: 8 } }] }, filters: tcp('a') },
    { name: 'net-10.1/16', filter_chain_match: { prefix_ranges: [{ address_prefix: '10.1.0.0', prefix_len: { value: 16 } }] }, filters: tcp('a') },
    { name: 'sni-exact', filter_chain_match: { server_names: ['api.example.com'] }, filters: tcp('a') },
    { name: 'sni-wild', filter_chain_match: { server_names: ['*.example.com'] }, filters: tcp('a') },
    { name: 'catch-all', filters: tcp('a') },
  ]);
  const cases: [string, Partial<Parameters<typeof selectFilterChain>[1]>, string][] = [
    ['destination port beats everything else', { destPort: 8080, destIp: '10.1.2.3' }, 'port-8080'],
    ['transport protocol within the port', { destPort: 8080, transportProtocol: 'tls' }, 'port-8080-tls'],
    ['ALPN within transport', { destPort: 8080, transportProtocol: 'tls', applicationProtocols: ['h2', 'http/1.1'] }, 'port-8080-tls-h2'],
    ['longest prefix wins', { destIp: '10.1.2.3', destPort: 9 }, 'net-10.1/16'],
    ['shorter prefix when the longer does not contain the address', { destIp: '10.2.0.1', destPort: 9 }, 'net-10/8'],
    ['exact SNI over wildcard', { destIp: '192.168.0.1', serverName: 'api.example.com' }, 'sni-exact'],
    ['wildcard SNI', { destIp: '192.168.0.1', serverName: 'www.example.com' }, 'sni-wild'],
    ['catch-all', { destIp: '192.168.0.1' }, 'catch-all'],
  ];
  for (const [what, facts, want] of cases) it(what, () => expect(chainName(l, facts)).to.equal(want));

  it('no match and no default chain: null (the connection is closed)', () => {
    const strict = listenerOf([{ name: 'tls-only', filter_chain_match: { transport_protocol: 'tls' }, filters: tcp('a') }]);
    expect(chainName(strict, {})).to.equal(null);
    expect(chainName(strict, { transportProtocol: 'tls' })).to.equal('tls-only');
  });

  it('CIDR containment for IPv4, IPv6 and IPv4-mapped addresses', () => {
    expect(inCidr('10.1.2.3', '10.0.0.0', 8)).to.equal(true);
    expect(inCidr('11.1.2.3', '10.0.0.0', 8)).to.equal(false);
    expect(inCidr('::ffff:10.1.2.3', '10.0.0.0', 8)).to.equal(true);
    expect(inCidr('fd00::1', 'fd00::', 8)).to.equal(true);
    expect(inCidr('fe80::1', 'fd00::', 8)).to.equal(false);
    expect(inCidr('::1', '::1', 128)).to.equal(true);
  });
});

describe('proxy: protocol detection', () => {
  it('reads SNI and ALPN from a real TLS ClientHello', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => peek(s, 1000).then((b) => { resolve(b); s.destroy(); })));
    const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'reviews.default.svc', ALPNProtocols: ['istio-http/1.1', 'h2'], rejectUnauthorized: false });
    c.on('error', () => {});
    const first = await got;
    c.destroy();
    server.close();
    expect(parseClientHello(first)).to.deep.equal({ serverName: 'reviews.default.svc', alpn: ['istio-http/1.1', 'h2'] });
    expect(detect(first)).to.deep.equal({ transportProtocol: 'tls', serverName: 'reviews.default.svc', applicationProtocols: ['istio-http/1.1', 'h2'] });
  });

  it('tells HTTP/1.1, HTTP/1.0, the HTTP/2 preface and opaque bytes apart', () => {
    expect(detect(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).applicationProtocols).to.deep.equal(['http/1.1']);
    expect(detect(Buffer.from('POST /a HTTP/1.0\r\n')).applicationProtocols).to.deep.equal(['http/1.0']);
    expect(detect(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).applicationProtocols).to.deep.equal(['h2c']);
    expect(detect(Buffer.from([0x4a, 0, 0, 0, 0x0a, 0x35])).applicationProtocols).to.deep.equal([]);
    expect(detect(Buffer.alloc(0))).to.deep.equal({ transportProtocol: 'raw_buffer', serverName: null, applicationProtocols: [] });
  });

  it('times out on a server-first protocol and gives the bytes back to the next reader', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const result = new Promise<[number, string]>((resolve) => server.once('connection', async (s) => {
      const silent = await peek(s, 30);
      const c2 = await new Promise<Buffer>((r) => { s.resume(); s.once('data', r); });
      resolve([silent.length, c2.toString()]);
      s.destroy();
    }));
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    setTimeout(() => c.write('late bytes'), 80);
    expect(await result).to.deep.equal([0, 'late bytes']);
    c.destroy();
    server.close();
  });

  it('bytes sent just before the client closes its side are given back, then the end (echo ping | nc)', async () => {
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const result = new Promise<[string, string]>((resolve) => server.once('connection', async (s) => {
      // Detection sees no complete request line, so it reads to EOF.
      const first = await peek(s, 1000);
      let rest = '';
      s.setEncoding('latin1').on('data', (c: string) => { rest += c; });
      s.once('end', () => { resolve([first.toString('latin1'), rest]); s.destroy(); });
      s.resume();
    }));
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => c.end('ping'));
    expect(await result).to.deep.equal(['ping', 'ping']);
    server.close();
  });
});

describe('proxy: load balancing (HostSet)', () => {
  const cla = (endpoints: Record<string, unknown>[]) => decodeEnvoyResource(TYPE_URL.endpoint, decodeAny(encodeAny(TYPE_URL.endpoint, { cluster_name: 'c', endpoints }))) as ClusterLoadAssignmentConfig;
  const ep = (port: number, extra: Record<string, unknown> = {}) => ({ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } } }, ...extra });
  const seq = (xs: number[]) => { let i = 0; return () => xs[i++ % xs.length]; };

  it('locality weights choose the locality, then the policy picks inside it', () => {
    const hs = new HostSet(cla([
      { locality: { zone: 'a' }, load_balancing_weight: { value: 1 }, lb_endpoints: [ep(1)] },
      { locality: { zone: 'b' }, load_balancing_weight: { value: 3 }, lb_endpoints: [ep(2)] },
    ]), 'ROUND_ROBIN', 1024, seq([0.1, 0.3, 0.5, 0.9]));
    expect([0, 1, 2, 3].map(() => hs.pick({ hash: null, now: 0 })!.address.port)).to.deep.equal([1, 2, 2, 2]);
  });

  it('an ejected host is skipped until its ejection ends', () => {
    const hs = new HostSet(cla([{ lb_endpoints: [ep(1), ep(2)] }]), 'ROUND_ROBIN');
    hs.all[0].ejectedUntil = 100;
    expect([0, 1, 2].map(() => hs.pick({ hash: null, now: 50 })!.address.port)).to.deep.equal([2, 2, 2]);
    expect(new Set([0, 1, 2, 3].map(() => hs.pick({ hash: null, now: 150 })!.address.port))).to.deep.equal(new Set([1, 2]));
  });

  it('ring hash keeps most keys on their host when a host is removed (the ring is resized, so a few move)', () => {
    const five = new HostSet(cla([{ lb_endpoints: [1, 2, 3, 4, 5].map((p) => ep(p)) }]), 'RING_HASH');
    const four = new HostSet(cla([{ lb_endpoints: [1, 2, 3, 4].map((p) => ep(p)) }]), 'RING_HASH');
    let moved = 0;
    for (let k = 0; k < 1000; k++) {
      const h = (k * 2654435761) >>> 0;
      const a = five.pick({ hash: h, now: 0 })!.address.port;
      const b = four.pick({ hash: h, now: 0 })!.address.port;
      if (a !== 5 && a !== b) moved += 1;
    }
    expect(moved).to.be.lessThan(150);
  });

  it('least request prefers the host with fewer requests in flight', () => {
    const hs = new HostSet(cla([{ lb_endpoints: [ep(1), ep(2)] }]), 'LEAST_REQUEST', 1024, seq([0, 0.9]));
    hs.all[0].active = 5;
    expect(hs.pick({ hash: null, now: 0 })!.address.port).to.equal(2);
  });
});

describe('proxy: headers and layers', () => {
  it('drops hop-by-hop fields (RFC 9110 §7.6.1), keeps te: trailers', () => {
    expect(forwardableRequestHeaders({ connection: 'close, x-a', 'x-a': '1', 'keep-alive': 't', 'transfer-encoding': 'chunked', upgrade: 'h2c', te: 'trailers, deflate', host: 'h', ':path': '/', 'x-b': '2', 'proxy-connection': 'x' }))
      .to.deep.equal({ te: 'trailers', 'x-b': '2' });
    expect(forwardableResponseHeaders({ connection: 'x-c', 'x-c': '1', 'transfer-encoding': 'chunked', 'content-length': '3', ':status': '200' })).to.deep.equal({ 'content-length': '3' });
  });

  it('header add actions follow Envoy semantics', () => {
    const h: Record<string, string | string[]> = { a: '1', b: '1' };
    addHeader(h, { key: 'a', value: '2', action: 'APPEND_IF_EXISTS_OR_ADD' });
    addHeader(h, { key: 'b', value: '2', action: 'ADD_IF_ABSENT' });
    addHeader(h, { key: 'c', value: '3', action: 'OVERWRITE_IF_EXISTS' });
    addHeader(h, { key: 'd', value: '4', action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    expect(h).to.deep.equal({ a: ['1', '2'], b: '1', d: '4' });
  });

  it('compose runs layers outermost first and each can stop the chain', () => {
    const seen: string[] = [];
    const l = (name: string, stop = false): Layer => (next) => (ctx) => { seen.push(name); if (!stop) next(ctx); };
    compose([l('a'), l('b', true), l('c')], () => seen.push('end'))({} as HttpContext);
    expect(seen).to.deep.equal(['a', 'b']);
  });

  it('derives destination_service labels from Istio cluster names', () => {
    expect(serviceOfCluster('outbound|9080|v1|reviews.default.svc.cluster.local')).to.deep.equal({ service: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' });
    expect(serviceOfCluster('PassthroughCluster')).to.deep.equal({ service: 'PassthroughCluster', name: 'PassthroughCluster', namespace: 'unknown' });
  });
});
