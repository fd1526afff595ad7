/**
 * The validating admission webhook: `POST /validate` takes a Kubernetes `admission.k8s.io/v1` AdmissionReview and
 * answers one with `response.uid` echoed, `allowed`, and — when the object is refused — `status.message` listing
 * every violation as `path: reason`, exactly the messages `@trellis/model`'s decoders produce (the same text the
 * file registry and `trellisctl analyze` print), plus `status.details.causes` with one `{field, message}` each.
 *
 * Admitted without decoding: DELETE and CONNECT (nothing to validate), subresource writes (`status`), kinds outside
 * the Istio and Trellis groups, and kinds of those groups Trellis does not read (EnvoyFilter, Telemetry, …; answered
 * with a warning). A body that is not an AdmissionReview gets HTTP 400 with `{code, message}` naming what is missing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeResource, formatViolation, kindTable, SUPPORTED_API_VERSIONS, type Violation } from '@trellis/model';
import { sendError, sendJson, type HttpRoute } from './server.js';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: {
    readonly code: number;
    readonly reason: string;
    readonly message: string;
    readonly details: { readonly kind?: string; readonly name?: string; readonly causes: readonly { readonly field: string; readonly message: string; readonly reason: string }[] };
  };
  readonly warnings?: readonly string[];
}

/** Why a body is not an AdmissionReview this webhook can answer (HTTP 400). */
export class AdmissionReviewError extends Error {}

const GROUPS = new Set(Object.keys(SUPPORTED_API_VERSIONS));
const KINDS = new Set(Object.keys(kindTable()));

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Answers one AdmissionReview request (the parsed body). Throws AdmissionReviewError when the body is not an
 * `admission.k8s.io/v1` AdmissionReview with a `request.uid`, `request.operation` and, for CREATE/UPDATE of a
 * Trellis-read kind, a `request.object`.
 */
export function reviewAdmission(body: unknown): AdmissionResponse {
  if (body === undefined) throw new AdmissionReviewError('empty body: expected an admission.k8s.io/v1 AdmissionReview');
  if (!isObject(body)) throw new AdmissionReviewError('body must be a JSON object (an admission.k8s.io/v1 AdmissionReview)');
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    throw new AdmissionReviewError(`expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got ${JSON.stringify(body.apiVersion ?? null)} ${JSON.stringify(body.kind ?? null)}`);
  }
  const req = body.request;
  if (!isObject(req)) throw new AdmissionReviewError('request: required field is missing');
  if (typeof req.uid !== 'string' || req.uid === '') throw new AdmissionReviewError('request.uid: required field is missing');
  const uid = req.uid;
  const op = req.operation;
  if (typeof op !== 'string') throw new AdmissionReviewError('request.operation: required field is missing');
  if (op === 'DELETE' || op === 'CONNECT') return Object.freeze({ uid, allowed: true });
  if (op !== 'CREATE' && op !== 'UPDATE') throw new AdmissionReviewError(`request.operation: unknown operation ${JSON.stringify(op)}`);
  const gvk = isObject(req.kind) ? req.kind : {};
  const group = typeof gvk.group === 'string' ? gvk.group : '';
  const kind = typeof gvk.kind === 'string' ? gvk.kind : '';
  // A subresource write (`status`) carries no spec change to validate.
  if (!GROUPS.has(group) || (typeof req.subResource === 'string' && req.subResource !== '')) return Object.freeze({ uid, allowed: true });
  if (!KINDS.has(kind)) return Object.freeze({ uid, allowed: true, warnings: Object.freeze([`Trellis does not read ${group}/${kind}; admitted without validation`]) });
  if (!isObject(req.object)) throw new AdmissionReviewError(`request.object: required field is missing (operation ${op})`);
  const namespace = typeof req.namespace === 'string' && req.namespace !== '' ? req.namespace : undefined;
  const result = decodeResource(req.object, namespace ? { defaultNamespace: namespace } : {});
  if (result.ok) return Object.freeze({ uid, allowed: true });
  const meta = isObject(req.object.metadata) ? req.object.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : typeof req.name === 'string' ? req.name : '';
  const ns = typeof meta.namespace === 'string' ? meta.namespace : namespace ?? 'default';
  return Object.freeze({ uid, allowed: false, status: denial(kind, ns, name, result.violations) });
}

function denial(kind: string, namespace: string, name: string, violations: readonly Violation[]): NonNullable<AdmissionResponse['status']> {
  const lines = violations.map(formatViolation);
  const n = violations.length;
  return Object.freeze({
    code: 400,
    reason: 'Invalid',
    message: `${kind} ${namespace}/${name || '(unnamed)'} is invalid (${n} problem${n === 1 ? '' : 's'}): ${lines.join('; ')}`,
    details: Object.freeze({
      kind,
      ...(name ? { name } : {}),
      causes: Object.freeze(violations.map((v) => Object.freeze({ field: v.path, message: v.message, reason: 'FieldValueInvalid' }))),
    }),
  });
}

/** `POST /validate`. */
export function webhookRoutes(opts: { readonly log?: Log } = {}): HttpRoute[] {
  return [{
    method: 'POST',
    path: '/validate',
    handler(_req: IncomingMessage, res: ServerResponse, _params: Record<string, string>, body: unknown): void {
      let response: AdmissionResponse;
      try {
        response = reviewAdmission(body);
      } catch (err) {
        if (!(err instanceof AdmissionReviewError)) throw err;
        sendError(res, 400, 'TRELLIS_ERR_ADMISSION_REVIEW', err.message);
        return;
      }
      if (!response.allowed) opts.log?.('info', 'admission denied', { uid: response.uid, message: response.status?.message });
      sendJson(res, 200, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response });
    },
  }];
}
