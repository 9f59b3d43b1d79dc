// FT: plain fine-tuning on the defender's clean data (the simplest baseline, and the cost yardstick).
import { nn } from '../torch/compute';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, FINE_TUNE_DEFAULTS, FineTuneOptions } from './common';

export type FineTuneDefenseOptions = FineTuneOptions;
export const FT_DEFAULTS: FineTuneDefenseOptions = { ...FINE_TUNE_DEFAULTS };

export interface FineTuneReport { method: 'ft'; options: FineTuneOptions; valAccBefore: number; valAccAfter: number; seconds: number }

export function fineTuneDefense(model: nn.Module, data: DefenseData, o: FineTuneOptions, h: DefenseHooks = {}): FineTuneReport {
  const t0 = performance.now();
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  fineTune(model, data.train, data.norm, o, { ...h, stage: 'fine-tune', resumable: true });
  return { method: 'ft', options: o, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}
