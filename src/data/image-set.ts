// The in-memory form of a dataset, apart from the readers that fill it: what a defense may import.
import type { Tensor } from '../torch/compute';

export interface ImageSet {
  /** uint8 images [N, C, H, W] */
  images: Tensor;
  /** int64 labels [N] */
  labels: Tensor;
  classes: number;
}

/**
 * Labelled images read a chunk at a time (a folder of image files decoded chunk by chunk): memory
 * follows the chunk, not the set. The labels are known up front; `chunks` yields the images in order,
 * each chunk an ImageSet the caller disposes.
 */
export interface ImageChunks {
  kind: 'chunks';
  /** the images' shape [N, C, H, W] */
  shape: [number, number, number, number];
  /** every image's label, in order */
  labels: Int32Array;
  classes: number;
  chunks(size: number): Iterable<ImageSet>;
}

/** Labelled images held in memory, or read in chunks. */
export type Images = ImageSet | ImageChunks;

export const isChunks = (s: Images): s is ImageChunks => (s as ImageChunks).kind === 'chunks';
