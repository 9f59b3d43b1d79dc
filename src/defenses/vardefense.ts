// VarDefense (Fan et al. 2021): neurons of the later conv layers whose output varies little on clean
// data are the backdoor's; fine-tune on the clean split with cross-entropy plus lambda times a norm of
// the selected neurons' parameters, under a per-layer threshold that rises step by step.
// Only the defender's clean data is read.
import { cat, F, keep, nn, noGrad, scope, Tensor, tensor } from '../torch/compute';
import { normalize, normalizeUnit } from '../train/loop';
import { z } from 'zod';
import { accuracyOn, DefenseData, DefenseHooks, disposeState, fineTune, fineTuneShape, logitsOn, publishedFineTuneShape, restore, snapshot, softTargetLoss, softTargets, zeroChannels } from './common';
import { ChannelMetric, DATA_FREE_METRICS, makeMetric, METRIC_NAMES, MetricName, randomScores, weightScores } from './metrics';
import { defineDefense } from './method';
import { ConvUnit, convUnits, laterUnits, lowestChannels, lowestChannelsNetworkWise, thresholdAt } from './selection';
import { findHead, fstPenalty, reinitHead, rescaleTo } from './fst';
import { AdversarialSet, adversarialImages, flipHistogram, FlipHistogram } from './adversarial';
import { disposeTriggers, FoundTrigger, SearchResult, searchTriggers, TRIGGER_SEARCH_DEFAULTS, TriggerSearchOptions } from './trigger-search';
import { applyMask } from './neural-cleanse';
import { scanSquares, SQUARE_SCAN_DEFAULTS } from './square-scan';
import { Rng } from '../util/rng';

export const VARDEFENSE_SCHEMA = z.object({
  ...fineTuneShape,
  /** the last L conv layers are purified (paper Figure 5) */
  layers: z.number().int().min(1),
  metric: z.enum(METRIC_NAMES),
  /** a threshold per layer (paper) or one over all purified layers */
  scope: z.enum(['layer-wise', 'network-wise']),
  /** share of each layer's channels under the threshold at the first and the last step */
  startFraction: z.number().min(0).max(1),
  maxFraction: z.number().min(0).max(1),
  /** the threshold rises once per epoch or once per iteration */
  thresholdStep: z.enum(['epoch', 'iteration']),
  /** momentum of the running statistics or histogram (null: exact pooled statistics over every batch seen); null for the weight metric */
  statsMomentum: z.number().min(0).lt(1).nullable(),
  /**
   * where a neuron is scored: the conv output, the batch-norm output after it, or that BN output after
   * a ReLU ('bn-relu', the post-activation: see `measuredOutput`); with the data-free weight metric,
   * the conv filter's L1 norm or the BN's |gamma| ('bn-relu' is refused there).
   * In train mode a BN channel's output variance is gamma^2 * var / (var + eps) on every batch, so
   * 'bn' with statsSource 'training' ranks channels as |gamma| does; 'bn-relu' or statsSource
   * 'original-eval' carry information from the data.
   */
  measureAt: z.enum(['conv', 'bn', 'bn-relu']),
  /**
   * where the selection scores come from. 'training' (the default when absent, the behaviour of the
   * presets): a measurement pass on the original model in eval mode, then the hooks stay on during the
   * fine-tune and the running statistics follow the model as it trains (train-mode batch norm).
   * 'original-eval': one pass over the clean training images on the ORIGINAL model in eval mode (BN's
   * running statistics), accumulated with statsMomentum; those scores stay fixed through the
   * purification and only the threshold rises over them. Data metrics only. Optional, no default:
   * absent = 'training', so the resolved options (and the reuse digest) of the earlier presets are unchanged.
   */
  statsSource: z.enum(['training', 'original-eval']).optional(),
  /** penalty weight; 'auto': the paper's rule, the largest candidate whose validation accuracy holds */
  lambda: z.union([z.number().min(0), z.literal('auto')], { errorMap: () => ({ message: "expected a number >= 0 or 'auto'" }) }),
  penalty: z.enum(['l1', 'group-l2']),
  /** parameters of a selected neuron that are penalised */
  penalize: z.enum(['conv+bn', 'bn']),
  /** zero the selected neurons whose penalised parameters ended below this norm (0: off) */
  zeroBelow: z.number().min(0),
  /**
   * lambda auto: candidates (tried in increasing order), the accuracy drop tolerated, epochs per trial.
   * When even the smallest candidate costs more than the tolerance, the smallest is used (reported).
   */
  lambdaCandidates: z.array(z.number().min(0)).min(1),
  lambdaTolerance: z.number().min(0).max(1),
  lambdaTrialEpochs: z.number().int().min(1),
  /**
   * weight of a distillation term towards the original model's outputs on the clean images (0: off).
   * The backdoor does not show on clean images, so this keeps clean behaviour without keeping it.
   */
  distill: z.number().min(0),
  distillTemperature: z.number().positive(),
  /** as for the other fine-tuning defenses (absent = 'none'); the distillation teacher runs live on augmented batches */
  augment: publishedFineTuneShape.augment,
  /**
   * FST's feature shift (Min et al. 2023, src/defenses/fst.ts) inside the purification: when > 0, the
   * linear head is re-initialised and this weight times <W, W_orig> is added to the loss, with W
   * rescaled to ||W_orig|| after every step, so the later features must move to fit a head turned
   * away from the backdoored one. Absent or 0: the head is kept (the presets before issue 27).
   */
  featureShift: z.number().min(0).optional(),
  /**
   * weight of a cross-entropy term on adversarial copies of the clean training images, found once on
   * the ORIGINAL model by untargeted PGD (src/defenses/adversarial.ts), with their true labels: the
   * backdoor's shortcut is where such perturbations go, and a blend lies inside their L_inf ball.
   * Absent or 0: off (the presets before issue 27).
   */
  adversarial: z.number().min(0).optional(),
  /** their L_inf bound in pixel units of [0, 1], and the PGD steps */
  adversarialEps: z.number().gt(0).max(1).optional(),
  adversarialSteps: z.number().int().min(1).optional(),
  /**
   * share of each batch replaced by the adversarial copies of its images (same copies as `adversarial`,
   * labels and distillation targets those of the clean images): the unlearning at no extra forward
   * pass. Absent or 0: off.
   */
  adversarialFraction: z.number().min(0).max(1).optional(),
  /**
   * triggers searched on the ORIGINAL model (src/defenses/trigger-search.ts) and unlearned: a share
   * `stampFraction` of each batch is stamped with them, labels kept. 'suspect': the class with the
   * smallest mask only; 'all': every class's trigger in turn (a wrong suspect then costs nothing).
   * Absent or 'none': no search (the presets before issue 27).
   */
  unlearn: z.enum(['none', 'suspect', 'all']).optional(),
  stampFraction: z.number().min(0).max(1).optional(),
  /** the search's Adam steps (TRIGGER_SEARCH_DEFAULTS otherwise) */
  searchSteps: z.number().int().min(1).optional(),
  /**
   * the pattern starts of the search, one search each, all their triggers unlearned: 'random' (uniform
   * per pixel) and 'black' (0 everywhere: a dark patch over the object, which a random start reaches only
   * in part). Absent: ['random'].
   */
  searchStarts: z.array(z.enum(['random', 'black'])).min(1).optional(),
  /**
   * share of each batch stamped with a random square (side 3 to a quarter of the image, anywhere; one grey
   * level or binary noise), labels and distillation targets those of the clean image: occlusions the
   * backdoor may answer to, without any search. Absent or 0: off.
   */
  occlusion: z.number().min(0).max(1).optional(),
  /**
   * at the start of every epoch after the first, each search continues this many steps on the model
   * being purified, from the triggers it holds (unlearn 'all'): what the unlearning has not removed yet.
   * Absent or 0: the triggers found on the original model, fixed.
   */
  researchSteps: z.number().int().min(0).optional(),
  /**
   * with unlearn 'all': this share of the stamped rows goes to the suspects (each search's class with the
   * smallest mask, split evenly), the rest to every trigger in turn. Absent or 0: every trigger alike.
   */
  suspectShare: z.number().min(0).max(1).optional(),
  /** which suspects take that share: each search's ('each', the default), or only the one of the largest anomaly index */
  suspectRule: z.enum(['each', 'most-anomalous']).optional(),
  /**
   * the found masks grown by this many pixels (a max over a (2r+1)-square) where they are stamped for the
   * unlearning: a search finds the smallest mask that still works, often parts of a larger trigger (the
   * corners of a dark patch), and what is left of the trigger may still work. Absent or 0: as found.
   */
  stampDilate: z.number().int().min(0).optional(),
  /**
   * also scan solid squares (square-scan.ts: grey levels black to white, sides 3 to 7, every place) and unlearn the
   * best square of each class like a search's trigger ('suspect': the class of the largest success);
   * reported among `searches` as start 'squares'. Absent or false: no scan.
   */
  squareScan: z.boolean().optional(),
  /**
   * with squareScan: the scan's squares join the unlearning only where its best square sends at least this
   * share of the other classes' images to its class (a solid patch found; the verdict's own test for naming a
   * target, verdict.ts `scanTarget`); otherwise they are dropped and the purification runs as without the
   * scan. Absent or 0: always. Without squareScan it has no effect (so `--set squareScan=false` turns a gated
   * preset into the one without the scan).
   */
  scanGate: z.number().min(0).max(1).optional(),
  /** with scanGate: the options that change where the gate opens (the stamped share and the suspects' part of it) */
  scanOpen: z.object({ stampFraction: z.number().min(0).max(1), suspectShare: z.number().min(0).max(1) }).partial().strict().optional(),
}).strict();
export type VarDefenseOptions = z.infer<typeof VARDEFENSE_SCHEMA>;

