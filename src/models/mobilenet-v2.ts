// torchvision's MobileNetV2 (torchvision.models.mobilenet_v2) with its module names: features.0 (3x3 stride-2
// conv-bn-relu6), features.1..17 inverted residuals (conv: [1x1 expand,] 3x3 depthwise, 1x1 project + bn),
// features.18 (1x1 to 1280), classifier.1 (dropout, then the linear layer).
import { nn, pipe, Tensor } from '../torch';
import { addResidual, convNormActivation, initTorchvisionCnn, makeDivisible } from './torchvision-ops';

/** expand ratio t, output channels c, repeats n, first stride s: the paper's table 2 */
const SETTING: [number, number, number, number][] = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];

const relu6 = () => new nn.ReLU6();

export class InvertedResidual extends nn.Module {
  readonly conv: nn.Sequential;
  readonly useResidual: boolean;
  constructor(inC: number, outC: number, stride: number, expandRatio: number) {
    super();
    const hidden = Math.round(inC * expandRatio);
    this.useResidual = stride === 1 && inC === outC;
    this.conv = this.registerModule('conv', new nn.Sequential(
      ...(expandRatio !== 1 ? [convNormActivation(inC, hidden, { kernel: 1, activation: relu6 })] : []),
      convNormActivation(hidden, hidden, { stride, groups: hidden, activation: relu6 }),
      new nn.Conv2d(hidden, outC, 1, { bias: false }),
      new nn.BatchNorm2d(outC)));
  }
  forward(x: Tensor): Tensor {
    return this.useResidual ? addResidual(this.conv.call(x), x) : this.conv.call(x);
  }
}

export interface MobileNetV2Options { inChannels?: number; numClasses?: number; widthMult?: number; dropout?: number }

export class MobileNetV2 extends nn.Module {
  readonly features: nn.Sequential;
  readonly classifier: nn.Sequential;
  constructor(o: MobileNetV2Options = {}) {
    super();
    const width = o.widthMult ?? 1;
    let c = makeDivisible(32 * width);
    const lastChannel = makeDivisible(1280 * Math.max(1, width));
    const layers: nn.Module[] = [convNormActivation(o.inChannels ?? 3, c, { stride: 2, activation: relu6 })];
    for (const [t, ch, n, s] of SETTING) {
      const out = makeDivisible(ch * width);
      for (let i = 0; i < n; i++) { layers.push(new InvertedResidual(c, out, i === 0 ? s : 1, t)); c = out; }
    }
    layers.push(convNormActivation(c, lastChannel, { kernel: 1, activation: relu6 }));
    this.features = this.registerModule('features', new nn.Sequential(...layers));
    this.classifier = this.registerModule('classifier', new nn.Sequential(new nn.Dropout(o.dropout ?? 0.2), new nn.Linear(lastChannel, o.numClasses ?? 1000)));
    initTorchvisionCnn(this);
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.features.call(t), (t) => t.mean([2, 3]), (t) => this.classifier.call(t));
  }
}
