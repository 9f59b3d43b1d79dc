// Peak memory of `defend` and `eval` as a user's ImageFolder grows (issue 28): 224x224 models fed
// JPEGs of another size through --resize/--center-crop. The same command runs on a folder of N images
// and on one of 10N (the first N files are the same in both), each in its own process, whose peak RSS
// (getrusage's maxrss) is printed with the ratio. `--clean <folder> --clean-size n` decodes only the
// n drawn files and `--test <folder>` decodes 500 images at a time, so neither should follow the folder;
// `--clean <folder>` without a draw reads every image (up to the limit on clean images) and does.
// defend evaluates on the small folder in both cases, so only the clean folder grows.
//   node dist/bench/folder-memory.js [--n 150] [--side 256] [--json out.json] [--cli <another build's main.js>]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import * as jpeg from 'jpeg-js';
import { createModel } from '../src/models';
import { saveModel } from '../src/train/run';
import { computeEnvironment } from '../src/torch/environment';
import { Rng } from '../src/util/rng';
import { arg } from './timing';

const N = Number(arg('n', '150')), SIDE = Number(arg('side', '256')), CLASSES = 10;
const MODEL = 'mobilenet_v3_small';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'folder-memory-'));
const cli = arg('cli', path.join(__dirname, '..', 'src', 'cli', 'main.js'));
const hook = path.join(dir, 'maxrss.js');
fs.writeFileSync(hook, "process.on('exit', () => process.stderr.write(`\\nmaxrss ${process.resourceUsage().maxRSS}\\n`));\n");

/** A smooth colour field with pixel noise, as a JPEG of SIDE x SIDE. */
function image(rng: Rng): Buffer {
  const data = Buffer.alloc(SIDE * SIDE * 4);
  const corners = Array.from({ length: 12 }, () => rng.int(256));
  for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) {
    const u = x / (SIDE - 1), v = y / (SIDE - 1);
    for (let c = 0; c < 3; c++) {
      const val = (1 - u) * (1 - v) * corners[c] + u * (1 - v) * corners[3 + c] + (1 - u) * v * corners[6 + c] + u * v * corners[9 + c];
      data[4 * (y * SIDE + x) + c] = Math.max(0, Math.min(255, Math.round(val + rng.int(41) - 20)));
    }
    data[4 * (y * SIDE + x) + 3] = 255;
  }
  return jpeg.encode({ data, width: SIDE, height: SIDE }, 90).data;
}

/** An ImageFolder of n JPEGs, class i % CLASSES, the same files in the same order for every n. */
function folder(n: number): string {
  const root = path.join(dir, `images-${n}`);
  const rng = new Rng(1);
  for (let i = 0; i < n; i++) {
    const cls = path.join(root, `c${i % CLASSES}`);
    fs.mkdirSync(cls, { recursive: true });
    fs.writeFileSync(path.join(cls, `${String(i).padStart(6, '0')}.jpg`), image(rng));
  }
  return root;
}

/** Peak RSS in MB of one CLI command, run in its own process. */
function peakMb(args: string[]): number {
  const r = spawnSync(process.execPath, ['--require', hook, cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, VARDEFENSE_THREADS: process.env.VARDEFENSE_THREADS ?? '2' } });
  const m = /maxrss (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`vardefense ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  return Number(m[1]) / 1024;
}

const weights = path.join(dir, `${MODEL}.safetensors`);
saveModel(weights, createModel({ name: MODEL, inChannels: 3, numClasses: CLASSES, imageSize: 224 }), {});
console.log(`CPU: ${computeEnvironment().cpu}; ${MODEL} for 3x224x224, ${CLASSES} classes; JPEGs of ${SIDE}x${SIDE}, --resize ${SIDE} --center-crop 224`);
const t0 = Date.now();
const small = folder(N), large = folder(10 * N);
console.log(`wrote ${N} and ${10 * N} JPEGs in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
const base = ['--weights', weights, '--model', MODEL, '--dataset', `images:3x224:${CLASSES}`, '--resize', String(SIDE), '--center-crop', '224'];
const draw = Math.min(100, N);
const cases: [string, (f: string) => string[]][] = [
  [`eval --test <folder>`, (f) => ['eval', ...base, '--test', f, '--attack', 'none', '--json']],
  [`defend --clean <folder> --clean-size ${draw} (ft, 1 epoch)`, (f) => ['defend', ...base, '--clean', f, '--clean-size', String(draw), '--clean-seed', '1', '--test', small, '--method', 'ft', '--set', 'epochs=1', '--no-verdict', '--out', path.join(dir, `out-${path.basename(f)}`)]],
  [`defend --clean <folder> --clean-size ${draw} (the default, 2 search steps, 1 epoch)`, (f) => ['defend', ...base, '--clean', f, '--clean-size', String(draw), '--clean-seed', '1', '--test', small, '--method', 'vardefense', '--set', 'searchSteps=2', '--set', 'epochs=1', '--no-verdict', '--out', path.join(dir, `vd-${path.basename(f)}`)]],
  [`defend --clean <folder>, every image (ft, 1 epoch)`, (f) => ['defend', ...base, '--clean', f, '--test', small, '--method', 'ft', '--set', 'epochs=1', '--no-verdict', '--out', path.join(dir, `all-${path.basename(f)}`)]],
];
const rows = cases.map(([name, args]) => {
  const a = peakMb(args(small)), b = peakMb(args(large));
  console.log(`${name}: ${a.toFixed(0)} MB with ${N} images, ${b.toFixed(0)} MB with ${10 * N} (x${(b / a).toFixed(2)})`);
  return { command: name, images: [N, 10 * N], peakMb: [Math.round(a), Math.round(b)], ratio: Number((b / a).toFixed(3)) };
});
const out = arg('json', '');
if (out) fs.writeFileSync(out, JSON.stringify({ cpu: computeEnvironment().cpu, model: MODEL, side: SIDE, rows }, null, 2));
fs.rmSync(dir, { recursive: true, force: true });
