/**
 * Violations: what a decoder reports, where (a field path such as `spec.http[0].route[1].weight`) and why.
 * A decoder collects every violation of a document before it answers, so a user fixes a file in one pass.
 */

export interface Violation {
  /** Field path from the document root: `spec.http[0].route[1].weight`, `metadata.labels["app.kubernetes.io/name"]`. */
  readonly path: string;
  readonly message: string;
}

/** Collects violations during one decode. One per call; never shared. */
export class Ctx {
  readonly violations: Violation[] = [];
  add(path: string, message: string): void {
    this.violations.push({ path, message });
  }
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** `spec` + `hosts` → `spec.hosts`; keys that are not identifiers become `["app.kubernetes.io/name"]`. */
export function joinKey(path: string, key: string): string {
  if (IDENT.test(key)) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

export function joinIndex(path: string, index: number): string {
  return `${path}[${index}]`;
}

/** `a violation` rendered the way every Trellis tool prints it: `path: message`. */
export function formatViolation(v: Violation): string {
  return v.path === '' ? v.message : `${v.path}: ${v.message}`;
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
    }
    prev = cur;
  }
  return prev[b.length];
}

function snakeToCamel(s: string): string {
  return s.replace(/[_-]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The nearest of `candidates` to `word`, or undefined when nothing is close: same name ignoring case or
 * snake_case, else one that is the other's suffix (`labels`/`matchLabels`), else the smallest edit distance within max(2, ⌊len/3⌋).
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  const camel = snakeToCamel(word).toLowerCase();
  for (const c of candidates) if (c.toLowerCase() === lower || c.toLowerCase() === camel) return c;
  // `labels` ↔ `matchLabels`: the networking and security selectors differ only by a prefix.
  if (lower.length >= 4) {
    for (const c of candidates) {
      const lc = c.toLowerCase();
      if (lc.length >= 4 && (lc.endsWith(lower) || lower.endsWith(lc))) return c;
    }
  }
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

export function unknownFieldMessage(key: string, known: readonly string[]): string {
  const near = nearest(key, known);
  return near === undefined ? `unknown field \`${key}\`` : `unknown field \`${key}\`; did you mean \`${near}\`?`;
}
