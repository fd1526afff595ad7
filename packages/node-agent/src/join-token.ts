/**
 * The bundle's join token. A token is redeemed at most once: after the CA accepts it, its file is deleted and its
 * SHA-256 is recorded in the state directory (`redeemed-tokens`), so a read-only bundle or a re-copied old bundle
 * never makes the agent present it again.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { TOKEN_FILE } from './bundle.js';

export const REDEEMED_FILE = 'redeemed-tokens';

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function redeemed(stateDir: string): Set<string> {
  try {
    return new Set(readFileSync(join(stateDir, REDEEMED_FILE), 'utf8').split('\n').filter(Boolean));
  } catch {
    return new Set();
  }
}

/** The bundle's token if there is one that this host has not redeemed yet, else null. */
export function readFreshToken(bundleDir: string, stateDir: string): string | null {
  let token: string;
  try {
    token = readFileSync(join(bundleDir, TOKEN_FILE), 'utf8').trim();
  } catch {
    return null;
  }
  if (token === '' || redeemed(stateDir).has(digest(token))) return null;
  return token;
}

/** Records the token as redeemed and deletes its file. Returns a note when the file could not be deleted. */
export function markRedeemed(bundleDir: string, stateDir: string, token: string): string | undefined {
  appendFileSync(join(stateDir, REDEEMED_FILE), `${digest(token)}\n`, { mode: 0o600 });
  try {
    unlinkSync(join(bundleDir, TOKEN_FILE));
    return undefined;
  } catch (e) {
    return `could not delete the redeemed token file: ${(e as Error).message}`;
  }
}
