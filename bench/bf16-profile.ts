// Where a training step's time goes in fp32 and in bf16 (issue 29: why bf16 trains at under 2x fp32):
// the grids' model (ResNet-18 width 16, 1x28x28, 10 classes), batch 128, channels-last as it trains.
// Each convolution and each batch norm of the model is timed alone, forward + backward on the input
// it sees in a step (recorded by forward hooks; in bf16 the convolution casts its weight as autocast
// does, and the batch norm takes the convolution's bf16 output); "the rest" is the whole step minus
// those (ReLU, residual adds, pooling, the head, the loss, the optimiser step, gradient casts).
// CPU time of the process (user + system, all threads) per step, medians over rounds: robust to other
// jobs on a shared machine, where the wall clock is not.
//   node dist/bench/bf16-profile.js [--rounds 5] [--steps 10] [--json]
import { bf16Support, F, MemoryFormat, manualSeed, nn, optim, Precision, randint, randn, scope, Tensor, withPrecision } from '../src/torch';
import { computeEnvironment } from '../src/torch/environment';
import { ResNet18 } from '../src/models/resnet';
import { arg, cpuMs, median } from './timing';

const BATCH = 128;

/** Median CPU milliseconds of fn over `steps` calls, after one warm-up call. */
function time(steps: number, fn: () => void): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < steps; i++) { const c0 = cpuMs(); fn(); t.push(cpuMs() - c0); }
  return median(t);
}

interface Site { module: nn.Module; input: number[] }

/** The model's convolutions and batch norms with the input shape each sees, in call order. */
function sites(model: nn.Module, x: Tensor): { convs: Site[]; norms: Site[] } {
  const convs: Site[] = [], norms: Site[] = [];
  const handles = model.namedModules().flatMap(([, m]) => {
    if (m instanceof nn.Conv2d) return [m.registerForwardHook((mod, input) => { convs.push({ module: mod, input: input.shape }); })];
    if (m instanceof nn.BatchNorm2d) return [m.registerForwardHook((mod, input) => { norms.push({ module: mod, input: input.shape }); })];
    return [];
  });
  scope(() => { model.call(x); });
  for (const h of handles) h.remove();
  return { convs, norms };
}

/** CPU ms of one forward + backward of a module on a channels-last input of the shape (and dtype) it sees in a step. */
function moduleMs(site: Site, dtype: 'float32' | 'bfloat16', steps: number, inputGrad: boolean): number {
  const x = scope(() => randn(site.input).to(dtype).contiguous(MemoryFormat.channelsLast));
  if (inputGrad) x.requiresGrad_(true);
  const g = scope(() => { const y = site.module.call(x); return randn(y.shape).to(y.dtype).contiguous(MemoryFormat.channelsLast); });
  const ms = time(steps, () => scope(() => { site.module.call(x).backward(g); }));
  for (const p of site.module.parameters()) p.grad?.dispose();
  x.dispose();
  g.dispose();
  return ms;
}

interface Breakdown { precision: Precision; step_ms: number; conv_ms: number; bn_ms: number; rest_ms: number; by_conv: Record<string, number> }

/** A convolution's kind: channels in -> out, kernel, stride, input size (the model's convs grouped by it). */
const convLabel = (c: Site): string => {
  const m = c.module as nn.Conv2d;
  return `${m.inChannels}->${m.outChannels} ${m.kernelSize}x${m.kernelSize}/${m.options.stride ?? 1} @${c.input[2]}`;
};

