// A scan of solid squares: every square of a few sizes (3 to a quarter of the image) and grey levels
// (black to white), at every place on a grid of stride 3 and at the last row and column, stamped on a
// few of the defender's clean images; for each class, the square that sends the largest share of the
// images not of that class to it. A patch trigger's target answers a square near the trigger's place,
// size and grey with most images, a clean class with few: the scan finds what a mask search reaches
// only in part (a dark patch over the object, whose smallest working mask is a few of its corners).
// The suspect's square (the class answered most) is then refined: every place within the stride, sides
// 2 less to 2 more, then its grey level a step or two either way. Forward passes only; reads only the
// images given.
// Sides and stride are in cells of one pixel up to 47-pixel images (Fashion-MNIST, CIFAR: the sides 3, 5
// and 7 pixels) and of round(side / 32) pixels above (224: cells of 7, sides 21, 35 and 49, stride 21),
// so that the scan's squares number about the same at any size; there the refinement is in cells, then
// in pixels within half a cell.
import { noGrad, nn, scope, Tensor, tensor } from '../torch/compute';
import { Normalization, normalizeUnit } from '../train/loop';
import { Rng } from '../util/rng';
import { anomalyIndices } from './neural-cleanse';
import { FoundTrigger, SearchResult } from './trigger-search';

export interface SquareScanOptions {
  /** clean images the squares are stamped on, drawn by `seed` */
  images: number;
  /** square sides, in cells (those over a quarter of the image's smaller side, or 3 pixels, are left out) */
  sizes: number[];
  /** grey levels in [0, 1], every channel alike */
  levels: number[];
  /** in cells */
  stride: number;
  seed: number;
  /** squares stamped in one forward pass (fewer where their images would pass 2^21 values: large images) */
  perPass: number;
}

export const SQUARE_SCAN_DEFAULTS: SquareScanOptions = { images: 64, sizes: [3, 5, 7], levels: [0, 0.25, 0.5, 0.75, 1], stride: 3, seed: 1, perPass: 8 };
/** the suspect's level is refined by these steps either way */
export const LEVEL_STEPS = [0.05, 0.1];

export interface Square { side: number; level: number; x: number; y: number }

/** The scan's unit in pixels on an image of height x width: 1 up to 47 pixels, round(smaller side / 32) above. */
export function cellOf(height: number, width: number): number {
  return Math.max(1, Math.round(Math.min(height, width) / 32));
}

/** Every square of the scan on an image of height x width, in order: sides, levels, rows, columns. */
export function squaresOf(height: number, width: number, o: Pick<SquareScanOptions, 'sizes' | 'levels' | 'stride'>): Square[] {
  const most = Math.max(3, Math.floor(Math.min(height, width) / 4));
  const cell = cellOf(height, width), stride = o.stride * cell;
  const out: Square[] = [];
  // every stride-th place and the last one, where a corner patch sits (the bottom-right corner of an
  // even image is at an odd place)
  const places = (extent: number, side: number): number[] => {
    const at: number[] = [];
    for (let v = 0; v + side <= extent; v += stride) at.push(v);
    if (at[at.length - 1] !== extent - side) at.push(extent - side);
    return at;
  };
  for (const side of o.sizes.map((s) => s * cell).filter((s) => s <= most)) for (const level of o.levels)
    for (const y of places(height, side)) for (const x of places(width, side)) out.push({ side, level, x, y });
  return out;
}

/**
 * The scan on `images` (uint8 [N, C, H, W], labels int64 [N]) for a model in eval mode: per class the
 * square of the largest success, as a trigger (mask and pattern) like the mask search's; the suspect is
 * the class of the largest success, its anomaly index the high-side one of the classes' successes.
 */
