/**
 * A Go `text/template` interpreter for exactly the subset the Trellis Helm chart (deploy/k8s/trellis) uses, so
 * `trellisctl install k8s` prints what `helm template` prints without Helm:
 *
 * - text and actions with `{{-`/`-}}` whitespace trimming, `{{/* comments *\/}}`;
 * - `if`/`else if`/`else`/`end`, `range` (lists by index, maps in sorted key order; `$v :=`, `$k, $v :=`),
 *   `with`, `define` (associated templates for `include`), variable declaration `$x := …` and `$`;
 * - pipelines with `|` (the piped value is the last argument), parentheses, field chains on `.`, `$` and variables,
 *   string (interpreted and raw), number and boolean literals;
 * - functions: include, toYaml, nindent, indent, quote, default, required, printf (%s %d %v %q), eq, ne, and, or,
 *   not, trunc, trimSuffix, toString, empty.
 *
 * Semantics follow Go's (truthiness, map key order, missing keys render as "" as Helm's missingkey=zero does).
 * Anything outside the subset is a `TRELLIS_ERR_TEMPLATE` naming the template and line.
 */
import { stringify } from 'yaml';
import { TrellisError } from '@trellis/model';

type Value = unknown;

interface Pos { readonly template: string; readonly line: number }

type Operand =
  | { readonly t: 'lit'; readonly v: Value }
  | { readonly t: 'field'; readonly base: 'dot' | string; readonly path: readonly string[] }
  | { readonly t: 'ident'; readonly name: string }
  | { readonly t: 'paren'; readonly pipe: Pipeline; readonly path: readonly string[] };
interface Command { readonly operands: readonly Operand[] }
interface Pipeline { readonly decl: readonly string[]; readonly cmds: readonly Command[]; readonly pos: Pos }

type Node =
  | { readonly t: 'text'; readonly text: string }
  | { readonly t: 'action'; readonly pipe: Pipeline }
  | { readonly t: 'if' | 'with'; readonly pipe: Pipeline; readonly body: readonly Node[]; readonly alt: readonly Node[] }
  | { readonly t: 'range'; readonly pipe: Pipeline; readonly body: readonly Node[]; readonly alt: readonly Node[] };

function fail(pos: Pos, msg: string): never {
  throw new TrellisError('TRELLIS_ERR_TEMPLATE', `${pos.template}:${pos.line}: ${msg}`);
}

/** Splits a template into text and action pieces, applying the trim markers. */
function lex(src: string, template: string): { kind: 'text' | 'action'; body: string; pos: Pos }[] {
  const out: { kind: 'text' | 'action'; body: string; pos: Pos }[] = [];
  let i = 0;
  let trimNext = false;
  const lineAt = (k: number): number => src.slice(0, k).split('\n').length;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      if (text) out.push({ kind: 'text', body: text, pos: { template, line: lineAt(i) } });
      break;
    }
    let start = open + 2;
    if (src.startsWith('- ', start) || src.startsWith('-\n', start)) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    if (text) out.push({ kind: 'text', body: text, pos: { template, line: lineAt(i) } });
    const pos = { template, line: lineAt(open) };
    let close: number;
    const trimmedStart = src.slice(start).match(/^\s*/)?.[0].length ?? 0;
    if (src.startsWith('/*', start + trimmedStart)) {
      const endComment = src.indexOf('*/', start + trimmedStart + 2);
      if (endComment < 0) fail(pos, 'unclosed comment');
      close = src.indexOf('}}', endComment + 2);
      if (close < 0) fail(pos, 'unclosed action');
      if (src[close - 1] === '-' && src[close - 2] === ' ') trimNext = true;
      i = close + 2;
      continue;
    }
    close = findClose(src, start, pos);
    let body = src.slice(start, close);
    if (body.endsWith(' -') || body.endsWith('\n-')) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    out.push({ kind: 'action', body: body.trim(), pos });
    i = close + 2;
  }
  return out;
}

/** The `}}` closing an action starting at `start`, skipping quoted strings. */
function findClose(src: string, start: number, pos: Pos): number {
  for (let k = start; k < src.length; k++) {
    const c = src[k];
    if (c === '"') {
      for (k++; k < src.length && src[k] !== '"'; k++) if (src[k] === '\\') k++;
    } else if (c === '`') {
      k = src.indexOf('`', k + 1);
      if (k < 0) break;
    } else if (c === '}' && src[k + 1] === '}') return k;
  }
  fail(pos, 'unclosed action');
}