/** the adversarial copies' default bound and PGD steps */
export const ADVERSARIAL_EPS = 0.2;
export const ADVERSARIAL_STEPS = 5;
/** share of each batch stamped with the searched triggers */
export const STAMP_FRACTION = 0.3;

const FT = { epochs: 10, lr: 0.01, batchSize: 128, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine' as const, seed: 1 };
const AUTO = { lambdaCandidates: [1e-4, 1e-3, 1e-2, 0.1, 1, 10], lambdaTolerance: 0.01, lambdaTrialEpochs: 2, distill: 0, distillTemperature: 2 };

/** The literal reading of the paper (docs/vardefense.md): last 4 convs, conv+BN L1, small lambda. */
export const PAPER_PRESET: VarDefenseOptions = {
  ...FT, ...AUTO, layers: 4, metric: 'variance', scope: 'layer-wise', startFraction: 0.1, maxFraction: 0.5, thresholdStep: 'epoch',
  statsMomentum: 0.9, measureAt: 'conv', lambda: 1e-4, penalty: 'l1', penalize: 'conv+bn', zeroBelow: 0,
};

/**
 * The engineered variant (docs/vardefense.md): measure and penalise after batch norm (a penalty on a
 * conv filter is normalised away by the BN after it), reach the last 10 convs (ResNet-18's layer3 and
 * layer4 with their shortcuts, which carry the trigger around penalised convs), a strong L1, and
 * distillation towards the original outputs on clean images to keep clean accuracy; 8 epochs keep its
 * cost (with the measurement pass and the penalty) within that of 10 epochs of plain fine-tuning.
 * lr 0.01, the common rate of the final evaluation (docs/protocol.md; frozen there with this preset).
 */
export const BN_DISTILL_PRESET: VarDefenseOptions = {
  ...PAPER_PRESET, layers: 10, measureAt: 'bn', penalize: 'bn', lambda: 1, lr: 0.01, distill: 1, epochs: 8,
};

export interface LayerReport {
  name: string;
  channels: number;
  /** channels under the threshold at the last step (the purified neurons) */
  selected: number[];
  /** scores at the start and at the end */
  scoresBefore: number[];
  scoresAfter: number[];
  /** quantiles (0, 10, 25, 50, 75, 90, 100 %) of the start scores */
  distribution: number[];
  /** the score value of the threshold at each step */
  thresholdValues: number[];
}

/** A search's result as reported: the suspect, whether it is flagged, and every class's mask. */
export interface SearchSummary { suspect: number; flagged: boolean; triggers: { cls: number; maskL1: number; success: number; anomalyIndex: number }[] }

export interface VarDefenseReport {
  method: 'vardefense';
  options: VarDefenseOptions;
  lambda: number;
  /** how lambda was chosen */
  lambdaRule: 'given' | 'largest within tolerance' | 'none within tolerance: the smallest candidate';
  lambdaTrials: { lambda: number; valAcc: number }[];
  layers: string[];
  /** share of channels under the threshold, per step */
  thresholds: number[];
  perLayer: LayerReport[];
  zeroed: Record<string, number[]>;
  /** the adversarial copies' bound, steps and where they went on the original model (when on) */
  adversarial?: { eps: number; steps: number; flips: FlipHistogram };
  /** the trigger search on the original model (when unlearn is on) */
  search?: SearchSummary;
  /** the searches from the other starts of `searchStarts`, in order */
  searches?: (SearchSummary & { start: string })[];
  /** with squareScan and scanGate: the scan's best square's share of the other classes' images, and whether its squares were unlearned */
  scanGate?: { success: number; gate: number; open: boolean };
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

function quantiles(x: ArrayLike<number>): number[] {
  const s = Array.from(x).sort((a, b) => a - b);
  return [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1].map((q) => s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))]);
}

