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

/**
 * torchvision-resnet18: torchvision.models.resnet18's modules and 7x7/max-pool stem;
 * torchvision-resnet18-cifar: the same with the usual small-image stem (3x3 stride-1 conv1, no max-pool).
 */
export const MODEL_NAMES = ['resnet18', 'preact-resnet18', 'small-cnn', 'torchvision-resnet18', 'torchvision-resnet18-cifar',
  // torchvision 0.14's classifiers under torchvision's names, with its state-dict names and shapes
  'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn',
  'resnet34', 'resnet50', 'resnet101', 'resnet152', 'wide_resnet50_2', 'wide_resnet101_2',
  'mobilenet_v2', 'mobilenet_v3_small', 'mobilenet_v3_large',
  'densenet121', 'densenet161', 'densenet169', 'densenet201',
  'efficientnet_b0', 'efficientnet_b1', 'efficientnet_b2', 'efficientnet_b3', 'efficientnet_b4', 'efficientnet_b5', 'efficientnet_b6', 'efficientnet_b7',
  'convnext_tiny', 'convnext_small', 'convnext_base', 'convnext_large',
  'vit_b_16', 'vit_b_32', 'vit_l_16', 'vit_l_32',
  // BackdoorBench's ViTs: Sequential(Resize((224, 224)), vit_*) (state-dict names '1.conv_proj.weight', ...)
  'backdoorbench-vit_b_16', 'backdoorbench-vit_b_32', 'backdoorbench-vit_l_16', 'backdoorbench-vit_l_32'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export interface ModelSpec { name: ModelName; width?: number; inChannels: number; numClasses: number; imageSize: number }

/** Whether `width` (the base width of the ResNets) shapes the model; the other architectures have torchvision's widths. */
export function usesWidth(name: ModelName): boolean {
  return name === 'resnet18' || name === 'preact-resnet18' || name.startsWith('torchvision-resnet18') || name in TORCHVISION_RESNETS;
}

/** The torchvision options a spec gives (torchvision's own width: `width` is the toolkit ResNets'). */
const tv = (s: ModelSpec) => ({ inChannels: s.inChannels, numClasses: s.numClasses, imageSize: s.imageSize });

export function createModel(s: ModelSpec): nn.Module {
  switch (s.name) {
    case 'resnet18': return new ResNet18({ width: s.width ?? 64, inChannels: s.inChannels, numClasses: s.numClasses });
    case 'preact-resnet18': return new PreActResNet18({ width: s.width ?? 64, inChannels: s.inChannels, numClasses: s.numClasses });
    case 'torchvision-resnet18':
    case 'torchvision-resnet18-cifar':
      return new TorchvisionResNet18({ width: s.width ?? 64, inChannels: s.inChannels, numClasses: s.numClasses, stem: s.name === 'torchvision-resnet18' ? 'imagenet' : 'cifar' });
    case 'small-cnn': return new SmallCNN(s.inChannels, s.numClasses, s.imageSize);
    case 'vgg11_bn': case 'vgg13_bn': case 'vgg16_bn': case 'vgg19_bn': return new VGG(s.name, tv(s));
    case 'resnet34': case 'resnet50': case 'resnet101': case 'resnet152': case 'wide_resnet50_2': case 'wide_resnet101_2':
      return new TorchvisionResNet(TORCHVISION_RESNETS[s.name], { width: s.width ?? 64, inChannels: s.inChannels, numClasses: s.numClasses });
    case 'mobilenet_v2': return new MobileNetV2(tv(s));
    case 'mobilenet_v3_small': case 'mobilenet_v3_large': return new MobileNetV3(s.name, tv(s));
    case 'densenet121': case 'densenet161': case 'densenet169': case 'densenet201': return new DenseNet(s.name, tv(s));
    case 'efficientnet_b0': case 'efficientnet_b1': case 'efficientnet_b2': case 'efficientnet_b3':
    case 'efficientnet_b4': case 'efficientnet_b5': case 'efficientnet_b6': case 'efficientnet_b7': return new EfficientNet(s.name, tv(s));
    case 'convnext_tiny': case 'convnext_small': case 'convnext_base': case 'convnext_large': return new ConvNeXt(s.name, tv(s));
    case 'vit_b_16': case 'vit_b_32': case 'vit_l_16': case 'vit_l_32': return new VisionTransformer(s.name, tv(s));
    case 'backdoorbench-vit_b_16': case 'backdoorbench-vit_b_32': case 'backdoorbench-vit_l_16': case 'backdoorbench-vit_l_32':
      return new ResizedVisionTransformer(s.name.slice('backdoorbench-'.length) as VitName, tv(s));
    default: throw new Error(`unknown model '${(s as ModelSpec).name}' (known: ${MODEL_NAMES.join(', ')})`);
  }
}
