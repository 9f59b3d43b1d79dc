// torchvision's EfficientNet-B0..B7 (torchvision.models.efficientnet_b*) with its module names: features.0
// (3x3 stride-2 conv-bn-SiLU), features.1..7 stages of MBConv blocks (block: [1x1 expand,] kxk depthwise,
// squeeze-excitation (SiLU, sigmoid), 1x1 project; stochastic depth on the residual), features.8 (1x1 to
// 4x), avgpool, classifier.1 (dropout, then the linear layer). Stochastic depth grows linearly to 0.2
// over the blocks; it is the identity in eval and draws from the engine's generator in training.
import { nn, pipe, Tensor } from '../torch';
import { addResidual, convNormActivation, initTorchvisionCnn, makeDivisible, SqueezeExcitation, StochasticDepth } from './torchvision-ops';

/** expand ratio, kernel, first stride, input channels, output channels, blocks: B0's stages */
const STAGES: [number, number, number, number, number, number][] = [
  [1, 3, 1, 32, 16, 1], [6, 3, 2, 16, 24, 2], [6, 5, 2, 24, 40, 2], [6, 3, 2, 40, 80, 3],
  [6, 5, 1, 80, 112, 3], [6, 5, 2, 112, 192, 4], [6, 3, 1, 192, 320, 1],
];

/** width and depth multipliers, classifier dropout, and whether batch norm uses eps 1e-3 / momentum 0.01 (B5-B7) */
export const EFFICIENTNETS = {
  efficientnet_b0: [1.0, 1.0, 0.2, false], efficientnet_b1: [1.0, 1.1, 0.2, false], efficientnet_b2: [1.1, 1.2, 0.3, false],
  efficientnet_b3: [1.2, 1.4, 0.3, false], efficientnet_b4: [1.4, 1.8, 0.4, false], efficientnet_b5: [1.6, 2.2, 0.4, true],
  efficientnet_b6: [1.8, 2.6, 0.5, true], efficientnet_b7: [2.0, 3.1, 0.5, true],
} as const;
export type EfficientNetName = keyof typeof EFFICIENTNETS;

type Norm = (c: number) => nn.Module;
const silu = () => new nn.SiLU();

export class MBConv extends nn.Module {
  readonly block: nn.Sequential;
  readonly stochasticDepth: StochasticDepth;
  readonly useResidual: boolean;
  constructor(inC: number, outC: number, expandRatio: number, kernel: number, stride: number, sdProb: number, norm: Norm) {
    super();
    this.useResidual = stride === 1 && inC === outC;
    const expanded = makeDivisible(inC * expandRatio);
    this.block = this.registerModule('block', new nn.Sequential(
      ...(expanded !== inC ? [convNormActivation(inC, expanded, { kernel: 1, norm, activation: silu })] : []),
      convNormActivation(expanded, expanded, { kernel, stride, groups: expanded, norm, activation: silu }),
      new SqueezeExcitation(expanded, Math.max(1, Math.floor(inC / 4)), silu),
      convNormActivation(expanded, outC, { kernel: 1, norm, activation: null })));
    this.stochasticDepth = this.registerModule('stochastic_depth', new StochasticDepth(sdProb, 'row'));
  }
  forward(x: Tensor): Tensor {
    if (!this.useResidual) return this.block.call(x);
    return addResidual(pipe(x, (t) => this.block.call(t), (t) => this.stochasticDepth.call(t)), x);
  }
}

export interface EfficientNetOptions { inChannels?: number; numClasses?: number; stochasticDepthProb?: number; dropout?: number }

export class EfficientNet extends nn.Module {
  readonly features: nn.Sequential;
  readonly avgpool: nn.AdaptiveAvgPool2d;
  readonly classifier: nn.Sequential;
  constructor(readonly arch: EfficientNetName, o: EfficientNetOptions = {}) {
    super();
    const [width, depth, dropout, bigNorm] = EFFICIENTNETS[arch];
    const norm: Norm = bigNorm ? (c) => new nn.BatchNorm2d(c, 0.001, 0.01) : (c) => new nn.BatchNorm2d(c);
    const ch = (c: number): number => makeDivisible(c * width);
    const stages = STAGES.map(([e, k, s, i, out, n]) => ({ e, k, s, i: ch(i), out: ch(out), n: Math.ceil(n * depth) }));
    const total = stages.reduce((a, st) => a + st.n, 0);
    let id = 0;
    const sd = o.stochasticDepthProb ?? 0.2;
    const lastConv = 4 * stages[stages.length - 1].out;
    this.features = this.registerModule('features', new nn.Sequential(
      convNormActivation(o.inChannels ?? 3, stages[0].i, { stride: 2, norm, activation: silu }),
      ...stages.map((st) => new nn.Sequential(...Array.from({ length: st.n }, (_, b) =>
        new MBConv(b === 0 ? st.i : st.out, st.out, st.e, st.k, b === 0 ? st.s : 1, (sd * id++) / total, norm)))),
      convNormActivation(stages[stages.length - 1].out, lastConv, { kernel: 1, norm, activation: silu })));
    this.avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(1));
    this.classifier = this.registerModule('classifier', new nn.Sequential(new nn.Dropout(o.dropout ?? dropout), new nn.Linear(lastConv, o.numClasses ?? 1000)));
    initTorchvisionCnn(this, 1 / Math.sqrt(o.numClasses ?? 1000) / Math.sqrt(3)); // torchvision: U(-1/sqrt(out), 1/sqrt(out)); here its std
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.features.call(t), (t) => this.avgpool.call(t), (t) => t.flatten(1), (t) => this.classifier.call(t));
  }
}
