// torchvision's Vision Transformer (torchvision.models.vit_b_16/b_32/l_16/l_32) with its module names:
// conv_proj (patch embedding), class_token, encoder.pos_embedding, encoder.layers.encoder_layer_<i> (ln_1,
// self_attention, ln_2, mlp.0/.3), encoder.ln, heads.head. The position embedding fixes the input size:
// image_size (224 in torchvision's weights) must be the size the model was built for, divisible by the patch.
import { cat, nn, noGrad, pipe, scope, Tensor, zeros } from '../torch';
import { addResidual, Resize } from './torchvision-ops';

/** patch, layers, heads, hidden width, MLP width */
export const VITS = {
  vit_b_16: [16, 12, 12, 768, 3072], vit_b_32: [32, 12, 12, 768, 3072],
  vit_l_16: [16, 24, 16, 1024, 4096], vit_l_32: [32, 24, 16, 1024, 4096],
} as const;
export type VitName = keyof typeof VITS;

const layerNorm = (d: number) => new nn.LayerNorm(d, 1e-6);

/** torchvision's MLPBlock: linear, GELU, dropout, linear, dropout (indices 0-4). */
class MLPBlock extends nn.Sequential {
  constructor(dim: number, mlpDim: number, dropout: number) {
    super(new nn.Linear(dim, mlpDim), new nn.GELU(), new nn.Dropout(dropout), new nn.Linear(mlpDim, dim), new nn.Dropout(dropout));
    noGrad(() => {
      for (const l of [this.layers[0], this.layers[3]] as nn.Linear[]) {
        const [o, i] = l.weight.shape;
        l.weight.uniform_(-Math.sqrt(6 / (o + i)), Math.sqrt(6 / (o + i))); // xavier_uniform_
        l.bias?.normal_(0, 1e-6);
      }
    });
  }
}

/** x + attention(ln_1(x)), then + mlp(ln_2(.)): the pre-norm transformer block. */
export class EncoderBlock extends nn.Module {
  readonly ln1: nn.LayerNorm;
  readonly selfAttention: nn.MultiheadAttention;
  readonly dropout: nn.Dropout;
  readonly ln2: nn.LayerNorm;
  readonly mlp: MLPBlock;
  constructor(heads: number, dim: number, mlpDim: number, p: number, attentionDropout: number) {
    super();
    this.ln1 = this.registerModule('ln_1', layerNorm(dim));
    this.selfAttention = this.registerModule('self_attention', new nn.MultiheadAttention(dim, heads, attentionDropout));
    this.dropout = this.registerModule('dropout', new nn.Dropout(p));
    this.ln2 = this.registerModule('ln_2', layerNorm(dim));
    this.mlp = this.registerModule('mlp', new MLPBlock(dim, mlpDim, p));
  }
  forward(input: Tensor): Tensor {
    return pipe(input,
      (x) => addResidual(pipe(x, (t) => this.ln1.call(t), (t) => this.selfAttention.call(t), (t) => this.dropout.call(t)), x),
      (x) => addResidual(pipe(x, (t) => this.ln2.call(t), (t) => this.mlp.call(t)), x));
  }
}

export class Encoder extends nn.Module {
  readonly posEmbedding: Tensor;
  readonly dropout: nn.Dropout;
  readonly layers: nn.NamedSequential;
  readonly ln: nn.LayerNorm;
  constructor(seqLength: number, numLayers: number, heads: number, dim: number, mlpDim: number, p: number, attentionDropout: number) {
    super();
    this.posEmbedding = this.registerParameter('pos_embedding', noGrad(() => zeros([1, seqLength, dim]).normal_(0, 0.02)));
    this.dropout = this.registerModule('dropout', new nn.Dropout(p));
    this.layers = this.registerModule('layers', new nn.NamedSequential(Array.from({ length: numLayers }, (_, i) => [`encoder_layer_${i}`, new EncoderBlock(heads, dim, mlpDim, p, attentionDropout)])));
    this.ln = this.registerModule('ln', layerNorm(dim));
  }
  forward(x: Tensor): Tensor {
    return pipe(x, (t) => t.add(this.posEmbedding), (t) => this.dropout.call(t), (t) => this.layers.call(t), (t) => this.ln.call(t));
  }
}

export interface VisionTransformerOptions { inChannels?: number; numClasses?: number; imageSize?: number; dropout?: number; attentionDropout?: number }

export class VisionTransformer extends nn.Module {
  readonly classToken: Tensor;
  readonly convProj: nn.Conv2d;
  readonly encoder: Encoder;
  readonly heads: nn.NamedSequential;
  readonly imageSize: number;
  readonly patch: number;
  constructor(readonly arch: VitName, o: VisionTransformerOptions = {}) {
    super();
    const [patch, layers, heads, dim, mlpDim] = VITS[arch];
    this.imageSize = o.imageSize ?? 224;
    this.patch = patch;
    if (this.imageSize % patch !== 0) throw new Error(`${arch} needs an image size divisible by its patch size ${patch}; these are ${this.imageSize}x${this.imageSize}: resize them as the model was trained (torchvision's weights: 224)`);
    this.classToken = this.registerParameter('class_token', zeros([1, 1, dim]));
    this.convProj = this.registerModule('conv_proj', new nn.Conv2d(o.inChannels ?? 3, dim, patch, { stride: patch }));
    const fanIn = (o.inChannels ?? 3) * patch * patch;
    noGrad(() => { this.convProj.weight.normal_(0, Math.sqrt(1 / fanIn)); this.convProj.bias?.zero_(); });
    this.encoder = this.registerModule('encoder', new Encoder((this.imageSize / patch) ** 2 + 1, layers, heads, dim, mlpDim, o.dropout ?? 0, o.attentionDropout ?? 0));
    const head = new nn.Linear(dim, o.numClasses ?? 1000);
    noGrad(() => { head.weight.zero_(); head.bias?.zero_(); }); // torchvision zero-initialises the head
    this.heads = this.registerModule('heads', new nn.NamedSequential([['head', head]]));
  }
  forward(x: Tensor): Tensor {
    const [n, , h, w] = x.shape;
    if (h !== this.imageSize || w !== this.imageSize) throw new Error(`${this.arch}: expected ${this.imageSize}x${this.imageSize} images, got ${h}x${w}`);
    return pipe(x, (t) => this.convProj.call(t), (t) => t.flatten(2), (t) => t.permute(0, 2, 1), // [N, (H/p)(W/p), D]
      (patches) => scope(() => cat([this.classToken.expand(n, -1, -1), patches], 1)),
      (t) => this.encoder.call(t), (t) => t.select(1, 0), (t) => this.heads.call(t)); // the class token's output
  }
}

/**
 * BackdoorBench's ViTs (its generate_cls_model): nn.Sequential(Resize((224, 224)), vit_*(...)) with the
 * head replaced for the classes, so the state-dict names carry the prefix '1.' and any input size works.
 */
export class ResizedVisionTransformer extends nn.Sequential {
  constructor(arch: VitName, o: VisionTransformerOptions = {}) {
    super(new Resize([224, 224]), new VisionTransformer(arch, { ...o, imageSize: 224 }));
  }
}
