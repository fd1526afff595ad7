/**
 * Protocol detection on the first bytes of a connection: a TLS ClientHello (with SNI and ALPN), the HTTP/2
 * connection preface, or an HTTP/1.x request line. The bytes are put back (`unshift`) for whoever reads next.
 */
import type { Socket } from 'node:net';

export interface Detected {
  readonly transportProtocol: 'tls' | 'raw_buffer';
  readonly serverName: string | null;
  /** From ALPN for TLS; for plaintext 'http/1.1' / 'http/1.0' / 'h2c' as Envoy's http_inspector reports them. */
  readonly applicationProtocols: readonly string[];
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const REQUEST_LINE = /^[A-Z]{3,10} [^\s]+ HTTP\/1\.([01])\r?\n/;

/**
 * Waits up to `timeoutMs` for the first bytes (more reads while a ClientHello or a request line is incomplete) and
 * puts them back. Resolves with an empty buffer on timeout (server-first protocols) or EOF.
 *
 * Reads in paused mode (`'readable'` + `read()`): at EOF `'readable'` fires with nothing buffered and `'end'` waits
 * for the next `read()`, so bytes a client sent just before closing its side (`echo ping | nc`) can still be put
 * back, and whoever reads next gets them and then the end.
 */
export function peek(socket: Socket, timeoutMs: number, maxBytes = 16_384): Promise<Buffer> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', done);
      socket.pause();
      if (buf.length) socket.unshift(buf);
      resolve(buf);
    };
    const onReadable = () => {
      if (socket.readableLength === 0) { done(); return; } // EOF: 'end' is held until someone reads again
      const chunk = socket.read() as Buffer | null;
      if (chunk) buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (buf.length >= maxBytes || isComplete(buf)) done();
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('readable', onReadable);
    socket.once('close', done);
  });
}

function isComplete(b: Buffer): boolean {
  if (b[0] === 0x16) {
    if (b.length < 5) return false;
    return b.length >= 5 + b.readUInt16BE(3);
  }
  if (b[0] === 0x50 && H2_PREFACE.subarray(0, Math.min(b.length, H2_PREFACE.length)).equals(b.subarray(0, Math.min(b.length, H2_PREFACE.length)))) return b.length >= H2_PREFACE.length;
  return b.includes(0x0a) || b.length > 8192;
}

export function detect(b: Buffer): Detected {
  if (b.length >= 5 && b[0] === 0x16 && b[1] === 0x03) {
    const hello = parseClientHello(b);
    return { transportProtocol: 'tls', serverName: hello?.serverName ?? null, applicationProtocols: hello?.alpn ?? [] };
  }
  if (b.length >= H2_PREFACE.length && b.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) return { transportProtocol: 'raw_buffer', serverName: null, applicationProtocols: ['h2c'] };
  const m = REQUEST_LINE.exec(b.subarray(0, 8192).toString('latin1'));
  if (m) return { transportProtocol: 'raw_buffer', serverName: null, applicationProtocols: [m[1] === '0' ? 'http/1.0' : 'http/1.1'] };
  return { transportProtocol: 'raw_buffer', serverName: null, applicationProtocols: [] };
}

/** Parses SNI and ALPN out of a TLS record holding a ClientHello; null when malformed or truncated. */
export function parseClientHello(b: Buffer): { serverName: string | null; alpn: string[] } | null {
  try {
    let p = 5;
    if (b[p] !== 0x01) return null;
    p += 4; // handshake type + length
    p += 2 + 32; // version + random
    p += 1 + b[p]; // session id
    p += 2 + b.readUInt16BE(p); // cipher suites
    p += 1 + b[p]; // compression
    if (p + 2 > b.length) return { serverName: null, alpn: [] };
    const extEnd = p + 2 + b.readUInt16BE(p);
    p += 2;
    let serverName: string | null = null;
    const alpn: string[] = [];
    while (p + 4 <= extEnd && p + 4 <= b.length) {
      const type = b.readUInt16BE(p);
      const len = b.readUInt16BE(p + 2);
      const body = b.subarray(p + 4, p + 4 + len);
      if (type === 0 && body.length >= 5 && body[2] === 0) serverName = body.subarray(5, 5 + body.readUInt16BE(3)).toString('latin1');
      if (type === 16 && body.length >= 2) {
        let q = 2;
        while (q < body.length) { const l = body[q]; alpn.push(body.subarray(q + 1, q + 1 + l).toString('latin1')); q += 1 + l; }
      }
      p += 4 + len;
    }
    return { serverName, alpn };
  } catch {
    return null;
  }
}
