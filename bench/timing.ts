// What the benches share: their flags, the process's CPU time, the median of repeated measurements, the
// timed training and inference steps, and PyTorch's run of the same workload.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { z } from 'zod';
import { ompSpinDefault } from '../src/torch/omp';

/** The value after `--<name>` on the command line, or `fallback` where the flag or its value is absent. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** The process's CPU time so far (user + system, all threads), in ms: robust to other jobs on a shared machine. */
export const cpuMs = (): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };

/** The median (the mean of the two middle values for an even count). */
export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

type Torch = typeof import('../src/torch');

/**
 * Wall and CPU ms of each training step (SGD with momentum and weight decay, cross-entropy) and each
 * inference batch of `model` on (x, y), after one warm-up of each. `T` is the toolkit's torch module,
 * of this build or of another checkout's (bench/builds.ts).
 */
export function stepTimes(T: Torch, model: InstanceType<Torch['nn']['Module']>, x: InstanceType<Torch['Tensor']>, y: InstanceType<Torch['Tensor']>, trainSteps: number, inferSteps: number):
  { train: number[]; trainCpu: number[]; infer: number[]; inferCpu: number[] } {
  const opt = new T.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  model.train();
  const train: number[] = [], trainCpu: number[] = [];
  for (let i = 0; i <= trainSteps; i++) {
    const t0 = performance.now(), c0 = cpuMs();
    opt.zeroGrad();
    T.scope(() => T.F.crossEntropy(model.call(x), y).backward());
    opt.step();
    if (i > 0) { train.push(performance.now() - t0); trainCpu.push(cpuMs() - c0); }
  }
  opt.dispose();
  model.eval();
  const infer: number[] = [], inferCpu: number[] = [];
  for (let i = 0; i <= inferSteps; i++) {
    const t0 = performance.now(), c0 = cpuMs();
    T.inferenceMode(() => T.scope(() => { model.call(x); }));
    if (i > 0) { infer.push(performance.now() - t0); inferCpu.push(cpuMs() - c0); }
  }
  return { train, trainCpu, infer, inferCpu };
}

export interface TorchBenchRun { threads: number; trainSteps: number; inferSteps: number; width: number; precision: string; layout: string; batch: number }

/** bench/torch_bench.py's figures (its last output line): images per second and per CPU-second, and each timed training step */
export const TORCH_FIGURES = z.object({
  model: z.string(), train_img_s: z.number(), infer_img_s: z.number(),
  train_img_cpu_s: z.number(), infer_img_cpu_s: z.number(), train_step_ms: z.array(z.number()),
});
export type TorchFigures = z.infer<typeof TORCH_FIGURES>;

/**
 * PyTorch's figures for one of bench/torch_bench.py's models (its last output line, parsed), under
 * Debian's python3 (VARDEFENSE_PYTHON overrides) with libgomp's spin count as the toolkit sets it for
 * itself (src/torch/native.ts), so both sides wait for work alike.
 */
export function torchBench(model: string, r: TorchBenchRun): TorchFigures {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'torch_bench.py');
  const env = ompSpinDefault({ ...process.env });
  const out = execFileSync(process.env.VARDEFENSE_PYTHON ?? '/usr/bin/python3',
    [script, model, String(r.threads), String(r.trainSteps), String(r.inferSteps), String(r.width), r.precision, r.layout, String(r.batch)], { encoding: 'utf8', env });
  const last = out.trim().split('\n').pop() ?? '';
  let json: unknown;
  try { json = JSON.parse(last); } catch { throw new Error(`bench/torch_bench.py ${model}: its last line is not JSON: ${last.slice(0, 200)}`); }
  const parsed = TORCH_FIGURES.safeParse(json);
  if (!parsed.success) throw new Error(`bench/torch_bench.py ${model}: unexpected output ${last.slice(0, 200)} (${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message})`);
  return parsed.data;
}
