/** Small HTTP probes the demo uses to wait for readiness and to check the routing it advertises. */
import http from 'node:http';

export interface Reply { readonly status: number; readonly body: string }

export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** Thrown from an `eventually` probe to give up at once (a process it waits for has exited). */
export class Fatal extends Error {}

/** Polls `fn` until it returns a truthy value; throws `what` with the last error after `timeoutMs`, or a `Fatal` at once. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (signal?.aborted) throw new Error('interrupted');
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if (err instanceof Fatal) throw err;
      last = (err as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last ? ` (last: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface ProductPage {
  readonly service: string;
  readonly reviews?: { readonly version?: string; readonly error?: string };
  readonly details?: { readonly version?: string; readonly error?: string };
}

/** The reviews version a product page answer shows, or null when the page is not (yet) a full answer. */
export function reviewsVersion(reply: Reply): string | null {
  if (reply.status !== 200) return null;
  try {
    const page = JSON.parse(reply.body) as ProductPage;
    if (page.service !== 'productpage' || page.details?.error || page.reviews?.error) return null;
    return page.reviews?.version ?? null;
  } catch {
    return null;
  }
}

/**
 * The routing the demo advertises: without a header reviews v1, with `end-user: jason` reviews v2. Resolves when a
 * request of each kind shows it (the first requests may race the config push).
 */
export async function checkRouting(productPageUrl: string, timeoutMs: number, signal?: AbortSignal): Promise<{ anonymous: string; jason: string }> {
  const anonymous = await eventually(`GET ${productPageUrl} to show reviews v1`, async () => {
    const v = reviewsVersion(await get(productPageUrl));
    return v === 'v1' ? v : false;
  }, timeoutMs, signal);
  const jason = await eventually(`GET ${productPageUrl} with end-user: jason to show reviews v2`, async () => {
    const v = reviewsVersion(await get(productPageUrl, { 'end-user': 'jason' }));
    return v === 'v2' ? v : false;
  }, timeoutMs, signal);
  return { anonymous, jason };
}
