/**
 * Parsing of one resource file (YAML or JSON, one or many `---` documents) into decoded resources and problems,
 * each problem located by file, document index, line and field path.
 *
 * Shared by the file registry and `trellisctl analyze` so both report the same lines. Pure: the caller reads the
 * file and passes its text.
 */
import { LineCounter, parseAllDocuments, isMap, isSeq, isScalar, isAlias, isPair, type Document, type Node as YamlNode } from 'yaml';
import { decodeResource, isForeignResource, resourceKey, type AnyResource, type Problem, type ResourceOrigin, type SourceKind } from '@trellis/model';

/** Limits that keep one hostile or broken file from exhausting the process. */
export interface FileLimits {
  /** Largest file accepted, in bytes (default 4 MiB). */
  readonly maxFileBytes: number;
  /** Most documents in one file (default 1000). */
  readonly maxDocuments: number;
  /** Most alias dereferences while building one document (yaml's `maxAliasCount`, default 100). */
  readonly maxAliasCount: number;
}

export const DEFAULT_FILE_LIMITS: FileLimits = Object.freeze({
  maxFileBytes: 4 * 1024 * 1024,
  maxDocuments: 1000,
  maxAliasCount: 100,
});

export interface ParseOptions {
  /** Namespace of resources that give none (default `default`). */
  readonly defaultNamespace?: string;
  readonly limits?: Partial<FileLimits>;
  /** Source written into each resource's origin (default `{kind: 'file', shard: ''}`). */
  readonly source?: { readonly kind: SourceKind; readonly shard: string };
}

export interface ParsedDocument {
  /** Index of the document in the file, from 0. */
  readonly index: number;
  /** 1-based line where the document's content starts. */
  readonly line: number;
  /** The decoded resource, when the document is valid. */
  readonly resource?: AnyResource;
  /** 1-based line of a field path such as `spec.http[0].route[1].weight` (or of its nearest existing parent). */
  lineOf(path: string): number;
}

export interface ParsedFile {
  readonly file: string;
  /** Non-empty documents, in file order. */
  readonly documents: readonly ParsedDocument[];
  /** Every problem: YAML syntax, limits, decode violations, duplicates within the file. */
  readonly problems: readonly Problem[];
  /** Decoded resources of valid documents, in file order. The file as a whole is valid when `problems` is empty. */
  readonly resources: readonly AnyResource[];
  /**
   * Documents that are other systems' resources (`isForeignResource`: a Deployment, a ConfigMap…) and were skipped:
   * a directory of mixed Kubernetes manifests loads its Istio resources and ignores the rest.
   */
  readonly skipped: readonly { readonly document: number; readonly line: number; readonly apiVersion: string; readonly kind: string }[];
}

/** Splits `spec.http[0].route[1]`, `metadata.labels["a.b/c"]` into `['spec','http',0,'route',1]`, `['metadata','labels','a.b/c']`. */
export function splitPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g;
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) {
      try {
        out.push(JSON.parse(m[3]) as string);
      } catch {
        out.push(m[3].slice(1, -1));
      }
    }
  }
  return out;
}

function firstLine(message: string): string {
  const nl = message.indexOf('\n');
  return (nl < 0 ? message : message.slice(0, nl)).replace(/ at line \d+, column \d+:?$/, '');
}

function locator(doc: Document, lc: LineCounter, docLine: number): (path: string) => number {
  const lineAt = (n: { range?: readonly [number, number, number] | null } | null | undefined): number | undefined =>
    n?.range ? lc.linePos(n.range[0]).line : undefined;
  return (path: string) => {
    let node: unknown = doc.contents;
    let line = lineAt(node as YamlNode) ?? docLine;
    for (const seg of splitPath(path)) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (pair === undefined) return line;
        line = lineAt(pair.key as YamlNode) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) return line;
        line = lineAt(item as YamlNode) ?? line;
        node = item;
      } else {
        return line;
      }
    }
    return line;
  };
}

/**
 * Parses and decodes `text`, the content of `file`. Every problem names `file`, the document index, the line
 * and the field path; a file is valid only when it has no problem at all.
 */
export function parseResourceText(text: string, file: string, options: ParseOptions = {}): ParsedFile {
  const limits = { ...DEFAULT_FILE_LIMITS, ...options.limits };
  const source = options.source ?? { kind: 'file' as const, shard: '' };
  const problems: Problem[] = [];
  const documents: ParsedDocument[] = [];
  const resources: AnyResource[] = [];
  const skipped: ParsedFile['skipped'][number][] = [];
  const done = (): ParsedFile =>
    Object.freeze({ file, documents: Object.freeze(documents), problems: Object.freeze(problems.map((p) => Object.freeze(p))), resources: Object.freeze(resources), skipped: Object.freeze(skipped) });

  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxFileBytes) {
    problems.push({ file, path: '', message: `file is ${bytes} bytes; the limit is ${limits.maxFileBytes} bytes` });
    return done();
  }
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (docs.length > limits.maxDocuments) {
    problems.push({ file, path: '', message: `file has ${docs.length} documents; the limit is ${limits.maxDocuments}` });
    return done();
  }
  const seen = new Map<string, number>();
  docs.forEach((doc, index) => {
    const startOffset = doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0;
    const line = lc.linePos(startOffset).line;
    const lineOf = locator(doc, lc, line);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        problems.push({ file, document: index, line: lc.linePos(e.pos[0]).line, path: '', message: `YAML: ${firstLine(e.message)}` });
      }
      documents.push(Object.freeze({ index, line, lineOf }));
      return;
    }
    if (doc.contents === null) return; // empty document (comments only, trailing `---`)
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      problems.push({
        file, document: index, line, path: '',
        message: /alias/i.test(message) ? `YAML: too many aliases (limit ${limits.maxAliasCount}): ${message}` : `YAML: ${message}`,
      });
      documents.push(Object.freeze({ index, line, lineOf }));
      return;
    }
    if (value === null || value === undefined) return;
    if (isForeignResource(value)) {
      const v = value as { apiVersion: string; kind: string };
      skipped.push(Object.freeze({ document: index, line, apiVersion: v.apiVersion, kind: v.kind }));
      return;
    }
    const origin: ResourceOrigin = { kind: source.kind, shard: source.shard, ref: `${file}#${index}`, file, document: index, line };
    const result = decodeResource(value, options.defaultNamespace === undefined ? { origin } : { origin, defaultNamespace: options.defaultNamespace });
    if (!result.ok) {
      for (const v of result.violations) problems.push({ file, document: index, line: lineOf(v.path), path: v.path, message: v.message });
      documents.push(Object.freeze({ index, line, lineOf }));
      return;
    }
    const key = resourceKey(result.resource);
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      problems.push({
        file, document: index, line: lineOf('metadata.name'), path: 'metadata.name',
        message: `${key} is already defined by document ${earlier} of this file`,
      });
    } else {
      seen.set(key, index);
      resources.push(result.resource);
    }
    documents.push(Object.freeze({ index, line, resource: result.resource, lineOf }));
  });
  return done();
}
