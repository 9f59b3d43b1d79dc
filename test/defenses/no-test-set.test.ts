// No defense may read the test set, the trigger or the attack's records: statically (nothing a defense
// module imports, transitively, reaches a data reader, attack code, run files or the host) and at
// run time (every registered defense runs inside the lock that refuses such reads, async included).
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { op, tensor } from '../../src/torch';
import { AttackSpec, poisonTrainingSet, triggeredTestSet } from '../../src/attacks/poison';
import { applyTrigger } from '../../src/attacks/triggers';
import { loadImageSet } from '../../src/data/datasets';
import { withoutTestSet } from '../../src/data/test-set-lock';
import { DEFENSES, resolveOptions } from '../../src/defenses/registry';
import { readRunRecord } from '../../src/train/run-records';
import { Rng } from '../../src/util/rng';
import { repoRoot, tmpDir } from '../helpers';
import { defenseRule } from '../threat/defense-rule';
import { describe, violations } from '../threat/import-graph';
import { planted } from '../fixtures/planted';

test('no defense module reaches a data reader, attack code, run files, the CLI or file/process/network access', () => {
  const files = fs.readdirSync(path.join(repoRoot, 'src', 'defenses')).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5);
  const found = files.flatMap((f) => violations(`src/defenses/${f}`, repoRoot, defenseRule).map(describe));
  assert.deepEqual(found, []);
});

test('the engine refuses operators that read files (a defense could name aten::from_file)', () => {
  const file = path.join(tmpDir('from-file'), 'attack.json');
  fs.writeFileSync(file, '{"target": 3}');
  assert.throws(() => op('aten::from_file')(file, false, 13, { dtype: 'uint8' }), /aten::from_file: refused, the engine reads no files/);
});

const ATTACK: AttackSpec = { trigger: { kind: 'blend', alpha: 0.2, seed: 1 }, poisonRatio: 0.5, target: 0, mode: 'all-to-one', seed: 1 };
const images = () => tensor(Uint8Array.from({ length: 4 * 8 * 8 }, (_, i) => i % 251), [4, 1, 8, 8]);
const labels = () => tensor(Float64Array.from([0, 1, 2, 3]), [4]).long();
const runDir = tmpDir('lock');
const attackFile = path.join(runDir, 'attack.json');
fs.writeFileSync(attackFile, JSON.stringify({ target: 0, cleanIndices: [1, 2] }));

/** Every read the lock guards, each returning normally outside it. */
const GUARDED: [string, () => unknown, RegExp][] = [
  ['the test split', () => loadImageSet('fashion-mnist', 'test'), /fashion-mnist test split: refused inside a defense/],
  ['the triggered test set', () => triggeredTestSet(images(), labels(), ATTACK, 10), /triggered test set: refused/],
  ['applyTrigger', () => applyTrigger(images(), ATTACK.trigger, new Rng(1)), /stamping a trigger: refused/],
  ['poisonTrainingSet', () => poisonTrainingSet(images(), labels(), ATTACK, 10), /poisoning a training set: refused/],
  ["the run's attack.json", () => readRunRecord(attackFile), /run record .*attack\.json: refused/],
];

function assertAllRefused(when: string): void {
  for (const [what, read, refused] of GUARDED) assert.throws(read, refused, `${what} ${when}`);
}

test('outside the lock, every guarded read works', () => {
  for (const [what, read] of GUARDED) {
    try {
      read();
    } catch (e) {
      // the test split may be absent on this machine: only a refusal is a failure here
      assert.doesNotMatch((e as Error).message, /refused/, what);
    }
  }
  assert.deepEqual(readRunRecord(attackFile), { target: 0, cleanIndices: [1, 2] });
});

test('inside the lock, every guarded read throws', () => {
  withoutTestSet(() => assertAllRefused('in the locked call'));
});

test('the lock holds across awaits, timers and promise callbacks started inside it', async () => {
  await withoutTestSet(async () => {
    await Promise.resolve();
    assertAllRefused('after an await');
    await new Promise((r) => setTimeout(r, 1));
    assertAllRefused('after a setTimeout');
    await new Promise<void>((resolve, reject) => setImmediate(() => { try { assertAllRefused('in a setImmediate callback'); resolve(); } catch (e) { reject(e); } }));
    await Promise.resolve().then(() => assertAllRefused('in a then callback'));
  });
});

test('a continuation scheduled inside the lock is still locked after the locked call returns', async () => {
  let later: Promise<void> = Promise.resolve();
  withoutTestSet(() => {
    later = new Promise((r) => setTimeout(r, 5)).then(() => assertAllRefused('after withoutTestSet returned'));
  });
  assert.doesNotThrow(() => readRunRecord(attackFile), 'the caller itself is outside the lock');
  await later;
});

test('every registered defense runs to the end inside the lock', () => {
  const p = planted();
  for (const [name, method] of Object.entries(DEFENSES)) {
    const quick = Object.fromEntries(Object.entries({ epochs: 1, batchSize: 64, teacherEpochs: 1, generatorEpochs: 1, iterations: 5, lambdaTrialEpochs: 1 }).filter(([k]) => k in method.schema.shape));
    const o = resolveOptions(method, 'default', quick);
    const r = withoutTestSet(() => method.run(p.model, p.data, o as never, {}));
    assert.equal(r.method, name);
    assert.ok(r.valAccAfter >= 0 && r.valAccAfter <= 1);
  }
});
