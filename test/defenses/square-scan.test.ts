import { test } from 'node:test';
import * as assert from 'assert/strict';
import { cellOf, refinementsOf, scanSquares, SQUARE_SCAN_DEFAULTS, squaresOf } from '../../src/defenses/square-scan';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { varDefense, VarDefenseOptions } from '../../src/defenses/vardefense';
import { flaggedBy, squareSearch, verdictLine, verdictOf } from '../../src/defenses/verdict';
import { withoutTestSet } from '../../src/data/datasets';
import { restore, snapshot } from '../../src/defenses/common';
import { evaluate, plantBackdoor, planted } from '../fixtures/planted';
import { full, nn, stack, Tensor, tensor, zeros } from '../../src/torch';

test('the squares: sides up to a quarter of the image (3 at least), both levels, every place on a grid of stride 2 and the last', () => {
  const o = { sizes: [3, 5, 7], levels: [0, 1], stride: 2 };
  // 16x16: a quarter is 4, so only side 3, at 0, 2, ..., 12 and 13 (the bottom-right corner) each way
  const small = squaresOf(16, 16, o);
  assert.equal(small.length, 8 * 8 * 2);
  assert.ok(small.every((q) => q.side === 3 && q.x + 3 <= 16 && q.y + 3 <= 16 && (q.x % 2 === 0 || q.x === 13) && (q.y % 2 === 0 || q.y === 13)));
  assert.ok(small.some((q) => q.x === 13 && q.y === 13 && q.level === 1));
  // 28x28: sides 3, 5, 7 at 14, 13 and 12 places each way (the last at 25, 23, 21)
  const fm = squaresOf(28, 28, o);
  assert.deepEqual([3, 5, 7].map((s) => fm.filter((q) => q.side === s && q.level === 0).length), [14 * 14, 13 * 13, 12 * 12]);
  assert.equal(fm.length, 2 * (196 + 169 + 144));
  // an even side on an even image: the last place is on the grid already, not twice
  assert.equal(squaresOf(16, 16, { ...o, sizes: [4] }).length, 7 * 7 * 2);
});

test('the scan names a white-patch backdoor\'s target, with a light square over the patch, far above the clean classes', () => {
  const p = planted(1);
  const { images, labels } = p.data.train;
  const r = scanSquares(p.model, images, labels, p.data.norm, 10, SQUARE_SCAN_DEFAULTS);
  const rates = r.triggers.map((t) => t.success);
  const target = r.triggers[p.attack.target];
  assert.equal(r.suspect, p.attack.target, `successes ${rates.map((x) => x.toFixed(2)).join(' ')}`);
  assert.ok(r.flagged, `anomaly index ${target.anomalyIndex}`);
  assert.ok(target.success > 0.7, `the target's square sends ${target.success} of the other images to it`);
  assert.ok(Math.max(...rates.filter((_, c) => c !== p.attack.target)) < 0.75, `the clean classes: ${rates.map((x) => x.toFixed(2)).join(' ')}`);
  // a light square (the first level that reaches every image wins: 0.75 or 1) over the patch at (13, 13)
  assert.ok(Math.min(...(target.pattern.toArray() as Float32Array)) >= 0.75, 'a light square');
  const mask = target.mask.toArray() as Float32Array;
  let over = 0;
  for (let y = 13; y < 16; y++) for (let x = 13; x < 16; x++) over += mask[y * 16 + x];
  assert.ok(over >= 4, `the square covers ${over} of the patch's 9 pixels`);
  // the squares of a pass change memory only: one square per pass names the same rates, but for an
  // image on the edge of a decision (other kernels, another batch): 2 of 64 images at most
  const one = scanSquares(p.model, images, labels, p.data.norm, 10, { ...SQUARE_SCAN_DEFAULTS, perPass: 1 });
  one.triggers.forEach((t, c) => assert.ok(Math.abs(t.success - rates[c]) <= 2 / 50, `class ${c}: ${t.success} vs ${rates[c]}`));
  for (const t of [...r.triggers, ...one.triggers]) { t.mask.dispose(); t.pattern.dispose(); }
});

