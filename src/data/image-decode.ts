// Decodes one PNG or JPEG file (pngjs, jpeg-js: pure JavaScript) into 8-bit RGBA, after reading its
// dimensions from the header and checking them, so a lying or oversized header is refused before any
// pixel buffer is allocated. The channel conversions follow PIL's Image.convert('L' / 'RGB').
import * as zlib from 'zlib';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

export interface DecodedImage {
  width: number;
  height: number;
  /** height * width * 4 bytes, row-major RGBA; alpha 255 where the file has none */
  rgba: Uint8Array;
  /** the file has an alpha channel (PNG colour type 4 or 6) or a tRNS transparency chunk */
  hasAlpha: boolean;
  format: 'png' | 'jpeg';
}

export interface ImageHeader { format: 'png' | 'jpeg'; width: number; height: number }

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Format and size from the first bytes; anything but PNG or JPEG is an error naming the file. */
export function readImageHeader(buf: Buffer, source: string): ImageHeader {
  if (buf.length >= 8 && buf.subarray(0, 8).equals(PNG_SIGNATURE)) {
    if (buf.length < 33 || buf.toString('latin1', 12, 16) !== 'IHDR') throw new Error(`${source}: PNG without an IHDR chunk (truncated or corrupt)`);
    return { format: 'png', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return { format: 'jpeg', ...jpegSize(buf, source) };
  throw new Error(`${source}: not a PNG or JPEG file (other formats such as BMP, TIFF, WebP or PPM: convert them to PNG first)`);
}

/** Walks the JPEG markers up to the first start-of-frame; every length is checked against the file. */
function jpegSize(buf: Buffer, source: string): { width: number; height: number } {
  let p = 2;
  while (p + 4 <= buf.length) {
    if (buf[p] !== 0xff) throw new Error(`${source}: corrupt JPEG (no marker at offset ${p})`);
    const m = buf[p + 1];
    if (m === 0xff) { p++; continue; }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { p += 2; continue; }
    if (m === 0xd9 || m === 0xda) break;
    const len = buf.readUInt16BE(p + 2);
    if (len < 2 || p + 2 + len > buf.length) throw new Error(`${source}: corrupt JPEG (segment 0xFF${m.toString(16).toUpperCase()} at offset ${p} runs past the end)`);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (len < 8) throw new Error(`${source}: corrupt JPEG (short frame header)`);
      return { height: buf.readUInt16BE(p + 5), width: buf.readUInt16BE(p + 7) };
    }
    p += 2 + len;
  }
  throw new Error(`${source}: JPEG without a frame header (truncated or corrupt)`);
}

interface PngInfo { bitDepth: number; colorType: number; interlace: boolean; hasTrns: boolean; idat: Buffer[] }

function pngChunks(buf: Buffer, source: string): PngInfo {
  const info: PngInfo = { bitDepth: buf[24], colorType: buf[25], interlace: buf[28] === 1, hasTrns: false, idat: [] };
  let p = 8;
  while (p + 12 <= buf.length) {
    const len = buf.readUInt32BE(p), type = buf.toString('latin1', p + 4, p + 8);
    if (p + 12 + len > buf.length) throw new Error(`${source}: PNG chunk '${type}' at offset ${p} (${len} bytes) runs past the end of the file (truncated?)`);
    if (type === 'tRNS') info.hasTrns = true;
    if (type === 'IDAT') info.idat.push(buf.subarray(p + 8, p + 8 + len));
    if (type === 'IEND') break;
    p += 12 + len;
  }
  return info;
}

/**
 * Decodes a PNG or JPEG whose header must declare `expect` (width x height) when given, and at most
 * `maxPixels` pixels. Errors name `source`.
 */
export function decodeImage(buf: Buffer, source: string, o: { expect?: { width: number; height: number }; maxPixels: number }): DecodedImage {
  const head = readImageHeader(buf, source);
  const { width, height } = head;
  if (o.expect && (width !== o.expect.width || height !== o.expect.height))
    throw new Error(`${source}: image is ${width}x${height}, expected ${o.expect.width}x${o.expect.height} (or give --resize and --center-crop to transform them as torchvision would)`);
  if (width < 1 || height < 1 || width * height > o.maxPixels)
    throw new Error(`${source}: ${width}x${height} image is empty or larger than the ${o.maxPixels}-pixel limit`);
  if (head.format === 'png') {
    const info = pngChunks(buf, source);
    if (info.bitDepth === 16) throw new Error(`${source}: 16-bit PNG is not supported (save it with 8 bits per channel)`);
    if (info.interlace) {
      // pngjs inflates interlaced data without a bound: check the size first (Adam7 adds a filter byte per row of each pass)
      const bound = 2 * (Math.ceil((width * 4 * info.bitDepth) / 8) + 8) * height + 1024;
      try {
        zlib.inflateSync(Buffer.concat(info.idat), { maxOutputLength: bound });
      } catch (e) {
        const big = (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
        throw new Error(`${source}: ${big ? `interlaced PNG data inflates to more than a ${width}x${height} image can hold` : `corrupt PNG data (${(e as Error).message})`}`);
      }
    }
    let png: PNG;
    try {
      png = PNG.sync.read(buf);
    } catch (e) {
      throw new Error(`${source}: cannot decode PNG: ${(e as Error).message}`);
    }
    const hasAlpha = info.colorType === 4 || info.colorType === 6 || info.hasTrns;
    return { width, height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length), hasAlpha, format: 'png' };
  }
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: Math.max(1, o.maxPixels / 1e6), maxMemoryUsageInMB: 64 + Math.ceil((o.maxPixels * 8) / 2 ** 20) });
  } catch (e) {
    throw new Error(`${source}: cannot decode JPEG: ${(e as Error).message}`);
  }
  if (img.width !== width || img.height !== height) throw new Error(`${source}: JPEG decoded to ${img.width}x${img.height}, its header says ${width}x${height}`);
  return { width, height, rgba: img.data, hasAlpha: false, format: 'jpeg' };
}

/**
 * Channels-first uint8 [C, H, W] as PIL's convert: 3 -> 'RGB' (alpha dropped, not composited);
 * 1 -> 'L' = (19595 R + 38470 G + 7471 B + 32768) >> 16, PIL's fixed-point form of
 * R * 299/1000 + G * 587/1000 + B * 114/1000 (a grey pixel keeps its value exactly).
 */
export function toChannels(img: DecodedImage, channels: 1 | 3): Uint8Array {
  const n = img.width * img.height, px = img.rgba;
  const out = new Uint8Array(channels * n);
  if (channels === 1) {
    for (let i = 0; i < n; i++) out[i] = (19595 * px[4 * i] + 38470 * px[4 * i + 1] + 7471 * px[4 * i + 2] + 32768) >>> 16;
  } else {
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = px[4 * i + c];
  }
  return out;
}