/** The channels as an index tensor (int64) on the device of `like`. */
export const channelIndex = (channels: number[], like: Tensor): Tensor =>
  tensor(Float64Array.from(channels), [channels.length]).toDevice(like.device, 'int64');

/** The penalty on the selected channels' parameters; `index` is channelIndex(channels), when already built. */
export function penaltyOf(unit: ConvUnit, channels: number[], o: Pick<VarDefenseOptions, 'penalize' | 'penalty'>, index?: Tensor): Tensor | null {
  if (channels.length === 0) return null;
  return scope(() => {
    const idx = index ?? channelIndex(channels, unit.conv.weight);
    const parts: Tensor[] = [];
    if (o.penalize === 'conv+bn' || !unit.bn) parts.push(unit.conv.weight.indexSelect(0, idx).flatten(1));
    if (unit.bn) parts.push(unit.bn.weight.indexSelect(0, idx).unsqueeze(1), unit.bn.bias.indexSelect(0, idx).unsqueeze(1));
    const p = parts.length === 1 ? parts[0] : cat(parts, 1);
    return o.penalty === 'l1' ? p.abs().sum() : p.square().sum(1).add(1e-12).sqrt().sum();
  });
}

/** Whether the units' penalties can be taken as one gathered term (penalizedTogether): BN parameters only. */
export const penalizableTogether = (units: ConvUnit[], o: Pick<VarDefenseOptions, 'penalize'>): boolean => o.penalize === 'bn' && units.every((u) => u.bn);

/**
 * The index of the selected channels in the concatenation of every unit's BN weights and then every
 * unit's BN biases (gammas first, then betas, in the same unit and channel order); null when none.
 */
export function togetherIndex(units: ConvUnit[], selection: number[][]): Tensor | null {
  const total = units.reduce((a, u) => a + u.conv.outChannels, 0);
  const gammas: number[] = [];
  let offset = 0;
  units.forEach((u, i) => { for (const c of selection[i]) gammas.push(offset + c); offset += u.conv.outChannels; });
  return gammas.length ? channelIndex([...gammas, ...gammas.map((g) => g + total)], units[0].bn!.weight) : null;
}

/**
 * The sum of penaltyOf over the units (penalize 'bn') as one term: the selected gammas and betas of
 * every unit gathered at once from their concatenation by togetherIndex's index, instead of a small
 * graph per unit (at narrow widths the fixed cost per operation of ten such graphs was a few percent
 * of a step). The same gradients bit for bit; the value differs from the sum by the summation order.
 */
export function penalizedTogether(units: ConvUnit[], index: Tensor, penalty: VarDefenseOptions['penalty']): Tensor {
  return scope(() => {
    const p = cat([...units.map((u) => u.bn!.weight), ...units.map((u) => u.bn!.bias)], 0).indexSelect(0, index);
    // [gamma, beta] rows, as penaltyOf's
    return penalty === 'l1' ? p.abs().sum() : p.view(2, -1).t().square().sum(1).add(1e-12).sqrt().sum();
  });
}

/**
 * The module whose output scores a unit's channels, and the transform applied to that output first.
 * 'bn-relu' is the BN output after a ReLU, for every unit, also for the second conv of a residual block
 * and for a shortcut's BN, where the network's own ReLU comes only after the residual add: there the
 * ReLU is applied to the BN's own output, before the add. The sum relu(bn2(.) + shortcut) is one
 * value for two neurons (bn2's channel c and the shortcut BN's channel c, or the previous block's
 * channel c through an identity shortcut), so its variance says how active the residual stream is,
 * not this neuron, and the two units would always get the same scores; the penalty acts on this BN's
 * gamma and beta, so the score must be this neuron's: max(0, gamma * xhat + beta), which is what the
 * block adds (its positive part) and which a dormant channel (beta below the range of gamma * xhat on
 * clean data) leaves constant at 0. A unit without a batch norm is scored at its conv output (after
 * a ReLU for 'bn-relu').
 */
export function measuredOutput(u: ConvUnit, measureAt: VarDefenseOptions['measureAt']): { module: nn.Module; relu: boolean } {
  return { module: measureAt === 'conv' ? u.conv : (u.bn ?? u.conv), relu: measureAt === 'bn-relu' };
}

/**
 * The distillation targets: the original model's softened probabilities (softTargets) for every
 * training image (batches as stored), or, when batches are augmented, the original weights, run live
 * on each augmented batch.
 */
type Teacher = { probs: Tensor } | { model: nn.Module };

