/**
 * RFC 9110 §7.6.1: connection-specific fields are not forwarded — Connection and every field it names, plus
 * Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE (except `te: trailers`, which gRPC needs end to end)
 * and HTTP/2 pseudo-headers. Host is carried separately (`:authority`/Host is rebuilt per upstream protocol).
 */
const ALWAYS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

export function forwardableRequestHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(raw.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in raw) {
    const v = raw[name];
    if (v === undefined || name.charCodeAt(0) === 58 /* ':' */ || ALWAYS.has(name) || (listed && listed.has(name))) continue;
    if (name === 'te') {
      if (String(v).toLowerCase().split(',').some((t) => t.trim() === 'trailers')) out.te = 'trailers';
      continue;
    }
    out[name] = v;
  }
  return out;
}

/** Response headers to forward; `h2` also drops fields HTTP/2 forbids. */
export function forwardableResponseHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(raw.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in raw) {
    const v = raw[name];
    if (v === undefined || name.charCodeAt(0) === 58 || ALWAYS.has(name) || name === 'te' || (listed && listed.has(name))) continue;
    out[name] = v;
  }
  return out;
}

function connectionListed(v: string | string[] | undefined): Set<string> | null {
  if (!v) return null;
  return new Set(String(v).toLowerCase().split(',').map((s) => s.trim()).filter(Boolean));
}
