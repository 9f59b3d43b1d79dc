// What a training run directory of ours says about its model: architecture, attack, weights, clean split.
import * as fs from 'fs';
import { AttackSpec } from '../attacks/poison';
import { readRunAttack, readTrainConfig, runFiles, TrainConfig } from '../train/run';
import { assertFile } from '../util/paths';
import { ModelSource } from './model';

export interface RunInfo { cfg: TrainConfig; cleanIndices: number[]; weights: string }

function configOf(dir: string): TrainConfig {
  const files = runFiles(dir);
  if (!fs.existsSync(files.config)) throw new Error(`--run ${dir}: no config.json there (is it a training run directory?)`);
  return readTrainConfig(files.config);
}

/** A finished run: its config, clean split and trained model (or `weights`, other weights of the same architecture). */
export function readRun(dir: string, weights?: string): RunInfo {
  const files = runFiles(dir);
  const cfg = configOf(dir);
  const attack = readRunAttack(files.attack);
  if (weights) assertFile(weights, '--weights');
  const w = weights ?? files.model;
  if (!fs.existsSync(w)) throw new Error(`${w}: no trained model (finish the training run first, or give --weights)`);
  return { cfg, cleanIndices: attack.cleanIndices, weights: w };
}

/** The run's model (its last checkpoint while training is unfinished) and attack, for evaluation. */
export function runTarget(dir: string, weights?: string): ModelSource & { attack: AttackSpec | null } {
  const files = runFiles(dir);
  const cfg = configOf(dir);
  if (weights) assertFile(weights, '--weights');
  const w = weights ?? (fs.existsSync(files.model) ? files.model : files.checkpoint);
  return { dataset: cfg.dataset, model: cfg.model, width: cfg.width, attack: cfg.attack, weights: w };
}
