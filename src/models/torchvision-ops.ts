// The building blocks torchvision's classifiers share (torchvision.ops.misc, torchvision.models._utils),
// with torchvision's module names: a Conv2dNormActivation is a Sequential of conv '0', norm '1', activation '2'.
import { F, nn, noGrad, pipe, scope, Tensor } from '../torch';

/**
 * branch + shortcut (by default the block's input x), freeing the branch and the shortcut unless they
 * are x. Blocks free their intermediates this way rather than in a scope(): a forward hook inside the
 * branch may keep tensors it made (NAD's attention maps), and a scope around the branch would free them.
 */
export function addResidual(branch: Tensor, x: Tensor, shortcut: Tensor = x): Tensor {
  const out = branch.add(shortcut);
  if (branch !== x) branch.dispose();
  if (shortcut !== x && shortcut !== branch) shortcut.dispose();
  return out;
}

/** torchvision's _make_divisible: channels rounded to a multiple of divisor, never down by more than 10%. */
export function makeDivisible(v: number, divisor = 8, minValue = divisor): number {
  const n = Math.max(minValue, Math.floor(Math.floor(v + divisor / 2) / divisor) * divisor);
  return n < 0.9 * v ? n + divisor : n;
}

export interface ConvNormActivationOptions {
  kernel?: number;
  stride?: number;
  /** default (kernel - 1) / 2 * dilation */
  padding?: number;
  groups?: number;
  dilation?: number;
  /** the norm layer for the output channels; null = none. Default BatchNorm2d. */
  norm?: ((channels: number) => nn.Module) | null;
  /** the activation; null = none. Default ReLU. */
  activation?: (() => nn.Module) | null;
  /** default: a bias only without a norm layer */
  bias?: boolean;
}

/** torchvision.ops.Conv2dNormActivation: conv, norm, activation as a Sequential ('0', '1', '2'). */
export function convNormActivation(inC: number, outC: number, o: ConvNormActivationOptions = {}): nn.Sequential {
  const kernel = o.kernel ?? 3, dilation = o.dilation ?? 1;
  const norm = o.norm === undefined ? (c: number) => new nn.BatchNorm2d(c) : o.norm;
  const activation = o.activation === undefined ? () => new nn.ReLU() : o.activation;
  const conv = new nn.Conv2d(inC, outC, kernel, {
    stride: o.stride ?? 1, padding: o.padding ?? Math.floor((kernel - 1) / 2) * dilation, dilation, groups: o.groups ?? 1, bias: o.bias ?? norm === null,
  });
  return new nn.Sequential(...[conv, norm ? norm(outC) : null, activation ? activation() : null].filter((m): m is nn.Module => m !== null));
}

/** torchvision.ops.SqueezeExcitation: x * sigma(fc2(delta(fc1(avgpool(x))))). */
export class SqueezeExcitation extends nn.Module {
  readonly avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(1));
  readonly fc1: nn.Conv2d;
  readonly fc2: nn.Conv2d;
  readonly activation: nn.Module;
  readonly scaleActivation: nn.Module;
  constructor(inC: number, squeezeC: number, activation: () => nn.Module = () => new nn.ReLU(), scaleActivation: () => nn.Module = () => new nn.Sigmoid()) {
    super();
    this.fc1 = this.registerModule('fc1', new nn.Conv2d(inC, squeezeC, 1));
    this.fc2 = this.registerModule('fc2', new nn.Conv2d(squeezeC, inC, 1));
    this.activation = this.registerModule('activation', activation());
    this.scaleActivation = this.registerModule('scale_activation', scaleActivation());
  }
  forward(x: Tensor): Tensor {
    return pipe(x, ...[this.avgpool, this.fc1, this.activation, this.fc2, this.scaleActivation].map((m) => (t: Tensor) => m.call(t)), (scale) => scale.mul(x));
  }
}

/** torchvision.ops.StochasticDepth: drops residual branches per sample ('row') in training; identity in eval. */
export class StochasticDepth extends nn.Module {
  constructor(readonly p: number, readonly mode: 'row' | 'batch' = 'row') { super(); }
  forward(x: Tensor): Tensor { return F.stochasticDepth(x, this.p, this.mode, this.training); }
}

/** torchvision.ops.misc.Permute. */
export class Permute extends nn.Module {
  constructor(readonly dims: number[]) { super(); }
  forward(x: Tensor): Tensor { return x.permute(this.dims); }
}

/** torchvision's LayerNorm2d: layer norm over the channels of NCHW maps. */
export class LayerNorm2d extends nn.LayerNorm {
  override forward(x: Tensor): Tensor {
    return scope(() => F.layerNorm(x.permute(0, 2, 3, 1), this.normalizedShape, this.weight, this.bias, this.eps).permute(0, 3, 1, 2));
  }
}

/** torchvision.transforms.Resize((h, w)) on tensors: bilinear, align_corners false, no antialias (0.14's default). */
export class Resize extends nn.Module {
  constructor(readonly size: [number, number]) { super(); }
  forward(x: Tensor): Tensor {
    return x.shape[2] === this.size[0] && x.shape[3] === this.size[1] ? x : F.interpolateBilinear(x, this.size);
  }
}

/** torchvision's usual conv init: kaiming_normal_(mode='fan_out'), zero bias. */
export function kaimingNormalFanOut(conv: nn.Conv2d): void {
  const [out, inG, kh, kw] = conv.weight.shape;
  void inG;
  noGrad(() => {
    conv.weight.normal_(0, Math.sqrt(2 / (out * kh * kw)));
    conv.bias?.zero_();
  });
}

/** Initialises every Conv2d (kaiming fan-out), BatchNorm2d (1, 0) and Linear (normal(0, linearStd), zero bias) as torchvision's CNNs do. */
export function initTorchvisionCnn(model: nn.Module, linearStd = 0.01): void {
  noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof nn.Conv2d) kaimingNormalFanOut(m);
      else if (m instanceof nn.BatchNorm2d) { m.weight.fill_(1); m.bias.zero_(); }
      else if (m instanceof nn.Linear) { m.weight.normal_(0, linearStd); m.bias?.zero_(); }
    }
  });
}

/** The error for an input too small for a model's down-sampling (torchvision fails there too). */
export function assertMinSize(model: string, imageSize: number, min: number, why: string): void {
  if (imageSize < min) throw new Error(`${model} needs images of at least ${min}x${min} (${why}); these are ${imageSize}x${imageSize}: resize them as the model was trained`);
}
