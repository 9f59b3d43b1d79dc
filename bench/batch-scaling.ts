// CPU time per image of a frozen model's forward + input gradient (the GAN defense's and the trigger
// searches' inner step) at several batch sizes: whether batching more images per call (e.g. the ten
// classes' generators in one forward) would pay on this CPU. The grids' model: ResNet-18 width 16, 1x28x28.
//   node dist/bench/batch-scaling.js [--batches 128,512,1280] [--steps 6]
import { F, randn, scope } from '../src/torch';
import { computeEnvironment } from '../src/torch/environment';
import { ResNet18 } from '../src/models/resnet';
import { arg, cpuMs, median } from './timing';

const model = new ResNet18({ width: 16, inChannels: 1, numClasses: 10 });
model.eval();
for (const p of model.parameters()) p.requiresGrad_(false);
const steps = Number(arg('steps', '6'));
console.log(`CPU: ${computeEnvironment().cpu}; CPU us per image of forward + input gradient (median of ${steps} calls after one warm-up)`);
for (const b of arg('batches', '128,512,1280').split(',').map(Number)) {
  const x = randn([b, 1, 28, 28]);
  const t: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const c0 = cpuMs();
    scope(() => { const xi = x.clone().requiresGrad_(true); F.softmax(model.call(xi), 1).select(1, 0).mean().backward(); });
    if (i > 0) t.push(cpuMs() - c0);
  }
  console.log(`batch ${b}: ${((1000 * median(t)) / b).toFixed(0)} us/image`);
  x.dispose();
}
