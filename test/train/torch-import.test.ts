// A model trained in PyTorch evaluates here to the same ACC and ASR, from torch.save or safetensors.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { evaluateTarget } from '../../src/pipeline/evaluate';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { python, tmpDir } from '../helpers';

test('PyTorch-trained ResNet-18 (torch.save and safetensors) gives PyTorch\'s ACC and ASR', () => {
  const dir = tmpDir('import');
  writeSyntheticIdx(path.join(dir, 'mnist'), { train: 2000, test: 500 });
  const ref = JSON.parse(python('torch_ref.py', 'trained_model', dir).trim()) as { acc: number; asr: number };
  assert.ok(ref.acc > 0.5, `the PyTorch model learned something (ACC ${ref.acc})`);
  const attack = { trigger: { kind: 'patch' as const, size: 3, pattern: 'white' as const, position: 'fixed' as const }, poisonRatio: 0.05, target: 0, mode: 'all-to-one' as const, seed: 1 };
  for (const file of ['pytorch.pt', 'pytorch.safetensors']) {
    const m = evaluateTarget({ dataset: 'mnist', model: 'resnet18', width: 4, attack, weights: path.join(dir, file) }, dir);
    assert.ok(Math.abs(m.acc - ref.acc) < 1e-6, `${file}: ACC ${m.acc} vs PyTorch ${ref.acc}`);
    assert.ok(Math.abs(m.asr! - ref.asr) < 1e-6, `${file}: ASR ${m.asr} vs PyTorch ${ref.asr}`);
  }
  fs.rmSync(dir, { recursive: true });
});
