// The layer rule of src/: the command line sits on top (nothing outside src/cli imports it) and no
// module reaches itself through its imports (read with the compiler's parser, type-only imports too).
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { repoRoot } from '../helpers';
import { resolveSpecifier, specifiersOf } from '../threat/import-graph';

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(repoRoot, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** src/ file -> the src/ files it imports */
function srcGraph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources('src')) {
    const abs = path.join(repoRoot, f);
    g.set(f, [...new Set(specifiersOf(abs).map((s) => resolveSpecifier(s, abs, repoRoot)).filter((m) => m.startsWith('src/') && m.endsWith('.ts')))]);
  }
  return g;
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function cycles(g: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++; stack.push(v); on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      for (let w = ''; w !== v;) { w = stack.pop()!; on.delete(w); scc.push(w); }
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return out;
}

test('no module outside src/cli imports src/cli', () => {
  const g = srcGraph();
  assert.ok(g.size > 50 && g.has('src/pipeline/defend.ts'), 'the walk sees the sources');
  const bad = [...g].flatMap(([f, deps]) => (f.startsWith('src/cli/') ? [] : deps.filter((d) => d.startsWith('src/cli/')).map((d) => `${f} -> ${d}`)));
  assert.deepEqual(bad, []);
});

test('no import cycle among src/ modules', () => {
  assert.deepEqual(cycles(srcGraph()).map((c) => c.join(' <-> ')), []);
});

test('the cycle finder finds a cycle and leaves a chain alone', () => {
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c']]);
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
  assert.deepEqual(cycles(new Map([['a', ['a']]])), [['a']]);
});
