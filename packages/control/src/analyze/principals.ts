/**
 * TRELLIS_A0007: AuthorizationPolicy principals are `<trust-domain>/ns/<namespace>/sa/<service-account>` (the
 * SPIFFE id without `spiffe://`), `*`, or one of those with a single `*` as prefix or suffix
 * (`*` + `/ns/foo/sa/bar`, `cluster.local/ns/foo/` + `*`).
 */
import type { AnalysisContext } from './context.js';

interface SourceView {
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
}
interface AuthorizationPolicyView {
  readonly rules?: readonly { readonly from?: readonly { readonly source?: SourceView }[] }[];
}

/** Pattern segments: undefined = any non-empty name, a string = that literal. */
const SHAPE: readonly (string | undefined)[] = [undefined, 'ns', undefined, 'sa', undefined];
const FORM = '"<trust-domain>/ns/<namespace>/sa/<service-account>"';

function segmentOk(seg: string, shape: string | undefined, partial: 'prefix' | 'suffix' | 'full'): boolean {
  if (seg.includes('/')) return false;
  if (shape === undefined) return partial === 'full' ? seg !== '' : true;
  if (partial === 'prefix') return shape.startsWith(seg);
  if (partial === 'suffix') return shape.endsWith(seg);
  return seg === shape;
}

/** Why `p` is not a valid principal, or undefined when it is. */
export function principalProblem(p: string): string | undefined {
  if (p === '*') return undefined;
  if (p.startsWith('spiffe://')) return `principals are written without "spiffe://": use "${p.slice('spiffe://'.length)}"`;
  const stars = p.split('*').length - 1;
  if (stars > 1 || (stars === 1 && !p.startsWith('*') && !p.endsWith('*'))) {
    return `only one "*", at the start or at the end, is allowed; expected ${FORM}`;
  }
  const malformed = `expected ${FORM}, "*", or one of those with a "*" prefix or suffix`;
  if (stars === 0) {
    const segs = p.split('/');
    return segs.length === SHAPE.length && segs.every((s, i) => segmentOk(s, SHAPE[i], 'full')) ? undefined : malformed;
  }
  if (p.endsWith('*')) {
    // `X*`: X must be how a well-formed principal starts.
    const segs = p.slice(0, -1).split('/');
    if (segs.length > SHAPE.length) return malformed;
    const ok = segs.every((s, i) => segmentOk(s, SHAPE[i], i === segs.length - 1 ? 'prefix' : 'full'));
    return ok ? undefined : malformed;
  }
  // `*X`: X must be how a well-formed principal ends.
  const segs = p.slice(1).split('/');
  if (segs.length > SHAPE.length) return malformed;
  const offset = SHAPE.length - segs.length;
  const ok = segs.every((s, i) => segmentOk(s, SHAPE[offset + i], i === 0 ? 'suffix' : 'full'));
  return ok ? undefined : malformed;
}

export function checkPrincipals(cx: AnalysisContext): void {
  for (const ap of cx.ofKind('AuthorizationPolicy')) {
    const spec = ap.resource.spec as AuthorizationPolicyView;
    (spec.rules ?? []).forEach((rule, i) => {
      (rule.from ?? []).forEach((from, j) => {
        for (const field of ['principals', 'notPrincipals'] as const) {
          (from.source?.[field] ?? []).forEach((p, k) => {
            const problem = principalProblem(p);
            if (problem !== undefined) {
              cx.report('malformedPrincipal', ap, `spec.rules[${i}].from[${j}].source.${field}[${k}]`, `principal "${p}" is malformed: ${problem}`);
            }
          });
        }
      });
    });
  }
}
