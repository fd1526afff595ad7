/**
 * The DNS proxy over the network: a fake upstream resolver (UDP and TCP on one loopback port) records what it is
 * asked; the proxy runs on port 0; queries come from node:dns `Resolver` and from raw packets.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DnsProxy } from '../src/dns/proxy.js';
import { parseResolvConf } from '../src/dns/resolv-conf.js';
import { encodeMessage, encodeName, parseMessage, RCODE, RR_CLASS_IN, RR_TYPE, readName, recordValue, type RecordToWrite } from '../src/dns/wire.js';

function soa(ttl: number, minimum: number): RecordToWrite {
  const tail = Buffer.alloc(20);
  [1, 3600, 600, 86400, minimum].forEach((v, i) => tail.writeUInt32BE(v, i * 4));
  return { name: 'example', type: RR_TYPE.SOA, ttl, data: Buffer.concat([encodeName('ns.example'), encodeName('admin.example'), tail]) };
}

/** A fake resolver: answers from `zone`, truncates `big.example` over UDP, NXDOMAIN (with SOA) for the rest. */
class FakeUpstream {
  readonly asked: { name: string; type: number; transport: 'udp' | 'tcp' }[] = [];
  #tcp!: Server;
  #udp!: UdpSocket;
  port = 0;
  readonly zone = new Map<string, RecordToWrite[]>([
    ['example.com', [{ name: 'example.com', type: RR_TYPE.A, ttl: 300, data: '93.184.216.34' }]],
    ['cached.example', [{ name: 'cached.example', type: RR_TYPE.A, ttl: 60, data: '192.0.2.60' }]],
    ['reviews.default.svc.cluster.local', [{ name: 'reviews.default.svc.cluster.local', type: RR_TYPE.A, ttl: 5, data: '192.0.2.99' }]],
    ['big.example', Array.from({ length: 40 }, (_, i) => ({ name: 'big.example', type: RR_TYPE.A, ttl: 60, data: `198.51.100.${i + 1}` }))],
  ]);

  answer(query: Buffer, transport: 'udp' | 'tcp'): Buffer {
    const m = parseMessage(query);
    const q = m.questions[0]!;
    this.asked.push({ name: q.name, type: q.type, transport });
    const records = this.zone.get(q.name);
    const base = { id: m.header.id, qr: true, rd: m.header.rd, ra: true, questions: [q] };
    if (records === undefined) {
      // NXDOMAIN with the SOA in the authority section (hand-assembled: the codec writes answers only).
      const msg = encodeMessage({ ...base, rcode: RCODE.NXDOMAIN, answers: [soa(30, 10)] });
      msg.writeUInt16BE(0, 6);
      msg.writeUInt16BE(1, 8);
      return msg;
    }
    if (q.name === 'big.example' && transport === 'udp') return encodeMessage({ ...base, tc: true });
    return encodeMessage({ ...base, answers: records.filter((r) => r.type === q.type) });
  }

  async start(): Promise<void> {
    this.#tcp = createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const reply = this.answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), 'tcp');
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          s.write(Buffer.concat([len, reply]));
        }
      });
    });
    await new Promise<void>((r) => this.#tcp.listen(0, '127.0.0.1', r));
    this.port = (this.#tcp.address() as { port: number }).port;
    this.#udp = createSocket('udp4');
    this.#udp.on('message', (m, r) => this.#udp.send(this.answer(m, 'udp'), r.port, r.address));
    await new Promise<void>((r) => this.#udp.bind(this.port, '127.0.0.1', r));
  }

  count(name: string, transport?: 'udp' | 'tcp'): number {
    return this.asked.filter((a) => a.name === name && (transport === undefined || a.transport === transport)).length;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.#udp.close(() => r()));
    await new Promise<void>((r) => this.#tcp.close(() => r()));
  }
}

function rawUdp(port: number, packet: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => (s.close(), reject(new Error('no UDP answer'))), 2000);
    s.on('message', (m) => (clearTimeout(t), s.close(), resolve(m)));
    s.send(packet, port, '127.0.0.1');
  });
}

function rawTcp(port: number, packet: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(packet.length);
    s.write(Buffer.concat([len, packet]));
  });
}

const query = (name: string, type: number = RR_TYPE.A, id = 0x1234): Buffer => encodeMessage({ id, rd: true, questions: [{ name, type, class: RR_CLASS_IN }] });

const NAME_TABLE = {
  table: {
    'reviews.default.svc.cluster.local': { ips: ['10.96.0.12'], registry: 'Kubernetes', shortname: 'reviews', namespace: 'default', alt_hosts: [] },
    'ratings.other.svc.cluster.local': { ips: ['10.96.0.13', 'fd00::13'], registry: 'Kubernetes', shortname: 'ratings', namespace: 'other', alt_hosts: [] },
    'legacy.corp.example': { ips: ['240.240.0.7'], registry: 'File', shortname: '', namespace: '', alt_hosts: ['legacy-vip'] },
  },
};

