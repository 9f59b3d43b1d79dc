// torchvision's MobileNetV3 (torchvision.models.mobilenet_v3_small / _large) with its module names:
// features.0 (3x3 stride-2 conv-bn-hardswish), features.1..n inverted residuals (block: [1x1 expand,]
// kxk depthwise, [squeeze-excitation,] 1x1 project), the last 1x1 conv to 6x, avgpool, classifier.0/.3
// (linear, hardswish, dropout, linear). Batch norm with eps 0.001, momentum 0.01.
import { nn, pipe, Tensor } from '../torch';
import { addResidual, convNormActivation, initTorchvisionCnn, makeDivisible, SqueezeExcitation } from './torchvision-ops';

/** input, kernel, expanded, output, squeeze-excitation, activation (hardswish or ReLU), stride */
type Bneck = [number, number, number, number, boolean, 'HS' | 'RE', number];

const LARGE: Bneck[] = [
  [16, 3, 16, 16, false, 'RE', 1], [16, 3, 64, 24, false, 'RE', 2], [24, 3, 72, 24, false, 'RE', 1],
  [24, 5, 72, 40, true, 'RE', 2], [40, 5, 120, 40, true, 'RE', 1], [40, 5, 120, 40, true, 'RE', 1],
  [40, 3, 240, 80, false, 'HS', 2], [80, 3, 200, 80, false, 'HS', 1], [80, 3, 184, 80, false, 'HS', 1],
  [80, 3, 184, 80, false, 'HS', 1], [80, 3, 480, 112, true, 'HS', 1], [112, 3, 672, 112, true, 'HS', 1],
  [112, 5, 672, 160, true, 'HS', 2], [160, 5, 960, 160, true, 'HS', 1], [160, 5, 960, 160, true, 'HS', 1],
];
const SMALL: Bneck[] = [
  [16, 3, 16, 16, true, 'RE', 2], [16, 3, 72, 24, false, 'RE', 2], [24, 3, 88, 24, false, 'RE', 1],
  [24, 5, 96, 40, true, 'HS', 2], [40, 5, 240, 40, true, 'HS', 1], [40, 5, 240, 40, true, 'HS', 1],
  [40, 5, 120, 48, true, 'HS', 1], [48, 5, 144, 48, true, 'HS', 1], [48, 5, 288, 96, true, 'HS', 2],
  [96, 5, 576, 96, true, 'HS', 1], [96, 5, 576, 96, true, 'HS', 1],
];
export const MOBILENET_V3 = { mobilenet_v3_large: { setting: LARGE, lastChannel: 1280 }, mobilenet_v3_small: { setting: SMALL, lastChannel: 1024 } };

const bn = (c: number) => new nn.BatchNorm2d(c, 0.001, 0.01);
const hardswish = () => new nn.Hardswish();
const relu = () => new nn.ReLU();

export class InvertedResidualV3 extends nn.Module {
  readonly block: nn.Sequential;
  readonly useResidual: boolean;
  constructor([inC, k, exp, outC, se, act, stride]: Bneck) {
    super();
    this.useResidual = stride === 1 && inC === outC;
    const activation = act === 'HS' ? hardswish : relu;
    this.block = this.registerModule('block', new nn.Sequential(
      ...(exp !== inC ? [convNormActivation(inC, exp, { kernel: 1, norm: bn, activation })] : []),
      convNormActivation(exp, exp, { kernel: k, stride, groups: exp, norm: bn, activation }),
      ...(se ? [new SqueezeExcitation(exp, makeDivisible(Math.floor(exp / 4), 8), relu, () => new nn.Hardsigmoid())] : []),
      convNormActivation(exp, outC, { kernel: 1, norm: bn, activation: null })));
  }
  forward(x: Tensor): Tensor {
    return this.useResidual ? addResidual(this.block.call(x), x) : this.block.call(x);
  }
}

export interface MobileNetV3Options { inChannels?: number; numClasses?: number; dropout?: number }

export class MobileNetV3 extends nn.Module {
  readonly features: nn.Sequential;
  readonly avgpool: nn.AdaptiveAvgPool2d;
  readonly classifier: nn.Sequential;
  constructor(readonly arch: keyof typeof MOBILENET_V3, o: MobileNetV3Options = {}) {
    super();
    const { setting, lastChannel } = MOBILENET_V3[arch];
    const lastConv = 6 * setting[setting.length - 1][3];
    this.features = this.registerModule('features', new nn.Sequential(
      convNormActivation(o.inChannels ?? 3, setting[0][0], { stride: 2, norm: bn, activation: hardswish }),
      ...setting.map((b) => new InvertedResidualV3(b)),
      convNormActivation(setting[setting.length - 1][3], lastConv, { kernel: 1, norm: bn, activation: hardswish })));
    this.avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(1));
    this.classifier = this.registerModule('classifier', new nn.Sequential(
      new nn.Linear(lastConv, lastChannel), new nn.Hardswish(), new nn.Dropout(o.dropout ?? 0.2), new nn.Linear(lastChannel, o.numClasses ?? 1000)));
    initTorchvisionCnn(this);
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.features.call(t), (t) => this.avgpool.call(t), (t) => t.flatten(1), (t) => this.classifier.call(t));
  }
}
