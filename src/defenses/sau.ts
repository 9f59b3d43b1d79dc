// SAU, Shared Adversarial Unlearning (Wei et al., NeurIPS 2023): per batch, PGD finds perturbations
// (L_inf, in pixel space) that fool both the frozen backdoored model and the model being purified into
// the same wrong class (shared adversarial examples, a proxy for the trigger); the model is then
// trained on clean cross-entropy plus a loss that stops it predicting the reference's adversarial class
// on them. As BackdoorBench's defense/sau.py (Shared_PGD and the mitigation loop, config/defense/sau).
// The reference model is a clone of the backdoored model (Module.clone), frozen, so a PGD step is one
// forward of each model and one backward through both.
import { z } from 'zod';
import { cat, F, nn, noGrad, optim, scope, Tensor, tensor } from '../torch/compute';
import { defineDefense } from './method';
import { accuracyOn, DefenseData, DefenseHooks, fineTune, numbers } from './common';

export const SAU_SCHEMA = z.object({
  /** unlearning rounds over the clean training data (BackdoorBench's n_rounds) */
  epochs: z.number().int().min(1),
  batchSize: z.number().int().min(1),
  /** Adam, constant rate (BackdoorBench builds a cosine scheduler for SAU but never steps it) */
  lr: z.number().positive(),
  /** L_inf bound of the perturbation, in pixel units of [0, 1] */
  eps: z.number().min(0),
  pgdSteps: z.number().int().min(1),
  pgdStepSize: z.number().min(0),
  /** PGD objective: beta1 * L_adv + beta2 * L_share */
  beta1: z.number().min(0),
  beta2: z.number().min(0),
  /** unlearning loss: lambdaClean * CE(x) + lambdaAdv * CE(x + delta) + lambdaShared * L_shared */
  lambdaClean: z.number().min(0),
  lambdaAdv: z.number().min(0),
  lambdaShared: z.number().min(0),
  /** BN in train mode while unlearning (BackdoorBench's default: eval mode, statistics frozen) */
  trainMode: z.boolean(),
  seed: z.number().int().min(0),
}).strict();
export type SauOptions = z.infer<typeof SAU_SCHEMA>;

// BackdoorBench config/defense/sau/config.yaml
export const SAU_DEFAULTS: SauOptions = {
  epochs: 100, batchSize: 256, lr: 1e-4, eps: 0.2, pgdSteps: 5, pgdStepSize: 0.2, beta1: 0.01, beta2: 1,
  lambdaClean: 1, lambdaAdv: 0, lambdaShared: 1, trainMode: false, seed: 1,
};

export interface SauRound {
  /** mean final PGD objective (lower = more shared and more adversarial) */
  pgdLoss: number;
  /** mean shared-adversarial loss and clean cross-entropy in the unlearning step */
  sharedLoss: number;
  cleanLoss: number;
  /** fraction of the training images whose perturbed copy fools both models into the same wrong class */
  sharedFraction: number;
}

export interface SauReport {
  method: 'sau';
  options: SauOptions;
  /** what each unlearning round saw */
  rounds: SauRound[];
  valAccBefore: number;
  valAccAfter: number;
  seconds: number;
}

const argmax = (logits: Tensor): Tensor => logits.argmax(1);

const ROUND_KEYS: (keyof SauRound)[] = ['pgdLoss', 'sharedLoss', 'cleanLoss', 'sharedFraction'];

/** The rounds saved with a checkpoint, checked. */
function roundsOf(v: unknown): SauRound[] {
  if (!Array.isArray(v)) throw new Error("'rounds' is not a list");
  return v.map((r: Record<string, unknown>, i) => {
    const [pgdLoss, sharedLoss, cleanLoss, sharedFraction] = numbers(ROUND_KEYS.map((k) => r?.[k]), `rounds[${i}]`);
    return { pgdLoss, sharedLoss, cleanLoss, sharedFraction };
  });
}

/**
 * Shared_PGD's objective for one step: beta1 * L_adv + beta2 * L_share, where L_adv is minus half the
 * summed cross-entropy of the samples each model still gets right (unchanged prediction), and L_share
 * the summed Jensen-Shannon divergence of the two models' predictions on the samples not yet shared
 * adversarial, both over the batch size.
 */
