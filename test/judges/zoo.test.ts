// Issue 28's zoo (scripts/judges/zoo.py): torchvision's own vgg16_bn, mobilenet_v2, resnet50 and
// convnext_tiny with a one-channel first conv, as PyTorch builds them for the zoo's models, have exactly
// the state-dict names and shapes the toolkit's `--model <name> --dataset images:1x32:10` builds, so the
// zoo's model.pt files load as they are.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as path from 'path';
import { createModel, ModelName } from '../../src/models';
import { repoRoot } from '../helpers';

const pythonBin = process.env.VARDEFENSE_PYTHON ?? '/usr/bin/python3';
const hasTorchvision = spawnSync(pythonBin, ['-c', 'import torch, torchvision, numpy'], { stdio: 'ignore' }).status === 0;

test('the zoo\'s torchvision models have the toolkit\'s state-dict names and shapes',
  { skip: hasTorchvision ? false : `${pythonBin} cannot import torch and torchvision` }, () => {
    for (const arch of ['vgg16_bn', 'mobilenet_v2', 'resnet50', 'convnext_tiny'] as ModelName[]) {
      const theirs = JSON.parse(execFileSync(pythonBin, [path.join(repoRoot, 'scripts', 'judges', 'zoo.py'), 'layout', '--arch', arch], { encoding: 'utf8' })) as [string, number[]][];
      const model = createModel({ name: arch, inChannels: 1, numClasses: 10, imageSize: 32 });
      const ours = new Map([...model.namedParameters(), ...model.namedBuffers()].map(([k, v]) => [k, v.shape]));
      model.dispose();
      const wanted = theirs.filter(([k]) => !k.endsWith('num_batches_tracked'));
      assert.ok(wanted.length > 50, `${arch}: a whole state dict (${wanted.length} entries)`);
      for (const [k, shape] of wanted) assert.deepEqual(ours.get(k), shape, `${arch}: ${k}`);
      assert.equal(ours.size, new Set([...wanted.map(([k]) => k), ...[...ours.keys()].filter((k) => k.endsWith('num_batches_tracked'))]).size, `${arch}: no entries of ours beyond PyTorch's`);
    }
  });
