// The package's main entry (`require('vardefense')`): the pipeline a defender calls (load a model, get
// clean data, evaluate, defend, detect, train) and the types it speaks; `vardefense/torch` is the engine.
export { inputInfo, loadModel, loadStateDictFile } from './pipeline/model';
export type { InputNorm, ModelSource, ModelSpec } from './pipeline/model';
export { CleanDataError, loadCleanData, stratifiedDraw } from './pipeline/clean-data';
export type { CleanSource } from './pipeline/clean-data';
export { evaluate, evaluateTarget } from './pipeline/evaluate';
export { defend, overridesOf, parseMethods } from './pipeline/defend';
export type { DefendHooks, DefendOutcome, DefendRequest, DefendTarget, ModelDefendRequest, RunDefendRequest } from './pipeline/defend';
export type { CleanRecord } from './pipeline/defend';
export { detect, detectTable } from './pipeline/detect';
export type { DetectRequest, ModelDetectRequest, RunDetectRequest } from './pipeline/detect';
export { imageTriggerAttack, userCleanSource } from './pipeline/user-inputs';
export type { TriggerFiles } from './pipeline/user-inputs';
export { readRun, runTarget } from './pipeline/run-dir';
export type { RunInfo } from './pipeline/run-dir';
export { ATTACK_KINDS, attackFlagIssues, attackFromFlags, SIG_DEFAULTS, WANET_DEFAULTS } from './pipeline/attack-spec';
export type { AttackFlags } from './pipeline/attack-spec';
export { DEFAULT_TRAIN, train, trainConfigIssues, trainProgressHooks } from './pipeline/train';
export type { TrainConfig, TrainHooks, TrainResult } from './pipeline/train';

export { DATASET_NAMES, DATASETS, datasetInfo, loadImageSet } from './data/datasets';
export type { DatasetInfo, DatasetName, DatasetSpec, ImageSet, ImagesShape } from './data/datasets';
export { createModel, MODEL_NAMES } from './models';
export type { ModelName } from './models';
export { attackIssues } from './attacks/poison';
export type { AttackSpec } from './attacks/poison';
export type { TriggerSpec } from './attacks/triggers';
export { DEFENSE_NAMES, defenseMethod, resolveOptions } from './defenses/registry';
export type { DefenseReport } from './defenses/registry';
export type { Metrics } from './train/metrics';
