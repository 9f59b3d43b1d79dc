// Purify a backdoored model with one or more defenses, each on a fresh copy, using only clean data;
// ACC (and with a trigger ASR, RA, floor) before and after, one DIR/<method>/report.json each, and
// reuse of a report computed from the same inputs.
import { ClassSearch, classSearch, squareSearch, Verdict, VERDICT_DEFAULTS, verdictLine, verdictOf, VerdictReference } from '../defenses/verdict';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { assertPrecision, nn, Precision, Tensor, withPrecision } from '../torch';
import { computeEnvironment, ComputeEnvironment } from '../torch/environment';
import { AttackSpec } from '../attacks/poison';
import { datasetInfo, ImageSet, loadImageSet, withoutTestSet } from '../data/datasets';
import { DefenseData, DefenseHooks, disposeSet, holdOut } from '../defenses/common';
import { defenseDirName, defenseLabel, defenseMethod, DefenseReport, parseOverrides, resolveOptions } from '../defenses/registry';
import { CHUNK, evaluateModel, GivenTriggered, Metrics } from '../train/metrics';
import { Images, isChunks } from '../data/image-set';
import { TriggeredImageSet } from '../data/user-images';
import type { ImageTransform } from '../data/transforms';
import { runFiles, saveModel, TrainConfig } from '../train/run';
import { readRunRecord } from '../train/run-records';
import { writeFileAtomic } from '../util/atomic';
import { readFileNamed } from '../util/files';
import { DefenseCheckpoints } from './checkpoints';
import { CleanSource, loadCleanData, UserImages } from './clean-data';
import { InputNorm, inputInfo, loadModel, ModelSource } from './model';
import { stageProgress } from './progress';
import { readRun } from './run-dir';

/**
 * The model as given without a run: architecture, dataset and the trigger it is tested with (null: none),
 * or the triggered images ASR is measured on (asrImages: where they came from and their sha256).
 */
export interface DefendTarget {
  model: string; width?: number; dataset: string; attack: AttackSpec | null; /** when not the dataset's */ norm?: InputNorm;
  asrImages?: { path?: string; size: number; sha256: string };
}

export interface DefendOutcome {
  method: string; preset: string; dir: string;
  /** what was purified: the training run, its weights and config; or the weights, their target and the clean data's source */
  source: { run?: string; weights: string; config?: TrainConfig; target?: DefendTarget; clean?: CleanRecord; test?: CleanRecord };
  before: Metrics; after: Metrics; report: DefenseReport;
  /** libtorch's intra-op threads: the numbers are reproducible with the same count and kernels */
  threads?: number;
  /** the threads and CPU kernels the numbers were computed with */
  environment?: ComputeEnvironment;
  /** sha256 of everything that determines the result: weights, clean and test data, config, options */
  inputDigest?: string;
  /** when the run went on from a killed one's checkpoints: the seconds that one had spent (included in report.seconds) */
  resumedAfterSeconds?: number;
  /** the arithmetic of the defense and of the evaluations before and after (absent in reports written before it was recorded: fp32) */
  precision?: Precision;
  /** whether a backdoor likely remains, from the purified model and the clean images alone (absent with verdict: false, and in older reports) */
  verdict?: Verdict;
}

/**
 * The clean data of a model request: a draw's size and seed, or images of the caller's (`path` where
 * they came from, `sha256` of their pixels and labels as the input digest takes them).
 */
export interface CleanRecord { kind: string; size: number; seed?: number; path?: string; transform?: ImageTransform; draw?: { size: number; seed: number }; sha256?: string }

/** How the defenses report their stages and the pipeline its decisions (default: progress bars / lines on stderr). */
export interface DefendHooks {
  log?: (line: string) => void;
  /** hooks for one defense's run, stopped after it */
  stages?: () => DefenseHooks & { stop(): void };
}

