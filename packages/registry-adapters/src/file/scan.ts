/**
 * Listing of the resource files under a directory.
 *
 * Rules: files ending in `.yaml`, `.yml` or `.json`, in any subdirectory; symbolic links are followed (a
 * directory reached twice through links is read once); entries whose name starts with `.` are skipped. The last
 * rule covers editor temporaries, `.git`, and Kubernetes ConfigMap mounts, whose real files live in a timestamped
 * `..2026_…` directory reached through the `..data` link: only the user-visible links (`config.yaml →
 * ..data/config.yaml`) are read, so nothing is counted twice.
 */
import type { Stats } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const RESOURCE_FILE = /\.(ya?ml|json)$/i;

/** True for names the scan never reads: hidden files and directories (`.git`, `..data`, `..2026_…`, `.x.swp`). */
export function isHiddenName(name: string): boolean {
  return name.startsWith('.');
}

/** A resource file found by a scan, with the `stat` of what it points to. */
export interface ScannedFile {
  readonly path: string;
  readonly stats: Stats;
}

/** Paths of the resource files under `dir` (joined onto `dir` as given), sorted. A missing `dir` gives []. */
export async function listResourceFiles(dir: string): Promise<string[]> {
  return (await scanResourceFiles(dir)).map((f) => f.path);
}

/** `listResourceFiles` with each file's `stat` (links followed), so callers can skip unchanged files. */
export async function scanResourceFiles(dir: string): Promise<ScannedFile[]> {
  const out: ScannedFile[] = [];
  const visited = new Set<string>();
  async function walk(d: string): Promise<void> {
    let real: string;
    try {
      real = await realpath(d);
    } catch {
      return;
    }
    if (visited.has(real)) return;
    visited.add(real);
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    const entries = await Promise.all(
      names.filter((n) => !isHiddenName(n)).map(async (name) => {
        const p = join(d, name);
        try {
          return { name, path: p, stats: await stat(p) }; // follows links; a dangling link is skipped
        } catch {
          return undefined;
        }
      }),
    );
    for (const e of entries) {
      if (e === undefined) continue;
      if (e.stats.isDirectory()) await walk(e.path);
      else if (e.stats.isFile() && RESOURCE_FILE.test(e.name)) out.push({ path: e.path, stats: e.stats });
    }
  }
  await walk(dir);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