test('robust with the square scan: reported as start "squares", the target its suspect, the backdoor lowered further than without it', () => {
  const vd = defenseMethod('vardefense');
  // the candidate's stamping (30% of each batch, half to the suspects) in a short purification (3 epochs)
  // after a 5-step mask search, which alone leaves the backdoor whole (100% ASR on AVX-512 and AVX2 kernels;
  // about 12-14% with the scan)
  const run = (squareScan: boolean, lines: string[] = []) => {
    const p = planted(1);
    const o = resolveOptions(vd, 'robust', { squareScan, epochs: 3, searchSteps: 5, stampFraction: 0.3, suspectShare: 0.5 }) as unknown as VarDefenseOptions;
    const r = withoutTestSet(() => varDefense(p.model, p.data, o, { log: (l) => lines.push(l) }));
    return { r, after: evaluate(p), p };
  };
  const lines: string[] = [];
  const { r, after, p } = run(true, lines);
  const without = run(false).after;
  const scan = r.searches!.find((s) => s.start === 'squares')!;
  assert.equal(scan.suspect, p.attack.target);
  assert.ok(lines.some((l) => /square scan: class 0 answers the most/.test(l)), lines.join('\n'));
  assert.ok(after.asr! < without.asr! - 0.4, `ASR ${after.asr} with the scan, ${without.asr} without`);
  assert.ok(after.acc > 0.95, `clean accuracy holds (${after.acc})`);
  assert.throws(() => varDefense(p.model, p.data, resolveOptions(vd, 'bn-distill-eval', { squareScan: true }) as unknown as VarDefenseOptions), /option 'squareScan' needs unlearn/);
});

test('the scan\'s gate: open over a patch (the run then the ungated scan\'s), closed (the run then the one without the scan)', () => {
  const vd = defenseMethod('vardefense');
  // short purifications (3 epochs after a 5-step mask search); robust's stamping (15%) unless the gate opens
  const short = { epochs: 3, searchSteps: 5 };
  const gated = { ...short, squareScan: true, scanGate: 0.5, scanOpen: { stampFraction: 0.3, suspectShare: 0.5 } };
  const run = (p: ReturnType<typeof planted>, set: Record<string, unknown>) => {
    const r = withoutTestSet(() => varDefense(p.model, p.data, resolveOptions(vd, 'robust', set) as unknown as VarDefenseOptions));
    return { r, after: evaluate(p), weights: snapshot(p.model) };
  };
  // the largest difference between two purified models' tensors (0: the same run)
  const apart = (a: Map<string, Tensor>, b: Map<string, Tensor>): number =>
    Math.max(...[...a].map(([k, t]) => t.dtype === 'float32' ? t.sub(b.get(k)!).abs().amax().item() : 0));
  // the white 3x3 patch: a square sends (nearly) every other image to the target, so the gate opens, and the
  // run is the ungated scan's with scanOpen's stamping, on the same kernels, to the last digit
  const patch = planted(1);
  const open = run(patch, gated);
  assert.equal(open.r.scanGate?.open, true);
  assert.ok(open.r.scanGate!.success >= 0.9, `the patch's square: ${open.r.scanGate!.success}`);
  const ungated = run(planted(1), { ...short, squareScan: true, stampFraction: 0.3, suspectShare: 0.5 });
  assert.deepEqual([open.after.acc, open.after.asr], [ungated.after.acc, ungated.after.asr]);
  assert.equal(apart(open.weights, ungated.weights), 0, 'the same purification');
  assert.equal(ungated.r.scanGate, undefined, 'no gate, no gate in the report');
  // closed: a gate no square reaches (1: every other image sent to one class) on a blended-noise backdoor, whose
  // best square on this toy fixture sends about 80% of the other images to one class (not the target); the run
  // is then robust's, to the last digit (the gate's value, 0.5 in the presets, is read on Fashion-MNIST judges:
  // docs/protocol.md section 12)
  const blend = plantBackdoor({ seed: 1, trigger: { kind: 'blend', alpha: 0.1, seed: 1 } });
  const before = snapshot(blend.model);
  const closed = run(blend, { ...gated, scanGate: 1 });
  assert.equal(closed.r.scanGate?.open, false);
  assert.ok(closed.r.scanGate!.success < 0.95, `the blend's best square: ${closed.r.scanGate!.success}`);
  assert.ok(closed.r.searches!.some((x) => x.start === 'squares'), 'the closed scan is still reported');
  restore(blend.model, before);
  const plain = run(blend, short);
  assert.deepEqual([closed.after.acc, closed.after.asr], [plain.after.acc, plain.after.asr]);
  assert.equal(apart(closed.weights, plain.weights), 0, 'the same purification');
});