interface Common {
  /** methods as name[:preset], comma-separated, or [name, preset] pairs */
  methods: string | [string, string][];
  /** option overrides of the method(s) (see the registry's presets) */
  overrides?: Record<string, unknown>;
  /** share of the clean data held out for the defenses' validation (default 0.1) */
  valFraction?: number;
  dataDir?: string;
  /** rerun methods whose report.json is there already */
  force?: boolean;
  /**
   * the arithmetic of the defenses and of the evaluations before and after: fp32 (default), or bf16
   * (bfloat16 autocast; refused where the CPU has no AVX512-BF16 or AMX, docs/engine.md)
   */
  precision?: Precision;
  /**
   * run the residual-backdoor verdict on each purified model (default true; src/defenses/verdict.ts);
   * `{ steps }` runs it with fewer or more search steps than the default's, `{ scan: false }` without the square scan
   */
  verdict?: boolean | { steps?: number; scan?: boolean };
  /**
   * where the original model's class search is kept for the requests that follow (default
   * <out>/verdict-original.json); it is reused only when the weights, clean images, hold-out and
   * search options match. Experiments put it by the shared model, so that cells search it once.
   */
  verdictCache?: string;
  hooks?: DefendHooks;
}

/** Purify the model of a training run of ours, with the run's clean split; out defaults to <run>/defenses. */
export interface RunDefendRequest extends Common { run: string; weights?: string; out?: string }

/** Purify weights given as a file with their architecture and a clean-data source. */
export interface ModelDefendRequest extends Common {
  model: ModelSource; clean: CleanSource; attack?: AttackSpec | null; out: string;
  /** seed of the train/validation hold-out of the clean data (a run uses its training seed; default 1) */
  holdOutSeed?: number;
  /**
   * labelled images ACC/ASR before and after are measured on (default: the dataset's test split), held
   * or read in chunks (a folder of any size); the caller disposes a held test.set
   */
  test?: UserImages;
  /** triggered images ASR is measured on instead of `attack`'s (the caller disposes them) */
  asrImages?: { set: TriggeredImageSet; path?: string };
}

export type DefendRequest = RunDefendRequest | ModelDefendRequest;

/** 'vardefense:paper,ft' -> [['vardefense', 'paper'], ['ft', 'default']] */
export function parseMethods(spec: string): [string, string][] {
  return spec.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const [m, p] = s.split(':');
    defenseMethod(m);
    return [m, p ?? 'default'];
  });
}

/** Everything one request resolves to before any defense runs. */
interface Plan {
  target: ModelSource; attack: AttackSpec | GivenTriggered | null; clean: CleanSource; holdOutSeed: number; out: string;
  /** the caller's evaluation images, when not the test split */
  test?: Images;
  /** digest keys of what the model and the evaluation are (the run's config, or the target) */
  identity: Record<string, unknown>;
  source: DefendOutcome['source']; metadata: string;
  /** the undefended metrics when known without evaluating (a run's own metrics.json) */
  knownBefore?: () => Metrics | null;
}

const imagesRecord = (c: UserImages): CleanRecord =>
  ({ kind: c.kind, size: isChunks(c.set) ? c.set.labels.length : c.set.labels.numel, ...(c.path === undefined ? {} : { path: path.resolve(c.path) }), ...(c.transform ? { transform: c.transform } : {}),
    ...(c.draw ? { draw: c.draw } : {}), sha256: setDigest(c.set) });

/** What a report records of a clean source: a draw's size and seed, a run split's size, or the caller's images (path, sha256). */
export const cleanRecordOf = (c: CleanSource): CleanRecord => (c.kind === 'split' ? { kind: c.kind, size: c.size, seed: c.seed }
  : c.kind === 'run' ? { kind: c.kind, size: c.indices.length } : imagesRecord(c));

/** The target as the digest takes it: a trigger image by its pixels, not by where its file was (a moved file is the same trigger). */
function contentOf(t: DefendTarget): DefendTarget {
  if (t.asrImages) return { ...t, asrImages: { size: t.asrImages.size, sha256: t.asrImages.sha256 } };
  if (t.attack?.trigger.kind !== 'image') return t;
  const { source: _where, ...trigger } = t.attack.trigger;
  return { ...t, attack: { ...t.attack, trigger } };
}

