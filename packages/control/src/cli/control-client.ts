/**
 * Reading the control plane's debug endpoints for `trellisctl` (proxy-status, proxy-config, registry status).
 */
import { TrellisError } from '@trellis/model';

export const DEFAULT_CONTROL_URL = 'http://127.0.0.1:15014';

/** GETs `path` from the control plane and returns the parsed JSON; errors carry the server's `{code, message}`. */
export async function getJson<T>(control: string, path: string): Promise<T> {
  const url = new URL(path, control.endsWith('/') ? control : `${control}/`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (cause) {
    const reason = (cause as { cause?: { code?: string } }).cause?.code ?? (cause as Error).message;
    throw new TrellisError('TRELLIS_ERR_CONTROL_UNREACHABLE', `cannot reach the control plane at ${control} (${reason})`, { cause });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new TrellisError('TRELLIS_ERR_CONTROL_RESPONSE', `${url.href}: HTTP ${res.status}, not JSON`);
  }
  if (!res.ok) {
    const e = body as { code?: string; message?: string };
    throw new TrellisError('TRELLIS_ERR_CONTROL_RESPONSE', `${url.pathname}: ${e.message ?? `HTTP ${res.status}`}${e.code ? ` (${e.code})` : ''}`);
  }
  return body as T;
}

/** Renders rows as a left-aligned table with a header, columns separated by at least two spaces (istioctl's look). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] + 2))).join('').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
