// `npm run bench [-- --json] [--rounds N] [--models a,b]`: our training and inference throughput
// side by side with PyTorch (same model, batch, threads) in one run, as medians, with ratios (zoo-*:
// torchvision's vgg16_bn, mobilenet_v2, resnet50 and convnext_tiny at 1x32x32, issue 28); and
// (purification-fmnist) the default defense's cost against FT's in fp32 and bf16.
// resnet18-fmnist (the grids' model: width 16, 1x28x28, 10 classes) runs in fp32 and in bf16 (autocast,
// where the CPU has AVX512-BF16 or AMX), each against PyTorch fp32 and PyTorch bf16 autocast, in
// channels-last (ours: activations; PyTorch: model.to(channels_last)) and contiguous.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { bf16Support, getNumThreads, manualSeed, nn, Precision, randint, randn, scope, withPrecision } from '../src/torch';
import { computeEnvironment } from '../src/torch/environment';
import { ResNet18 } from '../src/models/resnet';
import { SmallCNN } from '../src/models/small-cnn';
import { createModel } from '../src/models';
import { median, stepTimes, torchBench } from './timing';
import * as T from '../src/torch';
import { randomCropFlip } from '../src/data/augment';
import { DATASETS } from '../src/data/datasets';
import { normalize } from '../src/train/loop';
import { randperm, tensor } from '../src/torch';

/**
 * img/s by the wall clock, and images per CPU-second of the whole process (user + system time of all its
 * threads): on a machine shared with other work the wall clock measures the others too, while CPU time
 * stays near what the computation needs (libgomp's spin before sleeping is cut to 10,000 rounds for both
 * sides, src/torch/native.ts).
 */
interface Result { model: string; train_img_s: number; infer_img_s: number; train_img_cpu_s?: number; infer_img_cpu_s?: number }

type Layout = 'channels-last' | 'contiguous';
interface Variant { precision: Precision; layout: Layout }

interface BenchModel { make: (v: Variant) => nn.Module; shape: number[]; trainSteps: number; inferSteps: number; width: number; variants?: boolean; batch?: number }

/**
 * torchvision's classifiers as issue 28's zoo trains them (scripts/judges/zoo.py: one input channel,
 * 32x32, 10 classes), batch 32, in the layout each model's code takes (PyTorch: its default, contiguous).
 */
const ZOO = ['vgg16_bn', 'mobilenet_v2', 'resnet50', 'convnext_tiny'] as const;
const zooModel = (name: (typeof ZOO)[number]): BenchModel => ({
  make: () => createModel({ name, inChannels: 1, numClasses: 10, imageSize: 32 }), shape: [1, 32, 32], trainSteps: 4, inferSteps: 4, width: 64, batch: 32,
});

const MODELS: Record<string, BenchModel> = {
  'mnist-cnn': { make: () => new SmallCNN(1, 10, 28), shape: [1, 28, 28], trainSteps: 20, inferSteps: 10, width: 64 },
  'resnet18-cifar': { make: () => new ResNet18({ width: 64, inChannels: 3 }), shape: [3, 32, 32], trainSteps: 6, inferSteps: 5, width: 64 },
  'resnet18-fmnist': {
    make: (v) => new ResNet18({ width: 16, inChannels: 1, numClasses: 10, channelsLast: v.layout === 'channels-last' }),
    shape: [1, 28, 28], trainSteps: 20, inferSteps: 10, width: 16, variants: true,
  },
  ...Object.fromEntries(ZOO.map((name) => [`zoo-${name}`, zooModel(name)])),
};
const BATCH = 128;

const DEFAULT_VARIANT: Variant = { precision: 'fp32', layout: 'channels-last' };

function ours(name: string, v: Variant = DEFAULT_VARIANT): Result {
  // the contiguous rows: no channels-last bf16 weights or 1-channel inputs taken as channels-last either
  nn.bf16Layout.channelsLast = v.layout === 'channels-last';
  try {
    return withPrecision(v.precision, () => oursIn(name, v));
  } finally {
    nn.bf16Layout.channelsLast = true;
  }
}

function oursIn(name: string, v: Variant): Result {
  const spec = MODELS[name];
  manualSeed(0);
  const model = spec.make(v), batch = spec.batch ?? BATCH;
  const x = randn([batch, ...spec.shape]), y = randint(0, 10, [batch]);
  const { train, trainCpu, infer, inferCpu } = stepTimes(T, model, x, y, spec.trainSteps, spec.inferSteps);
  model.dispose();
  return { model: name, train_img_s: (1000 * batch) / median(train), infer_img_s: (1000 * batch) / median(infer),
    train_img_cpu_s: (1000 * batch) / median(trainCpu), infer_img_cpu_s: (1000 * batch) / median(inferCpu) };
}

