// Every defense on every architecture, or a refusal that names the method (issue 28): each registered
// model x each registered defense runs one step on a few images, inside the test-set lock. Layers are
// found by module type and the graph (./stages.ts), not by ResNet names: NAD's stages on a ResNet-18
// are its published layer2-4, and on a VGG the blocks between max-pools.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { tensor } from '../../src/torch';
import { withoutTestSet } from '../../src/data/test-set-lock';
import { DefenseData, holdOut } from '../../src/defenses/common';
import { DEFENSES, resolveOptions } from '../../src/defenses/registry';
import { stages } from '../../src/defenses/stages';
import { createModel, MODEL_NAMES, ModelName } from '../../src/models';

const SIZE = 32, CHANNELS = 3, CLASSES = 3;

function tinyData(n: number): DefenseData {
  const images = tensor(Uint8Array.from({ length: n * CHANNELS * SIZE * SIZE }, (_, i) => (i * 37 + (i >> 10) * 11) % 251), [n, CHANNELS, SIZE, SIZE]);
  const labels = tensor(Float64Array.from({ length: n }, (_, i) => i % CLASSES), [n]).long();
  return { ...holdOut({ images, labels, classes: CLASSES }, 0.25, 1), norm: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } };
}

const model = (name: ModelName) => createModel({ name, width: 8, inChannels: CHANNELS, numClasses: CLASSES, imageSize: SIZE });

test('stages from the graph: a ResNet-18\'s last three are NAD\'s published layer2-4; a VGG\'s end before each max-pool', () => {
  const data = tinyData(8);
  for (const name of ['resnet18', 'preact-resnet18', 'torchvision-resnet18-cifar'] as const) {
    const s = stages(model(name), data);
    assert.deepEqual(s.slice(-3).map((x) => x.name), ['layer2', 'layer3', 'layer4'], name);
    assert.deepEqual(s.slice(-3).map((x) => x.height), [16, 8, 4], name);
  }
  if ((MODEL_NAMES as readonly string[]).includes('vgg11_bn')) {
    const vgg = model('vgg11_bn' as ModelName);
    const s = stages(vgg, data);
    assert.deepEqual(s.map((x) => x.height), [32, 16, 8, 4, 2, 1]);
    // each stage ends in the ReLU before a max-pool (the pool itself only resamples)
    for (const x of s.slice(0, -1)) assert.match(x.name, /^features\.\d+$/);
  }
});

/** The options that make each defense take about one step on the tiny data. */
const QUICK = { epochs: 1, batchSize: 32, teacherEpochs: 1, generatorEpochs: 1, iterations: 2, lambdaTrialEpochs: 1, pgdSteps: 1, stepFraction: 0.5 };
// vardefense's default searches a trigger per class first (issue 27): two search steps here, and no square
// scan (a forward pass over some 1,600 stamped squares, whatever the architecture; test/defenses/square-scan.test.ts)
const QUICK_OF: Record<string, Record<string, unknown>> = { gan: { triggerSizes: [3], betas: [0.5] }, vardefense: { searchSteps: 2, squareScan: false } };

/**
 * Where a method has no meaning for a model it refuses, naming itself and why; these are all the
 * refusals there are (the README's table). Any other error is a failure.
 */
const VIT = /(^|-)vit_\w+$/;
const REFUSALS: { models: RegExp; defense: string; message: RegExp }[] = [
  { models: /^(small-cnn|convnext_\w+|(backdoorbench-)?vit_\w+)$/, defense: 'anp', message: /^anp: the model has no batch-norm layer to mask/ },
  { models: /^(small-cnn|convnext_\w+|(backdoorbench-)?vit_\w+)$/, defense: 'clp', message: /^clp: the model has no convolution followed by a batch norm/ },
  { models: /^small-cnn$/, defense: 'nad', message: /^nad: the model has 2 stages .*3 needed for 3 betas/ },
  { models: VIT, defense: 'nad', message: /^nad: the model has 1 stage .*3 needed for 3 betas/ },
  { models: VIT, defense: 'vardefense', message: /^vardefense: the model has 1 conv layer \(its input embedding/ },
];

/**
 * Every registered model x every defense is the full check (VARDEFENSE_ALL_ARCHITECTURES=1; the largest
 * torchvision models, ViT-L or EfficientNet-B7, take minutes and gigabytes each). By default the smallest
 * model of each family: the toolkit's and the light ones with every defense, the heavier ones (VGG,
 * DenseNet, EfficientNet, ConvNeXt, ViT) with the defenses that find layers (ANP, the GAN search, FT-SAM
 * and SAU, which add only time there, with the full check). The larger members of a family are the same
 * modules in other numbers (src/models: one file a family).
 */
const ALL = process.env.VARDEFENSE_ALL_ARCHITECTURES === '1';
const LIGHT = ['resnet18', 'preact-resnet18', 'small-cnn', 'torchvision-resnet18', 'torchvision-resnet18-cifar', 'resnet34', 'mobilenet_v2', 'mobilenet_v3_small'];
const HEAVY = ['vgg11_bn', 'densenet121', 'efficientnet_b0', 'convnext_tiny', 'vit_b_16'];
const SLOW_DEFENSES = ['anp', 'gan', 'ft-sam', 'sau'];

test('every registered model x every registered defense: one step inside the lock, or a refusal naming the method and why', (t) => {
  const data = tinyData(24);
  const outcomes: string[] = [];
  assert.ok([...LIGHT, ...HEAVY].every((n) => (MODEL_NAMES as readonly string[]).includes(n)), 'every family\'s smallest is registered');
  const models = ALL ? MODEL_NAMES : MODEL_NAMES.filter((n) => LIGHT.includes(n) || HEAVY.includes(n));
  for (const name of models) {
    const defenses = Object.keys(DEFENSES).filter((d) => ALL || !HEAVY.includes(name) || !SLOW_DEFENSES.includes(d));
    for (const d of defenses) {
      const method = DEFENSES[d];
      const quick = { ...Object.fromEntries(Object.entries(QUICK).filter(([k]) => k in method.schema.shape)), ...QUICK_OF[d] };
      const m = model(name), t0 = Date.now();
      const refusal = REFUSALS.find((r) => r.defense === d && r.models.test(name));
      try {
        const r = withoutTestSet(() => method.run(m, data, resolveOptions(method, 'default', quick) as never, {}));
        assert.equal(refusal, undefined, `${name} x ${d} ran; the table says it refuses`);
        assert.equal(r.method, d);
        assert.ok(r.valAccAfter >= 0 && r.valAccAfter <= 1, `${name} x ${d}: validation accuracy ${r.valAccAfter}`);
        outcomes.push(`${name} x ${d}: runs (${Date.now() - t0} ms)`);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        const msg = (e as Error).message;
        assert.ok(refusal && refusal.message.test(msg), `${name} x ${d}: ${msg}`);
        outcomes.push(`${name} x ${d}: refused (${msg})`);
      } finally {
        m.dispose();
      }
    }
  }
  t.diagnostic(outcomes.join('\n'));
});
