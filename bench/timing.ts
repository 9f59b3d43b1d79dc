// What the benches share: the process's CPU time and the median of repeated measurements.

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
