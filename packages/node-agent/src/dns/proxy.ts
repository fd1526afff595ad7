/**
 * The agent's DNS proxy (default 127.0.0.1:15053, UDP and TCP on the same port), where the capture rules send
 * every process's DNS.
 *
 * - Mesh names (see name-table.ts) are answered from the name table: A and AAAA with the service's VIPs (TTL 30 s,
 *   authoritative); a type the name has no record of gets NOERROR with no answers (NODATA), as a real server does.
 * - Everything else, and everything until the first name table arrives, is forwarded to the upstream resolvers of
 *   resolv.conf, in order, the next one tried when one fails: over UDP for UDP clients (retried over TCP when the
 *   answer is truncated) and over TCP for TCP clients. An answer too big for a UDP client (512 bytes, or its EDNS
 *   buffer size) goes back truncated (TC) so the client retries over TCP. When every upstream fails: SERVFAIL.
 * - Upstream answers are cached by TTL (cache.ts) with the injected clock.
 *
 * Each query publishes `{ name, type, answeredBy, rcode }` on the `trellis:agent:dns` diagnostics channel
 * (`answeredBy`: mesh | cache | upstream | error); nothing is logged per query.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { channel } from 'node:diagnostics_channel';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { DnsCache } from './cache.js';
import { buildNameIndex, type MeshAddresses, type NameTableInput } from './name-table.js';
import { readResolvConf, type ResolvConf, type Upstream } from './resolv-conf.js';
import { exchangeTcp, exchangeUdp } from './upstream.js';
import { encodeMessage, parseHeader, parseMessage, RCODE, RR_CLASS_IN, RR_TYPE, type DnsQuestion, type RecordToWrite } from './wire.js';
import { silentLogger, type Logger } from '../observer.js';

export const DNS_CHANNEL = 'trellis:agent:dns';

export interface DnsQueryEvent {
  readonly name: string;
  readonly type: number;
  readonly answeredBy: 'mesh' | 'cache' | 'upstream' | 'error';
  readonly rcode: number;
}

export interface DnsProxyOptions {
  /**
   * Bind addresses, default `['127.0.0.1']`. The capture rules REDIRECT to 127.0.0.1 (and ::1 for IPv6), and the
   * answers must leave from that address to be un-NATed: never bind 0.0.0.0. Add `::1` when IPv6 capture is on.
   */
  readonly hosts?: readonly string[];
  /** Port for both UDP and TCP, default 15053; 0 picks a free port for both. */
  readonly port?: number;
  /** The VM's namespace: bare short names resolve for services in it. Default `default`. */
  readonly namespace?: string;
  /** Where the upstream resolvers and the search list come from, default /etc/resolv.conf (read at start). */
  readonly resolvConfPath?: string;
  /** Upstream resolvers instead of resolv.conf's nameservers (the search list still comes from resolv.conf). */
  readonly upstreams?: readonly Upstream[];
  /** Per-upstream timeout, default 2000 ms. */
  readonly timeoutMs?: number;
  /** TTL of mesh answers, default 30 s (Istio's). */
  readonly meshTtlSeconds?: number;
  /** Clock for the cache, ms; default Date.now. */
  readonly now?: () => number;
  readonly maxCacheEntries?: number;
  readonly logger?: Logger;
}

const events = channel(DNS_CHANNEL);

export class DnsProxy {
  readonly #hosts: readonly string[];
  readonly #port: number;
  readonly #namespace: string;
  readonly #resolvConfPath: string;
  readonly #upstreamOverride: readonly Upstream[] | undefined;
  readonly #timeoutMs: number;
  readonly #meshTtl: number;
  readonly #cache: DnsCache;
  readonly #logger: Logger;
  #conf: ResolvConf = { nameservers: [], search: [] };
  #table: NameTableInput | undefined;
  #index: ReadonlyMap<string, MeshAddresses> | undefined;
  #udp: UdpSocket[] = [];
  #tcp: Server[] = [];
  readonly #tcpClients = new Set<Socket>();

