// How far a backdoored model's trigger moves each channel of its conv units (issue 12's mechanistic
// check): per channel, (mean over triggered - mean over clean) of the spatially averaged output, in
// units of the clean images' standard deviation of that average. The model runs in eval mode.
import { keep, nn, noGrad, scope, Tensor, tensor } from '../torch';
import { AttackSpec } from '../attacks/poison';
import { applyTrigger } from '../attacks/triggers';
import { DatasetInfo, ImageSet } from '../data/datasets';
import { convUnits } from '../defenses/selection';
import { measuredOutput, VarDefenseOptions } from '../defenses/vardefense';
import { CleanSource, loadCleanData } from '../pipeline/clean-data';
import { inputInfo, loadModel, ModelSource } from '../pipeline/model';
import { readRun } from '../pipeline/run-dir';
import { normalize, Normalization } from '../train/loop';
import { Rng } from '../util/rng';

export type MeasureAt = VarDefenseOptions['measureAt'];

/** Where a channel is read: a module's output, after a ReLU when `relu`. */
export interface ShiftPoint { module: nn.Module; relu: boolean }

/** Keeps the clean standard deviation's division finite for a channel that never moves on clean images. */
export const SHIFT_EPS = 1e-6;

/** Per point, per image: the channels' spatial means accumulated as float64 sums (clean: also squares). */
class Sums {
  sum: Tensor | null = null;
  sq: Tensor | null = null;
  add(perImage: Tensor, squares: boolean): void {
    const s = perImage.sum(0), q = squares ? perImage.square().sum(0) : null;
    if (!this.sum) { this.sum = keep(s); if (q) this.sq = keep(q); return; }
    this.sum.add_(s);
    if (q) this.sq!.add_(q);
  }
  dispose(): void { this.sum?.dispose(); this.sq?.dispose(); }
}

/**
 * Signed shift per channel of each point: (mean_triggered - mean_clean) / (std_clean + SHIFT_EPS) of the
 * per-image spatial mean; std is the population standard deviation over the clean images. `stamp` turns
 * a uint8 batch into its triggered copy (called once per batch, in order). Streams `images` in batches.
 */
export function triggerShift(model: nn.Module, points: ShiftPoint[], images: Tensor, stamp: (batch: Tensor) => Tensor, norm: Normalization, batchSize = 250): Float64Array[] {
  const n = images.size(0);
  if (n < 2) throw new Error(`trigger shift: need at least 2 images, got ${n}`);
  const clean = points.map(() => new Sums()), triggered = points.map(() => new Sums());
  let current = clean;
  const hooks = points.map((p, i) => p.module.registerForwardHook((_m, _in, out) => {
    noGrad(() => scope(() => {
      const y = (p.relu ? out.relu() : out).to('float64');
      current[i].add(y.ndim > 2 ? y.mean(Array.from({ length: y.ndim - 2 }, (_, d) => d + 2)) : y, current === clean);
    }));
  }));
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let s = 0; s < n; s += batchSize) {
        scope(() => {
          const batch = images.narrow(0, s, Math.min(batchSize, n - s));
          current = clean;
          model.call(normalize(batch, norm));
          current = triggered;
          model.call(normalize(stamp(batch), norm));
        });
      }
    });
  } finally {
    for (const h of hooks) h.remove();
    if (wasTraining) model.train();
  }
  return points.map((_, i) => {
    const sum = Float64Array.from(clean[i].sum!.toArray() as Float64Array), sq = clean[i].sq!.toArray() as Float64Array;
    const tsum = triggered[i].sum!.toArray() as Float64Array;
    clean[i].dispose();
    triggered[i].dispose();
    return sum.map((v, c) => {
      const mean = v / n;
      const std = Math.sqrt(Math.max(0, sq[c] / n - mean * mean));
      return (tsum[c] / n - mean) / (std + SHIFT_EPS);
    });
  });
}

/** The images of `set` whose label is not `target` (all of them for null), as a new tensor. */
export function imagesOutside(set: ImageSet, target: number | null): Tensor {
  const labels = set.labels.toList() as number[];
  const keepIdx = labels.flatMap((y, i) => (target === null || y !== target ? [i] : []));
  return scope(() => set.images.indexSelect(0, tensor(Float64Array.from(keepIdx), [keepIdx.length]).long()));
}

/** The units and the output they are read at, as a report names them: VarDefense's `layers` and `measureAt`. */
export interface ShiftRequest { layers: string[]; measureAt: MeasureAt }

/** A backdoored model to measure: its weights, its attack, the defender's clean images; `label` names it in errors and tables. */
export interface ShiftSource { label: string; model: ModelSource; attack: AttackSpec | null; clean: CleanSource }

export interface ModelShift {
  /** the source's label: its training run, or its weights file */
  model: string;
  /** clean non-target images the shift is measured over */
  images: number;
  /** `${measureAt} ${layer}` -> signed shift per channel */
  shifts: Map<string, Float64Array>;
}

export const shiftKey = (measureAt: MeasureAt, layer: string): string => `${measureAt} ${layer}`;

/** A training run as a shift source: its weights, its attack and its defender's clean split (attack.json's indices, as `defend --run` loads it). */
export function runShiftSource(runDir: string): ShiftSource {
  const { cfg, cleanIndices, weights } = readRun(runDir);
  return { label: runDir, model: { model: cfg.model, width: cfg.width, dataset: cfg.dataset, weights }, attack: cfg.attack,
    clean: { kind: 'run', dataset: cfg.dataset, indices: cleanIndices } };
}

/**
 * The shifts of a backdoored model over its defender's clean images outside the target class
 * (all-to-one), clean vs. with its trigger (random positions from Rng(attack seed + 1), as the
 * triggered test set draws them).
 */
export function sourceTriggerShift(src: ShiftSource, requests: ShiftRequest[], dataDir?: string): ModelShift {
  const attack = src.attack;
  if (!attack) throw new Error(`${src.label}: no attack recorded (a clean model has no trigger to measure)`);
  const model = loadModel(src.model);
  const set = loadCleanData(src.clean, dataDir);
  const images = imagesOutside(set, attack.mode === 'all-to-one' ? attack.target : null);
  if (src.clean.kind !== 'images') for (const t of [set.images, set.labels]) t.dispose();
  try {
    const units = new Map(convUnits(model).map((u) => [u.name, u]));
    const keys = [...new Set(requests.flatMap((r) => r.layers.map((l) => shiftKey(r.measureAt, l))))];
    const points = keys.map((k) => {
      const [at, layer] = k.split(' ') as [MeasureAt, string];
      const unit = units.get(layer);
      if (!unit) throw new Error(`${src.label}: the model has no conv unit '${layer}' (known: ${[...units.keys()].join(', ')})`);
      return measuredOutput(unit, at);
    });
    const rng = new Rng(attack.seed + 1);
    const info: DatasetInfo = inputInfo(src.model);
    const shifts = triggerShift(model, points, images, (b) => applyTrigger(b, attack.trigger, rng), info);
    return { model: src.label, images: images.size(0), shifts: new Map(keys.map((k, i) => [k, shifts[i]])) };
  } finally {
    images.dispose();
    model.dispose();
  }
}
