// ResNet-18 for CIFAR-sized inputs (3x3 stem, no max-pool), with the parameter names of the common
// PyTorch CIFAR ResNet code (kuangliu/pytorch-cifar): conv1, bn1, layer1.0.conv1, ...,
// layer2.0.shortcut.0 (conv), layer2.0.shortcut.1 (bn), linear.
import { MemoryFormat, nn, pipe, Tensor } from '../torch';
import { addResidual } from './torchvision-ops';

export interface ResNetOptions {
  inChannels?: number;
  numClasses?: number;
  /** base width (64 in the paper's ResNet-18); smaller widths keep CPU runs short */
  width?: number;
  /** activation layout; channels-last measured ~5% faster for training and inference here */
  channelsLast?: boolean;
}

/**
 * The input in the activation layout the options ask for: channels-last unless turned off. A 1-channel
 * batch gets channels-last strides (Tensor.channelsLast) only for a stem of 8 channels or more; below
 * that NCHW trains faster (fp32, 1 thread, per CPU-second, channels-last over NCHW: 0.62x at width 4,
 * 1.31x at width 8, 1.34x at 16, 1.12x at 32; docs/engine.md).
 */
export function inLayout(x: Tensor, o: { width?: number; channelsLast?: boolean }): Tensor {
  if (o.channelsLast === false) return x;
  return x.ndim === 4 && x.shape[1] === 1 && (o.width ?? 64) < 8 ? x.contiguous(MemoryFormat.channelsLast) : x.channelsLast();
}

export class BasicBlock extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly shortcut: nn.Sequential;
  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(planes, planes, 3, { stride: 1, padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(planes));
    const proj = stride !== 1 || inPlanes !== planes;
    this.shortcut = this.registerModule('shortcut', proj
      ? nn.Sequential.folding(new nn.Conv2d(inPlanes, planes, 1, { stride, bias: false }), new nn.BatchNorm2d(planes))
      : new nn.Sequential());
  }
  forward(x: Tensor): Tensor {
    const residual = pipe(x, (t) => nn.convBn(this.conv1, this.bn1, t), (t) => t.relu_(), (t) => nn.convBn(this.conv2, this.bn2, t));
    return addResidual(residual, x, this.shortcut.call(x)).relu_();
  }
}

export class ResNet18 extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly layers: nn.Sequential[];
  readonly linear: nn.Linear;
  constructor(readonly options: ResNetOptions = {}) {
    super();
    const w = options.width ?? 64;
    const inC = options.inChannels ?? 3;
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inC, w, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(w));
    let inPlanes = w;
    this.layers = [1, 2, 4, 8].map((mult, i) => {
      const planes = w * mult;
      const stage = new nn.Sequential(new BasicBlock(inPlanes, planes, i === 0 ? 1 : 2), new BasicBlock(planes, planes, 1));
      inPlanes = planes;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.linear = this.registerModule('linear', new nn.Linear(8 * w, options.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => inLayout(t, this.options), (t) => nn.convBn(this.conv1, this.bn1, t), (t) => t.relu_(),
      ...this.layers.map((stage) => (t: Tensor) => stage.call(t)),
      (t) => t.mean([2, 3]), (t) => this.linear.call(t));
  }
}