/** One purification at a fixed lambda; returns the per-layer record. */
function purify(model: nn.Module, data: DefenseData, o: VarDefenseOptions, lambda: number, teacher: Teacher | null, h: DefenseHooks, stage: string, adv: AdversarialSet | null = null, stamps: FoundTrigger[] = [],
  research: ((epoch: number) => void) | null = null, stampWeights: number[] | null = null) {
  const { units, clamped } = laterUnits(model, o.layers);
  if (clamped) h.log?.(`vardefense: ${o.layers} layers asked, the model has ${units.length} conv layers: all of them`);
  const source = o.statsSource ?? 'training';
  const dataFree = DATA_FREE_METRICS.includes(o.metric);
  const metrics = new Map<ConvUnit, ChannelMetric>();
  // float32 statistics that stay beside the activations: read once per threshold update
  let hooks = dataFree ? [] : units.map((u) => {
    const m = makeMetric(o.metric as Exclude<MetricName, 'weight' | 'random'>, o.statsMomentum, 'float32');
    metrics.set(u, m);
    const at = measuredOutput(u, o.measureAt);
    return at.module.registerForwardHook((_mod, _in, out) => {
      if (at.relu) noGrad(() => scope(() => m.update(out.relu()))); else m.update(out);
    });
  });
  // random: drawn once per purification from the fine-tune's seed, fixed, so the selection grows nested
  const random = o.metric === 'random' ? units.map((u, i) => randomScores(u.conv.outChannels, o.seed, i)) : null;
  let fixed: Float64Array[] | null = null;
  const scores = (): Float64Array[] => fixed ?? units.map((u, i) => (o.metric === 'weight'
    ? weightScores((measuredOutput(u, o.measureAt).module as nn.Conv2d | nn.BatchNorm2d).weight)
    : random ? random[i] : metrics.get(u)!.scores()));

  // a first measurement pass over the clean data (eval mode, no training); the data-free metrics need none
  const n = data.train.labels.numel;
  if (!dataFree) {
    model.eval();
    noGrad(() => {
      for (let s = 0; s < n; s += o.batchSize) {
        const m = Math.min(o.batchSize, n - s);
        scope(() => { model.call(normalize(data.train.images.narrow(0, s, m), data.norm)); });
        h.progress?.(`${stage} measure`, m, n);
      }
    });
  }
  if (source === 'original-eval') {
    // the original model's eval-mode scores, kept: no hook during the fine-tune
    fixed = scores().map((x) => Float64Array.from(x));
    for (const hk of hooks) hk.remove();
    hooks = [];
  }
  const before = scores();

  const batches = Math.ceil(n / o.batchSize);
  const steps = o.thresholdStep === 'epoch' ? o.epochs : o.epochs * batches;
  const thresholds: number[] = [];
  const thresholdValues: number[][] = units.map(() => []);
  let selection: number[][] = units.map(() => []);
  // the selection's index tensors, built once per threshold update (none at lambda 0: no penalty):
  // one over every unit when they are penalised together, else one per unit
  const together = penalizableTogether(units, o);
  let selectionIndex: (Tensor | null)[] = units.map(() => null);
  const disposeIndex = (): void => { for (const t of selectionIndex) t?.dispose(); };
  const buildIndex = (): (Tensor | null)[] => {
    if (lambda === 0) return [];
    if (together) { const t = scope(() => togetherIndex(units, selection)); return [t && keep(t)]; }
    return units.map((u, i) => (selection[i].length ? keep(scope(() => channelIndex(selection[i], u.conv.weight))) : null));
  };
  const liveTeacher = teacher && 'model' in teacher ? teacher.model : null;
  let teacherProbs: Tensor | null = null;
  const shift = (o.featureShift ?? 0) > 0 ? featureShiftOf(model, o.seed) : null;
  // the adversarial copies as batch rows (adversarialFraction) rather than as a second pass (adversarial)
  const advRows = adv && (o.adversarialFraction ?? 0) > 0 ? adv.images : null;
  const advLoss = adv && (o.adversarial ?? 0) > 0 ? adv.images : null;
  const occlusion = (o.occlusion ?? 0) > 0 ? { fraction: o.occlusion!, rng: new Rng(o.seed * 7907 + 3) } : null;
  try {
    fineTune(model, data.train, data.norm, o, {
      ...h, stage,
      beforeStep: (s) => {
        if (research && s.batch === 0 && s.epoch > 0) research(s.epoch);
        if (o.thresholdStep === 'epoch' && s.batch !== 0) return;
        const f = thresholdAt(o.thresholdStep === 'epoch' ? s.epoch : s.step, steps, o.startFraction, o.maxFraction);
        const sc = scores();
        selection = o.scope === 'layer-wise' ? sc.map((x) => lowestChannels(x, f)) : lowestChannelsNetworkWise(sc, f);
        thresholds.push(f);
        selection.forEach((sel, i) => thresholdValues[i].push(sel.length ? Math.max(...sel.map((c) => sc[i][c])) : NaN));
        disposeIndex();
        selectionIndex = buildIndex();
      },
      prepare: (liveTeacher && o.distill > 0) || stamps.length || advRows || occlusion ? (images, labels, idx) => {
        const x = stamps.length || advRows || occlusion ? stamped(images, stamps, o.stampFraction ?? STAMP_FRACTION, data.norm, advRows ? { set: advRows, idx, fraction: o.adversarialFraction! } : null, occlusion, stampWeights) : normalize(images, data.norm);
        if (!(liveTeacher && o.distill > 0)) return [x, labels];
        // the original model's outputs for this augmented batch, in eval mode, before the student's graph
        teacherProbs = softTargets(noGrad(() => liveTeacher.call(x)), o.distillTemperature);
        return [x, labels];
      } : undefined,
      afterStep: shift ? () => rescaleTo(shift.head.weight, shift.norm) : undefined,
      extraLoss: (_x, y, logits, b) => {
        let total: Tensor | null = shift ? fstPenalty(shift.head.weight, shift.wOrig, o.featureShift!) : null;
        if (advLoss) {
          const a = F.crossEntropy(model.call(normalizeUnit(advLoss.indexSelect(0, b.idx), data.norm)), y).mul(o.adversarial!);
          total = total ? total.add(a) : a;
        }
        let penalty: Tensor | null = null;
        if (lambda !== 0 && together) {
          if (selectionIndex[0]) penalty = penalizedTogether(units, selectionIndex[0], o.penalty);
        } else if (lambda !== 0) {
          for (let i = 0; i < units.length; i++) {
            const p = penaltyOf(units[i], selection[i], o, selectionIndex[i] ?? undefined);
            if (p) penalty = penalty ? penalty.add(p) : p;
          }
        }
        if (penalty && lambda !== 1) penalty = penalty.mul(lambda);
        if (penalty) total = total ? total.add(penalty) : penalty;
        if (!teacher || o.distill === 0) return total;
        const target = 'probs' in teacher ? teacher.probs.indexSelect(0, b.idx) : teacherProbs!;
        teacherProbs = null;
        const d = softTargetLoss(logits, target, o.distillTemperature, o.distill);
        return total ? total.add(d) : d;
      },
    });
  } finally {
    for (const hk of hooks) hk.remove();
    disposeIndex();
    shift?.wOrig.dispose();
  }

  const zeroed: Record<string, number[]> = {};
  if (o.zeroBelow > 0) {
    noGrad(() => units.forEach((u, i) => {
      const dead = selection[i].filter((c) => scope(() => penaltyOf(u, [c], { penalize: o.penalize, penalty: 'group-l2' })!.item()) < o.zeroBelow);
      if (!dead.length) return;
      zeroed[u.name] = dead;
      zeroChannels((u.bn ? [u.bn.weight, u.bn.bias] : [u.conv.weight]).map((t) => ({ t, dim: 0 })), dead);
    }));
  }
  const after = scores();
  const perLayer: LayerReport[] = units.map((u, i) => ({
    name: u.name, channels: u.conv.outChannels, selected: selection[i], scoresBefore: Array.from(before[i]),
    scoresAfter: Array.from(after[i]), distribution: quantiles(before[i]), thresholdValues: thresholdValues[i],
  }));
  for (const m of metrics.values()) m.dispose();
  return { layers: units.map((u) => u.name), thresholds, perLayer, zeroed };
}

