/**
 * `trellisctl analyze PATH...`: reads resource files (directories recursively, with the file registry's rules),
 * decodes them with the file registry's parser, runs the cross-resource checks and prints one line per finding
 * (or a JSON array with `--output json`). Exit 1 when any finding is an error.
 */
import { Command, Option } from 'commander';
import { TrellisError } from '@trellis/model';
import { readFile, stat } from 'node:fs/promises';
import { DEFAULT_FILE_LIMITS, listResourceFiles, parseResourceText, type ParsedFile } from '@trellis/registry-adapters/file';
import { analyze } from '../analyze/analyze.js';
import { formatFinding, type Finding } from '../analyze/findings.js';
import { liveFindings, type LiveConflict, type LiveShard } from '../analyze/live.js';
import { getJson } from './control-client.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from './program.js';

export interface AnalyzeOptions {
  readonly output: 'human' | 'json';
  readonly defaultNamespace: string;
  /** A running control plane's HTTP address: its live registry conflicts and stale shards are added. */
  readonly control?: string;
}

/** Expands PATH arguments into files: a directory gives its resource files, a file is taken as is. */
export async function collectFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch {
      throw new UsageError(`${p}: no such file or directory`);
    }
    if (st.isDirectory()) out.push(...(await listResourceFiles(p)));
    else out.push(p);
  }
  return [...new Set(out)];
}

/** Reads and parses one file; unreadable or oversized files become a problem of that file. */
export async function readParsed(file: string, defaultNamespace: string): Promise<ParsedFile> {
  const failed = (message: string): ParsedFile => ({ file, documents: [], resources: [], skipped: [], problems: [{ file, path: '', message }] });
  try {
    const { size } = await stat(file);
    if (size > DEFAULT_FILE_LIMITS.maxFileBytes) return failed(`file is ${size} bytes; the limit is ${DEFAULT_FILE_LIMITS.maxFileBytes} bytes`);
    const text = await readFile(file, 'utf8');
    return parseResourceText(text, file, { defaultNamespace, source: { kind: 'file', shard: 'analyze' } });
  } catch (err) {
    return failed(`cannot read: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export async function runAnalyze(paths: readonly string[], options: AnalyzeOptions, out: (s: string) => void): Promise<Finding[]> {
  const files = await collectFiles(paths);
  const parsed = await Promise.all(files.map((f) => readParsed(f, options.defaultNamespace)));
  const findings = analyze(parsed);
  if (options.control !== undefined) {
    const c = await getJson<{ conflicts: LiveConflict[] }>(options.control, '/debug/conflicts');
    const r = await getJson<{ shards: LiveShard[] }>(options.control, '/debug/registryz');
    findings.push(...liveFindings(c.conflicts, r.shards));
  }
  if (options.output === 'json') {
    out(`${JSON.stringify(findings.map(({ code, level, file, line, path, message }) => ({ code, level, file, line, path, message })), null, 2)}\n`);
  } else {
    for (const f of findings) out(`${formatFinding(f)}\n`);
    if (findings.length === 0) out(`No problems found in ${files.length} file${files.length === 1 ? '' : 's'}${options.control !== undefined ? ' and the live registries' : ''}.\n`);
  }
  return findings;
}

export function registerAnalyze(program: Command): Command {
  return program
    .command('analyze')
    .description('Check resource files (Istio API and Trellis kinds) for invalid documents and cross-resource mistakes.')
    .argument('[path...]', 'files or directories (read recursively: .yaml, .yml, .json); optional with --control')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['human', 'json']).default('human'))
    .option('--default-namespace <namespace>', 'namespace of resources that give none', 'default')
    .option('--control <url>', 'also report the live registry conflicts, stale shards and dropped items of a running control plane (its HTTP address)')
    .action(async (paths: string[], opts: { output: 'human' | 'json'; defaultNamespace: string; control?: string }) => {
      if (paths.length === 0 && opts.control === undefined) throw new UsageError("error: missing required argument 'path' (or give --control URL)");
      let findings: Finding[];
      try {
        findings = await runAnalyze(paths, opts, (s) => process.stdout.write(s));
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
        process.stderr.write(`trellisctl: ${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      process.exitCode = findings.some((f) => f.level === 'error') ? EXIT_FINDINGS : EXIT_OK;
    });
}