function planOf(r: DefendRequest): Plan {
  if ('run' in r) {
    const info = readRun(r.run, r.weights);
    const cfg = info.cfg;
    return {
      target: { model: cfg.model, width: cfg.width, dataset: cfg.dataset, weights: info.weights }, attack: cfg.attack,
      clean: { kind: 'run', dataset: cfg.dataset, indices: info.cleanIndices }, holdOutSeed: cfg.seed, out: r.out ?? path.join(r.run, 'defenses'),
      identity: { config: cfg }, source: { run: path.resolve(r.run), weights: path.resolve(info.weights), config: cfg }, metadata: JSON.stringify(cfg),
      knownBefore: () => {
        // the training run's own evaluation, made at the end of training, when its model is the one purified
        const files = runFiles(r.run);
        if (r.weights || !fs.existsSync(files.metrics)) return null;
        const m = readRunRecord<Metrics>(files.metrics);
        return m.cleanToTarget !== undefined ? m : null;
      },
    };
  }
  if (r.asrImages && r.attack) throw new Error('defend: give the trigger (attack) or the triggered images (asrImages), not both');
  const given = r.asrImages ? { kind: 'images' as const, ...r.asrImages.set } : null;
  const attack = given ?? r.attack ?? null;
  const asrImages = r.asrImages ? { ...(r.asrImages.path === undefined ? {} : { path: path.resolve(r.asrImages.path) }), size: r.asrImages.set.targetLabels.numel, sha256: triggeredDigest(r.asrImages.set) } : undefined;
  // norm (and asrImages) only when given, so that the digests of reports written before they existed still match
  const target: DefendTarget = { model: r.model.model, width: r.model.width, dataset: r.model.dataset, attack: r.attack ?? null,
    ...(r.model.norm ? { norm: r.model.norm } : {}), ...(asrImages ? { asrImages } : {}) };
  const holdOutSeed = r.holdOutSeed ?? 1;
  const clean = cleanRecordOf(r.clean);
  return {
    target: r.model, attack, clean: r.clean, holdOutSeed, out: r.out, identity: { target: contentOf(target), holdOutSeed }, test: r.test?.set,
    source: { weights: path.resolve(r.model.weights), target, clean, ...(r.test ? { test: imagesRecord(r.test) } : {}) }, metadata: JSON.stringify(target),
  };
}

function methodsOf(m: DefendRequest['methods']): [string, string][] {
  if (typeof m === 'string') return parseMethods(m);
  for (const [name] of m) defenseMethod(name);
  return m;
}

/** The search `key` names, from `file` when it holds that key's, else computed and written there (atomically). */
function cachedSearch(file: string, key: string, compute: () => VerdictReference): VerdictReference {
  try {
    const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as { key?: string; search?: VerdictReference };
    if (kept.key === key && kept.search?.masks) return kept.search;
  } catch { /* absent or torn: search again */ }
  const search = compute();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, JSON.stringify({ key, search }));
  return search;
}

