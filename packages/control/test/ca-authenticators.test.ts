import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { TrellisError } from '@trellis/api';
import {
  bearerToken, CertificateAuthority, JoinTokens, joinTokenAuthenticator, peerCertificateAuthenticator, type AuthenticatedCall,
} from '../src/ca/index.js';
import { buildCsr, keyPool, tempDir } from './ca-fixtures.js';

function fakeCall(opts: { authorization?: string; peerPem?: string }): AuthenticatedCall {
  const md = new grpc.Metadata();
  if (opts.authorization) md.set('authorization', opts.authorization);
  const raw = opts.peerPem ? new X509Certificate(opts.peerPem).raw : undefined;
  return {
    metadata: md,
    getPeer: () => 'ipv4:127.0.0.1:1',
    getAuthContext: () => (raw ? { transportSecurityType: 'ssl', sslPeerCertificate: { raw } as never } : {}),
  };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof TrellisError ? `${err.code}: ${err.message}` : `other: ${(err as Error).message}`;
  }
  return 'accepted';
}

describe('ca: authenticators', () => {
  const dirs: Array<{ cleanup(): void }> = [];
  let ca: CertificateAuthority;
  let other: CertificateAuthority;
  let foreignTd: CertificateAuthority;
  let now = Date.now();
  before(async () => {
    const mk = async (td: string): Promise<CertificateAuthority> => {
      const d = tempDir();
      dirs.push(d);
      return CertificateAuthority.open({ stateDir: d.path, trustDomain: td, keyBits: 2048 });
    };
    ca = await mk('cluster.local');
    other = await mk('cluster.local');
    foreignTd = await mk('other.example');
  });
  after(() => dirs.forEach((d) => d.cleanup()));

  const csr = (): string => buildCsr({ key: keyPool().p256[0] });
  const who = { namespace: 'ns1', serviceAccount: 'sa1' };

  it('mTLS: identity from the peer certificate issued by this CA', async () => {
    now = Date.now();
    const auth = peerCertificateAuthenticator(ca, () => now);
    const id = await auth.authenticate(fakeCall({ peerPem: ca.sign(csr(), who).certChain[0] }));
    expect(id).to.include({ namespace: 'ns1', serviceAccount: 'sa1', via: 'mtls' });
    expect(await auth.authenticate(fakeCall({}))).to.equal(null);
  });

  it('mTLS: refuses certificates from another CA, another trust domain, expired ones, and non-workload ones', async () => {
    const auth = peerCertificateAuthenticator(ca, () => now);
    expect(await refusal(auth.authenticate(fakeCall({ peerPem: other.sign(csr(), who).certChain[0] })))).to.match(/not issued by this mesh CA/);
    expect(await refusal(peerCertificateAuthenticator(foreignTd).authenticate(fakeCall({ peerPem: foreignTd.sign(csr(), who).certChain[0] }))))
      .to.equal('accepted');
    const crossTd = peerCertificateAuthenticator(ca);
    expect(await refusal(crossTd.authenticate(fakeCall({ peerPem: foreignTd.sign(csr(), who).certChain[0] })))).to.match(/not issued|trust domain/);
    now = Date.now();
    const short = ca.sign(csr(), who, 10);
    now += 11_000;
    expect(await refusal(auth.authenticate(fakeCall({ peerPem: short.certChain[0] })))).to.match(/not valid now/);
    now = Date.now();
    const serving = ca.issueServing(['localhost'], [], 600);
    expect(await refusal(auth.authenticate(fakeCall({ peerPem: serving.certChainPem })))).to.match(/no spiffe/);
    expect(await refusal(auth.authenticate(fakeCall({ peerPem: ca.rootCertPem() })))).to.match(/CA certificate/);
  });

  it('join token: only Bearer trellis-jt.* tokens are claimed; the token is spent on commit', async () => {
    const d = tempDir();
    dirs.push(d);
    const tokens = await JoinTokens.open({ stateDir: d.path });
    const auth = joinTokenAuthenticator(tokens);
    expect(await auth.authenticate(fakeCall({}))).to.equal(null);
    expect(await auth.authenticate(fakeCall({ authorization: 'Bearer eyJhbGciOi.x.y' }))).to.equal(null);
    expect(bearerToken(fakeCall({ authorization: 'bearer   abc ' }))).to.equal('abc');
    const { token } = await tokens.mint({ namespace: 'ns1', serviceAccount: 'sa1', workloadGroup: 'g' });
    const id = await auth.authenticate(fakeCall({ authorization: `Bearer ${token}` }));
    expect(id).to.include({ namespace: 'ns1', serviceAccount: 'sa1', via: 'join-token' });
    expect(tokens.list()[0].used).to.equal(false);
    await id?.commit?.();
    expect(tokens.list()[0].used).to.equal(true);
    expect(await refusal(auth.authenticate(fakeCall({ authorization: `Bearer ${token}` })))).to.match(/^TRELLIS_ERR_TOKEN_USED/);
  });
});
