/**
 * The VM bundle written by `trellisctl vm configure` (docs/vm-onboarding.md):
 *
 *   mesh.yaml      flat `key: value` mesh settings (a strict subset of YAML; values may be JSON-quoted strings)
 *   root-cert.pem  the trust bundle (one or more roots) used to verify the control plane and served as ROOTCA
 *   token          a single-use join token (0600), present only until it is redeemed
 *   agent.env      TRELLIS_* environment for the agent's systemd unit (not read by the agent itself)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrellisError } from '@trellis/api';
import { parseHostPort } from './options.js';

export interface MeshSettings {
  /** `HOST:PORT` of the control plane's TLS gRPC port (xDS and CSR service). */
  readonly xdsAddress: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workloadGroup: string;
  readonly clusterId: string;
  readonly network: string;
}

export interface Bundle {
  readonly dir: string;
  readonly mesh: MeshSettings;
  /** PEM of every trusted root, concatenated. */
  readonly rootCertsPem: string;
}

export const MESH_FILE = 'mesh.yaml';
export const ROOT_CERT_FILE = 'root-cert.pem';
export const TOKEN_FILE = 'token';

const REQUIRED = ['xdsAddress', 'trustDomain', 'namespace', 'serviceAccount'] as const;
const OPTIONAL = ['workloadGroup', 'clusterId', 'network'] as const;
const HEADER = { apiVersion: 'trellis.dev/v1alpha1', kind: 'VmMesh' } as const;
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * Parses mesh.yaml. Every violation is collected and reported at once, each as `mesh.yaml:LINE: reason` or
 * `mesh.yaml: field: reason`.
 */
export function parseMeshSettings(text: string, file = MESH_FILE): MeshSettings {
  const errors: string[] = [];
  const values: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\s+|\s+$/g, '');
    if (line === '' || line.startsWith('#') || line === '---') return;
    const m = /^([A-Za-z][A-Za-z0-9]*):\s*(.*)$/.exec(line);
    if (!m) return void errors.push(`${file}:${i + 1}: expected "key: value"`);
    const [, key, rawValue] = m as unknown as [string, string, string];
    let value = rawValue;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        return void errors.push(`${file}:${i + 1}: ${key}: bad quoted string`);
      }
    } else if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) {
      value = value.slice(1, -1).replace(/''/g, "'");
    }
    if (key in values) errors.push(`${file}:${i + 1}: ${key}: duplicate key`);
    values[key] = value;
  });
  for (const [key, expected] of Object.entries(HEADER)) {
    if (values[key] !== undefined && values[key] !== expected) errors.push(`${file}: ${key}: must be ${expected}`);
  }
  const known = new Set<string>([...REQUIRED, ...OPTIONAL, ...Object.keys(HEADER)]);
  for (const key of Object.keys(values)) if (!known.has(key)) errors.push(`${file}: ${key}: unknown key`);
  for (const key of REQUIRED) if (!values[key]) errors.push(`${file}: ${key}: required`);
  if (values.xdsAddress) {
    try {
      parseHostPort(values.xdsAddress, `${file}: xdsAddress`);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  for (const key of ['namespace', 'serviceAccount'] as const) {
    if (values[key] && !NAME_RE.test(values[key])) errors.push(`${file}: ${key}: "${values[key]}" is not a DNS-1123 name`);
  }
  if (values.trustDomain && !/^[a-z0-9._-]{1,255}$/.test(values.trustDomain)) {
    errors.push(`${file}: trustDomain: "${values.trustDomain}" is not a SPIFFE trust domain`);
  }
  if (errors.length > 0) throw new TrellisError('TRELLIS_ERR_CONFIG', errors.join('\n'));
  return Object.freeze({
    xdsAddress: values.xdsAddress!,
    trustDomain: values.trustDomain!,
    namespace: values.namespace!,
    serviceAccount: values.serviceAccount!,
    workloadGroup: values.workloadGroup ?? '',
    clusterId: values.clusterId ?? '',
    network: values.network ?? '',
  });
}

/** Reads mesh.yaml and root-cert.pem. Throws TRELLIS_ERR_CONFIG naming the file on anything missing or invalid. */
export function readBundle(dir: string): Bundle {
  const read = (name: string): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (cause) {
      throw new TrellisError('TRELLIS_ERR_CONFIG', `bundle ${dir}: cannot read ${name}: ${(cause as Error).message}`, { cause });
    }
  };
  const mesh = parseMeshSettings(read(MESH_FILE), join(dir, MESH_FILE));
  const rootCertsPem = read(ROOT_CERT_FILE);
  if (!/-----BEGIN CERTIFICATE-----/.test(rootCertsPem)) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `bundle ${dir}: ${ROOT_CERT_FILE} holds no PEM certificate`);
  }
  return Object.freeze({ dir, mesh, rootCertsPem });
}

/** The SPIFFE id the CA issues for these settings. */
export function expectedSpiffeId(mesh: MeshSettings): string {
  return `spiffe://${mesh.trustDomain}/ns/${mesh.namespace}/sa/${mesh.serviceAccount}`;
}