describe('dns: wire codec and resolv.conf', () => {
  it('reads compressed names and rejects pointer loops', () => {
    const msg = Buffer.concat([Buffer.alloc(12), encodeName('a.example'), Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 12])]);
    expect(readName(msg, 12 + 11).name).to.equal('www.a.example');
    const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
    expect(() => readName(loop, 12)).to.throw(/compression pointer loop/).with.property('code', 'TRELLIS_ERR_DNS_DECODE');
  });

  it('round-trips A, AAAA and CNAME answers', () => {
    const bytes = encodeMessage({
      id: 7, qr: true, aa: true, rd: true, ra: true, questions: [{ name: 'x.example', type: RR_TYPE.ANY, class: RR_CLASS_IN }],
      answers: [
        { name: 'x.example', type: RR_TYPE.CNAME, ttl: 10, data: 'y.example' },
        { name: 'y.example', type: RR_TYPE.A, ttl: 20, data: '10.1.2.3' },
        { name: 'y.example', type: RR_TYPE.AAAA, ttl: 30, data: 'fd00::1:0:0:13' },
      ],
    });
    const m = parseMessage(bytes);
    expect(m.header).to.deep.include({ id: 7, qr: true, aa: true, rd: true, ra: true, tc: false, rcode: 0 });
    expect(m.answers.map((r) => [r.type, r.ttl, recordValue(bytes, r)])).to.deep.equal([
      [RR_TYPE.CNAME, 10, 'y.example'],
      [RR_TYPE.A, 20, '10.1.2.3'],
      [RR_TYPE.AAAA, 30, 'fd00::1:0:0:13'],
    ]);
    expect(() => parseMessage(bytes.subarray(0, bytes.length - 1))).to.throw(/malformed DNS message/);
  });

  it('parses nameservers and the search list from resolv.conf', () => {
    const conf = parseResolvConf('# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\ndomain old.example\nsearch Corp.Example. svc.cluster.local\noptions ndots:5\n');
    expect(conf.nameservers).to.deep.equal([{ host: '10.0.0.2', port: 53 }, { host: 'fe80::1', port: 53 }]);
    expect(conf.search).to.deep.equal(['corp.example', 'svc.cluster.local']);
  });
});