type Tok = { readonly t: 'str' | 'num' | 'ident' | 'field' | 'var' | 'op'; readonly v: string };

function tokenize(body: string, pos: Pos): Tok[] {
  const toks: Tok[] = [];
  let k = 0;
  while (k < body.length) {
    const c = body[k];
    if (/\s/.test(c)) { k++; continue; }
    if (c === '"') {
      let j = k + 1;
      while (j < body.length && body[j] !== '"') j += body[j] === '\\' ? 2 : 1;
      toks.push({ t: 'str', v: JSON.parse(body.slice(k, j + 1)) as string });
      k = j + 1;
    } else if (c === '`') {
      const j = body.indexOf('`', k + 1);
      toks.push({ t: 'str', v: body.slice(k + 1, j) });
      k = j + 1;
    } else if (body.startsWith(':=', k)) { toks.push({ t: 'op', v: ':=' }); k += 2; }
    else if ('|(),='.includes(c)) { toks.push({ t: 'op', v: c }); k++; }
    else {
      const m = /^[^\s|(),=]+/.exec(body.slice(k));
      if (!m) fail(pos, `unexpected ${c}`);
      const w = m[0];
      if (w.startsWith('$')) toks.push({ t: 'var', v: w });
      else if (w.startsWith('.')) toks.push({ t: 'field', v: w });
      else if (/^-?\d/.test(w)) toks.push({ t: 'num', v: w });
      else toks.push({ t: 'ident', v: w });
      k += w.length;
    }
  }
  return toks;
}

function parsePipeline(toks: Tok[], pos: Pos, allowDecl: boolean): Pipeline {
  let k = 0;
  const decl: string[] = [];
  if (allowDecl) {
    const opAt = toks.findIndex((t) => t.t === 'op' && (t.v === ':=' || t.v === '='));
    if (opAt > 0 && toks.slice(0, opAt).every((t) => t.t === 'var' || (t.t === 'op' && t.v === ','))) {
      for (const t of toks.slice(0, opAt)) if (t.t === 'var') decl.push(t.v);
      k = opAt + 1;
    }
  }
  const cmds: Command[] = [];
  const parseCmds = (stopAtParen: boolean): Command[] => {
    const list: Command[] = [];
    let ops: Operand[] = [];
    while (k < toks.length) {
      const t = toks[k];
      if (t.t === 'op' && t.v === ')') {
        if (!stopAtParen) fail(pos, 'unexpected )');
        break;
      }
      k++;
      if (t.t === 'op' && t.v === '|') { list.push({ operands: ops }); ops = []; continue; }
      if (t.t === 'op' && t.v === '(') {
        const inner = parseCmds(true);
        if (toks[k]?.v !== ')') fail(pos, 'missing )');
        k++;
        ops.push({ t: 'paren', pipe: { decl: [], cmds: inner, pos }, path: [] });
        continue;
      }
      if (t.t === 'str') ops.push({ t: 'lit', v: t.v });
      else if (t.t === 'num') ops.push({ t: 'lit', v: Number(t.v) });
      else if (t.t === 'ident') {
        if (t.v === 'true' || t.v === 'false') ops.push({ t: 'lit', v: t.v === 'true' });
        else if (t.v === 'nil') ops.push({ t: 'lit', v: undefined });
        else ops.push({ t: 'ident', name: t.v });
      } else if (t.t === 'field') ops.push({ t: 'field', base: 'dot', path: t.v === '.' ? [] : t.v.slice(1).split('.') });
      else if (t.t === 'var') {
        const [name, ...path] = t.v.split('.');
        ops.push({ t: 'field', base: name, path });
      } else fail(pos, `unexpected ${t.v}`);
    }
    if (ops.length > 0) list.push({ operands: ops });
    return list;
  };
  cmds.push(...parseCmds(false));
  if (cmds.length === 0 && decl.length === 0) fail(pos, 'empty pipeline');
  return { decl, cmds, pos };
}

/** A parsed template set: every file's top-level nodes plus its `define`d templates (shared, as Go associates). */
export class TemplateSet {
  private readonly templates = new Map<string, readonly Node[]>();

