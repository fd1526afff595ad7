import { expect } from 'chai';
import { parseDurationMs, resolveSettings } from '../src/config/settings.js';

describe('settings: webhook, CA and certificate lifetime flags', () => {
  it('defaults: webhook off, CA in the state dir, 24 h workload certificates, at most 7 days', () => {
    const s = resolveSettings({}, {});
    expect(s.listenWebhook).to.equal(undefined);
    expect(s.caDir).to.equal(undefined);
    expect(s.webhookDnsNames).to.deep.equal([]);
    expect([s.workloadCertTtlSeconds, s.maxWorkloadCertTtlSeconds]).to.deep.equal([86_400, 604_800]);
  });

  it('reads flags and environment variables', () => {
    const s = resolveSettings({ listenWebhook: '127.0.0.1:0', caDir: '/etc/cacerts', workloadCertTtl: '90m', webhookDnsNames: 'a.ns.svc, b' }, { TRELLIS_MAX_WORKLOAD_CERT_TTL: '2d', TRELLIS_WEBHOOK_CERT: '/c', TRELLIS_WEBHOOK_KEY: '/k' });
    expect(s.listenWebhook).to.deep.equal({ host: '127.0.0.1', port: 0 });
    expect(s.caDir).to.equal('/etc/cacerts');
    expect([s.workloadCertTtlSeconds, s.maxWorkloadCertTtlSeconds]).to.deep.equal([5400, 172_800]);
    expect([s.webhookCertFile, s.webhookKeyFile]).to.deep.equal(['/c', '/k']);
    expect(s.webhookDnsNames).to.deep.equal(['a.ns.svc', 'b']);
    expect(parseDurationMs('1.5h', 'x')).to.equal(5_400_000);
  });

  it('refuses inconsistent or malformed values with one line naming the flag', () => {
    const bad: [Record<string, string>, string][] = [
      [{ workloadCertTtl: '8d' }, '--max-workload-cert-ttl 7d is shorter than --workload-cert-ttl 8d'],
      [{ workloadCertTtl: '500ms' }, '--workload-cert-ttl "500ms": must be at least 1s'],
      [{ maxWorkloadCertTtl: 'a week' }, '--max-workload-cert-ttl "a week": expected a duration like 100ms, 1s, 2m, 24h, 7d'],
      [{ webhookCert: '/c' }, '--webhook-cert and --webhook-key go together: --webhook-key is missing'],
      [{ listenWebhook: 'nowhere' }, '--listen-webhook "nowhere": expected HOST:PORT (port 0-65535) or off'],
    ];
    for (const [flags, message] of bad) expect(() => resolveSettings(flags, {}), message).to.throw(message).with.property('code', 'TRELLIS_ERR_CONFIG');
  });
});
