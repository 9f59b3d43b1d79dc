// `vardefense eval`: ACC, ASR, RA and per-class accuracy of a model file or a run directory.
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors, loadTorchStateDict, manualSeed, nn, Tensor } from '../torch';
import { AttackFlags, checkedAttack } from './options';
import { metricsTable } from './report';
import { AttackSpec } from '../attacks/poison';
import { datasetInfo, DatasetName, loadImageSet } from '../data/datasets';
import { createModel, ModelName } from '../models';
import { evaluateModel, Metrics } from '../train/metrics';
import { readTrainConfig, runFiles } from '../train/run';
import { assertFile } from '../util/paths';

export interface EvalFlags extends AttackFlags {
  run?: string; weights?: string; dataset: DatasetName; dataDir?: string; model: ModelName; width: number; json: boolean;
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

export interface EvalTarget { dataset: DatasetName; model: ModelName; width?: number; attack: AttackSpec | null; weights: string }

export function evalTarget(f: EvalFlags): EvalTarget {
  if (f.run) {
    const files = runFiles(f.run);
    if (!fs.existsSync(files.config)) throw new Error(`--run ${f.run}: no config.json there (is it a training run directory?)`);
    const cfg = readTrainConfig(files.config);
    if (f.weights) assertFile(f.weights, '--weights');
    const weights = f.weights ?? (fs.existsSync(files.model) ? files.model : files.checkpoint);
    return { dataset: cfg.dataset, model: cfg.model, width: cfg.width, attack: cfg.attack, weights };
  }
  if (!f.weights) throw new Error('give --run <dir> or --weights <file> (safetensors or torch.save state dict)');
  assertFile(f.weights, '--weights');
  return { dataset: f.dataset, model: f.model, width: f.width, attack: checkedAttack(f, f.dataset), weights: path.resolve(f.weights) };
}

/** A model of the target's architecture with its weights loaded (a training checkpoint's too). */
export function loadTargetModel(t: Omit<EvalTarget, 'attack'>): nn.Module {
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
    const width = t.model === 'small-cnn' || !t.width ? '' : ` of width ${t.width}`;
    throw new Error(`${t.weights}: not weights of a ${t.model}${width} for ${t.dataset}: ${(e as Error).message}`);
  } finally {
    for (const v of sd.values()) v.dispose();
  }
  return model;
}

export function evaluateTarget(t: EvalTarget, dataDir?: string): Metrics {
  const model = loadTargetModel(t);
  const test = loadImageSet(t.dataset, 'test', dataDir);
  const m = evaluateModel(model, test, datasetInfo(t.dataset), t.attack);
  model.dispose();
  return m;
}

export function runEval(f: EvalFlags): void {
  const t = evalTarget(f);
  const m = evaluateTarget(t, f.dataDir);
  if (f.json) console.log(JSON.stringify({ weights: t.weights, dataset: t.dataset, model: t.model, attack: t.attack, ...m }));
  else console.log(`${t.weights} on ${t.dataset}\n${metricsTable(m)}`);
}
