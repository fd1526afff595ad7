/**
 * Child process for control-grpc-xds.test.ts: a proxyless gRPC client (@grpc/grpc-js-xds) on ONE channel to
 * `xds:///TARGET`. grpc-js-xds reads its bootstrap (GRPC_XDS_BOOTSTRAP_CONFIG) at `register()`, so it runs in its
 * own process. Commands arrive as JSON lines on stdin: `{"id":1,"n":400,"headers":{"x-canary":"yes"}}`; each is
 * answered on stdout with `{"id":1,"counts":{"a":320,"b":80},"errors":0,"lastError":"…"}`.
 */
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import * as protoLoader from '@grpc/proto-loader';

xds.register();
const def = protoLoader.loadSync(join(dirname(fileURLToPath(import.meta.url)), 'echo.proto'), { keepCase: true });
const pkg = grpc.loadPackageDefinition(def) as unknown as { trellis: { test: { Echo: grpc.ServiceClientConstructor } } };
const target = process.argv[2];
const client = new pkg.trellis.test.Echo(`xds:///${target}`, grpc.credentials.createInsecure());

interface Cmd { id: number; n: number; headers?: Record<string, string> }

function call(headers: Record<string, string>): Promise<string> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve, reject) => {
    (client as unknown as { Say(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { from: string }) => void): void })
      .Say({ text: 'hi' }, md, { deadline: Date.now() + 3000 }, (err, reply) => (err ? reject(err) : resolve(reply!.from)));
  });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line) as Cmd;
  void (async () => {
    const counts: Record<string, number> = {};
    let errors = 0;
    let lastError: string | undefined;
    const batch = 20;
    for (let done = 0; done < cmd.n; done += batch) {
      const results = await Promise.allSettled(Array.from({ length: Math.min(batch, cmd.n - done) }, () => call(cmd.headers ?? {})));
      for (const r of results) {
        if (r.status === 'fulfilled') counts[r.value] = (counts[r.value] ?? 0) + 1;
        else { errors++; lastError = (r.reason as Error).message; }
      }
    }
    process.stdout.write(JSON.stringify({ id: cmd.id, counts, errors, lastError }) + '\n');
  })();
});
rl.on('close', () => { client.close(); process.exit(0); });