export function pgdObjective(zm: Tensor, zr: Tensor, y: Tensor, oriM: Tensor, oriR: Tensor, beta1: number, beta2: number): { loss: Tensor; shared: Tensor } {
  return scope(() => {
    const b = y.size(0);
    const pm = argmax(zm), pr = argmax(zr);
    const fooledM = pm.ne(oriM), fooledR = pr.ne(oriR);
    const shared = fooledM.logicalAnd(fooledR).logicalAnd(pm.eq(pr));
    const ce = (z: Tensor): Tensor => F.crossEntropy(z, y, { reduction: 'none' });
    const adv = ce(zm).mul(fooledM.logicalNot().float()).sum().add(ce(zr).mul(fooledR.logicalNot().float()).sum()).div(-2 * b);
    const p = F.softmax(zm, 1).clamp(1e-8), q = F.softmax(zr, 1).clamp(1e-8);
    const m = p.add(q).mul(0.5);
    const js = p.mul(p.log()).add(q.mul(q.log())).mul(0.5).sub(p.mul(m.log()).add(q.mul(m.log())).mul(0.5));
    const share = js.sum(1).mul(shared.logicalNot().float()).sum().div(b);
    return { loss: adv.mul(beta1).add(share.mul(beta2)), shared };
  });
}

/**
 * The shared adversarial perturbation for a normalised batch x (labels y): starts at +eps everywhere,
 * then signed-gradient descent on pgdObjective, projected to [-eps, eps], stopping early once every
 * sample is shared adversarial. `ref` is the frozen backdoored model (a clone whose parameters do not
 * require grad, as sau() makes it); the model's parameters get no gradient. Returns delta in pixel units.
 */
export function sharedPgd(model: nn.Module, ref: nn.Module, x: Tensor, y: Tensor, std: Tensor, o: SauOptions): { delta: Tensor; loss: number } {
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(false);
  try {
    const oriM = noGrad(() => argmax(model.call(x)));
    const oriR = noGrad(() => argmax(ref.call(x)));
    const delta = noGrad(() => x.mul(0).add(o.eps)).requiresGrad_(true);
    let loss = 0;
    for (let k = 0; k < o.pgdSteps; k++) {
      const allShared = scope(() => {
        const input = (): Tensor => x.add(delta.div(std));
        const r = pgdObjective(model.call(input()), ref.call(input()), y, oriM, oriR, o.beta1, o.beta2);
        r.loss.backward();
        loss = r.loss.item();
        noGrad(() => { delta.sub_(delta.grad!.sign().mul(o.pgdStepSize)).clamp_(-o.eps, o.eps); });
        const g = delta.grad!;
        delta.grad = null;
        g.dispose();
        return r.shared.all().item() === 1;
      });
      if (allShared) break;
    }
    oriM.dispose();
    oriR.dispose();
    return { delta: noGrad(() => delta.detach().clone()), loss };
  } finally {
    for (const p of params) p.requiresGrad_(true);
  }
}

/**
 * SAU's unlearning loss: lambdaClean * CE(clean) + lambdaAdv * CE(perturbed) + lambdaShared * L_shared,
 * where L_shared, on the samples whose perturbed copy fools the reference (wrong and changed label),
 * is -(log(1e-6 + min(1 - p, 0.999)) + log(1 + 1e-6 - max(p, 0.001))) / 2 summed over the batch size,
 * p being the purified model's probability of the reference's adversarial class.
 */
export function unlearnLoss(logits: Tensor, perLogits: Tensor, perRefLabel: Tensor, oriRefLabel: Tensor, y: Tensor, o: Pick<SauOptions, 'lambdaClean' | 'lambdaAdv' | 'lambdaShared'>): { loss: Tensor; clean: Tensor; shared: Tensor } {
  return scope(() => {
    const b = y.size(0);
    const poison = perRefLabel.ne(y).logicalAnd(perRefLabel.ne(oriRefLabel)).float();
    const pos = F.softmax(perLogits, 1).gather(1, perRefLabel.unsqueeze(1)).squeeze(1);
    const neg = pos.neg().add(1);
    const terms = neg.clamp(null, 0.999).add(1e-6).log().add(pos.clamp(0.001).neg().add(1 + 1e-6).log());
    const shared = terms.mul(poison).sum().div(-2 * b);
    const clean = F.crossEntropy(logits, y);
    let loss = clean.mul(o.lambdaClean).add(shared.mul(o.lambdaShared));
    if (o.lambdaAdv) loss = loss.add(F.crossEntropy(perLogits, y).mul(o.lambdaAdv));
    return { loss, clean, shared };
  });
}

