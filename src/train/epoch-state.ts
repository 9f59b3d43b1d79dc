// A training run's state after a finished epoch, and putting it back into the model and its optimiser:
// what `vardefense train` and the defenses' fine-tunes resume from after a kill. No files here (the
// defenses import it); src/train/checkpoint.ts reads and writes it.
import { nn, optim, Tensor } from '../torch/compute';

export interface EpochState {
  /** epochs finished */
  epoch: number; model: Map<string, Tensor>; optimizer: Map<string, Tensor>; stepCount: number;
  /** the run's own records (JSON): a training history, a defense's per-epoch numbers */
  extra: unknown;
  /** where it was read from, for errors */
  source?: string;
}

export function disposeEpochState(s: EpochState): void {
  for (const t of [...s.model.values(), ...s.optimizer.values()]) t.dispose();
}

/** Loads `s` into the model and the optimiser, which take its tensors; errors name its source. */
export function applyEpochState(s: EpochState, model: nn.Module, opt: optim.Optimizer): void {
  const named = (e: unknown): Error => new Error(`${s.source ?? 'saved training state'}: ${(e as Error).message}`);
  try {
    model.loadStateDict(s.model);
  } catch (e) {
    for (const t of s.optimizer.values()) t.dispose();
    throw named(e);
  } finally {
    for (const t of s.model.values()) t.dispose();
  }
  try {
    opt.loadStateDict(s.optimizer, s.stepCount);
  } catch (e) {
    throw named(e);
  }
}
