// No defense may read the test set or a triggered image: statically (what the defense modules import)
// and at run time (every registered defense runs inside the lock that refuses such reads).
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { triggeredTestSet } from '../../src/attacks/poison';
import { loadImageSet, withoutTestSet } from '../../src/data/datasets';
import { DEFENSES, resolveOptions } from '../../src/defenses/registry';
import { repoRoot } from '../helpers';
import { planted, PLANTED_NORM } from '../fixtures/planted';

test('defense modules import no data reader, no attack code and no file access', () => {
  const dir = path.join(repoRoot, 'src', 'defenses');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5);
  for (const f of files) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    const imports = [...src.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    for (const i of imports) assert.ok(!/attacks|data\/(idx|cifar|download|synthetic)|^fs$|^path$|child_process/.test(i), `${f} imports ${i}`);
    assert.ok(!/loadImageSet|triggeredTestSet|applyTrigger/.test(src), `${f} names a test-set or trigger function`);
  }
});

test('inside the lock, test-set and triggered-image reads throw', () => {
  withoutTestSet(() => {
    assert.throws(() => loadImageSet('fashion-mnist', 'test'), /fashion-mnist test split: refused inside a defense/);
    const p = { images: null as never, labels: null as never };
    assert.throws(() => triggeredTestSet(p.images, p.labels, { trigger: { kind: 'blend', alpha: 0.2, seed: 1 }, poisonRatio: 0.05, target: 0, mode: 'all-to-one', seed: 1 }, 10),
      /triggered test set: refused inside a defense/);
  });
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