export function sau(model: nn.Module, data: DefenseData, o: SauOptions, h: DefenseHooks = {}): SauReport {
  const t0 = performance.now();
  const valAccBefore = accuracyOn(model, data.val, data.norm);
  const ref = model.clone().eval();
  for (const p of ref.parameters()) p.requiresGrad_(false);
  const c = data.norm.std.length;
  const std = tensor(data.norm.std, [1, c, 1, 1]);
  const rounds: SauRound[] = [];
  let acc = { pgdLoss: 0, sharedLoss: 0, cleanLoss: 0, shared: 0, n: 0 };
  try {
    fineTune(model, data.train, data.norm, { epochs: o.epochs, lr: o.lr, batchSize: o.batchSize, momentum: 0, weightDecay: 0, schedule: 'constant', seed: o.seed }, {
      ...h, stage: 'sau', resumable: true,
      epochState: { save: () => rounds, load: (v) => { rounds.push(...roundsOf(v)); } },
      optimizer: (params) => new optim.Adam(params, { lr: o.lr, betas: [0.9, 0.999], weightDecay: 0 }),
      gradients: (x, y) => {
        model.eval();
        const { delta, loss: pgdLoss } = sharedPgd(model, ref, x, y, std, o);
        const perX = scope(() => x.add(delta.div(std)));
        const [oriR, perR] = noGrad(() => [argmax(ref.call(x)), argmax(ref.call(perX))]);
        if (o.trainMode) model.train();
        const z = model.call(cat([x, perX], 0));
        model.eval();
        const b = y.size(0);
        const r = unlearnLoss(z.narrow(0, 0, b), z.narrow(0, b, b), perR, oriR, y, o);
        r.loss.backward();
        const sharedNow = noGrad(() => {
          const pm = argmax(z.narrow(0, b, b));
          return pm.ne(y).logicalAnd(perR.ne(y)).logicalAnd(perR.ne(oriR)).logicalAnd(pm.eq(perR)).sum().item();
        });
        acc = { pgdLoss: acc.pgdLoss + pgdLoss * b, sharedLoss: acc.sharedLoss + r.shared.item() * b, cleanLoss: acc.cleanLoss + r.clean.item() * b, shared: acc.shared + sharedNow, n: acc.n + b };
        delta.dispose();
      },
      afterStep: (s) => {
        if (s.batch !== s.batches - 1) return;
        rounds.push({ pgdLoss: acc.pgdLoss / acc.n, sharedLoss: acc.sharedLoss / acc.n, cleanLoss: acc.cleanLoss / acc.n, sharedFraction: acc.shared / acc.n });
        const e = rounds[rounds.length - 1];
        h.log?.(`sau round ${s.epoch + 1}: PGD loss ${e.pgdLoss.toFixed(4)}, shared loss ${e.sharedLoss.toFixed(4)}, clean CE ${e.cleanLoss.toFixed(4)}, shared adversarial ${(100 * e.sharedFraction).toFixed(1)}%`);
        acc = { pgdLoss: 0, sharedLoss: 0, cleanLoss: 0, shared: 0, n: 0 };
      },
    });
  } finally {
    ref.dispose();
    std.dispose();
  }
  return { method: 'sau', options: o, rounds, valAccBefore, valAccAfter: accuracyOn(model, data.val, data.norm), seconds: (performance.now() - t0) / 1000 };
}

export const SAU = defineDefense({
  name: 'sau', summary: 'SAU: unlearn shared adversarial examples of the backdoored and the purified model, with clean cross-entropy',
  // 'cpu-short': NOT the published setting, 10 of its 100 rounds for CPU runs
  schema: SAU_SCHEMA, presets: { default: { ...SAU_DEFAULTS }, 'cpu-short': { ...SAU_DEFAULTS, epochs: 10 } }, run: sau,
});
