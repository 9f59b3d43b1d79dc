// Optimisers and learning-rate schedules with PyTorch's update rules (torch.optim, 1.13 semantics).
import { keep, noGrad, scalar, scope, Tensor } from './tensor';

export interface ParamGroup { params: Tensor[]; lr?: number; weightDecay?: number }
interface Group { params: Tensor[]; lr: number; initialLr: number; weightDecay: number }

export abstract class Optimizer {
  readonly groups: Group[];
  /** Per-parameter state tensors (momentum buffers, moments), by parameter position. */
  protected state = new Map<number, Map<string, Tensor>>();
  stepCount = 0;

  constructor(params: Tensor[] | ParamGroup[], lr: number, weightDecay: number) {
    if (!(lr >= 0)) throw new Error(`optimizer: invalid learning rate ${lr}`);
    if (!(weightDecay >= 0)) throw new Error(`optimizer: invalid weight decay ${weightDecay}`);
    const gs: ParamGroup[] = params.length && params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    this.groups = gs.map((g) => ({ params: g.params, lr: g.lr ?? lr, initialLr: g.lr ?? lr, weightDecay: g.weightDecay ?? weightDecay }));
  }

  get lr(): number { return this.groups[0].lr; }

  protected stateOf(index: number): Map<string, Tensor> {
    let s = this.state.get(index);
    if (!s) this.state.set(index, (s = new Map()));
    return s;
  }

  /** Applies one update from the parameters' .grad (parameters without a grad are skipped). */
  step(): void {
    this.stepCount++;
    noGrad(() => {
      let index = 0;
      for (const g of this.groups) {
        for (const p of g.params) {
          const i = index++;
          const grad = p.grad;
          if (!grad) continue;
          scope(() => this.update(p, grad, g, this.stateOf(i)));
          grad.dispose();
        }
      }
    });
  }

  /** Runs inside a scope: state tensors created here must be kept with keep(). */
  protected abstract update(p: Tensor, grad: Tensor, g: Group, state: Map<string, Tensor>): void;

  /** Sets every parameter's grad to none (as zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.groups)
      for (const p of g.params) {
        const gr = p.grad;
        if (gr) { p.grad = null; gr.dispose(); }
      }
  }

  /** State tensors by name 'state.<param index>.<key>' (for checkpoints). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [i, s] of this.state) for (const [k, t] of s) out.set(`state.${i}.${k}`, t);
    return out;
  }

  loadStateDict(sd: Map<string, Tensor>, stepCount: number): void {
    const count = this.groups.reduce((a, g) => a + g.params.length, 0);
    const bad = [...sd.keys()].find((name) => { const m = /^state\.(\d+)\.(\w+)$/.exec(name); return !m || Number(m[1]) >= count; });
    if (bad !== undefined) {
      for (const t of sd.values()) t.dispose();
      throw new Error(`optimizer state: unexpected key '${bad}' (${count} parameters)`);
    }
    for (const s of this.state.values()) for (const t of s.values()) t.dispose();
    this.state.clear();
    for (const [name, t] of sd) {
      const m = /^state\.(\d+)\.(\w+)$/.exec(name)!;
      this.stateOf(Number(m[1])).set(m[2], t);
    }
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const s of this.state.values()) for (const t of s.values()) t.dispose();
    this.state.clear();
  }
}

export interface SGDOptions { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  constructor(params: Tensor[] | ParamGroup[], o: SGDOptions) {
    super(params, o.lr, o.weightDecay ?? 0);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.nesterov = o.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
  }

  protected update(p: Tensor, grad: Tensor, g: Group, state: Map<string, Tensor>): void {
    let d = grad;
    if (g.weightDecay !== 0) d = d.add(p, g.weightDecay);
    if (this.momentum !== 0) {
      let buf = state.get('momentum_buffer');
      if (!buf) {
        buf = d.clone().detach();
        state.set('momentum_buffer', keep(buf));
      } else {
        buf.mul_(this.momentum).add_(d, 1 - this.dampening);
      }
      d = this.nesterov ? d.add(buf, this.momentum) : buf;
    }
    p.add_(d, -g.lr);
  }
}

export interface AdamOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number; decoupled?: boolean }

/** Adam; decoupled: true gives AdamW (weight decay applied to the weights, not the gradient). */
export class Adam extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly decoupled: boolean;
  constructor(params: Tensor[] | ParamGroup[], o: AdamOptions = {}) {
    super(params, o.lr ?? 1e-3, o.weightDecay ?? 0);
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.decoupled = o.decoupled ?? false;
  }

  protected update(p: Tensor, grad: Tensor, g: Group, state: Map<string, Tensor>): void {
    const [b1, b2] = this.betas;
    let d = grad;
    if (g.weightDecay !== 0) {
      if (this.decoupled) p.mul_(1 - g.lr * g.weightDecay);
      else d = d.add(p, g.weightDecay);
    }
    let m = state.get('exp_avg');
    let v = state.get('exp_avg_sq');
    let step = state.get('step');
    if (!m || !v || !step) {
      m = keep(p.mul(0));
      v = keep(p.mul(0));
      step = keep(scalar(0));
      state.set('exp_avg', m).set('exp_avg_sq', v).set('step', step);
    }
    step.add_(1);
    const t = step.item();
    m.mul_(b1).add_(d, 1 - b1);
    v.mul_(b2).addcmul_(d, d, 1 - b2);
    const bc1 = 1 - b1 ** t;
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const denom = v.sqrt().div(bc2Sqrt).add_(this.eps);
    p.addcdiv_(m, denom, -g.lr / bc1);
  }
}


// ---- learning-rate schedules (stepped once per epoch, as in PyTorch) ---------------------------
export abstract class LRScheduler {
  epoch = 0;
  constructor(readonly optimizer: Optimizer) {}
  protected abstract factor(epoch: number, base: number): number;
  /** Advances one epoch and sets each group's lr. */
  step(): void { this.setEpoch(this.epoch + 1); }
  setEpoch(epoch: number): void {
    this.epoch = epoch;
    for (const g of this.optimizer.groups) g.lr = this.factor(epoch, g.initialLr);
  }
}

export class StepLR extends LRScheduler {
  constructor(opt: Optimizer, readonly stepSize: number, readonly gamma = 0.1) { super(opt); }
  protected factor(e: number, base: number): number { return base * this.gamma ** Math.floor(e / this.stepSize); }
}

export class MultiStepLR extends LRScheduler {
  constructor(opt: Optimizer, readonly milestones: number[], readonly gamma = 0.1) { super(opt); }
  protected factor(e: number, base: number): number { return base * this.gamma ** this.milestones.filter((m) => m <= e).length; }
}

export class CosineAnnealingLR extends LRScheduler {
  constructor(opt: Optimizer, readonly tMax: number, readonly etaMin = 0) { super(opt); }
  protected factor(e: number, base: number): number { return this.etaMin + ((base - this.etaMin) * (1 + Math.cos((Math.PI * e) / this.tMax))) / 2; }
}

export class ConstantLR extends LRScheduler {
  protected factor(_e: number, base: number): number { return base; }
}