/** Runs the request's methods in order (a method with a matching report is reused unless `force`); `onResult` sees each. */
export function defend(r: DefendRequest, onResult?: (o: DefendOutcome) => void): DefendOutcome[] {
  const precision = r.precision ?? 'fp32';
  assertPrecision(precision);
  const plan = planOf(r);
  const methods = methodsOf(r.methods);
  const valFraction = r.valFraction ?? 0.1;
  const log = r.hooks?.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const stages = r.hooks?.stages ?? stageProgress;
  const options = methods.map(([m, p]) => resolveOptions(defenseMethod(m), p, r.overrides ?? {}));
  const d = inputInfo(plan.target);
  const dirs = methods.map(([m, preset]) => path.join(plan.out, defenseDirName(m, preset)));

  // the data is loaded even when every method is done: reuse is keyed on a digest of the inputs
  const clean = loadCleanData(plan.clean, r.dataDir);
  const data: DefenseData = { ...holdOut(clean, valFraction, plan.holdOutSeed), norm: d };
  const test = plan.test ?? loadImageSet(plan.target.dataset, 'test', r.dataDir);
  // key order as in the reports written before the pipeline layer, so that their digests still match
  // the caller's images were hashed once already for the report's record
  // bf16 enters the digest (an fp32 report is never reused for bf16, nor the reverse); fp32 does not, so
  // that the reports written before precision existed keep their digests
  const shared = { weights: fileDigest(plan.target.weights), clean: plan.source.clean?.sha256 ?? setDigest(clean), test: plan.source.test?.sha256 ?? setDigest(test),
    ...plan.identity, valFraction, ...(precision === 'fp32' ? {} : { precision }) };
  if (plan.clean.kind !== 'images') disposeSet(clean);
  const digests = methods.map(([m, preset], i) => digestOf({ ...shared, method: m, preset, options: options[i] }));
  let before: Metrics | null = null;
  let reference: VerdictReference | null = null;
  const verdictOptions = r.verdict === false ? null : { ...VERDICT_DEFAULTS, ...(typeof r.verdict === 'object' ? r.verdict : {}) };
  if (verdictOptions && !(Number.isInteger(verdictOptions.steps) && verdictOptions.steps >= 1)) throw new Error(`defend: verdict.steps must be an integer >= 1, got ${verdictOptions.steps}`);
  const verdictCache = r.verdictCache ?? path.join(plan.out, 'verdict-original.json');
  const undefended = (): Metrics => {
    // the run's own evaluation counts only when it was made in this precision
    const known = (plan.source.config?.precision ?? 'fp32') === precision ? plan.knownBefore?.() : null;
    if (known) return known;
    const original = loadModel(plan.target);
    const m = withPrecision(precision, () => evaluateModel(original, test, d, plan.attack));
    original.dispose();
    return m;
  };

  const outcomes = methods.map(([m, preset], i): DefendOutcome => {
    const done = r.force ? null : earlierOutcome(dirs[i], digests[i], defenseLabel(m, preset), log);
    if (done) {
      onResult?.(done);
      return done;
    }
    before ??= undefended();
    const model: nn.Module = loadModel(plan.target);
    const hooks = stages();
    const checkpoints = new DefenseCheckpoints(path.join(dirs[i], 'checkpoints'), digests[i], r.force);
    log(`${defenseLabel(m, preset)} on ${plan.target.weights}`);
    let report: DefenseReport;
    try {
      report = withPrecision(precision, () => withoutTestSet(() => defenseMethod(m).run(model, data, options[i] as never, { ...hooks, epochCheckpoint: (stage) => checkpoints.next(stage) })));
    } catch (e) {
      hooks.stop();
      model.dispose();
      if (e instanceof Error) e.message = `${e.message} (model ${plan.target.model}${plan.target.width === undefined ? '' : `, width ${plan.target.width}`})`;
      throw e;
    }
    hooks.stop();
    // a resumed run's time includes the killed runs' up to their last checkpoint
    if (checkpoints.priorSeconds > 0) report.seconds += checkpoints.priorSeconds;
    const after = withPrecision(precision, () => evaluateModel(model, test, d, plan.attack));
    let verdict: Verdict | undefined;
    if (verdictOptions) {
      const search = (net: nn.Module, stage: string, how = classSearch): ClassSearch => {
        const vh = stages();
        try {
          return withPrecision(precision, () => withoutTestSet(() => how(net, data, verdictOptions, (k, n) => vh.progress?.(stage, k, n))));
        } finally { vh.stop(); }
      };
      const both = (net: nn.Module, which: string): VerdictReference => ({ masks: search(net, `verdict: ${which}`),
        ...(verdictOptions.scan ? { squares: search(net, `verdict: ${which}, square scan`, squareSearch) } : {}) });
      // the original model's searches, once for every method of the request and kept for later requests
      reference ??= cachedSearch(verdictCache, digestOf({ ...shared, verdict: verdictOptions }), () => {
        const original = loadModel(plan.target);
        try { return both(original, 'original'); } finally { original.dispose(); }
      });
      const purified = both(model, 'purified');
      verdict = verdictOf(reference.masks, purified.masks, verdictOptions.threshold, purified.squares && reference.squares ? { before: reference.squares, after: purified.squares, floor: verdictOptions.scanFloor, target: verdictOptions.scanTarget } : undefined);
      if (verdictOptions.steps !== VERDICT_DEFAULTS.steps) verdict.steps = verdictOptions.steps;
      log(`${defenseLabel(m, preset)}: ${verdictLine(verdict)}`);
    }
    fs.mkdirSync(dirs[i], { recursive: true });
    saveModel(path.join(dirs[i], 'model.safetensors'), model, { method: m, preset, source: path.resolve(plan.target.weights), config: plan.metadata,
      ...(precision === 'fp32' ? {} : { precision }) });
    const environment = withPrecision(precision, computeEnvironment);
    const outcome: DefendOutcome = { method: m, preset, dir: dirs[i], source: plan.source, before, after, report,
      threads: environment.threads, environment, inputDigest: digests[i], ...(checkpoints.priorSeconds > 0 ? { resumedAfterSeconds: checkpoints.priorSeconds } : {}), precision,
      ...(verdict ? { verdict } : {}) };
    writeFileAtomic(path.join(dirs[i], 'report.json'), JSON.stringify(outcome, null, 1));
    checkpoints.remove();
    model.dispose();
    onResult?.(outcome);
    return outcome;
  });
  for (const s of [data.train, data.val, ...(plan.test || isChunks(test) ? [] : [test])]) disposeSet(s);
  return outcomes;
}

