// torchvision's ResNet-18 (torchvision.models.resnet18) with its module names, so its state dicts load
// as they are: conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0 (conv) / .1 (bn), fc.
// Stems: 'imagenet' = torchvision's 7x7 stride-2 conv and 3x3 stride-2 max-pool; 'cifar' = the usual
// adaptation for small images (conv1 a 3x3 stride-1 conv, maxpool nn.Identity), which has the same
// parameter names (conv1.weight becomes [64, C, 3, 3]).
import { MemoryFormat, nn, noGrad, pipe, Tensor } from '../torch';

export type ResNetStem = 'imagenet' | 'cifar';

export interface TorchvisionResNetOptions {
  inChannels?: number;
  numClasses?: number;
  stem?: ResNetStem;
  /** base width, 64 in torchvision; smaller widths keep CPU runs short (state dicts then differ in shape) */
  width?: number;
  /** activation layout; channels-last by default, as ResNet18 here */
  channelsLast?: boolean;
}

/** torchvision's init: kaiming_normal_(mode='fan_out', nonlinearity='relu') for convolutions. */
function kaimingFanOut(conv: nn.Conv2d): nn.Conv2d {
  const [out, , kh, kw] = conv.weight.shape;
  noGrad(() => conv.weight.normal_(0, Math.sqrt(2 / (out * kh * kw))));
  return conv;
}

const conv3x3 = (inP: number, outP: number, stride: number): nn.Conv2d => kaimingFanOut(new nn.Conv2d(inP, outP, 3, { stride, padding: 1, bias: false }));

export class TorchvisionBasicBlock extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;
  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', conv3x3(inPlanes, planes, stride));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes, 1));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(planes));
    this.downsample = stride !== 1 || inPlanes !== planes
      ? this.registerModule('downsample', new nn.Sequential(kaimingFanOut(new nn.Conv2d(inPlanes, planes, 1, { stride, bias: false })), new nn.BatchNorm2d(planes)))
      : null;
  }
  forward(x: Tensor): Tensor {
    const residual = pipe(x, (t) => nn.convBn(this.conv1, this.bn1, t), (t) => t.relu_(), (t) => nn.convBn(this.conv2, this.bn2, t));
    let s = x;
    if (this.downsample) {
      const [dc, db] = this.downsample.layers as [nn.Conv2d, nn.BatchNorm2d];
      s = this.downsample.intercepted ? this.downsample.call(x) : nn.convBn(dc, db, x);
    }
    const out = pipe(residual, (t) => t.add(s), (t) => t.relu_());
    residual.dispose();
    if (s !== x) s.dispose();
    return out;
  }
}

export class TorchvisionResNet18 extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly relu: nn.ReLU;
  readonly maxpool: nn.Module;
  readonly layers: nn.Sequential[];
  readonly avgpool: nn.AdaptiveAvgPool2d;
  readonly fc: nn.Linear;
  constructor(readonly options: TorchvisionResNetOptions = {}) {
    super();
    const w = options.width ?? 64;
    const inC = options.inChannels ?? 3;
    const cifar = (options.stem ?? 'imagenet') === 'cifar';
    this.conv1 = this.registerModule('conv1', kaimingFanOut(cifar
      ? new nn.Conv2d(inC, w, 3, { stride: 1, padding: 1, bias: false })
      : new nn.Conv2d(inC, w, 7, { stride: 2, padding: 3, bias: false })));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(w));
    this.relu = this.registerModule('relu', new nn.ReLU());
    this.maxpool = this.registerModule('maxpool', cifar ? new nn.Identity() : new nn.MaxPool2d(3, 2, 1));
    let inPlanes = w;
    this.layers = [1, 2, 4, 8].map((mult, i) => {
      const planes = w * mult;
      const stage = new nn.Sequential(new TorchvisionBasicBlock(inPlanes, planes, i === 0 ? 1 : 2), new TorchvisionBasicBlock(planes, planes, 1));
      inPlanes = planes;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(1));
    this.fc = this.registerModule('fc', new nn.Linear(8 * w, options.numClasses ?? 1000));
  }
  forward(x: Tensor): Tensor {
    const input = this.options.channelsLast === false ? x : x.contiguous(MemoryFormat.channelsLast);
    // every named module is called (as torchvision's forward), so a hook on any of them sees its output
    return pipe(input, (t) => nn.convBn(this.conv1, this.bn1, t), (t) => this.relu.call(t), (t) => this.maxpool.call(t),
      ...this.layers.map((stage) => (t: Tensor) => stage.call(t)),
      (t) => this.avgpool.call(t), (t) => t.flatten(1), (t) => this.fc.call(t));
  }
}
