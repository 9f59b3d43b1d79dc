// Model factory: the architectures by name, sized for a dataset.
import { nn } from '../torch';
import { PreActResNet18 } from './preact-resnet';
import { ResNet18 } from './resnet';
import { SmallCNN } from './small-cnn';
import { TORCHVISION_RESNETS, TorchvisionResNet, TorchvisionResNet18 } from './torchvision-resnet';
import { VGG } from './vgg';
import { MobileNetV2 } from './mobilenet-v2';
import { MobileNetV3 } from './mobilenet-v3';
import { DenseNet } from './densenet';
import { EfficientNet } from './efficientnet';
import { ConvNeXt } from './convnext';
import { ResizedVisionTransformer, VisionTransformer, VitName } from './vision-transformer';

/** What a model is built for: the dataset's channels, classes and image size (and the ResNets' width). */
export interface ModelShape { width?: number; inChannels: number; numClasses: number; imageSize: number }
type Factory = (s: ModelShape) => nn.Module;

/** The torchvision options a shape gives (torchvision's own width: `width` is the toolkit ResNets'). */
const tv = (s: ModelShape) => ({ inChannels: s.inChannels, numClasses: s.numClasses, imageSize: s.imageSize });
const resnet = (s: ModelShape) => ({ width: s.width ?? 64, inChannels: s.inChannels, numClasses: s.numClasses });

/** One factory per name of a family whose constructor takes the name. */
const each = <N extends string>(names: readonly N[], make: (name: N, s: ModelShape) => nn.Module): Record<N, Factory> =>
  Object.fromEntries(names.map((n) => [n, (s: ModelShape) => make(n, s)])) as Record<N, Factory>;

/**
 * Every architecture by name, in the order the CLI lists them. Adding one is its file in src/models/ and
 * an entry here. torchvision-resnet18: torchvision.models.resnet18's modules and 7x7/max-pool stem;
 * torchvision-resnet18-cifar: the same with the usual small-image stem (3x3 stride-1 conv1, no max-pool).
 * The torchvision names are torchvision 0.14's classifiers, with its state-dict names and shapes;
 * backdoorbench-vit_*: BackdoorBench's ViTs, Sequential(Resize((224, 224)), vit_*) (names '1.conv_proj.weight', ...).
 */
const MODELS = {
  resnet18: (s: ModelShape) => new ResNet18(resnet(s)),
  'preact-resnet18': (s: ModelShape) => new PreActResNet18(resnet(s)),
  'small-cnn': (s: ModelShape) => new SmallCNN(s.inChannels, s.numClasses, s.imageSize),
  'torchvision-resnet18': (s: ModelShape) => new TorchvisionResNet18({ ...resnet(s), stem: 'imagenet' }),
  'torchvision-resnet18-cifar': (s: ModelShape) => new TorchvisionResNet18({ ...resnet(s), stem: 'cifar' }),
  ...each(['vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn'] as const, (n, s) => new VGG(n, tv(s))),
  ...each(['resnet34', 'resnet50', 'resnet101', 'resnet152', 'wide_resnet50_2', 'wide_resnet101_2'] as const, (n, s) => new TorchvisionResNet(TORCHVISION_RESNETS[n], resnet(s))),
  mobilenet_v2: (s: ModelShape) => new MobileNetV2(tv(s)),
  ...each(['mobilenet_v3_small', 'mobilenet_v3_large'] as const, (n, s) => new MobileNetV3(n, tv(s))),
  ...each(['densenet121', 'densenet161', 'densenet169', 'densenet201'] as const, (n, s) => new DenseNet(n, tv(s))),
  ...each(['efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2', 'efficientnet_b3', 'efficientnet_b4', 'efficientnet_b5', 'efficientnet_b6', 'efficientnet_b7'] as const,
    (n, s) => new EfficientNet(n, tv(s))),
  ...each(['convnext_tiny', 'convnext_small', 'convnext_base', 'convnext_large'] as const, (n, s) => new ConvNeXt(n, tv(s))),
  ...each(['vit_b_16', 'vit_b_32', 'vit_l_16', 'vit_l_32'] as const, (n, s) => new VisionTransformer(n, tv(s))),
  ...each(['backdoorbench-vit_b_16', 'backdoorbench-vit_b_32', 'backdoorbench-vit_l_16', 'backdoorbench-vit_l_32'] as const,
    (n, s) => new ResizedVisionTransformer(n.slice('backdoorbench-'.length) as VitName, tv(s))),
};
export type ModelName = keyof typeof MODELS;
export const MODEL_NAMES = Object.keys(MODELS) as [ModelName, ...ModelName[]];

export interface ModelSpec extends ModelShape { name: ModelName }

/** Whether `width` (the base width of the ResNets) shapes the model; the other architectures have torchvision's widths. */
export function usesWidth(name: ModelName): boolean {
  return name === 'resnet18' || name === 'preact-resnet18' || name.startsWith('torchvision-resnet18') || name in TORCHVISION_RESNETS;
}

export function createModel(s: ModelSpec): nn.Module {
  if (!Object.hasOwn(MODELS, s.name)) throw new Error(`unknown model '${(s as ModelSpec).name}' (known: ${MODEL_NAMES.join(', ')})`);
  return MODELS[s.name](s);
}
