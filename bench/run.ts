// `npm run bench [-- --json] [--rounds N] [--models a,b]`: our training and inference throughput
// side by side with PyTorch (same model, batch, threads) in one run, as medians, with ratios.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { F, getNumThreads, inferenceMode, manualSeed, nn, optim, randint, randn, scope } from '../src/torch';
import { ResNet18 } from '../src/models/resnet';
import { SmallCNN } from '../src/models/small-cnn';
import { randomCropFlip } from '../src/data/augment';
import { DATASETS } from '../src/data/datasets';
import { normalize } from '../src/train/loop';
import { randperm, tensor } from '../src/torch';

interface Result { model: string; train_img_s: number; infer_img_s: number }

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const MODELS: Record<string, { make: () => nn.Module; shape: number[]; trainSteps: number; inferSteps: number }> = {
  'mnist-cnn': { make: () => new SmallCNN(1, 10, 28), shape: [1, 28, 28], trainSteps: 20, inferSteps: 10 },
  'resnet18-cifar': { make: () => new ResNet18({ width: 64, inChannels: 3 }), shape: [3, 32, 32], trainSteps: 6, inferSteps: 5 },
};
const BATCH = 128;

function ours(name: string): Result {
  const spec = MODELS[name];
  manualSeed(0);
  const model = spec.make();
  const x = randn([BATCH, ...spec.shape]), y = randint(0, 10, [BATCH]);
  const opt = new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  model.train();
  const train: number[] = [];
  for (let i = 0; i <= spec.trainSteps; i++) {
    const t0 = performance.now();
    opt.zeroGrad();
    scope(() => F.crossEntropy(model.call(x), y).backward());
    opt.step();
    if (i > 0) train.push(performance.now() - t0);
  }
  model.eval();
  const infer: number[] = [];
  for (let i = 0; i <= spec.inferSteps; i++) {
    const t0 = performance.now();
    inferenceMode(() => scope(() => { model.call(x); }));
    if (i > 0) infer.push(performance.now() - t0);
  }
  model.dispose();
  opt.dispose();
  return { model: name, train_img_s: (1000 * BATCH) / median(train), infer_img_s: (1000 * BATCH) / median(infer) };
}

function torch(name: string): Result {
  const spec = MODELS[name];
  const script = path.resolve(__dirname, '..', '..', 'bench', 'torch_bench.py');
  const out = execFileSync(process.env.VARDEFENSE_PYTHON ?? '/usr/bin/python3',
    [script, name, String(getNumThreads()), String(spec.trainSteps), String(spec.inferSteps), '64'], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Result;
}

/** Milliseconds per batch of 128 for the CIFAR input pipeline: gather, random crop + flip, normalise. */
function loaderMs(): number {
  const n = 50000;
  const images = tensor(new Uint8Array(n * 3 * 32 * 32).map((_, i) => (i * 31) % 256), [n, 3, 32, 32]);
  const perm = randperm(n);
  const times: number[] = [];
  for (let b = 0; b < 40; b++) {
    const t0 = performance.now();
    scope(() => normalize(randomCropFlip(images.indexSelect(0, perm.slice(0, b * BATCH, (b + 1) * BATCH))), DATASETS.cifar10));
    times.push(performance.now() - t0);
  }
  images.dispose();
  return median(times);
}

function main(): void {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const opt = (flag: string, dflt: string): string => { const i = args.indexOf(flag); return i >= 0 ? args[i + 1] : dflt; };
  const rounds = Number(opt('--rounds', '3'));
  const models = opt('--models', Object.keys(MODELS).join(',')).split(',');
  for (const m of models) if (!MODELS[m]) throw new Error(`--models: unknown model '${m}' (known: ${Object.keys(MODELS).join(', ')})`);
  for (const m of models) {
    // alternate ours/PyTorch so that machine noise hits both alike; report medians over rounds
    const a: Result[] = [], b: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      a.push(ours(m));
      b.push(torch(m));
      if (!json) process.stderr.write(`${m} round ${r + 1}/${rounds}: ours train ${a[r].train_img_s.toFixed(1)} infer ${a[r].infer_img_s.toFixed(1)} | torch train ${b[r].train_img_s.toFixed(1)} infer ${b[r].infer_img_s.toFixed(1)} img/s\n`);
    }
    const row = {
      model: m, batch: BATCH, threads: getNumThreads(), rounds,
      train_img_s: median(a.map((r) => r.train_img_s)), torch_train_img_s: median(b.map((r) => r.train_img_s)),
      infer_img_s: median(a.map((r) => r.infer_img_s)), torch_infer_img_s: median(b.map((r) => r.infer_img_s)),
      train_ratio: 0, infer_ratio: 0,
    };
    row.train_ratio = row.train_img_s / row.torch_train_img_s;
    row.infer_ratio = row.infer_img_s / row.torch_infer_img_s;
    if (m === 'resnet18-cifar') {
      const ms = loaderMs();
      Object.assign(row, { loader_ms_per_batch: ms, loader_share_of_train_step: ms / ((1000 * BATCH) / row.train_img_s) });
      if (!json) console.log(`loader (gather + crop/flip + normalise) ${ms.toFixed(2)} ms per batch of ${BATCH} = ${(100 * ms / ((1000 * BATCH) / row.train_img_s)).toFixed(2)}% of a ResNet-18 training step`);
    }
    if (json) console.log(JSON.stringify(row));
    else console.log(`${m.padEnd(15)} train ${row.train_img_s.toFixed(1)} vs torch ${row.torch_train_img_s.toFixed(1)} img/s (ratio ${row.train_ratio.toFixed(2)}) | infer ${row.infer_img_s.toFixed(1)} vs torch ${row.torch_infer_img_s.toFixed(1)} img/s (ratio ${row.infer_ratio.toFixed(2)})`);
  }
}

main();