/**
 * The batch with its first rows stamped with the triggers in turn, the next rows replaced by their
 * adversarial copies (`adv`: the copies of every training image, `idx` the batch's), normalised.
 */
function stamped(images: Tensor, triggers: FoundTrigger[], fraction: number, norm: DefenseData['norm'], adv: { set: Tensor; idx: Tensor; fraction: number } | null,
  occlusion: { fraction: number; rng: Rng } | null = null, weights: number[] | null = null): Tensor {
  return scope(() => {
    const x = images.to('float32').div(255);
    const b = x.size(0), m = triggers.length ? Math.round(fraction * b) : 0;
    const q = occlusion ? Math.min(b - m, Math.round(occlusion.fraction * b)) : 0;
    const a = adv ? Math.min(b - m - q, Math.round(adv.fraction * b)) : 0;
    const parts: Tensor[] = [];
    stampBlocks(m, triggers.length, weights).forEach(([from, to], j) => {
      if (to > from) parts.push(applyMask(x.narrow(0, from, to - from), triggers[j].mask, triggers[j].pattern));
    });
    if (q > 0) parts.push(occluded(x.narrow(0, m, q), occlusion!.rng));
    if (a > 0) parts.push(adv!.set.indexSelect(0, adv!.idx.narrow(0, m + q, a)));
    return normalizeUnit(cat([...parts, x.narrow(0, m + q + a, b - m - q - a)], 0), norm);
  });
}

/** Rows [0, m) of a batch in one block [from, to) per trigger: even blocks, or blocks by weight (summing to 1). */
export function stampBlocks(m: number, count: number, weights: number[] | null = null): [number, number][] {
  let at = 0;
  return Array.from({ length: count }, (_, j) => {
    if (!weights) return [Math.floor((j * m) / count), Math.floor(((j + 1) * m) / count)];
    const from = Math.round(at * m);
    at += weights[j];
    return [from, j === count - 1 ? m : Math.round(at * m)];
  });
}

/** A mask [1, 1, H, W] grown by r pixels: its max over the (2r + 1)-square around each pixel. */
export function dilated(mask: Tensor, r: number): Tensor {
  return noGrad(() => F.maxPool2d(mask, 2 * r + 1, 1, r));
}

/** Each image (float [N, C, H, W] in [0, 1]) with a random square: side 3 to max(3, H / 4), anywhere, one grey level or binary noise. */
export function occluded(x: Tensor, rng: Rng): Tensor {
  const [n, c, h, w] = x.shape;
  const mask = new Float32Array(n * h * w), pattern = new Float32Array(n * c * h * w);
  const most = Math.max(3, Math.floor(Math.min(h, w) / 4));
  for (let i = 0; i < n; i++) {
    const k = 3 + rng.int(most - 2), y0 = rng.int(h - k + 1), x0 = rng.int(w - k + 1);
    const noise = rng.next() < 0.5, level = rng.next();
    for (let y = y0; y < y0 + k; y++) for (let xx = x0; xx < x0 + k; xx++) {
      mask[(i * h + y) * w + xx] = 1;
      for (let ch = 0; ch < c; ch++) pattern[((i * c + ch) * h + y) * w + xx] = noise ? (rng.next() < 0.5 ? 0 : 1) : level;
    }
  }
  return applyMask(x, tensor(mask, [n, 1, h, w]), tensor(pattern, [n, c, h, w]));
}

/** The head for the feature shift: its original weight and norm kept, then re-initialised (seeded). */
function featureShiftOf(model: nn.Module, seed: number): { head: nn.Linear; wOrig: Tensor; norm: number } {
  const [, head] = findHead(model, null);
  const wOrig = noGrad(() => head.weight.detach().clone());
  const norm = scope(() => wOrig.norm().item());
  reinitHead(head, seed);
  return { head, wOrig, norm };
}

/** softTargets of `logits`, which are freed. */
function softTargetsOf(logits: Tensor, temperature: number): Tensor {
  try { return softTargets(logits, temperature); } finally { logits.dispose(); }
}

