#!/usr/bin/env node
/**
 * A tiny Bookinfo-style sample app for `npm run demo`: one file, the role chosen by argument.
 *
 *   node demo/app/bookinfo.mjs <productpage|details|reviews|ratings> [--version v1] [--port 9080] [--host 0.0.0.0]
 *
 * Every answer is JSON naming the service and version that produced it, so one request to the product page shows
 * which version of reviews (and ratings) the mesh routed to:
 *
 * - productpage `GET /productpage` calls details `GET /details/0` and reviews `GET /reviews/0`;
 * - reviews v2 and v3 call ratings `GET /ratings/0` (v1 shows no stars);
 * - the `end-user`, `x-request-id` and B3/W3C trace headers of the incoming request are forwarded on every call,
 *   which is what lets a VirtualService route `end-user: jason` to reviews v2.
 *
 * Calls go to `http://<service>.<namespace>.svc.cluster.local:9080` — plain names, as an unmodified app on a mesh
 * host would use (DNS proxy + capture do the rest). Without capture, `TRELLIS_DEMO_VIA=HOST:PORT` sends every call
 * to that address instead (the demo's ingress gateway on loopback) with the service's name as the Host header, so
 * the gateway's routes pick the destination.
 *
 * Plain JavaScript (no build step) so that six of them start in a blink. `GET /health` answers 200 for probes.
 */
import http from 'node:http';

const argv = process.argv.slice(2);
const role = argv[0];
const flag = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const version = flag('version', 'v1');
const port = Number(flag('port', '9080'));
const host = flag('host', '0.0.0.0');
const namespace = process.env.TRELLIS_DEMO_NAMESPACE || 'default';
const via = process.env.TRELLIS_DEMO_VIA || '';
const FORWARDED = ['end-user', 'x-request-id', 'traceparent', 'tracestate', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled'];

if (!['productpage', 'details', 'reviews', 'ratings'].includes(role) || !Number.isInteger(port)) {
  process.stderr.write('usage: bookinfo.mjs <productpage|details|reviews|ratings> [--version v1] [--port 9080] [--host 0.0.0.0]\n');
  process.exit(2);
}

/** GET http://<service>.<ns>.svc.cluster.local:9080<path>, or through TRELLIS_DEMO_VIA; resolves with the parsed JSON or an error object. */
function call(service, path, incoming) {
  const fqdn = `${service}.${namespace}.svc.cluster.local`;
  const headers = {};
  for (const h of FORWARDED) if (typeof incoming.headers[h] === 'string') headers[h] = incoming.headers[h];
  let target;
  if (via) {
    const [vh, vp] = via.split(':');
    target = { host: vh, port: Number(vp), path, headers: { ...headers, host: fqdn } };
  } else {
    target = { host: fqdn, port: 9080, path, headers };
  }
  return new Promise((resolve) => {
    const req = http.request({ ...target, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : { error: `${service}: HTTP ${res.statusCode}`, body: body.slice(0, 200) });
        } catch {
          resolve({ error: `${service}: not JSON`, body: body.slice(0, 200) });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 5 s')));
    req.on('error', (err) => resolve({ error: `${service}: ${err.message}` }));
    req.end();
  });
}

async function answer(req) {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/health') return [200, { status: 'ok' }];
  const who = { service: role, version };
  switch (role) {
    case 'productpage':
      if (url.pathname !== '/productpage' && url.pathname !== '/') break;
      {
        const [details, reviews] = await Promise.all([call('details', '/details/0', req), call('reviews', '/reviews/0', req)]);
        return [200, { ...who, user: req.headers['end-user'] ?? null, details, reviews }];
      }
    case 'details':
      if (!url.pathname.startsWith('/details')) break;
      return [200, { ...who, book: { id: 0, title: 'The Comedy of Errors', author: 'William Shakespeare', pages: 200 } }];
    case 'reviews':
      if (!url.pathname.startsWith('/reviews')) break;
      if (version === 'v1') return [200, { ...who, stars: 'none' }];
      return [200, { ...who, stars: version === 'v2' ? 'black' : 'red', ratings: await call('ratings', '/ratings/0', req) }];
    case 'ratings':
      if (!url.pathname.startsWith('/ratings')) break;
      return [200, { ...who, ratings: { Reviewer1: 5, Reviewer2: 4 } }];
  }
  return [404, { ...who, error: `no such path ${url.pathname}` }];
}

const server = http.createServer((req, res) => {
  answer(req).then(([status, body]) => {
    const text = JSON.stringify(body) + '\n';
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }, (err) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ service: role, version, error: String(err) }) + '\n');
  });
});
server.listen(port, host, () => {
  process.stderr.write(`${JSON.stringify({ msg: 'bookinfo listening', role, version, address: `${host}:${server.address().port}` })}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { server.close(); server.closeAllConnections(); process.exit(0); });