  constructor(options: DnsProxyOptions = {}) {
    this.#hosts = options.hosts ?? ['127.0.0.1'];
    this.#port = options.port ?? 15053;
    this.#namespace = options.namespace ?? 'default';
    this.#resolvConfPath = options.resolvConfPath ?? '/etc/resolv.conf';
    this.#upstreamOverride = options.upstreams;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#meshTtl = options.meshTtlSeconds ?? 30;
    this.#cache = new DnsCache({ now: options.now ?? Date.now, ...(options.maxCacheEntries !== undefined ? { maxEntries: options.maxCacheEntries } : {}) });
    this.#logger = options.logger ?? silentLogger;
  }

  /** The bound port (UDP and TCP), once started. */
  get port(): number {
    const a = this.#tcp[0]?.address();
    return a !== null && typeof a === 'object' ? a.port : this.#port;
  }

  /** The upstream resolvers in use. */
  get upstreams(): readonly Upstream[] {
    return this.#upstreamOverride ?? this.#conf.nameservers;
  }

  /** Whether a name table has arrived (until then every query is forwarded). */
  get hasNameTable(): boolean {
    return this.#index !== undefined;
  }

  /** Replaces the name table (an NDS `NameTable` as decoded); takes effect for the next query. */
  setNameTable(table: NameTableInput): void {
    this.#table = table;
    this.#index = buildNameIndex(table, this.#namespace, this.#conf.search);
  }

