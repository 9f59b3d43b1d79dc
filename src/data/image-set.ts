// The in-memory form of a dataset, apart from the readers that fill it: what a defense may import.
import type { Tensor } from '../torch/compute';

export interface ImageSet {
  /** uint8 images [N, C, H, W] */
  images: Tensor;
  /** int64 labels [N] */
  labels: Tensor;
  classes: number;
}
