/**
 * The file registry: a watched directory of YAML/JSON resource files as a `RegistryAdapter`.
 *
 * How it works: chokidar only says *that* something under the directory changed. After a quiet period
 * (`debounceMs`, at most `maxDelayMs` after the first event of a burst) the registry lists the directory again,
 * re-reads every resource file, re-parses those whose text changed, and — when the outcome differs from the last
 * one — yields a full `snapshot`. Rescanning instead of interpreting individual events makes atomic renames,
 * deletes, renames, new subdirectories and ConfigMap `..data` swaps the same case: the directory as it is now.
 *
 * Rules (docs/file-registry.md):
 * - A file is valid when it parses, is within the limits, and every document decodes. A file that becomes
 *   invalid keeps its last good version *as a whole* in force until the whole file is valid again; its problems are
 *   in `status.problems`. A file that was never valid contributes nothing. A deleted file's resources go away.
 * - The same resource (kind, namespace, name) in two files: the definition already in force stays (at start-up, the
 *   first file in path order); the other is ignored; both files get a problem.
 * - Two ServiceEntries giving one hub service (namespace, hostname), or two workloads with one key: the first in
 *   path order stays, the other gets a problem.
 * - A directory that does not exist (yet, or any more) is unavailable, not empty: the last state stays, the status
 *   is `stale` with `lastError`, and the registry looks for the directory every `missingPollMs` until it is back.
 * - Every item is a `snapshot` with the full state; ServiceEntry and WorkloadEntry resources become hub
 *   `services`/`workloads`; every other kind (including MeshConfig and Registry) goes into `configs`.
 */
import { watch as chokidarWatch } from 'chokidar';
import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import {
  convertToHub,
  resourceKey,
  serviceKey,
  workloadKey,
  type AnyResource,
  type Problem,
  type RegistryAdapter,
  type RegistryChange,
  type Resource,
  type ServiceEntry,
  type ShardStatus,
  type Source,
  type WorkloadEntry,
} from '@trellis/model';
import { DEFAULT_FILE_LIMITS, parseResourceText, type FileLimits, type ParsedFile } from './parse.js';
import { scanResourceFiles } from './scan.js';

export interface FileRegistryOptions {
  /** The directory to watch (made absolute). */
  readonly dir: string;
  /** Namespace of resources that give none (default `default`). */
  readonly defaultNamespace?: string;
  /** Quiet period after the last event of a burst before rescanning (default 100 ms). */
  readonly debounceMs?: number;
  /** Longest a burst can delay a rescan (default 1000 ms). */
  readonly maxDelayMs?: number;
  readonly limits?: Partial<FileLimits>;
  /** Clock for `status.lastChange` and debouncing, in ms since the epoch (default `Date.now`). */
  readonly now?: () => number;
  /** While the directory does not exist, how often to look for it (default 1000 ms). */
  readonly missingPollMs?: number;
}

interface FileState {
  /** Text as last read; undefined when it could not be read (too big). */
  readonly text: string | undefined;
  /** Identity of what was read (device, inode, size, mtime, ctime); unchanged and not recent → not read again. */
  readonly signature: string;
  /** mtime of what was read, ms. */
  readonly mtimeMs: number;
  /** The last version with no problem, still in force. */
  readonly lastGood: ParsedFile | undefined;
  /** Bumped each time `lastGood` is replaced, so change detection needs no deep comparison. */
  readonly generation: number;
  /** Problems of the current text (empty when the current text is the last good one). */
  readonly problems: readonly Problem[];
}

interface Outcome {
  readonly services: readonly ServiceEntry[];
  readonly workloads: readonly WorkloadEntry[];
  readonly configs: readonly Resource[];
  readonly problems: readonly Problem[];
  readonly fingerprint: string;
}

/** How recent a file's mtime must be for an unchanged signature not to be trusted. */
const RACY_MS = 2000;

function byLocation(a: Problem, b: Problem): number {
  return (a.file ?? '').localeCompare(b.file ?? '') || (a.document ?? -1) - (b.document ?? -1) || (a.line ?? 0) - (b.line ?? 0);
}

