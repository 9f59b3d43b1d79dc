// A/B of engine changes: the width-16 Fashion-MNIST ResNet-18's fp32 training and inference img/s for
// two or more builds of the toolkit (checkouts with a built dist/) and PyTorch channels-last, each in
// its own process, alternating in every round so that the machine's drift hits all alike.
//   node dist/bench/builds.js --builds /work/old,/work/main [--rounds 3] [--steps 15]
// One build, as a child: node dist/bench/builds.js --one <root> --steps 15 (prints one JSON line).
import { execFileSync } from 'child_process';
import * as path from 'path';
import { arg, median, stepTimes, torchBench } from './timing';

/** Training and inference img/s of the build at `root` (medians of `steps` steps after one warm-up). */
function one(root: string, steps: number): { train: number; infer: number } {
  /* eslint-disable @typescript-eslint/no-var-requires */
  const T = require(path.join(root, 'dist/src/torch'));
  const { ResNet18 } = require(path.join(root, 'dist/src/models/resnet'));
  /* eslint-enable @typescript-eslint/no-var-requires */
  T.manualSeed(0);
  const model = new ResNet18({ width: 16, inChannels: 1, numClasses: 10 });
  const x = T.randn([128, 1, 28, 28]), y = T.randint(0, 10, [128]);
  const { train, infer } = stepTimes(T, model, x, y, steps, steps);
  return { train: 128000 / median(train), infer: 128000 / median(infer) };
}

function main(): void {
  const steps = Number(arg('steps', '15'));
  if (process.argv.includes('--one')) { console.log(JSON.stringify(one(arg('one', ''), steps))); return; }
  const builds = arg('builds', '').split(',').filter(Boolean);
  if (!builds.length) throw new Error('--builds: give the checkouts to compare, comma-separated (each with a built dist/)');
  const rounds = Number(arg('rounds', '3'));
  const rows: Record<string, { train: number[]; infer: number[] }> = {};
  const put = (name: string, r: { train: number; infer: number }): void => {
    rows[name] ??= { train: [], infer: [] };
    rows[name].train.push(r.train);
    rows[name].infer.push(r.infer);
    console.error(`${name}: train ${r.train.toFixed(0)}, infer ${r.infer.toFixed(0)} img/s`);
  };
  for (let round = 0; round < rounds; round++) {
    for (const b of builds) put(b, JSON.parse(execFileSync(process.execPath, [__filename, '--one', b, '--steps', String(steps)], { encoding: 'utf8' })));
    const t = torchBench('resnet18-fmnist', { threads: Number(process.env.VARDEFENSE_THREADS ?? '2'), trainSteps: steps, inferSteps: steps, width: 16,
      precision: 'fp32', layout: 'channels-last', batch: 128 });
    put('PyTorch channels-last', { train: t.train_img_s, infer: t.infer_img_s });
  }
  console.log(`width-16 ResNet-18, fp32, batch 128, img/s, medians of ${rounds} rounds (each round: every build, then PyTorch)`);
  console.log('| build | train | infer | train / PyTorch |');
  console.log('|---|---|---|---|');
  const torchTrain = median(rows['PyTorch channels-last'].train);
  for (const [name, r] of Object.entries(rows))
    console.log(`| ${name} | ${median(r.train).toFixed(0)} | ${median(r.infer).toFixed(0)} | ${(median(r.train) / torchTrain).toFixed(2)} |`);
}

main();
