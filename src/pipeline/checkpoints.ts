// Per-epoch checkpoints of one defense run, in <method dir>/checkpoints: each resumable fine-tune of
// the defense saves its model and optimiser state after every epoch, so that a killed run (a grid cell,
// a 100-round SAU) goes on after its last finished epoch with the numbers of an unbroken one. They are
// kept only for the inputs they were made from (the report's digest) and removed with the report written.
import * as fs from 'fs';
import * as path from 'path';
import { EpochCheckpoint } from '../defenses/common';
import { CheckpointFormat, readEpochState, saveEpochState } from '../train/checkpoint';
import { writeFileAtomic } from '../util/atomic';

interface Progress { inputDigest: string; seconds: number }

export class DefenseCheckpoints {
  private calls = 0;
  private readonly started = performance.now();
  /** seconds the killed runs had spent up to their last checkpoint (0 when none was resumed) */
  readonly priorSeconds: number;
  private readonly format: CheckpointFormat;

  /** Opens `dir` for a run with `inputDigest`; checkpoints of other inputs, or all with `fresh`, are removed. */
  constructor(readonly dir: string, private readonly inputDigest: string, fresh = false) {
    const earlier = fresh ? null : readProgress(this.progressFile);
    if (earlier?.inputDigest !== inputDigest) fs.rmSync(dir, { recursive: true, force: true });
    this.priorSeconds = earlier?.inputDigest === inputDigest ? earlier.seconds : 0;
    this.format = { recordKey: 'extra', startOver: `not a checkpoint of this defense run; delete ${dir} or pass --force to start over` };
  }

  private get progressFile(): string { return path.join(this.dir, 'progress.json'); }

  /** Seconds spent on the defense so far, the killed runs' included. */
  seconds(): number { return this.priorSeconds + (performance.now() - this.started) / 1000; }

  /** The checkpoint of the defense's next fine-tune call. */
  next(stage: string): EpochCheckpoint {
    const file = path.join(this.dir, `${this.calls++}-${stage.replace(/[^A-Za-z0-9]+/g, '-')}.safetensors`);
    return {
      load: (epochs) => (fs.existsSync(file) ? readEpochState(file, epochs, this.format) : null),
      save: (s) => {
        saveEpochState(file, s, this.format);
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