export class FileRegistry implements RegistryAdapter {
  readonly kind = 'file' as const;
  readonly shard: string;
  readonly dir: string;
  readonly #opts: FileRegistryOptions;
  readonly #limits: FileLimits;
  readonly #now: () => number;
  #files = new Map<string, FileState>();
  /** resourceKey → file whose definition is in force. */
  #owners = new Map<string, string>();
  #generation = 0;
  #fingerprint = '';
  #lastChange: string | undefined;
  #watchError: string | undefined;
  /** Set by a rescan that found no directory; cleared when it appears. */
  #missing = false;
  #staleSince: string | undefined;
  #scanError: string | undefined;

  constructor(options: FileRegistryOptions) {
    this.#opts = options;
    this.dir = resolve(options.dir);
    this.shard = `file:${this.dir}`;
    this.#limits = { ...DEFAULT_FILE_LIMITS, ...options.limits };
    this.#now = options.now ?? Date.now;
  }

  /** One watch at a time per instance; each watch starts from a fresh scan. */
  async *watch(signal: AbortSignal): AsyncIterable<RegistryChange> {
    if (signal.aborted) return;
    this.#files = new Map();
    this.#owners = new Map();
    this.#outcome = undefined;
    this.#fingerprint = '';
    const debounceMs = this.#opts.debounceMs ?? 100;
    const maxDelayMs = this.#opts.maxDelayMs ?? 1000;
    let pending = false;
    let wake: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let burstStart: number | undefined;
    let poll: NodeJS.Timeout | undefined;
    const fire = (): void => {
      timer = undefined;
      burstStart = undefined;
      pending = true;
      wake?.();
    };
    const onEvent = (): void => {
      if (signal.aborted) return;
      const now = this.#now();
      burstStart ??= now;
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(fire, Math.max(0, Math.min(debounceMs, burstStart + maxDelayMs - now)));
    };
    const onAbort = (): void => wake?.();
    signal.addEventListener('abort', onAbort);
    // Nothing is ignored here: events on `..data` and hidden files must still trigger a rescan (the scan skips them).
    const watcher = chokidarWatch(this.dir, {
      ignoreInitial: true,
      followSymlinks: true,
      atomic: false,
      ignored: (p: string) => basename(p) === '.git' || basename(p) === 'node_modules',
    });
    watcher.on('all', onEvent);
    watcher.on('raw', onEvent);
    watcher.on('error', (err: unknown) => {
      this.#watchError = `watching ${this.dir}: ${err instanceof Error ? err.message : String(err)}`;
      onEvent();
    });
    try {
      await new Promise<void>((res) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          res();
        };
        watcher.once('ready', done);
        signal.addEventListener('abort', done);
      });
      if (signal.aborted) return;
      await this.#safeRescan();
      yield this.#snapshot();
      while (!signal.aborted) {
        // chokidar cannot watch a directory that does not exist yet: look for it until it appears, then watch it.
        if (this.#missing && poll === undefined) {
          poll = setInterval(() => {
            void stat(this.dir).then((st) => {
              if (!st.isDirectory() || signal.aborted || poll === undefined) return;
              clearInterval(poll);
              poll = undefined;
              watcher.unwatch(this.dir);
              watcher.add(this.dir);
              onEvent();
            }, () => undefined);
          }, this.#opts.missingPollMs ?? 1000);
        }
        if (!pending) {
          await new Promise<void>((res) => {
            wake = res;
          });
          wake = undefined;
          continue;
        }
        pending = false;
        if (await this.#safeRescan()) {
          if (signal.aborted) return;
          yield this.#snapshot();
        }
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      if (poll !== undefined) clearInterval(poll);
      signal.removeEventListener('abort', onAbort);
      await watcher.close();
    }
  }

  /** The current status, as the last snapshot carried it. */
  status(): ShardStatus {
    return this.#outcome === undefined ? this.#statusOf([]) : this.#statusOf(this.#outcome.problems);
  }

  #outcome: Outcome | undefined;

