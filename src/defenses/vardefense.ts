// VarDefense (Fan et al. 2021): neurons of the later conv layers whose output varies little on clean
// data are the backdoor's; fine-tune on the clean split with cross-entropy plus lambda times a norm of
// the selected neurons' parameters, under a per-layer threshold that rises step by step.
// Only the defender's clean split is read.
import { cat, F, manualSeed, nn, noGrad, optim, scope, Tensor, tensor } from '../torch';
import { ImageSet } from '../data/datasets';
import { Normalization, normalize } from '../train/loop';
import { Rng } from '../util/rng';
import { ChannelMetric, makeMetric, MetricName, weightScores } from './metrics';
import { ConvUnit, lastUnits, lowestChannels, lowestChannelsNetworkWise, thresholdAt } from './selection';

export interface VarDefenseOptions {
  /** the last L conv layers are purified (paper Figure 5) */
  layers: number;
  metric: MetricName;
  /** a threshold per layer (paper) or one over all purified layers */
  scope: 'layer-wise' | 'network-wise';
  /** share of each layer's channels under the threshold at the first and the last step */
  startFraction: number;
  maxFraction: number;
  /** the threshold rises once per epoch or once per iteration */
  schedule: 'epoch' | 'iteration';
  /** momentum of the running statistics (null: exact pooled statistics) */
  statsMomentum: number | null;
  /** where a neuron's output is measured: the conv output or the batch-norm output after it */
  measureAt: 'conv' | 'bn';
  lambda: number;
  penalty: 'l1' | 'group-l2';
  /** parameters of a selected neuron that are penalised */
  penalize: 'conv+bn' | 'bn';
  epochs: number;
  lr: number;
  batchSize: number;
  momentum: number;
  weightDecay: number;
  /** zero the selected neurons whose penalised parameters ended below this norm (0: off) */
  zeroBelow: number;
  seed: number;
}

/** The literal reading of the paper (see docs/vardefense.md when it exists). */
export const PAPER_PRESET: VarDefenseOptions = {
  layers: 4, metric: 'variance', scope: 'layer-wise', startFraction: 0.1, maxFraction: 0.5, schedule: 'epoch',
  statsMomentum: 0.9, measureAt: 'conv', lambda: 1e-4, penalty: 'l1', penalize: 'conv+bn',
  epochs: 10, lr: 0.01, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, zeroBelow: 0, seed: 1,
};

export interface LayerReport { name: string; channels: number; selected: number[]; scores: number[] }
export interface VarDefenseReport {
  options: VarDefenseOptions;
  layers: string[];
  /** share of channels under the threshold, per step */
  thresholds: number[];
  /** the selection and scores of each layer at the last step */
  final: LayerReport[];
  zeroed: Record<string, number[]>;
  seconds: number;
}

function penaltyOf(unit: ConvUnit, channels: number[], o: VarDefenseOptions): Tensor | null {
  if (channels.length === 0) return null;
  return scope(() => {
    const idx = tensor(Float64Array.from(channels), [channels.length]).long();
    const parts: Tensor[] = [];
    if (o.penalize === 'conv+bn' || !unit.bn) parts.push(unit.conv.weight.indexSelect(0, idx).flatten(1));
    if (unit.bn) parts.push(unit.bn.weight.indexSelect(0, idx).unsqueeze(1), unit.bn.bias.indexSelect(0, idx).unsqueeze(1));
    const p = parts.length === 1 ? parts[0] : cat(parts, 1);
    return o.penalty === 'l1' ? p.abs().sum() : p.square().sum(1).add(1e-12).sqrt().sum();
  });
}

/** Runs VarDefense on `model` in place. `clean` is the defender's clean split. */
export function varDefense(model: nn.Module, clean: ImageSet, norm: Normalization, o: VarDefenseOptions): VarDefenseReport {
  const t0 = performance.now();
  const units = lastUnits(model, o.layers);
  const measured = (u: ConvUnit): nn.Module => (o.measureAt === 'bn' && u.bn ? u.bn : u.conv);
  const metrics = new Map<ConvUnit, ChannelMetric>();
  const hooks = o.metric === 'weight' ? [] : units.map((u) => {
    const m = makeMetric(o.metric as Exclude<MetricName, 'weight'>, o.statsMomentum);
    metrics.set(u, m);
    return measured(u).registerForwardHook((_mod, _in, out) => { m.update(out); });
  });
  const scores = (): Float64Array[] => units.map((u) => (o.metric === 'weight' ? weightScores(u.conv.weight) : metrics.get(u)!.scores()));
  const select = (fraction: number): number[][] => {
    const s = scores();
    return o.scope === 'layer-wise' ? s.map((x) => lowestChannels(x, fraction)) : lowestChannelsNetworkWise(s, fraction);
  };

  // a first measurement pass over the clean split, without training
  const n = clean.labels.numel;
  model.eval();
  noGrad(() => {
    for (let s = 0; s < n; s += o.batchSize) scope(() => { model.call(normalize(clean.images.narrow(0, s, Math.min(o.batchSize, n - s)), norm)); });
  });

  manualSeed(o.seed);
  const opt = new optim.SGD(model.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const sched = new optim.CosineAnnealingLR(opt, o.epochs);
  const batches = Math.ceil(n / o.batchSize);
  const steps = o.schedule === 'epoch' ? o.epochs : o.epochs * batches;
  const thresholds: number[] = [];
  let selection: number[][] = [];
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    model.train();
    const perm = scope(() => tensor(Float64Array.from(new Rng(o.seed + epoch).permutation(n)), [n]).long());
    for (let b = 0; b < batches; b++) {
      const step = o.schedule === 'epoch' ? epoch : epoch * batches + b;
      if (o.schedule === 'iteration' || b === 0) {
        const f = thresholdAt(step, steps, o.startFraction, o.maxFraction);
        thresholds.push(f);
        selection = select(f);
      }
      scope(() => {
        const idx = perm.slice(0, b * o.batchSize, Math.min(n, (b + 1) * o.batchSize));
        const x = normalize(clean.images.indexSelect(0, idx), norm);
        let loss = F.crossEntropy(model.call(x), clean.labels.indexSelect(0, idx));
        for (let i = 0; i < units.length; i++) {
          const p = penaltyOf(units[i], selection[i], o);
          if (p) loss = loss.add(p.mul(o.lambda));
        }
        loss.backward();
      });
      opt.step();
      opt.zeroGrad();
    }
    perm.dispose();
    sched.step();
  }
  for (const h of hooks) h.remove();
  opt.dispose();

  const zeroed: Record<string, number[]> = {};
  if (o.zeroBelow > 0) {
    noGrad(() => units.forEach((u, i) => {
      const dead = selection[i].filter((c) => scope(() => penaltyOf(u, [c], { ...o, penalty: 'group-l2' })!.item()) < o.zeroBelow);
      if (!dead.length) return;
      zeroed[u.name] = dead;
      scope(() => {
        const idx = tensor(Float64Array.from(dead), [dead.length]).long();
        const target = u.bn ? u.bn.weight : u.conv.weight;
        target.indexPut_([idx], target.indexSelect(0, idx).mul(0));
        if (u.bn) u.bn.bias.indexPut_([idx], u.bn.bias.indexSelect(0, idx).mul(0));
      });
    }));
  }
  const last = scores();
  return {
    options: o, layers: units.map((u) => u.name), thresholds,
    final: units.map((u, i) => ({ name: u.name, channels: u.conv.outChannels, selected: selection[i], scores: Array.from(last[i]) })),
    zeroed, seconds: (performance.now() - t0) / 1000,
  };
}
