// The import checker must catch what the old regex missed: each escape below is planted in a tiny
// project and has to come back as a violation with its chain.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defenseRule } from './defense-rule';
import { describe, violations } from './import-graph';

function project(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vardefense-graph-'));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  }
  return root;
}

const LIBRARY = {
  'src/util/files.ts': "import * as fs from 'fs';\nexport const read = (f: string) => fs.readFileSync(f);\n",
  'src/util/rng.ts': 'export const seed = 1;\n',
  'src/attacks/poison.ts': 'export const trigger = 1;\n',
  'src/train/run.ts': "import { read } from '../util/files';\nexport const run = read;\n",
  'src/data/idx.ts': "import { read } from '../util/files';\nexport const readIdx = read;\n",
  'src/defenses/helper.ts': "import { read } from '../util/files';\nexport const h = read;\n",
  'src/util/plain.js': "module.exports = require('fs');\n",
  'src/util/plain.d.ts': 'export declare const x: number;\n',
};

function found(defense: string): string[] {
  const root = project({ ...LIBRARY, 'src/defenses/d.ts': defense });
  try {
    return violations('src/defenses/d.ts', root, defenseRule).map(describe);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

test('a clean defense passes', () => {
  assert.deepEqual(found("import { seed } from '../util/rng';\nimport * as path from 'node:path';\n"
    + "export const x = seed + path.sep.length;\nexport const m = { eval: () => 0, require: 1 };\nexport function f(g: Function): string { m.eval(); g(); return m.constructor.name; }\n"), []);
});

const ESCAPES: [string, string, RegExp][] = [
  ['require("node:fs")', 'const fs = require("node:fs");\n', /^src\/defenses\/d\.ts -> node:fs: a Node built-in/],
  ['fs/promises', "import { readFile } from 'fs/promises';\n", /-> node:fs\/promises/],
  ['child_process', "import { execSync } from 'child_process';\n", /-> node:child_process/],
  ['worker_threads', "import { Worker } from 'worker_threads';\n", /-> node:worker_threads/],
  ['https', "import * as https from 'node:https';\n", /-> node:https/],
  ['a double-quoted data reader', 'import { readIdx } from "../data/idx";\n', /^src\/defenses\/d\.ts -> src\/data\/idx\.ts \('\.\.\/data\/idx'\): a data reader/],
  ['files through a helper', "import { h } from './helper';\n", /^src\/defenses\/d\.ts -> src\/defenses\/helper\.ts -> src\/util\/files\.ts \('\.\.\/util\/files'\): file access/],
  ['the run module', "import { run } from '../train/run';\n", /-> src\/train\/run\.ts .*: a run's files/],
  ['a dynamic import', "export async function f() { return import('../attacks/poison'); }\n", /-> src\/attacks\/poison\.ts .*: attack code/],
  ['a re-export', "export * from '../attacks/poison';\n", /-> src\/attacks\/poison\.ts .*: attack code/],
  ['a type-only import', "import type { trigger } from '../attacks/poison';\n", /-> src\/attacks\/poison\.ts .*: attack code/],
  ['import = require', "import fs = require('fs');\n", /-> node:fs/],
  ['a computed require', "const m = 'f' + 's';\nexport const fs = require(m);\n", /-> <dynamic load>: a load or host access the graph cannot follow/],
  ['module.require', "export const fs = module.require('fs');\n", /-> node:fs/],
  ['process.binding', "export const fs = (process as any).binding('fs');\n", /-> <dynamic load>/],
  ['eval', "export const fs = eval('require')('fs');\n", /-> <dynamic load>/],
  ['fetch', "export const get = () => fetch('http://example.com');\n", /-> <dynamic load>/],
  ['the Function constructor', "export const p = new Function('return process')();\n", /-> <dynamic load>/],
  ['a function\'s constructor', "export const p = (() => 0).constructor('return process')();\n", /-> <dynamic load>/],
  ['JavaScript behind a .d.ts', "import { x } from '../util/plain';\n", /-> src\/util\/plain\.d\.ts .*: JavaScript behind a declaration file/],
  ['a package', "import { Queue } from 'bullmq';\n", /-> (bullmq|unresolved:bullmq)/],
];

for (const [what, defense, expected] of ESCAPES) {
  test(`the checker catches ${what}`, () => {
    const v = found(defense);
    assert.ok(v.some((l) => expected.test(l)), `expected ${expected} among:\n${v.join('\n') || '(no violation)'}`);
  });
}