/** `--set key=value` strings and a VarDefense lambda ('auto' or a number) as option overrides. */
export function overridesOf(set: string[], o: { seed?: number; lambda?: string } = {}): Record<string, unknown> {
  const overrides: Record<string, unknown> = parseOverrides(set);
  if (o.seed !== undefined) overrides.seed = o.seed;
  if (o.lambda !== undefined) {
    if (o.lambda !== 'auto' && !(Number(o.lambda) >= 0)) throw new Error(`--lambda must be a number >= 0 or 'auto', got '${o.lambda}'`);
    overrides.lambda = o.lambda === 'auto' ? 'auto' : Number(o.lambda);
  }
  return overrides;
}

/** A finished report in `dir` computed from the same inputs, or null (with a line saying why it is not reused). */
function earlierOutcome(dir: string, digest: string, label: string, log: (l: string) => void): DefendOutcome | null {
  const file = path.join(dir, 'report.json');
  if (!fs.existsSync(file)) return null;
  let done: DefendOutcome;
  try {
    done = readRunRecord<DefendOutcome>(file);
  } catch (e) {
    log(`${label}: ${file} is unreadable (${(e as Error).message}); running it again`);
    return null;
  }
  if (done.inputDigest !== digest) {
    log(`${label}: ${file} was computed from other weights, data or options; running it again`);
    return null;
  }
  log(`${label}: done earlier (${dir}); --force reruns it`);
  return done;
}

const digestOf = (v: unknown): string => crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex');

function fileDigest(file: string): string {
  return crypto.createHash('sha256').update(readFileNamed(file)).digest('hex');
}

/** sha256 of the images and labels; of a set read in chunks, the same as of the whole set in memory. */
export function setDigest(s: Images, chunk = CHUNK): string {
  if (!isChunks(s)) return tensorsDigest([s.images, s.labels]);
  const h = crypto.createHash('sha256').update(s.shape.join('x'));
  for (const c of s.chunks(chunk)) {
    const a = c.images.toArray() as Uint8Array;
    h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    c.images.dispose(); c.labels.dispose();
  }
  const labels = BigInt64Array.from(s.labels, BigInt);
  return h.update(String(s.labels.length)).update(Buffer.from(labels.buffer)).digest('hex');
}

function triggeredDigest(s: TriggeredImageSet): string {
  return tensorsDigest([s.images, s.targetLabels, ...(s.trueLabels ? [s.trueLabels] : [])]);
}

function tensorsDigest(ts: Tensor[]): string {
  const h = crypto.createHash('sha256');
  for (const t of ts) {
    const a = t.toArray() as ArrayBufferView;
    h.update(t.shape.join('x')).update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}
