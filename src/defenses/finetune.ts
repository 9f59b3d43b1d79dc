// FT: plain fine-tuning on the defender's clean data (the simplest baseline, and the cost yardstick).
import { z } from 'zod';
import { nn } from '../torch/compute';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, FINE_TUNE_DEFAULTS, FineTuneOptions, fineTuneShape, publishedFineTuneShape } from './common';
import { defineDefense } from './method';

export const FT_SCHEMA = z.object({ ...fineTuneShape, ...publishedFineTuneShape }).strict();
export type FineTuneDefenseOptions = z.infer<typeof FT_SCHEMA>;
export const FT_DEFAULTS: FineTuneDefenseOptions = { ...FINE_TUNE_DEFAULTS };

export interface FineTuneReport { method: 'ft'; options: FineTuneOptions; valAccBefore: number; valAccAfter: number; seconds: number }

export function fineTuneDefense(model: nn.Module, data: DefenseData, o: FineTuneOptions, h: DefenseHooks = {}): FineTuneReport {
  const t0 = performance.now();
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  fineTune(model, data.train, data.norm, o, { ...h, stage: 'fine-tune', resumable: true });
  return { method: 'ft', options: o, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}

export const FT = defineDefense({
  name: 'ft', summary: 'fine-tuning on the clean split', schema: FT_SCHEMA, run: fineTuneDefense,
  // 'published': BackdoorBench's FT trains on randomly cropped batches (padding 4; it also flips CIFAR-10: augment=crop-flip)
  presets: { default: { ...FT_DEFAULTS }, published: { ...FT_DEFAULTS, augment: 'crop' } },
});