/** PyTorch: the older rows as they were measured (contiguous fp32); the variants' rows in the variant given. */
function torch(name: string, v?: Variant): Result {
  const spec = MODELS[name];
  return torchBench(name, { threads: getNumThreads(), trainSteps: spec.trainSteps, inferSteps: spec.inferSteps, width: spec.width,
    precision: v?.precision ?? 'fp32', layout: v?.layout ?? 'contiguous', batch: spec.batch ?? BATCH });
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
  const models = opt('--models', [...Object.keys(MODELS), PURIFICATION].join(',')).split(',');
  for (const m of models) if (!MODELS[m] && m !== PURIFICATION) throw new Error(`--models: unknown model '${m}' (known: ${[...Object.keys(MODELS), PURIFICATION].join(', ')})`);
  const env = computeEnvironment(), bf16 = bf16Support();
  const isa = { cpu: env.cpu, isa: env.isa, aten_capability: env.atenCapability, bf16_hardware: bf16.hardware, bf16: bf16.ok ? 'yes' : `refused: ${bf16.reason}`, limits: env.limits };
  if (json) console.log(JSON.stringify({ environment: isa }));
  else console.log(`CPU: ${env.cpu}; widest ISA ${env.isa}, ATen ${env.atenCapability}, bf16 instructions: ${bf16.hardware}${bf16.ok ? '' : ` (bf16 rows skipped: ${bf16.reason})`}` +
    `${Object.keys(env.limits).length ? `; limits ${Object.entries(env.limits).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}; ${getNumThreads()} threads, batch ${BATCH} (zoo-*: 32)`);
  for (const m of models) {
    if (m === PURIFICATION) {
      purificationRows(rounds, json, bf16.ok);
      continue;
    }
    if (MODELS[m].variants) {
      variantsRow(m, rounds, json, bf16.ok);
      continue;
    }
    // alternate ours/PyTorch so that machine noise hits both alike; report medians over rounds
    const a: Result[] = [], b: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      a.push(ours(m));
      b.push(torch(m));
      if (!json) process.stderr.write(`${m} round ${r + 1}/${rounds}: ours train ${a[r].train_img_s.toFixed(1)} infer ${a[r].infer_img_s.toFixed(1)} | torch train ${b[r].train_img_s.toFixed(1)} infer ${b[r].infer_img_s.toFixed(1)} img/s\n`);
    }
    const row = {
      model: m, batch: MODELS[m].batch ?? BATCH, threads: getNumThreads(), rounds,
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

/** The grids' workload as a defense runs it: bench/defense-cost.ts on the planted fixture at the grids' shape. */
const PURIFICATION = 'purification-fmnist';

/**
 * The default defense (VarDefense, robust: the class search, then the purification) against FT (10
 * epochs) on the planted fixture's width-16 ResNet-18 at 28x28 (the grids' model and image size), in
 * fp32 and bf16: per image of the main stage's steps and whole, as ratios to FT's in the same
 * precision and bf16's speed-up over fp32 (bench/defense-cost.ts, alternating the runs in each round).
 */
function purificationRows(rounds: number, json: boolean, bf16: boolean): void {
  const script = path.join(__dirname, 'defense-cost.js');
  const out = execFileSync(process.execPath, [script, '--planted', '--width', '16', '--size', '28', '--train', '30000', '--rounds', String(rounds),
    '--methods', 'vardefense,ft', '--precisions', bf16 ? 'fp32,bf16' : 'fp32', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', json ? 'ignore' : 'inherit'] });
  const rows = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | string>[];
  if (json) { for (const r of rows) console.log(JSON.stringify({ model: PURIFICATION, threads: getNumThreads(), rounds, ...r })); return; }
  const lines = [`${PURIFICATION} (planted fixture: ResNet-18 width 16, 1x28x28, 1,500 clean training images), medians of ${rounds} round(s):`,
    '| defense | precision | whole (s) | / FT | per image of the main stage (us) | / FT | bf16 speed-up |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const n = (k: string): string => (typeof r[k] === 'number' ? (r[k] as number).toFixed(2) : '-');
    lines.push(`| ${r.method} | ${r.precision} | ${n('total_s')} | ${n('total_s_paired_ratio')} | ${(r.epoch_image_us as number).toFixed(0)} | ${n('epoch_image_us_paired_ratio')} | ${n('epoch_image_us_fp32_over_this')} |`);
  }
  console.log(lines.join('\n'));
}

/**
 * One row for a model in fp32 and bf16, channels-last and contiguous, ours and PyTorch's, alternating
 * within each round (so that machine noise hits all alike); medians over rounds.
 */
function variantsRow(m: string, rounds: number, json: boolean, bf16: boolean): void {
  const variants: Variant[] = (bf16 ? ['fp32', 'bf16'] as Precision[] : ['fp32'] as Precision[])
    .flatMap((precision) => (['channels-last', 'contiguous'] as Layout[]).map((layout) => ({ precision, layout })));
  const key = (who: string, v: Variant): string => `${who}_${v.precision}_${v.layout === 'channels-last' ? 'cl' : 'contig'}`;
  const runs: Record<string, Result[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      for (const [who, f] of [['ours', ours], ['torch', torch]] as const) {
        const res = f(m, v);
        (runs[key(who, v)] ??= []).push(res);
        if (!json) process.stderr.write(`${m} round ${r + 1}/${rounds} ${who} ${v.precision} ${v.layout}: train ${res.train_img_s.toFixed(1)} infer ${res.infer_img_s.toFixed(1)} img/s` +
          ` (per CPU-second: ${res.train_img_cpu_s?.toFixed(1)}, ${res.infer_img_cpu_s?.toFixed(1)})\n`);
      }
    }
  }
  const row: Record<string, unknown> = { model: m, batch: BATCH, threads: getNumThreads(), rounds };
  const med = (k: string, f: 'train_img_s' | 'infer_img_s' | 'train_img_cpu_s' | 'infer_img_cpu_s'): number => median(runs[k].map((x) => x[f] ?? NaN));
  for (const v of variants) for (const who of ['ours', 'torch']) {
    for (const f of ['train_img_s', 'infer_img_s', 'train_img_cpu_s', 'infer_img_cpu_s'] as const) row[`${key(who, v)}_${f}`] = med(key(who, v), f);
  }
  const g = (k: string): number => row[k] as number;
  const ratios: Record<string, number> = {
    train_ratio_fp32: g('ours_fp32_cl_train_img_s') / g('torch_fp32_cl_train_img_s'),
    infer_ratio_fp32: g('ours_fp32_cl_infer_img_s') / g('torch_fp32_cl_infer_img_s'),
  };
  if (bf16) Object.assign(ratios, {
    train_ratio_bf16: g('ours_bf16_cl_train_img_s') / g('torch_bf16_cl_train_img_s'),
    infer_ratio_bf16: g('ours_bf16_cl_infer_img_s') / g('torch_bf16_cl_infer_img_s'),
    train_bf16_over_our_fp32: g('ours_bf16_cl_train_img_s') / g('ours_fp32_cl_train_img_s'),
    train_bf16_over_torch_fp32: g('ours_bf16_cl_train_img_s') / g('torch_fp32_cl_train_img_s'),
    torch_train_bf16_over_fp32: g('torch_bf16_cl_train_img_s') / g('torch_fp32_cl_train_img_s'),
    train_bf16_cl_over_contig: g('ours_bf16_cl_train_img_s') / g('ours_bf16_contig_train_img_s'),
    infer_bf16_over_our_fp32: g('ours_bf16_cl_infer_img_s') / g('ours_fp32_cl_infer_img_s'),
    cpu_train_ratio_bf16: g('ours_bf16_cl_train_img_cpu_s') / g('torch_bf16_cl_train_img_cpu_s'),
    cpu_train_bf16_over_our_fp32: g('ours_bf16_cl_train_img_cpu_s') / g('ours_fp32_cl_train_img_cpu_s'),
  });
  ratios.cpu_train_ratio_fp32 = g('ours_fp32_cl_train_img_cpu_s') / g('torch_fp32_cl_train_img_cpu_s');
  Object.assign(row, ratios);
  if (json) { console.log(JSON.stringify(row)); return; }
  const lines = [`${m} (ResNet-18 width 16, 1x28x28, 10 classes), img/s, medians of ${rounds} rounds:`,
    '| precision | layout | train ours | train PyTorch | ratio | infer ours | infer PyTorch | ratio | train per CPU-s ours | PyTorch | ratio |', '|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const v of variants) {
    const [o, t] = [key('ours', v), key('torch', v)];
    lines.push(`| ${v.precision} | ${v.layout} | ${g(`${o}_train_img_s`).toFixed(0)} | ${g(`${t}_train_img_s`).toFixed(0)} | ${(g(`${o}_train_img_s`) / g(`${t}_train_img_s`)).toFixed(2)} | ` +
      `${g(`${o}_infer_img_s`).toFixed(0)} | ${g(`${t}_infer_img_s`).toFixed(0)} | ${(g(`${o}_infer_img_s`) / g(`${t}_infer_img_s`)).toFixed(2)} | ` +
      `${g(`${o}_train_img_cpu_s`).toFixed(0)} | ${g(`${t}_train_img_cpu_s`).toFixed(0)} | ${(g(`${o}_train_img_cpu_s`) / g(`${t}_train_img_cpu_s`)).toFixed(2)} |`);
  }
  console.log(lines.join('\n'));
  console.log(Object.entries(ratios).map(([k, x]) => `${k} ${x.toFixed(2)}`).join(', '));
}

main();