function breakdown(precision: Precision, steps: number): Breakdown {
  return withPrecision(precision, () => {
    manualSeed(0);
    const model = new ResNet18({ width: 16, inChannels: 1, numClasses: 10 });
    const x = randn([BATCH, 1, 28, 28]), y = randint(0, 10, [BATCH]);
    const opt = new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
    model.train();
    const step = time(steps, () => { opt.zeroGrad(); scope(() => F.crossEntropy(model.call(x), y).backward()); opt.step(); });
    const { convs, norms } = sites(model, x);
    const act = precision === 'bf16' ? 'bfloat16' : 'float32';
    // the first convolution's input is the image (fp32, no gradient); every other module's input is an activation
    const byConv: Record<string, number> = {};
    convs.forEach((c, i) => { byConv[convLabel(c)] = (byConv[convLabel(c)] ?? 0) + moduleMs(c, i === 0 ? 'float32' : act, steps, i > 0); });
    const conv = Object.values(byConv).reduce((a, b) => a + b, 0);
    const bn = norms.reduce((s, b) => s + moduleMs(b, act, steps, true), 0);
    opt.dispose();
    model.dispose();
    return { precision, step_ms: step, conv_ms: conv, bn_ms: bn, rest_ms: step - conv - bn, by_conv: byConv };
  });
}

function main(): void {
  const rounds = Number(arg('rounds', '5')), steps = Number(arg('steps', '10')), json = process.argv.includes('--json');
  const env = computeEnvironment(), bf16 = bf16Support();
  if (!bf16.ok) { console.log(`bf16 not available here (${bf16.reason}): nothing to compare`); return; }
  const runs: Record<Precision, Breakdown[]> = { fp32: [], bf16: [] };
  for (let r = 0; r < rounds; r++) {
    for (const p of ['fp32', 'bf16'] as Precision[]) runs[p].push(breakdown(p, steps));
    if (!json) process.stderr.write(`round ${r + 1}/${rounds}: step fp32 ${runs.fp32[r].step_ms.toFixed(1)} ms, bf16 ${runs.bf16[r].step_ms.toFixed(1)} ms CPU\n`);
  }
  const med = (p: Precision, k: 'step_ms' | 'conv_ms' | 'bn_ms' | 'rest_ms'): number => median(runs[p].map((b) => b[k]));
  const parts = ['conv_ms', 'bn_ms', 'rest_ms', 'step_ms'] as const;
  const row = Object.fromEntries(parts.flatMap((k) => [[`fp32_${k}`, med('fp32', k)], [`bf16_${k}`, med('bf16', k)]]));
  const convKinds = Object.keys(runs.fp32[0].by_conv);
  const byConv = Object.fromEntries(convKinds.map((c) => [c, { fp32_ms: median(runs.fp32.map((b) => b.by_conv[c])), bf16_ms: median(runs.bf16.map((b) => b.by_conv[c])) }]));
  if (json) { console.log(JSON.stringify({ cpu: env.cpu, isa: env.isa, bf16: bf16.hardware, batch: BATCH, rounds, steps, ...row, by_conv: byConv })); return; }
  console.log(`CPU: ${env.cpu}; ISA ${env.isa}; bf16 instructions ${bf16.hardware}; ResNet-18 width 16, 1x28x28, batch ${BATCH}; CPU ms per training step, medians of ${rounds} rounds`);
  console.log('| part | fp32 ms | bf16 ms | bf16 speed-up | share of the fp32 step | share of the bf16 step |\n|---|---|---|---|---|---|');
  for (const k of parts) {
    const a = row[`fp32_${k}`], b = row[`bf16_${k}`];
    console.log(`| ${k.replace('_ms', '')} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(a / b).toFixed(2)} | ${(100 * a / row.fp32_step_ms).toFixed(0)}% | ${(100 * b / row.bf16_step_ms).toFixed(0)}% |`);
  }
  console.log('\nconvolutions by kind (in -> out channels, kernel/stride, input size), forward + backward, all of that kind:\n| conv | fp32 ms | bf16 ms | bf16 speed-up |\n|---|---|---|---|');
  for (const [c, t] of Object.entries(byConv)) console.log(`| ${c} | ${t.fp32_ms.toFixed(1)} | ${t.bf16_ms.toFixed(1)} | ${(t.fp32_ms / t.bf16_ms).toFixed(2)} |`);
}

main();