describe('dns: proxy', function () {
  this.timeout(10_000);
  let dir: string;
  let upstream: FakeUpstream;
  let proxy: DnsProxy;
  let resolver: Resolver;
  let clock = 1_000_000;
  const controller = new AbortController();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-dns-'));
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 192.0.2.53\nsearch corp.example\n');
    upstream = new FakeUpstream();
    await upstream.start();
    proxy = new DnsProxy({ port: 0, namespace: 'default', resolvConfPath: join(dir, 'resolv.conf'), upstreams: [{ host: '127.0.0.1', port: upstream.port }], now: () => clock, timeoutMs: 1000 });
    await proxy.start(controller.signal);
    resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${proxy.port}`]);
  });

  after(async () => {
    controller.abort();
    await proxy.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('forwards everything, mesh names included, until a name table arrives', async () => {
    expect(proxy.hasNameTable).to.equal(false);
    expect(await resolver.resolve4('reviews.default.svc.cluster.local')).to.deep.equal(['192.0.2.99']);
    expect(upstream.count('reviews.default.svc.cluster.local')).to.equal(1);
    proxy.setNameTable(NAME_TABLE);
    expect(proxy.hasNameTable).to.equal(true);
  });

  it('answers mesh FQDNs, short names, name.namespace and search-domain forms from the name table', async () => {
    const before = upstream.asked.length;
    expect(await resolver.resolve4('reviews.default.svc.cluster.local')).to.deep.equal(['10.96.0.12']);
    expect(await resolver.resolve4('reviews')).to.deep.equal(['10.96.0.12']);
    expect(await resolver.resolve4('reviews.default')).to.deep.equal(['10.96.0.12']);
    expect(await resolver.resolve4('reviews.default.svc')).to.deep.equal(['10.96.0.12']);
    expect(await resolver.resolve4('reviews.corp.example')).to.deep.equal(['10.96.0.12']);
    expect(await resolver.resolve4('ratings.other')).to.deep.equal(['10.96.0.13']);
    expect(await resolver.resolve6('ratings.other.svc.cluster.local')).to.deep.equal(['fd00::13']);
    expect(await resolver.resolve4('legacy-vip')).to.deep.equal(['240.240.0.7']);
    expect(upstream.asked.length, 'mesh names never reach the upstream').to.equal(before);
  });

  it('echoes the question with the case the client sent (0x20)', async () => {
    const bytes = await rawUdp(proxy.port, query('ReViEwS.Default', RR_TYPE.A, 0x20));
    const reply = parseMessage(bytes);
    expect(reply.questions[0]!.asSent).to.equal('ReViEwS.Default');
    expect(reply.answers[0]!.name).to.equal('reviews.default');
    expect(recordValue(bytes, reply.answers[0]!)).to.equal('10.96.0.12');
  });

  it('answers NODATA (NOERROR, no answers, authoritative) for a record type a mesh name lacks', async () => {
    const reply = parseMessage(await rawUdp(proxy.port, query('reviews', RR_TYPE.AAAA, 0x4242)));
    expect(reply.header).to.deep.include({ id: 0x4242, qr: true, aa: true, rcode: RCODE.NOERROR });
    expect(reply.answers).to.deep.equal([]);
    let code: unknown;
    await resolver.resolve6('reviews.default.svc.cluster.local').catch((e: NodeJS.ErrnoException) => (code = e.code));
    expect(code).to.equal('ENODATA');
  });

  it("forwards other names, including another namespace's bare short name, and passes NXDOMAIN through", async () => {
    expect(await resolver.resolve4('example.com')).to.deep.equal(['93.184.216.34']);
    let code: unknown;
    await resolver.resolve4('ratings').catch((e: NodeJS.ErrnoException) => (code = e.code));
    expect(code).to.equal('ENOTFOUND');
    expect(upstream.count('ratings')).to.equal(1);
  });

  it('retries over TCP when the UDP answer is truncated, and truncates for a small UDP client', async () => {
    const viaUdp = parseMessage(await rawUdp(proxy.port, query('big.example')));
    expect(upstream.count('big.example', 'udp')).to.equal(1);
    expect(upstream.count('big.example', 'tcp')).to.equal(1);
    expect(viaUdp.header.tc, '40 A records do not fit in 512 bytes').to.equal(true);
    expect(viaUdp.answers).to.have.length(0);
    const viaTcp = await rawTcp(proxy.port, query('big.example', RR_TYPE.A, 99));
    const m = parseMessage(viaTcp);
    expect(m.header.id).to.equal(99);
    expect(m.answers).to.have.length(40);
    expect(recordValue(viaTcp, m.answers[0]!)).to.equal('198.51.100.1');
    // node's resolver follows the TC bit and gets everything.
    expect(await resolver.resolve4('big.example')).to.have.length(40);
  });

  it('caches upstream answers by TTL (injected clock), with aged TTLs', async () => {
    const first = parseMessage(await rawUdp(proxy.port, query('cached.example', RR_TYPE.A, 1)));
    expect(first.answers[0]!.ttl).to.equal(60);
    clock += 20_000;
    const bytes = await rawUdp(proxy.port, query('cached.example', RR_TYPE.A, 2));
    const second = parseMessage(bytes);
    expect(second.header.id).to.equal(2);
    expect(second.answers[0]!.ttl).to.equal(40);
    expect(recordValue(bytes, second.answers[0]!)).to.equal('192.0.2.60');
    expect(upstream.count('cached.example')).to.equal(1);
    const mixed = parseMessage(await rawUdp(proxy.port, query('CACHED.example', RR_TYPE.A, 4)));
    expect(mixed.questions[0]!.asSent, 'a cached answer echoes the asker’s case').to.equal('CACHED.example');
    expect(upstream.count('cached.example')).to.equal(1);
    clock += 41_000;
    await rawUdp(proxy.port, query('cached.example', RR_TYPE.A, 3));
    expect(upstream.count('cached.example')).to.equal(2);
  });

  it('caches NXDOMAIN for the SOA negative TTL', async () => {
    await rawUdp(proxy.port, query('nope.example'));
    await rawUdp(proxy.port, query('nope.example'));
    expect(upstream.count('nope.example')).to.equal(1);
    clock += 11_000;
    await rawUdp(proxy.port, query('nope.example'));
    expect(upstream.count('nope.example')).to.equal(2);
  });

  it('listens on every configured address with one port (IPv4 and IPv6 loopback)', async function () {
    if (!Object.values(networkInterfaces()).flat().some((i) => i?.address === '::1')) this.skip();
    const twin = new DnsProxy({ hosts: ['127.0.0.1', '::1'], port: 0, resolvConfPath: join(dir, 'resolv.conf'), upstreams: [] });
    await twin.start();
    try {
      twin.setNameTable(NAME_TABLE);
      const r6 = new Resolver({ timeout: 2000, tries: 1 });
      r6.setServers([`[::1]:${twin.port}`]);
      expect(await r6.resolve4('reviews')).to.deep.equal(['10.96.0.12']);
      const viaTcp4 = parseMessage(await rawTcp(twin.port, query('reviews')));
      expect(viaTcp4.answers).to.have.length(1);
    } finally {
      await twin.close();
    }
  });

  it('answers SERVFAIL when no upstream answers', async () => {
    const dead = new DnsProxy({ port: 0, resolvConfPath: join(dir, 'resolv.conf'), upstreams: [{ host: '127.0.0.1', port: 9 }], timeoutMs: 100 });
    await dead.start();
    try {
      const reply = parseMessage(await rawUdp(dead.port, query('example.com', RR_TYPE.A, 5)));
      expect(reply.header).to.deep.include({ id: 5, rcode: RCODE.SERVFAIL });
    } finally {
      await dead.close();
    }
  });
});
