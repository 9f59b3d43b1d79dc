// A model of a supported architecture with its weights, from a safetensors or torch.save file.
import * as fs from 'fs';
import { loadSafetensors, loadTorchStateDict, manualSeed, nn, Tensor } from '../torch';
import { datasetInfo, DatasetInfo, DatasetSpec } from '../data/datasets';
import { createModel, MODEL_NAMES, ModelName, usesWidth } from '../models';
import { assertFile } from '../util/paths';

/** The architecture and the data it classifies: enough to build the model a weights file fits. */
export interface ModelSpec { model: ModelName; /** base width of the ResNets (64 = the paper's ResNet-18) */ width?: number; dataset: DatasetSpec }

/** The per-channel normalisation a model expects of pixels scaled to [0, 1]: x' = (x - mean) / std. */
export interface InputNorm { mean: number[]; std: number[] }

/**
 * A model spec and the file holding its weights; `norm` when the model was trained with another
 * normalisation than the dataset's usual one (this toolkit's, e.g. CIFAR-10 0.4914/0.247...).
 */
export interface ModelSource extends ModelSpec { weights: string; norm?: InputNorm }

/** The dataset's shape and classes with the normalisation the model expects. */
export function inputInfo(t: { dataset: DatasetSpec; norm?: InputNorm }): DatasetInfo {
  const info = datasetInfo(t.dataset);
  if (!t.norm) return info;
  const { mean, std } = t.norm;
  if (mean.length !== info.channels || std.length !== info.channels)
    throw new Error(`norm: ${t.dataset} images have ${info.channels} channel(s): give ${info.channels} mean and std value(s), got ${mean.length} and ${std.length}`);
  if (![...mean, ...std].every(Number.isFinite) || std.some((s) => s <= 0)) throw new Error(`norm: means must be finite and stds positive, got mean ${mean}, std ${std}`);
  return { ...info, mean: [...mean], std: [...std] };
}

/** Reads a state dict from safetensors or a torch.save file (by content, not by name). */
export function loadStateDictFile(file: string): Map<string, Tensor> {
  assertFile(file);
  const head = Buffer.alloc(4);
  try {
    const fd = fs.openSync(file, 'r');
    try { fs.readSync(fd, head, 0, 4, 0); } finally { fs.closeSync(fd); }
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (head.readUInt32LE(0) === 0x04034b50) return loadTorchStateDict(file);
  return loadSafetensors(file).tensors;
}

/** A model of the source's architecture with its weights loaded (a training checkpoint's too). */
export function loadModel(t: ModelSource): nn.Module {
  if (!MODEL_NAMES.includes(t.model)) throw new Error(`model: unknown architecture '${t.model}' (known: ${MODEL_NAMES.join(', ')})`);
  const info = datasetInfo(t.dataset);
  manualSeed(0);
  const model = createModel({ name: t.model, width: t.width, inChannels: info.channels, numClasses: info.classes, imageSize: info.size });
  const sd = loadStateDictFile(t.weights);
  const own = new Map([...sd].map(([k, v]) => [k.replace(/^model\./, ''), v]));
  for (const k of [...own.keys()]) if (k.startsWith('optim.')) own.delete(k);
  try {
    model.loadStateDict(own);
  } catch (e) {
    model.dispose();
    const width = !usesWidth(t.model) || !t.width ? '' : ` of width ${t.width}`;
    throw new Error(`${t.weights}: not weights of a ${t.model}${width} for ${t.dataset}: ${(e as Error).message}`);
  } finally {
    for (const v of sd.values()) v.dispose();
  }
  return model;
}