/** What the option schema cannot say field by field. */
export function validateVarDefense(o: VarDefenseOptions): void {
  for (const k of ['researchSteps', 'suspectShare'] as const)
    if ((o[k] ?? 0) > 0 && o.unlearn !== 'all') throw new Error(`vardefense: option '${k}' (${o[k]}) needs unlearn='all' (got '${o.unlearn ?? 'none'}')`);
  if (o.squareScan && (o.unlearn ?? 'none') === 'none') throw new Error(`vardefense: option 'squareScan' needs unlearn='suspect' or 'all'`);
  if (o.scanOpen?.suspectShare && o.unlearn !== 'all') throw new Error(`vardefense: option 'scanOpen.suspectShare' needs unlearn='all' (got '${o.unlearn ?? 'none'}')`);
  if ((o.stampDilate ?? 0) > 0 && (o.unlearn ?? 'none') === 'none') throw new Error(`vardefense: option 'stampDilate' (${o.stampDilate}) needs a search: set unlearn='suspect' or 'all'`);
  if ((o.stampDilate ?? 0) > 0 && (o.researchSteps ?? 0) > 0) throw new Error(`vardefense: options 'stampDilate' and 'researchSteps' do not combine (a continued search would start from the grown masks)`);
  if (o.searchStarts && (o.unlearn ?? 'none') === 'none') throw new Error(`vardefense: option 'searchStarts' needs a search: set unlearn='suspect' or 'all'`);
  if (!(o.startFraction <= o.maxFraction))
    throw new Error(`vardefense: need startFraction <= maxFraction, got ${o.startFraction} and ${o.maxFraction}`);
  if (DATA_FREE_METRICS.includes(o.metric) && o.statsMomentum !== null)
    throw new Error(`vardefense: option 'statsMomentum' (${o.statsMomentum}) does not apply to the data-free ${o.metric} metric; set statsMomentum=null`);
  if (DATA_FREE_METRICS.includes(o.metric) && (o.statsSource ?? 'training') !== 'training')
    throw new Error(`vardefense: option 'statsSource' ('${o.statsSource}') does not apply to the data-free ${o.metric} metric (it measures nothing); leave it out or set statsSource=training`);
  if (o.metric === 'weight' && o.measureAt === 'bn-relu')
    throw new Error("vardefense: option 'measureAt' ('bn-relu') does not apply to the weight metric (a weight has no activation); measureAt=bn scores |gamma|, measureAt=conv the filter's L1 norm");
}

/**
 * Runs VarDefense on `model` in place, with the defender's clean data only. lambda 'auto' tries the
 * candidates in increasing order with short purifications from the original weights and keeps the
 * largest one whose validation accuracy stays within the tolerance of the original's.
 */
