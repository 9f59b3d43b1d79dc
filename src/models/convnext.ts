// torchvision's ConvNeXt (torchvision.models.convnext_tiny/small/base/large) with its module names:
// features.0 (4x4 stride-4 conv, LayerNorm2d), then stages of CNBlocks (layer_scale; block: 7x7 depthwise
// conv, permute to NHWC, LayerNorm, linear to 4x, GELU, linear back, permute; stochastic depth on the
// residual) with downsampling between them (LayerNorm2d, 2x2 stride-2 conv), avgpool, classifier
// (LayerNorm2d, flatten, linear). Inputs of at least 32x32.
import { full, nn, noGrad, pipe, Tensor } from '../torch';
import { addResidual, assertMinSize, convNormActivation, LayerNorm2d, Permute, StochasticDepth } from './torchvision-ops';

/** channels and blocks per stage, and the final stochastic-depth probability */
export const CONVNEXTS = {
  convnext_tiny: { dims: [96, 192, 384, 768], depths: [3, 3, 9, 3], sd: 0.1 },
  convnext_small: { dims: [96, 192, 384, 768], depths: [3, 3, 27, 3], sd: 0.4 },
  convnext_base: { dims: [128, 256, 512, 1024], depths: [3, 3, 27, 3], sd: 0.5 },
  convnext_large: { dims: [192, 384, 768, 1536], depths: [3, 3, 27, 3], sd: 0.5 },
} as const;
export type ConvNeXtName = keyof typeof CONVNEXTS;

const layerNorm2d = (c: number) => new LayerNorm2d(c, 1e-6);

export class CNBlock extends nn.Module {
  readonly layerScale: Tensor;
  readonly block: nn.Sequential;
  readonly stochasticDepth: StochasticDepth;
  constructor(dim: number, layerScale: number, sdProb: number) {
    super();
    this.layerScale = this.registerParameter('layer_scale', noGrad(() => full([dim, 1, 1], layerScale)));
    this.block = this.registerModule('block', new nn.Sequential(
      new nn.Conv2d(dim, dim, 7, { padding: 3, groups: dim }),
      new Permute([0, 2, 3, 1]),
      new nn.LayerNorm(dim, 1e-6),
      new nn.Linear(dim, 4 * dim),
      new nn.GELU(),
      new nn.Linear(4 * dim, dim),
      new Permute([0, 3, 1, 2])));
    this.stochasticDepth = this.registerModule('stochastic_depth', new StochasticDepth(sdProb, 'row'));
  }
  forward(x: Tensor): Tensor {
    return addResidual(pipe(x, (t) => this.block.call(t), (t) => t.mul(this.layerScale), (t) => this.stochasticDepth.call(t)), x);
  }
}

export interface ConvNeXtOptions { inChannels?: number; numClasses?: number; imageSize?: number; stochasticDepthProb?: number; layerScale?: number }

export class ConvNeXt extends nn.Module {
  readonly features: nn.Sequential;
  readonly avgpool: nn.AdaptiveAvgPool2d;
  readonly classifier: nn.Sequential;
  constructor(readonly arch: ConvNeXtName, o: ConvNeXtOptions = {}) {
    super();
    assertMinSize(arch, o.imageSize ?? 224, 32, 'a stride-4 stem and three stride-2 downsamplings');
    const { dims, depths } = CONVNEXTS[arch];
    const sd = o.stochasticDepthProb ?? CONVNEXTS[arch].sd;
    const total = depths.reduce((a, b) => a + b, 0);
    let id = 0;
    const layers: nn.Module[] = [convNormActivation(o.inChannels ?? 3, dims[0], { kernel: 4, stride: 4, padding: 0, norm: layerNorm2d, activation: null, bias: true })];
    dims.forEach((dim, i) => {
      layers.push(new nn.Sequential(...Array.from({ length: depths[i] }, () => new CNBlock(dim, o.layerScale ?? 1e-6, (sd * id++) / (total - 1)))));
      if (i < dims.length - 1) layers.push(new nn.Sequential(layerNorm2d(dim), new nn.Conv2d(dim, dims[i + 1], 2, { stride: 2 })));
    });
    this.features = this.registerModule('features', new nn.Sequential(...layers));
    const last = dims[dims.length - 1];
    this.avgpool = this.registerModule('avgpool', new nn.AdaptiveAvgPool2d(1));
    this.classifier = this.registerModule('classifier', new nn.Sequential(layerNorm2d(last), new nn.Flatten(1), new nn.Linear(last, o.numClasses ?? 1000)));
    // torchvision's init: trunc_normal_(std=0.02) (its +-2 bounds are 100 std away: a normal) and zero bias
    noGrad(() => {
      for (const [, m] of this.namedModules()) if (m instanceof nn.Conv2d || m instanceof nn.Linear) { m.weight.normal_(0, 0.02); m.bias?.zero_(); }
    });
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => this.features.call(t), (t) => this.avgpool.call(t), (t) => this.classifier.call(t));
  }
}
