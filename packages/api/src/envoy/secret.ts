/** `envoy.extensions.transport_sockets.tls.v3.Secret` → SecretConfig (PEM strings). */
import { type Obj, deepFreeze, fail, join, obj, reqStr } from './read.js';

export type SecretConfig =
  | { readonly name: string; readonly kind: 'tls_certificate'; readonly certificateChain: string; readonly privateKey: string }
  | { readonly name: string; readonly kind: 'validation_context'; readonly trustedCa: string };

/** A `DataSource` with inline bytes (base64 after decodeAny) or an inline string. Filenames are refused: SDS carries data. */
function dataSource(o: Obj | undefined, path: string): string {
  if (!o) return fail(path, 'required');
  if (typeof o.inline_bytes === 'string') return Buffer.from(o.inline_bytes, 'base64').toString('utf8');
  if (typeof o.inline_string === 'string') return o.inline_string;
  if (o.filename !== undefined) return fail(join(path, 'filename'), 'not supported; send inline_bytes');
  return fail(path, 'inline_bytes or inline_string is required');
}

export function decodeSecret(o: Obj): SecretConfig {
  const name = reqStr(o, 'name', '');
  const tc = obj(o, 'tls_certificate', '');
  if (tc) {
    const certificateChain = dataSource(obj(tc, 'certificate_chain', 'tls_certificate'), 'tls_certificate.certificate_chain');
    const privateKey = dataSource(obj(tc, 'private_key', 'tls_certificate'), 'tls_certificate.private_key');
    if (!certificateChain.includes('-----BEGIN CERTIFICATE-----')) fail('tls_certificate.certificate_chain', 'must be PEM certificates');
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) fail('tls_certificate.private_key', 'must be a PEM private key');
    return deepFreeze({ name, kind: 'tls_certificate', certificateChain, privateKey });
  }
  const vc = obj(o, 'validation_context', '');
  if (vc) {
    const trustedCa = dataSource(obj(vc, 'trusted_ca', 'validation_context'), 'validation_context.trusted_ca');
    if (!trustedCa.includes('-----BEGIN CERTIFICATE-----')) fail('validation_context.trusted_ca', 'must be PEM certificates');
    return deepFreeze({ name, kind: 'validation_context', trustedCa });
  }
  return fail('', 'one of tls_certificate, validation_context is required');
}