export function varDefense(model: nn.Module, data: DefenseData, options: VarDefenseOptions, h: DefenseHooks = {}): VarDefenseReport {
  validateVarDefense(options);
  // the options the purification runs with: those asked for, and scanOpen's where the scan's gate opens
  let o = options;
  const convs = convUnits(model).length;
  if (convs < 2)
    throw new Error(`vardefense: the model has ${convs} conv layer${convs === 1 ? ' (its input embedding, as a ViT\'s patch projection)' : 's'}; VarDefense scores the channels of the later conv layers (use ft or fst)`);
  const t0 = performance.now();
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const candidates = [...o.lambdaCandidates].sort((a, b) => a - b);
  let lambda = o.lambda === 'auto' ? candidates[0] : o.lambda;
  let lambdaRule: VarDefenseReport['lambdaRule'] = o.lambda === 'auto' ? 'none within tolerance: the smallest candidate' : 'given';
  // augmented batches are new images each time: the original model then runs live on each one
  const teacher: Teacher | null = o.distill === 0 ? null
    : (o.augment ?? 'none') === 'none' ? { probs: softTargetsOf(logitsOn(model, data.train, data.norm), o.distillTemperature) } : { model: model.clone().eval() };
  const lambdaTrials: { lambda: number; valAcc: number }[] = [];
  if (o.lambda === 'auto') {
    // the reference is the same short fine-tune without the penalty: fine-tuning on a small clean set
    // costs accuracy by itself, and the rule is about the accuracy that lambda costs
    const original = snapshot(model);
    const trial = (cand: number): number => {
      purify(model, data, { ...o, epochs: o.lambdaTrialEpochs }, cand, teacher, h, `lambda ${cand}`);
      const valAcc = accuracyOn(model, data.val, data.norm);
      restore(model, original);
      lambdaTrials.push({ lambda: cand, valAcc });
      h.log?.(`lambda ${cand}: validation accuracy ${(100 * valAcc).toFixed(2)}%`);
      return valAcc;
    };
    const reference = trial(0);
    for (const cand of candidates) {
      if (trial(cand) < reference - o.lambdaTolerance) break;
      lambda = cand;
      lambdaRule = 'largest within tolerance';
    }
    if (lambdaRule !== 'largest within tolerance') h.log?.(`lambda auto: no candidate kept the validation accuracy within ${o.lambdaTolerance}; using the smallest, ${lambda}`);
    disposeState(original);
  }
  let adversarial: { eps: number; steps: number; flips: FlipHistogram } | null = null;
  let adv: AdversarialSet | null = null;
  if ((o.adversarial ?? 0) > 0 || (o.adversarialFraction ?? 0) > 0) {
    const eps = o.adversarialEps ?? ADVERSARIAL_EPS, steps = o.adversarialSteps ?? ADVERSARIAL_STEPS;
    adv = adversarialImages(model, data.train.images, data.train.labels, data.norm, { eps, steps, batchSize: o.batchSize }, (m, n) => h.progress?.('adversarial', m, n));
    const flips = flipHistogram(adv, data.train.classes);
    h.log?.(`vardefense: adversarial copies (eps ${eps}, ${steps} steps) flipped ${flips.flipped} of ${flips.images}; class ${flips.top} took ${(100 * flips.topShare).toFixed(1)}% of the flips (anomaly index ${flips.anomalyIndex.toFixed(2)})`);
    adversarial = { eps, steps, flips };
  }
  let search: SearchSummary | null = null;
  let searches: (SearchSummary & { start: string })[] | undefined;
  let scanGate: VarDefenseReport['scanGate'];
  const stamps: FoundTrigger[] = [];
  const searchOptions: TriggerSearchOptions[] = [];
  const suspects: number[] = [];
  // a search's (or the scan's) result as reported, and its triggers kept for the unlearning (every class's
  // with unlearn 'all', else the suspect's; the rest disposed), its suspect noted
  const summaryOf = (found: SearchResult): SearchSummary => ({ suspect: found.suspect, flagged: found.flagged, triggers: found.triggers.map(({ cls, maskL1, success, anomalyIndex }) => ({ cls, maskL1, success, anomalyIndex })) });
  const keep = (found: SearchResult): void => {
    const suspect = found.triggers[found.suspect];
    const kept = o.unlearn === 'all' ? found.triggers : [suspect];
    disposeTriggers(found.triggers.filter((t) => !kept.includes(t)));
    stamps.push(...kept);
    suspects.push(stamps.length - kept.length + kept.indexOf(suspect));
  };
  if ((o.unlearn ?? 'none') !== 'none') {
    const starts = o.searchStarts ?? ['random'];
    for (const start of starts) {
      const which = starts.length > 1 ? ` (${start} start)` : '';
      const so = { ...TRIGGER_SEARCH_DEFAULTS, steps: o.searchSteps ?? TRIGGER_SEARCH_DEFAULTS.steps, seed: o.seed, ...(start === 'black' ? { patternStart: 0 } : {}) };
      searchOptions.push(so);
      const found = searchTriggers(model, data.train.images, data.train.labels, data.norm, data.train.classes, so, 2, null, (m, n) => h.progress?.(`trigger search${which}`, m, n));
      const summary = summaryOf(found);
      if (!search) search = summary;
      else (searches ??= []).push({ start, ...summary });
      h.log?.(`vardefense: trigger search${which}: class ${found.suspect} needs the smallest mask (${found.triggers[found.suspect].maskL1.toFixed(1)} px, anomaly index ${found.triggers[found.suspect].anomalyIndex.toFixed(2)}${found.flagged ? ', flagged' : ''}); masks ${found.triggers.map((t) => t.maskL1.toFixed(1)).join(' ')}`);
      keep(found);
    }
    if (o.squareScan) {
      const found = scanSquares(model, data.train.images, data.train.labels, data.norm, data.train.classes, { ...SQUARE_SCAN_DEFAULTS, seed: o.seed }, 2, (m, n) => h.progress?.('square scan', m, n));
      const best = found.triggers[found.suspect];
      (searches ??= []).push({ start: 'squares', ...summaryOf(found) });
      h.log?.(`vardefense: square scan: class ${found.suspect} answers the most (${(100 * best.success).toFixed(1)}% of the other classes' images, a ${Math.sqrt(best.maskL1)}-pixel square, anomaly index ${best.anomalyIndex.toFixed(2)}${found.flagged ? ', flagged' : ''}); per class ${found.triggers.map((t) => (100 * t.success).toFixed(0)).join(' ')}%`);
      const gate = o.scanGate ?? 0, open = best.success >= gate;
      if (o.scanGate !== undefined) {
        scanGate = { success: best.success, gate, open };
        h.log?.(`vardefense: the scan's gate (${gate}) ${open ? `opens: its squares are unlearned${o.scanOpen ? ` with ${JSON.stringify(o.scanOpen)}` : ''}` : 'stays closed: its squares are dropped, the purification runs as without the scan'}`);
      }
      if (open) {
        keep(found);
        if (o.scanOpen) o = { ...o, ...o.scanOpen };
      } else disposeTriggers(found.triggers);
    }
  }
  const classes = data.train.classes;
  const research = (o.researchSteps ?? 0) > 0 && o.unlearn === 'all' ? (epoch: number): void => {
    searchOptions.forEach((so, g) => {
      const held = stamps.slice(g * classes, (g + 1) * classes);
      const found = searchTriggers(model, data.train.images, data.train.labels, data.norm, classes, { ...so, steps: o.researchSteps!, seed: so.seed + 1000 * epoch }, 2, held);
      disposeTriggers(held);
      stamps.splice(g * classes, classes, ...found.triggers);
      h.log?.(`vardefense: epoch ${epoch + 1}: search ${g + 1} continued ${o.researchSteps} steps; masks ${found.triggers.map((t) => t.maskL1.toFixed(1)).join(' ')}`);
    });
  } : null;
  const share = o.unlearn === 'all' ? o.suspectShare ?? 0 : 0;
  if (share > 0 && o.suspectRule === 'most-anomalous') {
    const best = suspects.reduce((a, i) => (stamps[i].anomalyIndex > stamps[a].anomalyIndex ? i : a));
    suspects.splice(0, suspects.length, best);
  }
  if (share > 0) h.log?.(`vardefense: ${share} of the stamped rows to the suspect(s): ${suspects.map((i) => `class ${stamps[i].cls} of search ${Math.floor(i / classes) + 1} (anomaly index ${stamps[i].anomalyIndex.toFixed(2)})`).join(', ')}`);
  const stampWeights = share > 0 ? stamps.map((_, j) => (1 - share) / stamps.length + suspects.filter((i) => i === j).length * (share / suspects.length)) : null;
  if ((o.stampDilate ?? 0) > 0) for (const t of stamps) { const m = t.mask; t.mask = dilated(m, o.stampDilate!); m.dispose(); }
  const r = purify(model, data, o, lambda, teacher, h, 'purify', adv, stamps, research, stampWeights);
  adv?.images.dispose();
  disposeTriggers(stamps);
  if (teacher) { if ('probs' in teacher) teacher.probs.dispose(); else teacher.model.dispose(); }
  return {
    method: 'vardefense', options, lambda, lambdaRule, lambdaTrials, ...r, ...(adversarial ? { adversarial } : {}), ...(search ? { search } : {}), ...(searches ? { searches } : {}), ...(scanGate ? { scanGate } : {}),
    valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000,
  };
}

