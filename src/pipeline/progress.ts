// Progress for long work: a bar with rate and ETA on a terminal, plain lines otherwise.
import * as cliProgress from 'cli-progress';
import { duration } from '../util/format';

export interface Progress { tick(n: number, fields?: Record<string, string | number>): void; stop(): void }

export function progress(label: string, total: number, unit = 'img'): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted} | {info}`,
      stream: process.stderr, hideCursor: true, etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    const t0 = performance.now();
    let done = 0;
    bar.start(total, 0, { rate: '-', info: '' });
    return {
      tick(n, fields = {}) {
        done += n;
        const rate = (done / ((performance.now() - t0) / 1000)).toFixed(0);
        bar.update(done, { rate, info: Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ') });
      },
      stop() { bar.stop(); },
    };
  }
  const t0 = performance.now();
  let done = 0, nextReport = 0.1;
  return {
    tick(n, fields = {}) {
      done += n;
      if (done / total >= nextReport || done === total) {
        const s = (performance.now() - t0) / 1000;
        const rate = done / s;
        const eta = (total - done) / rate;
        const extra = Object.entries(fields).map(([k, v]) => ` ${k} ${v}`).join('');
        process.stderr.write(`${label}: ${done}/${total} ${unit} (${Math.round((100 * done) / total)}%) ${rate.toFixed(0)} ${unit}/s ETA ${eta.toFixed(0)}s${extra}\n`);
        while (nextReport <= done / total) nextReport += 0.1;
      }
    },
    stop() { /* plain lines need no cleanup */ },
  };
}

/** Progress bars per stage of a defense, driven by its progress hook; log lines close the current bar. */
export function stageProgress(): { log(l: string): void; progress(stage: string, images: number, total: number): void; stop(): void } {
  let bar: Progress | null = null, current = '';
  return {
    log: (l) => { bar?.stop(); bar = null; current = ''; process.stderr.write(`${l}\n`); },
    progress: (stage, images, total) => {
      if (stage !== current) { bar?.stop(); bar = progress(stage, total); current = stage; }
      bar!.tick(images);
    },
    stop: () => { bar?.stop(); bar = null; current = ''; },
  };
}

/**
 * A grid's pace for its cell lines: after each cell run here (not one done earlier), how many ran in how
 * long and the time the cells not yet reached would take at that mean (an upper bound when some of them
 * are done already). `now` in milliseconds.
 */
export function gridPace(now: () => number = () => performance.now()): (cellIndex: number, cells: number) => string {
  const start = now();
  let ran = 0;
  return (i, n) => {
    ran++;
    const elapsed = (now() - start) / 1000;
    const left = n - i - 1;
    return ` · ${ran} run in ${duration(elapsed)}${left > 0 ? `, at most ${duration((elapsed / ran) * left)} left at this pace` : ''}`;
  };
}