export function scanSquares(model: nn.Module, images: Tensor, labels: Tensor, norm: Normalization, classes: number, o: SquareScanOptions,
  threshold = 2, progress?: (n: number, total: number) => void): SearchResult {
  const [n, channels, height, width] = images.shape;
  const count = Math.min(n, o.images);
  const pick = Array.from(new Rng(o.seed * 104729 + 3).permutation(n).slice(0, count));
  const labelArray = labels.toList();
  const picked = pick.map((i) => labelArray[i]);
  const others = Array.from({ length: classes }, (_, c) => picked.filter((l) => l !== c).length);
  const squares = squaresOf(height, width, o);
  const cell = cellOf(height, width), half = Math.floor(cell / 2);
  const best = Array.from({ length: classes }, () => ({ rate: -1, square: squares[0] }));
  const plane = height * width;
  const wasTraining = model.training;
  model.eval();
  const x = scope(() => images.indexSelect(0, tensor(Float64Array.from(pick), [count]).long()).to('float32').div(255));
  // the predictions for the squares of `list`, a pass of `perPass` squares at a time (8 up to CIFAR's size, 1 at 224); `take` sees each square's hits per class
  const perPass = Math.max(1, Math.min(o.perPass, Math.floor(2 ** 21 / (count * channels * plane))));
  const scan = (list: Square[], take: (q: Square, rates: number[]) => void, total: number): void => {
    for (let s0 = 0; s0 < list.length; s0 += perPass) {
      const group = list.slice(s0, s0 + perPass);
      const pred = noGrad(() => scope(() => {
        const mask = new Float32Array(group.length * plane), fill = new Float32Array(group.length * plane);
        group.forEach((q, g) => { paint(mask, g * plane, width, q, 1); paint(fill, g * plane, width, q, q.level); });
        const m = tensor(mask, [group.length, 1, 1, height, width]), p = tensor(fill, [group.length, 1, 1, height, width]);
        const stamped = x.unsqueeze(0).mul(m.neg().add(1)).add(p).view(group.length * count, channels, height, width);
        return model.call(normalizeUnit(stamped, norm)).argmax(1).toList();
      }));
      group.forEach((q, g) => {
        const hits = new Array(classes).fill(0);
        for (let i = 0; i < count; i++) { const c = pred[g * count + i]; if (picked[i] !== c) hits[c]++; }
        take(q, hits.map((h, c) => (others[c] ? h / others[c] : 0)));
      });
      progress?.(group.length * count, total * count);
    }
  };
  let suspect = 0;
  try {
    // the refinement's size is known once the suspect is: at most 5 sides by (2 stride + 1)^2 places (in
    // cells), then on images of cells over a pixel (2 half + 1)^3 in pixels, then the levels
    const total = squares.length + 5 * (2 * o.stride + 1) ** 2 + (cell > 1 ? (2 * half + 1) ** 3 : 0) + 2 * LEVEL_STEPS.length;
    scan(squares, (q, rates) => rates.forEach((rate, c) => { if (rate > best[c].rate) best[c] = { rate, square: q }; }), total);
    // the suspect's square, refined: every place within the stride and the side up to 2 less or more (in
    // cells; where a cell is over a pixel, then in pixels within half a cell), then the level a step or
    // two either way (a patch's grey is seldom one of the scan's levels)
    suspect = best.reduce((a, b, c) => (b.rate > best[a].rate ? c : a), 0);
    const take = (q: Square, rates: number[]): void => { if (rates[suspect] > best[suspect].rate) best[suspect] = { rate: rates[suspect], square: q }; };
    const near = refinementsOf(best[suspect].square, height, width, o.stride * cell, cell);
    scan(near, take, total);
    const fine = cell > 1 ? refinementsOf(best[suspect].square, height, width, half, 1, half) : [];
    scan(fine, take, total);
    const q = best[suspect].square;
    const levels = LEVEL_STEPS.flatMap((d) => [q.level - d, q.level + d]).filter((l) => l >= 0 && l <= 1).map((level) => ({ ...q, level }));
    scan(levels, take, total);
    progress?.((total - squares.length - near.length - fine.length - levels.length) * count, total * count); // fewer near an edge or at side 3: the progress ends at 100%
  } finally {
    x.dispose();
    if (wasTraining) model.train();
  }
  const rates = best.map((b) => b.rate);
  const { index, flagged } = anomalyIndices(rates.map((r) => -r), threshold);
  const triggers: FoundTrigger[] = best.map(({ rate, square: q }, c) => {
    const mask = new Float32Array(plane);
    paint(mask, 0, width, q, 1);
    return {
      cls: c, mask: tensor(mask, [1, 1, height, width]), pattern: tensor(new Float32Array(channels * plane).fill(q.level), [1, channels, height, width]),
      maskL1: q.side * q.side, success: rate, anomalyIndex: index[c],
    };
  });
  return { triggers, suspect, flagged: flagged[suspect] };
}

/** Sets square q's pixels of the plane at `offset` in `to` (rows of `width`) to `value`. */
function paint(to: Float32Array, offset: number, width: number, q: Square, value: number): void {
  for (let y = q.y; y < q.y + q.side; y++) to.fill(value, offset + y * width + q.x, offset + y * width + q.x + q.side);
}

/**
 * The squares near q (its level): sides q.side - sideReach to q.side + sideReach by `step` (3 at least),
 * each place within `reach` of q's by `step`, inside the image.
 */
export function refinementsOf(q: Square, height: number, width: number, reach: number, step = 1, sideReach = 2 * step): Square[] {
  const out: Square[] = [];
  const near = (v: number, extent: number, side: number): number[] => {
    const at: number[] = [];
    for (let d = -Math.floor(reach / step) * step; d <= reach; d += step) if (v + d >= 0 && v + d + side <= extent) at.push(v + d);
    return at;
  };
  for (let side = Math.max(3, q.side - sideReach); side <= Math.min(q.side + sideReach, height, width); side += step)
    for (const y of near(q.y, height, side)) for (const x of near(q.x, width, side)) out.push({ side, level: q.level, x, y });
  return out;
}