  /** Reads resolv.conf, binds UDP and TCP, and closes when `signal` aborts. Resolves once listening. */
  async start(signal?: AbortSignal): Promise<void> {
    this.#conf = readResolvConf(this.#resolvConfPath);
    if (this.#table !== undefined) this.setNameTable(this.#table);
    if (this.upstreams.length === 0) this.#logger.warn('DNS proxy has no upstream resolvers; non-mesh names will get SERVFAIL', { resolvConf: this.#resolvConfPath });
    // With port 0 the first TCP listener picks the port and every other socket must get the same one; retry if taken.
    for (let attempt = 0; ; attempt++) {
      let port = this.#port;
      try {
        for (const host of this.#hosts) {
          const tcp = await this.#listenTcp(host, port);
          this.#tcp.push(tcp);
          port = (tcp.address() as { port: number }).port;
          this.#udp.push(await this.#bindUdp(host, port));
        }
        break;
      } catch (err) {
        await this.close();
        if (this.#port !== 0 || attempt >= 10) throw err;
      }
    }
    this.#logger.info('DNS proxy listening', { addresses: this.#hosts.map((h) => `${h}:${this.port}`), upstreams: this.upstreams.map((u) => `${u.host}:${u.port}`), search: this.#conf.search });
    if (signal?.aborted) await this.close();
    else signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** Stops both listeners and drops open TCP connections. */
  async close(): Promise<void> {
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = [];
    this.#tcp = [];
    for (const c of this.#tcpClients) c.destroy();
    await Promise.all([...udp.map((u) => new Promise<void>((r) => u.close(() => r()))), ...tcp.map((t) => new Promise<void>((r) => t.close(() => r())))]);
  }

  #listenTcp(host: string, port: number): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.#serveTcp(socket));
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#logger.error('DNS TCP listener error', { error: err.message }));
        resolve(server);
      });
    });
  }

  #bindUdp(host: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const socket = isIPv6(host) ? createSocket({ type: 'udp6', ipv6Only: true }) : createSocket('udp4');
      socket.once('error', reject);
      socket.on('message', (msg, rinfo) => {
        void this.handle(msg, 'udp').then((reply) => {
          if (reply !== undefined && this.#udp.includes(socket)) socket.send(reply, rinfo.port, rinfo.address);
        });
      });
      socket.bind(port, host, () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.#logger.error('DNS UDP socket error', { error: err.message }));
        resolve(socket);
      });
    });
  }

  #serveTcp(socket: Socket): void {
    this.#tcpClients.add(socket);
    socket.on('close', () => this.#tcpClients.delete(socket));
    socket.on('error', () => undefined);
    socket.setTimeout(30_000, () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + query.length);
        void this.handle(Buffer.from(query), 'tcp').then((reply) => {
          if (reply === undefined || socket.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length, 0);
          socket.write(Buffer.concat([len, reply]));
        });
      }
    });
  }

  /** Answers one query (exposed for tests and for embedding); undefined means drop it. Never rejects. */
  async handle(query: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let msg;
    try {
      msg = parseMessage(query);
    } catch {
      if (query.length < 12) return undefined;
      const h = parseHeader(query);
      return encodeMessage({ id: h.id, qr: true, rd: h.rd, ra: true, rcode: RCODE.FORMERR, questions: [] });
    }
    const { header } = msg;
    if (header.qr) return undefined;
    const q = msg.questions[0];
    if (header.opcode !== 0 || msg.questions.length !== 1 || q === undefined) {
      return encodeMessage({ id: header.id, qr: true, opcode: header.opcode, rd: header.rd, ra: true, rcode: header.opcode !== 0 ? RCODE.NOTIMP : RCODE.FORMERR, questions: msg.questions });
    }
    const opt = msg.additionals.find((r) => r.type === RR_TYPE.OPT);
    const maxUdp = transport === 'tcp' ? 65535 : Math.max(512, opt?.class ?? 512);

    const mesh = q.class === RR_CLASS_IN ? this.#index?.get(q.name) : undefined;
    if (mesh !== undefined) {
      const reply = this.#meshAnswer(header.id, header.rd, q, mesh);
      return this.#fit(this.#publish(q, 'mesh', reply), maxUdp);
    }
    const cached = this.#cache.get(q, header.id);
    if (cached !== undefined) return this.#fit(this.#publish(q, 'cache', cached), maxUdp);

    const upstreamId = randomInt(0, 0x10000);
    const forwarded = Buffer.from(query);
    forwarded.writeUInt16BE(upstreamId, 0);
    for (const u of this.upstreams) {
      try {
        let reply = transport === 'tcp' ? await exchangeTcp(u, forwarded, this.#timeoutMs) : await exchangeUdp(u, forwarded, this.#timeoutMs);
        if (parseHeader(reply).tc && transport === 'udp') reply = await exchangeTcp(u, forwarded, this.#timeoutMs);
        if (reply.readUInt16BE(0) !== upstreamId) continue;
        const out = Buffer.from(reply);
        out.writeUInt16BE(header.id, 0);
        try {
          this.#cache.put(q, out);
        } catch {
          // an answer the codec cannot read is passed on but not cached
        }
        return this.#fit(this.#publish(q, 'upstream', out), maxUdp);
      } catch {
        // try the next upstream
      }
    }
    const fail = encodeMessage({ id: header.id, qr: true, rd: header.rd, ra: true, rcode: RCODE.SERVFAIL, questions: [q] });
    return this.#publish(q, 'error', fail);
  }

  #meshAnswer(id: number, rd: boolean, q: DnsQuestion, mesh: MeshAddresses): Buffer {
    const answers: RecordToWrite[] = [];
    const name = q.asSent ?? q.name;
    if (q.type === RR_TYPE.A || q.type === RR_TYPE.ANY) for (const ip of mesh.v4) answers.push({ name, type: RR_TYPE.A, ttl: this.#meshTtl, data: ip });
    if (q.type === RR_TYPE.AAAA || q.type === RR_TYPE.ANY) for (const ip of mesh.v6) answers.push({ name, type: RR_TYPE.AAAA, ttl: this.#meshTtl, data: ip });
    return encodeMessage({ id, qr: true, aa: true, rd, ra: true, rcode: RCODE.NOERROR, questions: [q], answers });
  }

  /** A reply too big for the client's UDP buffer becomes header + question with TC set. */
  #fit(reply: Buffer, max: number): Buffer {
    if (reply.length <= max) return reply;
    const m = parseMessage(reply);
    const h = m.header;
    return encodeMessage({ id: h.id, qr: true, aa: h.aa, tc: true, rd: h.rd, ra: h.ra, rcode: h.rcode, questions: m.questions });
  }

  #publish(q: DnsQuestion, answeredBy: DnsQueryEvent['answeredBy'], reply: Buffer): Buffer {
    if (events.hasSubscribers) events.publish({ name: q.name, type: q.type, answeredBy, rcode: reply.length >= 4 ? reply[3]! & 0xf : RCODE.SERVFAIL } satisfies DnsQueryEvent);
    return reply;
  }
}