  #statusOf(problems: readonly Problem[]): ShardStatus {
    const s: { -readonly [K in keyof ShardStatus]: ShardStatus[K] } = {
      shard: this.shard,
      kind: 'file',
      state: this.#outcome === undefined ? 'syncing' : this.#missing ? 'stale' : 'synced',
      problems,
    };
    if (this.#missing) s.lastError = `directory ${this.dir} does not exist`;
    else if (this.#scanError !== undefined) s.lastError = this.#scanError;
    else if (this.#watchError !== undefined) s.lastError = this.#watchError;
    if (this.#lastChange !== undefined) s.lastChange = this.#lastChange;
    if (this.#staleSince !== undefined) s.staleSince = this.#staleSince;
    return Object.freeze(s);
  }

  #snapshot(): RegistryChange {
    const o = this.#outcome!;
    return Object.freeze({
      type: 'snapshot' as const,
      services: o.services,
      workloads: o.workloads,
      configs: o.configs,
      status: this.#statusOf(o.problems),
    });
  }

  /** `#rescan` that never throws: an unexpected failure is reported in `lastError` and the last state stays. */
  async #safeRescan(): Promise<boolean> {
    try {
      const changed = await this.#rescan();
      if (this.#scanError !== undefined) {
        this.#scanError = undefined;
        return true;
      }
      return changed;
    } catch (err) {
      this.#scanError = `reading ${this.dir}: ${err instanceof Error ? err.message : String(err)}`;
      if (this.#outcome === undefined) this.#outcome = { services: [], workloads: [], configs: [], problems: [], fingerprint: '' };
      return true;
    }
  }

  /** Reads the directory again; true when the outcome changed. */
  async #rescan(): Promise<boolean> {
    const missing = !(await stat(this.dir).then((st) => st.isDirectory(), () => false));
    if (missing !== this.#missing) {
      this.#missing = missing;
      this.#staleSince = missing ? new Date(this.#now()).toISOString() : undefined;
    }
    // A directory that went away (an unmounted volume) is unavailable, not empty: keep the last state.
    if (!missing) {
      const scanned = await scanResourceFiles(this.dir);
      const next = new Map<string, FileState>();
      for (const { path, stats } of scanned) {
        const state = await this.#readFile(path, stats, this.#files.get(path));
        if (state !== undefined) next.set(path, state);
      }
      this.#files = next;
    }
    const outcome = this.#compute();
    if (this.#outcome !== undefined && outcome.fingerprint === this.#fingerprint) return false;
    this.#fingerprint = outcome.fingerprint;
    this.#outcome = outcome;
    this.#lastChange = new Date(this.#now()).toISOString();
    return true;
  }

  async #readFile(p: string, st: Stats, prev: FileState | undefined): Promise<FileState | undefined> {
    const signature = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    // File timestamps are coarse (a few ms): a file modified within RACY_MS of its last read may have changed
    // again without a new signature, so it is read again (git's "racily clean" rule).
    if (prev !== undefined && prev.signature === signature && Date.now() - st.mtimeMs > RACY_MS) return prev;
    const size = st.size;
    const base = { signature, mtimeMs: st.mtimeMs };
    if (size > this.#limits.maxFileBytes) {
      return {
        ...base,
        text: undefined,
        lastGood: prev?.lastGood,
        generation: prev?.generation ?? 0,
        problems: [{ file: p, path: '', message: `file is ${size} bytes; the limit is ${this.#limits.maxFileBytes} bytes` }],
      };
    }
    let text: string;
    try {
      text = await readFile(p, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // gone between listing and reading
      // Unreadable (permissions, I/O): invalid, not deleted; the last good version stays.
      const message = `cannot read: ${err instanceof Error ? err.message : String(err)}`;
      return { ...base, text: undefined, lastGood: prev?.lastGood, generation: prev?.generation ?? 0, problems: [{ file: p, path: '', message }] };
    }
    if (prev !== undefined && prev.text === text) return { ...prev, ...base };
    const parsed = parseResourceText(text, p, {
      limits: this.#limits,
      source: { kind: 'file', shard: this.shard },
      ...(this.#opts.defaultNamespace === undefined ? {} : { defaultNamespace: this.#opts.defaultNamespace }),
    });
    if (parsed.problems.length === 0) return { ...base, text, lastGood: parsed, generation: ++this.#generation, problems: [] };
    return { ...base, text, lastGood: prev?.lastGood, generation: prev?.generation ?? 0, problems: parsed.problems };
  }

  #compute(): Outcome {
    const problems: Problem[] = [];
    const files = [...this.#files.keys()].sort();
    // Candidates per resource key, in path order.
    const candidates = new Map<string, { file: string; resource: AnyResource; parsed: ParsedFile }[]>();
    for (const f of files) {
      const st = this.#files.get(f)!;
      problems.push(...st.problems);
      for (const r of st.lastGood?.resources ?? []) {
        const k = resourceKey(r);
        let list = candidates.get(k);
        if (list === undefined) candidates.set(k, (list = []));
        list.push({ file: f, resource: r, parsed: st.lastGood! });
      }
    }
    const owners = new Map<string, string>();
    const inForce: { file: string; resource: AnyResource }[] = [];
    const lineOf = (c: { resource: AnyResource; parsed: ParsedFile }): number => {
      const idx = c.resource.origin?.document;
      const doc = c.parsed.documents.find((d) => d.index === idx);
      return doc?.lineOf('metadata.name') ?? c.resource.origin?.line ?? 1;
    };
    for (const [key, list] of candidates) {
      const previous = this.#owners.get(key);
      const chosen = list.find((c) => c.file === previous) ?? list[0];
      owners.set(key, chosen.file);
      inForce.push({ file: chosen.file, resource: chosen.resource });
      for (const other of list) {
        if (other === chosen) continue;
        problems.push({
          file: other.file, document: other.resource.origin?.document, line: lineOf(other), path: 'metadata.name',
          message: `${key} is also defined in ${chosen.file}:${lineOf(chosen)}; that definition stays in force and this one is ignored`,
        });
        problems.push({
          file: chosen.file, document: chosen.resource.origin?.document, line: lineOf(chosen), path: 'metadata.name',
          message: `${key} is also defined in ${other.file}:${lineOf(other)}, where it is ignored; this definition stays in force`,
        });
      }
    }
    this.#owners = owners;
    // Stable order: by file, then document.
    inForce.sort((a, b) => a.file.localeCompare(b.file) || (a.resource.origin?.document ?? 0) - (b.resource.origin?.document ?? 0));
    const source: Source = { kind: 'file', shard: this.shard };
    const services: ServiceEntry[] = [];
    const workloads: WorkloadEntry[] = [];
    const configs: Resource[] = [];
    const serviceBy = new Map<string, ServiceEntry>();
    const workloadBy = new Map<string, WorkloadEntry>();
    for (const { file, resource } of inForce) {
      if (resource.kind !== 'ServiceEntry' && resource.kind !== 'WorkloadEntry') {
        configs.push(resource);
        continue;
      }
      const hub = convertToHub([resource], source);
      for (const s of hub.services) {
        const k = serviceKey(s);
        const first = serviceBy.get(k);
        if (first === undefined) {
          serviceBy.set(k, s);
          services.push(s);
        } else {
          problems.push({
            file, document: resource.origin?.document, line: resource.origin?.line, path: 'spec.hosts',
            message: `host ${s.hostname} in namespace ${s.namespace} is already defined by ${first.source.ref ?? 'another ServiceEntry'}; the first definition stays in force`,
          });
        }
      }
      for (const w of hub.workloads) {
        const k = workloadKey(w);
        const first = workloadBy.get(k);
        if (first === undefined) {
          workloadBy.set(k, w);
          workloads.push(w);
        } else {
          problems.push({
            file, document: resource.origin?.document, line: resource.origin?.line, path: 'metadata.name',
            message: `workload ${k} is already defined by ${first.source.ref ?? 'another resource'}; the first definition stays in force`,
          });
        }
      }
    }
    problems.sort(byLocation);
    const frozenProblems = Object.freeze(problems.map((p) => Object.freeze(stripUndefined(p))));
    const fingerprint = JSON.stringify([
      files.map((f) => [f, this.#files.get(f)!.generation]),
      [...owners.entries()].sort(),
      frozenProblems,
      this.#watchError ?? '',
      this.#missing,
    ]);
    return {
      services: Object.freeze(services),
      workloads: Object.freeze(workloads),
      configs: Object.freeze(configs),
      problems: frozenProblems,
      fingerprint,
    };
  }
}

function stripUndefined(p: Problem): Problem {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as unknown as Problem;
}
