import { expect } from 'chai';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrellisError } from '@trellis/api';
import { JOIN_TOKEN_PREFIX, JoinTokens } from '../src/ca/index.js';
import { tempDir } from './ca-fixtures.js';

const BINDING = { namespace: 'shop', serviceAccount: 'billing', workloadGroup: 'billing-vms' };

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof TrellisError ? err.code : `not-trellis: ${(err as Error).message}`;
  }
  return undefined;
}

describe('ca: JoinTokens', () => {
  let dir: { path: string; cleanup(): void };
  let now: number;
  const clock = (): number => now;
  beforeEach(() => {
    dir = tempDir('trellis-tokens-');
    now = Date.parse('2026-06-01T12:00:00Z');
  });
  afterEach(() => dir.cleanup());

  it('mints a bound token that redeems once, then is refused as used', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock });
    const minted = await tokens.mint(BINDING);
    expect(minted.token.startsWith(JOIN_TOKEN_PREFIX)).to.equal(true);
    expect(minted.expiresAt).to.equal('2026-06-01T12:10:00.000Z');
    expect(tokens.check(minted.token)).to.include(BINDING);
    expect(await tokens.redeem(minted.token)).to.deep.equal({ id: minted.id, ...BINDING });
    expect(await codeOf(tokens.redeem(minted.token))).to.equal('TRELLIS_ERR_TOKEN_USED');
    expect(() => tokens.check(minted.token)).to.throw(/already used/);
  });

  it('only one of two concurrent redemptions succeeds', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock });
    const { token } = await tokens.mint(BINDING);
    const results = await Promise.allSettled([tokens.redeem(token), tokens.redeem(token), tokens.redeem(token)]);
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
  });

  it('expires on the injected clock', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock, defaultTtlSeconds: 60 });
    const a = await tokens.mint(BINDING);
    const b = await tokens.mint(BINDING, 120);
    now += 60_000;
    expect(await codeOf(tokens.redeem(a.token))).to.equal('TRELLIS_ERR_TOKEN_EXPIRED');
    now += 59_999;
    expect((await tokens.redeem(b.token)).id).to.equal(b.id);
  });

  it('revokes by id; unknown ids and tokens are reported', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock });
    const minted = await tokens.mint(BINDING);
    expect(await tokens.revoke(minted.id)).to.equal(true);
    expect(await tokens.revoke('no-such-id')).to.equal(false);
    expect(await codeOf(tokens.redeem(minted.token))).to.equal('TRELLIS_ERR_TOKEN_REVOKED');
    expect(await codeOf(tokens.redeem(`${JOIN_TOKEN_PREFIX}nope`))).to.equal('TRELLIS_ERR_TOKEN_UNKNOWN');
    expect(tokens.list()[0]).to.include({ id: minted.id, revoked: true, used: false });
  });

  it('stores only hashes, at 0600, and survives a restart', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock });
    const a = await tokens.mint(BINDING);
    const b = await tokens.mint({ ...BINDING, workloadGroup: 'other' });
    await tokens.redeem(a.token);
    const file = join(dir.path, 'tokens.json');
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    const text = readFileSync(file, 'utf8');
    for (const t of [a.token, b.token]) {
      expect(text).not.to.contain(t);
      expect(text).not.to.contain(t.slice(JOIN_TOKEN_PREFIX.length));
    }
    expect(JSON.stringify(tokens.list())).not.to.contain('sha256');
    const reopened = await JoinTokens.open({ stateDir: dir.path, clock });
    expect(await codeOf(reopened.redeem(a.token))).to.equal('TRELLIS_ERR_TOKEN_USED');
    expect((await reopened.redeem(b.token)).workloadGroup).to.equal('other');
  });

  it('refuses bad bindings, lifetimes and a corrupt store', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock });
    expect(await codeOf(tokens.mint({ ...BINDING, namespace: 'Bad NS' }))).to.equal('TRELLIS_ERR_TOKEN_BINDING');
    expect(await codeOf(tokens.mint(BINDING, 0))).to.equal('TRELLIS_ERR_TOKEN_TTL');
    expect(await codeOf(tokens.mint(BINDING, 86_401))).to.equal('TRELLIS_ERR_TOKEN_TTL');
    writeFileSync(join(dir.path, 'tokens.json'), '{"nope": true}');
    expect(await codeOf(JoinTokens.open({ stateDir: dir.path, clock }))).to.equal('TRELLIS_ERR_TOKEN_STORE');
  });

  it('forgets tokens a day after they expire', async () => {
    const tokens = await JoinTokens.open({ stateDir: dir.path, clock });
    await tokens.mint(BINDING, 60);
    now += 60_000 + 24 * 3600_000 + 1;
    await tokens.mint(BINDING);
    expect(tokens.list()).to.have.length(1);
  });
});