test('the refinement: every place within the stride and sides 2 less to 2 more (3 at least), inside the image', () => {
  const near = refinementsOf({ side: 5, level: 0, x: 10, y: 0 }, 16, 16, 2);
  // sides 3..7; x 8..12 (clipped at 16 - side), y 0..2 (clipped at 0)
  const want = [3, 4, 5, 6, 7].reduce((n, side) => n + (Math.min(16 - side, 12) - 8 + 1) * 3, 0);
  assert.equal(near.length, want);
  assert.ok(near.every((q) => q.level === 0 && q.x + q.side <= 16 && q.y >= 0 && q.y <= 2 && q.side >= 3 && q.side <= 7));
  assert.equal(refinementsOf({ side: 3, level: 1, x: 4, y: 4 }, 28, 28, 2).length, 3 * 25, 'sides 3-5 only');
});

test('on larger images the scan counts in cells: about as many squares at 224 as at 28, the refinement in cells then in pixels', () => {
  const o = SQUARE_SCAN_DEFAULTS;
  assert.deepEqual([16, 28, 32, 47, 48, 64, 224].map((s) => cellOf(s, s)), [1, 1, 1, 1, 2, 2, 7]);
  assert.equal(cellOf(224, 40), 1, 'the smaller side sets the cell');
  const at28 = squaresOf(28, 28, o), at224 = squaresOf(224, 224, o);
  // 224: cells of 7, sides 21, 35, 49 (a quarter is 56) at stride 21 and the last place: 11, 10, 10 places each way
  assert.deepEqual([...new Set(at224.map((q) => q.side))], [21, 35, 49]);
  assert.equal(at224.length, 5 * (11 * 11 + 10 * 10 + 10 * 10));
  assert.ok(at224.length < 1.5 * at28.length, `${at224.length} squares at 224, ${at28.length} at 28`);
  assert.ok(at224.every((q) => (q.x % 21 === 0 || q.x === 224 - q.side) && q.x + q.side <= 224));
  // refinement by cells: sides 21 +- 14 by 7, places +- 21 by 7 (clipped at 0)
  const coarse = refinementsOf({ side: 21, level: 0, x: 7, y: 42 }, 224, 224, 21, 7);
  assert.deepEqual([...new Set(coarse.map((q) => q.side))], [7, 14, 21, 28, 35]);
  assert.deepEqual([...new Set(coarse.map((q) => q.x))], [0, 7, 14, 21, 28]);
  assert.deepEqual([...new Set(coarse.map((q) => q.y))], [21, 28, 35, 42, 49, 56, 63]);
  assert.equal(coarse.length, 5 * 5 * 7);
  // then in pixels within half a cell: sides and places +- 3 by 1
  assert.equal(refinementsOf({ side: 21, level: 0, x: 70, y: 70 }, 224, 224, 3, 1, 3).length, 7 * 7 * 7);
});

/**
 * A model for the scan alone: class 0 when the mean of a 7x7 patch of the input (34..40 each way) passes
 * the image's own threshold (spread over 0.3..0.99, so that the share sent to class 0 grows with the
 * patch's coverage and grey), else class 1. The scan's images come `count` to a square, in order.
 */
class PatchReader extends nn.Module {
  constructor(readonly thresholds: number[]) { super(); }
  forward(x: Tensor): Tensor {
    const n = x.shape[0], count = this.thresholds.length;
    const m = x.narrow(2, 34, 7).narrow(3, 34, 7).mean([1, 2, 3]);
    const t = tensor(Float32Array.from(this.thresholds), [count]).repeat(n / count);
    const rest = Array.from({ length: 8 }, () => full([n], -100));
    return stack([m.sub(t).mul(100), zeros([n]), ...rest], 1);
  }
}

test('on a 48-pixel image (cells of 2) the scan and its refinement find a white 7x7 patch off the grid', () => {
  // no square of the grid (sides 6 and 10, stride 6) covers 34..40 each way: the refinement must
  const n = 64;
  const images = zeros([n, 1, 48, 48]).to('uint8'), labels = full([n], 1).long();
  const count = SQUARE_SCAN_DEFAULTS.images;
  const model = new PatchReader(Array.from({ length: count }, (_, i) => 0.3 + (0.69 * i) / (count - 1)));
  const norm = { mean: [0], std: [1] };
  const grid = squaresOf(48, 48, SQUARE_SCAN_DEFAULTS);
  assert.ok(!grid.some((q) => q.x <= 34 && q.y <= 34 && q.x + q.side >= 41 && q.y + q.side >= 41), 'no square of the grid covers the patch');
  let done = 0, total = 0;
  const r = scanSquares(model, images, labels, norm, 10, SQUARE_SCAN_DEFAULTS, 2, (k, of) => { done += k; total = of; });
  assert.equal(done, total, 'the progress ends at 100%');
  const target = r.triggers[0];
  assert.equal(r.suspect, 0);
  assert.equal(target.success, 1, 'every image goes to class 0');
  const mask = target.mask.toArray() as Float32Array;
  let over = 0;
  for (let y = 34; y < 41; y++) for (let x = 34; x < 41; x++) over += mask[y * 48 + x];
  assert.equal(over, 49, 'the square covers the patch');
  assert.ok(Math.min(...(target.pattern.toArray() as Float32Array)) >= 0.99, 'a white square');
  for (const t of r.triggers) { t.mask.dispose(); t.pattern.dispose(); }
});