  /** Parses one file; its `define`s join the set and the file itself is registered under `name`. */
  add(name: string, src: string): void {
    const pieces = lex(src, name);
    let k = 0;
    const parseList = (terminators: readonly string[]): { nodes: Node[]; end: string; pos: Pos; rest: string } => {
      const nodes: Node[] = [];
      while (k < pieces.length) {
        const p = pieces[k++];
        if (p.kind === 'text') { nodes.push({ t: 'text', text: p.body }); continue; }
        const word = /^(\w+)/.exec(p.body)?.[1] ?? '';
        const rest = p.body.slice(word.length).trim();
        if (word === 'end' || word === 'else') {
          if (!terminators.includes(word)) fail(p.pos, `unexpected {{${word}}}`);
          return { nodes, end: word, pos: p.pos, rest };
        }
        if (word === 'if' || word === 'with' || word === 'range') {
          nodes.push(parseBlock(word, rest, p.pos));
        } else if (word === 'define') {
          const defName = JSON.parse(rest) as string;
          const body = parseList(['end']);
          this.templates.set(defName, body.nodes);
        } else if (word === 'template' || word === 'block' || word === 'break' || word === 'continue') {
          fail(p.pos, `{{${word}}} is outside the supported template subset`);
        } else {
          nodes.push({ t: 'action', pipe: parsePipeline(tokenize(p.body, p.pos), p.pos, true) });
        }
      }
      if (terminators.length > 0) fail({ template: name, line: 0 }, `missing {{end}}`);
      return { nodes, end: '', pos: { template: name, line: 0 }, rest: '' };
    };
    const parseBlock = (word: 'if' | 'with' | 'range', rest: string, pos: Pos): Node => {
      const pipe = parsePipeline(tokenize(rest, pos), pos, word === 'range');
      const body = parseList(['end', 'else']);
      let alt: Node[] = [];
      if (body.end === 'else') {
        if (body.rest.startsWith('if ')) {
          alt = [parseBlock('if', body.rest.slice(3), body.pos)];
          return { t: word, pipe, body: body.nodes, alt };
        }
        alt = parseList(['end']).nodes;
      }
      return { t: word, pipe, body: body.nodes, alt };
    };
    const top = parseList([]);
    this.templates.set(name, top.nodes);
  }

  has(name: string): boolean {
    return this.templates.has(name);
  }

  /** Executes template `name` with `data` as both `.` and `$`. */
  execute(name: string, data: Value): string {
    const nodes = this.templates.get(name);
    if (!nodes) throw new TrellisError('TRELLIS_ERR_TEMPLATE', `no template "${name}"`);
    const out: string[] = [];
    this.run(nodes, data, [new Map([['$', data]])], out);
    return out.join('').replaceAll('<no value>', '');
  }

  private run(nodes: readonly Node[], dot: Value, scopes: Map<string, Value>[], out: string[]): void {
    for (const n of nodes) {
      switch (n.t) {
        case 'text':
          out.push(n.text);
          break;
        case 'action': {
          const v = this.pipe(n.pipe, dot, scopes);
          if (n.pipe.decl.length === 0) out.push(printValue(v, n.pipe.pos));
          break;
        }
        case 'if':
        case 'with': {
          const v = this.pipe(n.pipe, dot, scopes);
          const inner = [...scopes, new Map<string, Value>()];
          if (truthy(v)) this.run(n.body, n.t === 'with' ? v : dot, inner, out);
          else this.run(n.alt, dot, inner, out);
          break;
        }
        case 'range': {
          const v = this.evalCmds(n.pipe.cmds, dot, scopes, n.pipe.pos);
          const items: [Value, Value][] = Array.isArray(v)
            ? v.map((x, i) => [i, x])
            : isMap(v) ? Object.keys(v).sort().map((key) => [key, v[key]]) : [];
          if (v !== undefined && v !== null && !Array.isArray(v) && !isMap(v)) fail(n.pipe.pos, `range can't iterate over ${String(v)}`);
          if (items.length === 0) { this.run(n.alt, dot, [...scopes, new Map()], out); break; }
          for (const [key, item] of items) {
            const frame = new Map<string, Value>();
            if (n.pipe.decl.length === 1) frame.set(n.pipe.decl[0], item);
            if (n.pipe.decl.length === 2) { frame.set(n.pipe.decl[0], key); frame.set(n.pipe.decl[1], item); }
            this.run(n.body, item, [...scopes, frame], out);
          }
          break;
        }
      }
    }
  }

  private pipe(p: Pipeline, dot: Value, scopes: Map<string, Value>[]): Value {
    const v = this.evalCmds(p.cmds, dot, scopes, p.pos);
    if (p.decl.length === 1) {
      // `$x := v` declares in the innermost scope; `$x = v` (not used by the chart) would assign.
      scopes[scopes.length - 1].set(p.decl[0], v);
    } else if (p.decl.length > 1) fail(p.pos, 'only range declares two variables');
    return v;
  }

