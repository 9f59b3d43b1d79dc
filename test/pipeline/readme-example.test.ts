// README's "Use it as a library" example, compiled against the package as a user would import it
// ('vardefense' resolved through package.json "exports" and its "types") and run on a synthetic dataset.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { createModel } from '../../src/models';
import { manualSeed, saveSafetensors } from '../../src/torch';
import { repoRoot, tmpDir } from '../helpers';

/** The first ```ts block after the heading. */
export function exampleOf(readme: string, heading: string): string {
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README.md has no '${heading}'`);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `no \`\`\`ts block after '${heading}'`);
  return m[1];
}

function compile(dir: string, file: string): void {
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, target: ts.ScriptTarget.ES2022, strict: true,
    types: ['node'], typeRoots: [path.join(repoRoot, 'node_modules', '@types')], skipLibCheck: true, outDir: dir,
  };
  const program = ts.createProgram([file], options);
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...program.emit().diagnostics];
  assert.deepEqual(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), [], 'the example compiles against the package');
}

test('the README library example compiles against the package and runs', () => {
  const dir = tmpDir('readme');
  const example = exampleOf(fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8'), '### Use it as a library');
  assert.match(example, /from 'vardefense'/);
  fs.writeFileSync(path.join(dir, 'example.ts'), example);
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(repoRoot, path.join(dir, 'node_modules', 'vardefense'), 'dir');
  compile(dir, path.join(dir, 'example.ts'));

  // what the example expects to find: MNIST-format data and a small CNN's weights
  writeSyntheticIdx(path.join(dir, 'data', 'mnist'), { train: 1000, test: 200 });
  manualSeed(5);
  const net = createModel({ name: 'small-cnn', inChannels: 1, numClasses: 10, imageSize: 28 });
  saveSafetensors(path.join(dir, 'model.safetensors'), net.stateDict());
  net.dispose();

  const out = execFileSync(process.execPath, [path.join(dir, 'example.js')], {
    cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VARDEFENSE_DATA: path.join(dir, 'data') },
  });
  const m = /undefended: ACC ([\d.]+), ASR ([\d.]+)\nft: ACC ([\d.]+) -> ([\d.]+), ASR ([\d.]+) -> ([\d.]+)/.exec(out);
  assert.ok(m, `the example printed before/after:\n${out}`);
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'defended', 'ft', 'report.json'), 'utf8'));
  assert.equal(report.before.acc, Number(m[1]));
  assert.equal(report.after.acc, Number(m[4]));
  assert.equal(report.source.clean.size, 500);
  assert.equal(report.report.options.epochs, 2);
  fs.rmSync(dir, { recursive: true });
});