test('the verdict\'s square scan: a backdoor the scan still sees on the purified model counts, another class standing out does not', () => {
  const p = planted(1);
  const scan = withoutTestSet(() => squareSearch(p.model, p.data));
  assert.equal(scan.suspect, p.attack.target);
  assert.ok(scan.flagged && scan.successes[scan.suspect] > 0.7, `class ${scan.suspect}: ${scan.successes[scan.suspect]}, index ${scan.anomalyIndex}`);
  assert.equal(scan.masks.length, 10);
  // the mask search sees nothing after (as on a dark patch), the scan sees the original's target: likely, by the scan
  const quiet = { ...scan, flagged: false, suspect: 4 };
  const v = verdictOf(quiet, quiet, 2, { before: scan, after: scan });
  assert.equal(v.backdoorLikely, true);
  assert.equal(flaggedBy(v), v.scan!.after);
  assert.match(verdictLine(v), /likely remains, towards class 0 \(square scan\).*square scan after: class 0 gets \d+% of the other images/);
  // the scan flags another class after (a purified model's quirk): not the original's backdoor
  const other = verdictOf(quiet, quiet, 2, { before: scan, after: { ...scan, suspect: 8 } });
  assert.equal(other.backdoorLikely, false);
  assert.match(verdictLine(other), /not the original's class 0/);
  // the original's target flagged after, but its square sends fewer images there than the floor (25%): none
  const weak = verdictOf(quiet, quiet, 2, { before: scan, after: { ...scan, successes: scan.successes.map((x, c) => (c === 0 ? 0.18 : x)) } });
  assert.equal(weak.backdoorLikely, false);
  assert.match(verdictLine(weak), /class 0 answers a square for 18% of the other images, under the floor of 25%/);
  assert.equal(verdictOf(quiet, quiet, 2, { before: scan, after: { ...scan, successes: scan.successes.map((x, c) => (c === 0 ? 0.3 : x)) } }).backdoorLikely, true);
  // the original's best square sends only 31% to its class (a clean class such as the bags): the scan names
  // no target there and says nothing, whatever the purified model's square does
  const natural = { ...scan, successes: scan.successes.map((x, c) => (c === 0 ? 0.31 : x)) };
  const abstains = verdictOf(quiet, quiet, 2, { before: natural, after: natural });
  assert.equal(abstains.backdoorLikely, false);
  assert.match(verdictLine(abstains), /the square scan named no target on the original, none over 50%/);
  // but where the mask search flagged class 0 on the original, the scan's class 0 after counts
  assert.equal(verdictOf({ ...quiet, flagged: true, suspect: 0 }, quiet, 2, { before: natural, after: natural }).backdoorLikely, true);
  // nothing flagged after by either search: none; without the scan the verdict is the mask search's alone
  assert.equal(verdictOf(quiet, quiet, 2, { before: scan, after: { ...scan, flagged: false } }).backdoorLikely, false);
  assert.equal(verdictOf(quiet, quiet).scan, undefined);
  // the mask search flagged nothing on the original, the scan did (class 0): a class the mask search
  // flags after is the original's target only if it is class 0
  const six = { ...quiet, flagged: true, suspect: 6 };
  assert.equal(verdictOf(quiet, six).backdoorLikely, true, 'without the scan any class after counts');
  const notTarget = verdictOf(quiet, six, 2, { before: scan, after: { ...scan, flagged: false } });
  assert.equal(notTarget.backdoorLikely, false);
  assert.match(verdictLine(notTarget), /class 6 stands out after, not the original's class 0/);
  assert.equal(verdictOf(quiet, { ...six, suspect: 0 }, 2, { before: scan, after: { ...scan, flagged: false } }).backdoorLikely, true);
});