export const VARDEFENSE_PRESETS: Record<string, VarDefenseOptions> = {
  paper: { ...PAPER_PRESET },
  'bn-distill': { ...BN_DISTILL_PRESET },
  'bn-distill-eval': { ...BN_DISTILL_PRESET, statsSource: 'original-eval' },
};
// The default from docs/protocol.md section 8b's second round of judges until issue 27 (below):
// bn-distill measured on the original model in eval mode. bn-distill keeps its frozen meaning, so the
// final grid's labels and cell ids stay what they were when it ran. (This assignment also places
// `default` fourth among the preset names, where listings show it.)
VARDEFENSE_PRESETS.default = VARDEFENSE_PRESETS['bn-distill-eval'];
// Controls around bn-distill for the ablations (docs/protocol.md): everything as bn-distill (layers,
// fractions, penalty, lambda, distillation, lr, epochs), only the selection differs. control-lambda0 is
// "FT+distill": bn-distill's fine-tune and distillation without the penalty.
Object.assign(VARDEFENSE_PRESETS, {
  'control-random': { ...BN_DISTILL_PRESET, metric: 'random', statsMomentum: null },
  'control-gamma': { ...BN_DISTILL_PRESET, metric: 'weight', measureAt: 'bn', statsMomentum: null },
  'control-mean': { ...BN_DISTILL_PRESET, metric: 'mean' },
  'control-lambda0': { ...BN_DISTILL_PRESET, lambda: 0 },
});

// Issue 27 (docs/protocol.md section 10): bn-distill-eval that also searches a trigger for every class
// on the original model (trigger-search.ts) and unlearns them, 15% of each batch stamped with them in
// turn, labels and distillation targets of the clean images kept. Frozen with its ablations, each
// one part removed at the same budget: the search and unlearning (= bn-distill-eval), the VarDefense
// penalty (lambda 0), the distillation, and the variance selection (random channels instead).
const ROBUST: VarDefenseOptions = { ...BN_DISTILL_PRESET, statsSource: 'original-eval', unlearn: 'all', stampFraction: 0.15 };
/** A robust preset's ablations `<name>-no-distill` and `<name>-random`, each one part removed at the same budget. */
const ablationsOf = (name: string, o: VarDefenseOptions): Record<string, VarDefenseOptions> => ({
  [`${name}-no-distill`]: { ...o, distill: 0 },
  [`${name}-random`]: { ...o, metric: 'random', statsMomentum: null, statsSource: undefined },
});
Object.assign(VARDEFENSE_PRESETS, { robust: ROBUST, 'robust-lambda0': { ...ROBUST, lambda: 0 }, ...ablationsOf('robust', ROBUST) });
// robust was the default from issue 27's first rule (docs/protocol.md section 10, written before any final
// judge was trained: experiments/issue27-dev/rule.js) until the second rule, below. bn-distill-eval
// keeps its meaning (and the final grid's tables their labels).
// Issue 27's accuracy recovery (docs/protocol.md section 10, "A lighter penalty"): robust with at most
// 20% of each purified layer's channels under the threshold instead of 50%, chosen on the development
// judges' clean seed 1 and frozen here, with the same ablations; whether it becomes the default is
// experiments/issue27-dev/rule-mf02.js's rule on the development judges' clean seeds 1-3.
const ROBUST_MF02: VarDefenseOptions = { ...ROBUST, maxFraction: 0.2 };
Object.assign(VARDEFENSE_PRESETS, { 'robust-mf02': ROBUST_MF02, ...ablationsOf('robust-mf02', ROBUST_MF02) });
// The default since that rule was applied (docs/protocol.md section 10, "A lighter penalty": mean ACC
// drop 0.80 against robust's 1.43 over the development judges but 102, worst excess ASR 10.06 against
// 13.21). robust keeps its meaning, and the final grid's tables their labels.
VARDEFENSE_PRESETS.default = VARDEFENSE_PRESETS['robust-mf02'];
// Issue 27's dark-patch candidate (docs/protocol.md section 12, step 3; frozen before its runs on the
// development judges' clean seeds 2-3 and on section 10's judges): robust-mf02 with the square scan
// (square-scan.ts), 30% of each batch stamped and half of those rows to the suspects (the mask search's
// and the scan's). `robust-mf02-share` is its control: the same without the scan.
const ROBUST_MF02_SHARE: VarDefenseOptions = { ...ROBUST_MF02, stampFraction: 0.3, suspectShare: 0.5 };
Object.assign(VARDEFENSE_PRESETS, { 'robust-mf02-share': ROBUST_MF02_SHARE, 'robust-mf02-scan': { ...ROBUST_MF02_SHARE, squareScan: true } });
// Section 12, step 4b (written after robust-mf02-scan failed its rule on the blend judge 108, whose scan
// flagged a square of 18-24% and took half the stamped rows from the blend's trigger): the scan's squares
// and robust-mf02-scan's stamping only where the scan finds a solid patch (its best square sends half of the
// other classes' images to one class: the verdict's scanTarget); elsewhere exactly robust-mf02.
const ROBUST_MF02_GATE: VarDefenseOptions = { ...ROBUST_MF02, squareScan: true, scanGate: 0.5, scanOpen: { stampFraction: 0.3, suspectShare: 0.5 } };
Object.assign(VARDEFENSE_PRESETS, { 'robust-mf02-gate': ROBUST_MF02_GATE, ...ablationsOf('robust-mf02-gate', ROBUST_MF02_GATE) });
// The default since step 4b's rule was applied (experiments/issue27-dev/rule-gate.js, written before the last
// development runs it reads). robust-mf02 keeps its meaning, and the tables their labels.
VARDEFENSE_PRESETS.default = VARDEFENSE_PRESETS['robust-mf02-gate'];


export const VARDEFENSE = defineDefense({
  name: 'vardefense', summary: 'VarDefense: penalise low-variance neurons of the last layers while fine-tuning',
  schema: VARDEFENSE_SCHEMA, presets: VARDEFENSE_PRESETS as { default: VarDefenseOptions }, run: varDefense,
});
