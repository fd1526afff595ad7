/**
 * Where the PEM files of a locally served secret live, by its SDS name (the names the control plane puts in a
 * gateway server's DownstreamTlsContext, as Istio does):
 *
 * - `file-cert:<cert path>~<key path>` and `file-root:<ca path>`: the Gateway server's `serverCertificate` /
 *   `privateKey` / `caCertificates` (Istio's file-mount form), read from those paths;
 * - `<credentialName>`: `<dir>/<credentialName>/tls.crt` + `tls.key` (a `kubernetes.io/tls` secret's keys), or
 *   `cert` + `key` (Istio's generic secret keys);
 * - `<credentialName>-cacert`: `<dir>/<credentialName>-cacert/ca.crt` (a separate CA secret) or else
 *   `<dir>/<credentialName>/ca.crt` (`cacert`), as Istio looks it up.
 *
 * `default` and `ROOTCA` are the mesh identity from the node agent and never local.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export type CredentialSource =
  | { readonly kind: 'tls_certificate'; readonly certFile: string; readonly keyFile: string }
  | { readonly kind: 'validation_context'; readonly caFile: string };

/** SDS names that always come from the node agent. */
const AGENT_SECRETS = new Set(['default', 'ROOTCA']);
const CACERT_SUFFIX = '-cacert';

/** First of `names` that exists under `dir`, else the first (so the error names the expected file). */
function pick(dir: string, names: readonly string[]): string {
  for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  return join(dir, names[0]!);
}

/**
 * The files for an SDS name, or null when the name is not served locally (no credentials directory, an agent
 * secret, or a name that cannot be a credential directory).
 */
export function credentialSource(name: string, dir: string | null): CredentialSource | null {
  if (name.startsWith('file-cert:')) {
    const rest = name.slice('file-cert:'.length);
    const i = rest.indexOf('~');
    if (i <= 0 || i === rest.length - 1) return null;
    return { kind: 'tls_certificate', certFile: rest.slice(0, i), keyFile: rest.slice(i + 1) };
  }
  if (name.startsWith('file-root:')) {
    const caFile = name.slice('file-root:'.length);
    return caFile === '' ? null : { kind: 'validation_context', caFile };
  }
  if (dir === null || AGENT_SECRETS.has(name) || name.includes('/') || name.startsWith('.') || name.includes(':')) return null;
  if (name.endsWith(CACERT_SUFFIX) && name.length > CACERT_SUFFIX.length) {
    const own = join(dir, name);
    const base = join(dir, name.slice(0, -CACERT_SUFFIX.length));
    return { kind: 'validation_context', caFile: existsSync(own) ? pick(own, ['ca.crt', 'cacert']) : pick(base, ['ca.crt', 'cacert']) };
  }
  const d = join(dir, name);
  if (!existsSync(join(d, 'tls.crt')) && existsSync(join(d, 'cert'))) return { kind: 'tls_certificate', certFile: join(d, 'cert'), keyFile: join(d, 'key') };
  return { kind: 'tls_certificate', certFile: join(d, 'tls.crt'), keyFile: join(d, 'tls.key') };
}
