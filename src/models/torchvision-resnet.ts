// torchvision's ResNets (torchvision.models.resnet18/34/50, wide_resnet50_2) with its module names, so its
// state dicts load as they are: conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0 (conv) / .1 (bn), fc.
// BasicBlock: two 3x3 convs; Bottleneck (expansion 4): 1x1 reduce, 3x3 (the stride, as torchvision's
// "v1.5"), 1x1 expand, its inner width planes * widthPerGroup / 64 (wide_resnet50_2: 128).
// Stems: 'imagenet' = torchvision's 7x7 stride-2 conv and 3x3 stride-2 max-pool; 'cifar' = the usual
// adaptation for small images (conv1 a 3x3 stride-1 conv, maxpool nn.Identity), which has the same
// parameter names (conv1.weight becomes [64, C, 3, 3]).
import { nn, noGrad, pipe, Tensor } from '../torch';
import { addResidual } from './torchvision-ops';
import { inLayout } from './resnet';

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

export interface TorchvisionResNetArch {
  block: 'basic' | 'bottleneck';
  /** blocks per stage, e.g. [3, 4, 6, 3] */
  layers: [number, number, number, number];
  /** inner width of a bottleneck per 64 planes (torchvision's width_per_group; 128 for wide_resnet50_2) */
  widthPerGroup?: number;
}

/** torchvision's ResNets by name. */
export const TORCHVISION_RESNETS = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  resnet101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  resnet152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
  wide_resnet50_2: { block: 'bottleneck', layers: [3, 4, 6, 3], widthPerGroup: 128 },
  wide_resnet101_2: { block: 'bottleneck', layers: [3, 4, 23, 3], widthPerGroup: 128 },
} as const satisfies Record<string, TorchvisionResNetArch>;

/** torchvision's init: kaiming_normal_(mode='fan_out', nonlinearity='relu') for convolutions. */
function kaimingFanOut(conv: nn.Conv2d): nn.Conv2d {
  const [out, , kh, kw] = conv.weight.shape;
  noGrad(() => conv.weight.normal_(0, Math.sqrt(2 / (out * kh * kw))));
  return conv;
}

const conv3x3 = (inP: number, outP: number, stride: number): nn.Conv2d => kaimingFanOut(new nn.Conv2d(inP, outP, 3, { stride, padding: 1, bias: false }));

/** The shortcut: identity, or downsample.0 (1x1 conv with the stride) and downsample.1 (bn). */
function shortcut(downsample: nn.Sequential | null, x: Tensor): Tensor {
  return downsample ? downsample.call(x) : x;
}

const downsampleFor = (inPlanes: number, outPlanes: number, stride: number): nn.Sequential | null => (stride !== 1 || inPlanes !== outPlanes
  ? nn.Sequential.folding(kaimingFanOut(new nn.Conv2d(inPlanes, outPlanes, 1, { stride, bias: false })), new nn.BatchNorm2d(outPlanes))
  : null);

export class TorchvisionBasicBlock extends nn.Module {
  static readonly expansion = 1;
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
    const ds = downsampleFor(inPlanes, planes, stride);
    this.downsample = ds && this.registerModule('downsample', ds);
  }
  forward(x: Tensor): Tensor {
    const residual = pipe(x, (t) => nn.convBn(this.conv1, this.bn1, t), (t) => t.relu_(), (t) => nn.convBn(this.conv2, this.bn2, t));
    return addResidual(residual, x, shortcut(this.downsample, x)).relu_();
  }
}

/** 1x1 -> 3x3 (stride) -> 1x1 x4, plus the shortcut; torchvision's Bottleneck. */
export class TorchvisionBottleneck extends nn.Module {
  static readonly expansion = 4;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly conv3: nn.Conv2d;
  readonly bn3: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;
  constructor(inPlanes: number, planes: number, stride: number, widthPerGroup = 64) {
    super();
    const width = Math.floor(planes * (widthPerGroup / 64));
    const out = planes * TorchvisionBottleneck.expansion;
    this.conv1 = this.registerModule('conv1', kaimingFanOut(new nn.Conv2d(inPlanes, width, 1, { bias: false })));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(width));
    this.conv2 = this.registerModule('conv2', conv3x3(width, width, stride));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(width));
    this.conv3 = this.registerModule('conv3', kaimingFanOut(new nn.Conv2d(width, out, 1, { bias: false })));
    this.bn3 = this.registerModule('bn3', new nn.BatchNorm2d(out));
    const ds = downsampleFor(inPlanes, out, stride);
    this.downsample = ds && this.registerModule('downsample', ds);
  }
  forward(x: Tensor): Tensor {
    const residual = pipe(x,
      (t) => nn.convBn(this.conv1, this.bn1, t), (t) => t.relu_(),
      (t) => nn.convBn(this.conv2, this.bn2, t), (t) => t.relu_(),
      (t) => nn.convBn(this.conv3, this.bn3, t));
    return addResidual(residual, x, shortcut(this.downsample, x)).relu_();
  }
}

/** A torchvision ResNet of the given architecture (stages of BasicBlocks or Bottlenecks). */
export class TorchvisionResNet extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly relu: nn.ReLU;
  readonly maxpool: nn.Module;
  readonly layers: nn.Sequential[];
  readonly avgpool: nn.AdaptiveAvgPool2d;
  readonly fc: nn.Linear;
  constructor(readonly arch: TorchvisionResNetArch, readonly options: TorchvisionResNetOptions = {}) {
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
    const bottleneck = arch.block === 'bottleneck';
    const expansion = bottleneck ? TorchvisionBottleneck.expansion : TorchvisionBasicBlock.expansion;
    const block = (inPlanes: number, planes: number, stride: number): nn.Module => (bottleneck
      ? new TorchvisionBottleneck(inPlanes, planes, stride, arch.widthPerGroup ?? 64)
      : new TorchvisionBasicBlock(inPlanes, planes, stride));
    let inPlanes = w;
    this.layers = [1, 2, 4, 8].map((mult, i) => {
      const planes = w * mult;
      const blocks = Array.from({ length: arch.layers[i] }, (_, b) => block(b === 0 ? inPlanes : planes * expansion, planes, b === 0 && i > 0 ? 2 : 1));
      inPlanes = planes * expansion;
      return this.registerModule(`layer${i + 1}`, new nn.Sequential(...blocks));
    });
    this.avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(1));
    this.fc = this.registerModule('fc', new nn.Linear(8 * w * expansion, options.numClasses ?? 1000));
  }
  forward(x: Tensor): Tensor {
    // every named module is called (as torchvision's forward), so a hook on any of them sees its output
    return pipe(x, (t) => inLayout(t, this.options), (t) => nn.convBn(this.conv1, this.bn1, t), (t) => this.relu.call(t), (t) => this.maxpool.call(t),
      ...this.layers.map((stage) => (t: Tensor) => stage.call(t)),
      (t) => this.avgpool.call(t), (t) => t.flatten(1), (t) => this.fc.call(t));
  }
}

/** torchvision.models.resnet18. */
export class TorchvisionResNet18 extends TorchvisionResNet {
  constructor(options: TorchvisionResNetOptions = {}) { super(TORCHVISION_RESNETS.resnet18, options); }
}