  private evalCmds(cmds: readonly Command[], dot: Value, scopes: Map<string, Value>[], pos: Pos): Value {
    let piped: { v: Value } | undefined;
    for (const c of cmds) piped = { v: this.command(c, dot, scopes, pos, piped) };
    return piped?.v;
  }

  private command(c: Command, dot: Value, scopes: Map<string, Value>[], pos: Pos, piped?: { v: Value }): Value {
    const [head, ...rest] = c.operands;
    if (head.t === 'ident') {
      const args = rest.map((o) => this.operand(o, dot, scopes, pos));
      if (piped) args.push(piped.v);
      return this.call(head.name, args, pos);
    }
    if (rest.length > 0 || piped) fail(pos, 'a value cannot take arguments');
    return this.operand(head, dot, scopes, pos);
  }

  private operand(o: Operand, dot: Value, scopes: Map<string, Value>[], pos: Pos): Value {
    switch (o.t) {
      case 'lit':
        return o.v;
      case 'ident':
        return this.call(o.name, [], pos);
      case 'paren':
        return walk(this.evalCmds(o.pipe.cmds, dot, scopes, pos), o.path);
      case 'field': {
        if (o.base === 'dot') return walk(dot, o.path);
        for (let s = scopes.length - 1; s >= 0; s--) if (scopes[s].has(o.base)) return walk(scopes[s].get(o.base), o.path);
        return fail(pos, `undefined variable: ${o.base}`);
      }
    }
  }

  private call(name: string, args: Value[], pos: Pos): Value {
    const str = (v: Value): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : printValue(v, pos));
    switch (name) {
      case 'include':
        return this.execute(String(args[0]), args[1]);
      case 'toYaml':
        return toYaml(args[0]);
      case 'nindent':
        return '\n' + indent(Number(args[0]), str(args[1]));
      case 'indent':
        return indent(Number(args[0]), str(args[1]));
      case 'quote':
        return args.filter((a) => a !== undefined && a !== null).map((a) => JSON.stringify(str(a))).join(' ');
      case 'default':
        return args.length < 2 || !truthy(args[1]) ? args[0] : args[1];
      case 'required':
        if (args[1] === undefined || args[1] === null || args[1] === '') fail(pos, String(args[0]));
        return args[1];
      case 'printf':
        return printf(String(args[0]), args.slice(1), pos);
      case 'eq':
        return args.slice(1).some((b) => args[0] === b);
      case 'ne':
        return args[0] !== args[1];
      case 'and': {
        for (const a of args) if (!truthy(a)) return a;
        return args[args.length - 1];
      }
      case 'or': {
        for (const a of args) if (truthy(a)) return a;
        return args[args.length - 1];
      }
      case 'not':
        return !truthy(args[0]);
      case 'empty':
        return !truthy(args[0]);
      case 'trunc': {
        const n = Number(args[0]);
        const s = str(args[1]);
        return n < 0 ? (s.length + n > 0 ? s.slice(s.length + n) : s) : s.length > n ? s.slice(0, n) : s;
      }
      case 'trimSuffix': {
        const suffix = str(args[0]);
        const s = str(args[1]);
        return suffix && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s;
      }
      case 'toString':
        return str(args[0]);
      default:
        return fail(pos, `function "${name}" is outside the supported template subset`);
    }
  }
}

function isMap(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function walk(v: Value, path: readonly string[]): Value {
  let cur = v;
  for (const key of path) cur = isMap(cur) ? cur[key] : undefined;
  return cur;
}

/** Go's `truth`: false, 0, "", nil and empty maps/lists are false. */
export function truthy(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

function printValue(v: Value, pos: Pos): string {
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return fail(pos, 'printing a map or list needs toYaml');
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.replaceAll('\n', '\n' + pad);
}

/** Helm's toYaml: YAML of the value without the trailing newline; nil is `null`. */
export function toYaml(v: Value): string {
  if (v === undefined || v === null) return 'null';
  return stringify(v, { version: '1.1', indent: 2, lineWidth: 0, sortMapEntries: true }).replace(/\n$/, '');
}

function printf(format: string, args: Value[], pos: Pos): string {
  let k = 0;
  return format.replace(/%([sdvq%])/g, (_m, verb: string) => {
    if (verb === '%') return '%';
    const a = args[k++];
    if (verb === 'q') return JSON.stringify(a === undefined || a === null ? '' : String(a));
    if (a === undefined || a === null) return '%!' + verb + '(<nil>)';
    if (typeof a === 'object') fail(pos, 'printf of a map or list');
    return String(a);
  });
}
