// Per-epoch checkpoints of one defense run, in <method dir>/checkpoints: each resumable fine-tune of
// the defense saves its model and optimiser state after every epoch, so that a killed run (a grid cell,
// a 100-round SAU) goes on after its last finished epoch with the numbers of an unbroken one. They are
// kept only for the inputs they were made from (the report's digest) and removed with the report written.
import * as fs from 'fs';
import * as path from 'path';
import { loadSafetensors, saveSafetensors, Tensor } from '../torch';
import { EpochCheckpoint, EpochState } from '../defenses/common';
import { writeFileAtomic } from '../util/atomic';

interface Progress { inputDigest: string; seconds: number }

export class DefenseCheckpoints {
  private calls = 0;
  private readonly started = performance.now();
  /** seconds the killed runs had spent up to their last checkpoint (0 when none was resumed) */
  readonly priorSeconds: number;

  /** Opens `dir` for a run with `inputDigest`; checkpoints of other inputs, or all with `fresh`, are removed. */
  constructor(readonly dir: string, private readonly inputDigest: string, fresh = false) {
    const earlier = fresh ? null : readProgress(this.progressFile);
    if (earlier?.inputDigest !== inputDigest) fs.rmSync(dir, { recursive: true, force: true });
    this.priorSeconds = earlier?.inputDigest === inputDigest ? earlier.seconds : 0;
  }

  private get progressFile(): string { return path.join(this.dir, 'progress.json'); }

  /** Seconds spent on the defense so far, the killed runs' included. */
  seconds(): number { return this.priorSeconds + (performance.now() - this.started) / 1000; }

  /** The checkpoint of the defense's next fine-tune call. */
  next(stage: string): EpochCheckpoint {
    const file = path.join(this.dir, `${this.calls++}-${stage.replace(/[^A-Za-z0-9]+/g, '-')}.safetensors`);
    return {
      load: (epochs) => (fs.existsSync(file) ? readEpoch(file, epochs) : null),
      save: (s) => {
        const tensors = new Map<string, Tensor>();
        for (const [k, v] of s.model) tensors.set(`model.${k}`, v);
        for (const [k, v] of s.optimizer) tensors.set(`optim.${k}`, v);
        saveSafetensors(file, tensors, { epoch: String(s.epoch), stepCount: String(s.stepCount), extra: JSON.stringify(s.extra) });
        writeFileAtomic(this.progressFile, JSON.stringify({ inputDigest: this.inputDigest, seconds: this.seconds() } satisfies Progress));
      },
    };
  }

  remove(): void { fs.rmSync(this.dir, { recursive: true, force: true }); }
}

/** An earlier run's progress, or null when there is none or it cannot be read (its checkpoints are then not trusted). */
function readProgress(file: string): Progress | null {
  try {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Progress;
    return typeof p.inputDigest === 'string' && Number.isFinite(p.seconds) ? p : null;
  } catch {
    return null;
  }
}

/** A checkpoint's state, every field checked; errors name the file. */
function readEpoch(file: string, epochs: number): EpochState {
  const { tensors, metadata } = loadSafetensors(file);
  const model = new Map<string, Tensor>(), optimizer = new Map<string, Tensor>();
  try {
    const fail = (what: string): never => { throw new Error(`${file}: ${what} (not a checkpoint of this defense run; delete ${path.dirname(file)} or pass --force to start over)`); };
    const epoch = Number(metadata.epoch), stepCount = Number(metadata.stepCount);
    if (!(Number.isInteger(epoch) && epoch >= 1 && epoch <= epochs)) fail(`metadata 'epoch' must be an integer in 1..${epochs}, got '${metadata.epoch}'`);
    if (!(Number.isInteger(stepCount) && stepCount >= 0)) fail(`metadata 'stepCount' must be an integer >= 0, got '${metadata.stepCount}'`);
    let extra: unknown = null;
    try { extra = JSON.parse(metadata.extra ?? 'null'); } catch (e) { fail(`metadata 'extra' is not valid JSON (${(e as Error).message})`); }
    for (const [k, v] of tensors) {
      const m = /^(model|optim)\.(.+)$/.exec(k);
      if (!m) fail(`unexpected tensor '${k}' (expected model.* and optim.*)`);
      (m![1] === 'model' ? model : optimizer).set(m![2], v);
    }
    if (!model.size) fail("no 'model.*' tensors");
    return { epoch, model, optimizer, stepCount, extra, source: file };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
}
