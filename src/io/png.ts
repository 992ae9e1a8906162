/**
 * PNG files (Node, pngjs): reading and writing, and image tensors saved as files.
 * Pixels from tensors, grids and RGBA for a canvas: ./image.ts (runs anywhere).
 *
 * Channel convention: pixels are HWC uint8 with C = 1 (grayscale) or 3 (RGB).
 * `loadPng` returns 1 channel when the file's colour type is grayscale (with or
 * without alpha) and 3 otherwise (RGB, RGBA, palette); an alpha channel is
 * dropped, not composited onto a background. 16-bit files are scaled to 8 bits.
 *
 * Files are written atomically: bytes go to `<path>.<pid>.tmp` and are then
 * renamed over `path`, so a reader never sees a half-written image.
 */
import * as fs from 'fs';
import * as path from 'path';
import { PNG, ColorType } from 'pngjs';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomicSync } from './atomicWrite';
import { checkDims, DecodedImage, GridOptions, makeGrid, tensorToImageBytes } from './image';

// encode / decode

/** Encodes HWC uint8 pixels (C = 1 gray or 3 RGB) as PNG bytes. */
export function encodePng(pixels: Uint8Array, height: number, width: number, channels: number): Uint8Array {
  checkDims('encodePng', height, width, channels);
  if (pixels.length !== height * width * channels) {
    throw new Error(`encodePng: ${pixels.length} bytes for ${height}x${width}x${channels}, expected ${height * width * channels}`);
  }
  const colorType: ColorType = channels === 1 ? 0 : 2;
  const png = new PNG({ width, height });
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const out = PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8 });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Decodes PNG bytes to HWC uint8 (1 channel for grayscale files, else 3; alpha dropped). */
export function decodePng(bytes: Uint8Array, source = '<buffer>'): DecodedImage {
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new Error(`PNG ${source}: cannot decode (${(e as Error).message})`);
  }
  const { width, height } = png;
  const channels = png.color ? 3 : 1;
  const rgba = png.data; // always 8-bit RGBA after pngjs's normalisation
  const data = new Uint8Array(width * height * channels);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < channels; c++) data[p * channels + c] = rgba[4 * p + c];
  }
  return { data, height, width, channels };
}

// files

/** Saves HWC uint8 pixels (C = 1 or 3) as a PNG file (atomic write). */
export function savePng(filePath: string, pixels: Uint8Array, height: number, width: number, channels: number): void {
  writeFileAtomicSync(filePath, encodePng(pixels, height, width, channels));
}

/** Loads a PNG file as HWC uint8 (1 channel for grayscale files, else 3; alpha dropped). */
export function loadPng(filePath: string): DecodedImage {
  return decodePng(fs.readFileSync(filePath), filePath);
}

// tensors

/** Loads a PNG as a float32 [H, W, C] tensor in [-1, 1] (x / 127.5 - 1). */
export function loadPngTensor(filePath: string): tf.Tensor3D {
  const img = loadPng(filePath);
  const f = new Float32Array(img.data.length);
  for (let i = 0; i < f.length; i++) f[i] = img.data[i] / 127.5 - 1;
  return tf.tensor3d(f, [img.height, img.width, img.channels], 'float32');
}

/** Saves a batch [B, H, W, C] in [-1, 1] (C = 1 saved as gray, or 3) as one PNG grid. */
export async function saveImageGrid(filePath: string, images: tf.Tensor4D, options: GridOptions = {}): Promise<DecodedImage> {
  const [b, h, w, c] = images.shape;
  checkDims(`saveImageGrid(${filePath})`, h, w, c);
  const grid = makeGrid(await tensorToImageBytes(images), b, h, w, c, options);
  savePng(filePath, grid.data, grid.height, grid.width, grid.channels);
  return grid;
}

/**
 * Saves each image of [B, H, W, C] in [-1, 1] as `<dir>/<prefix><i>.png`,
 * i zero-padded to 4 digits; creates `dir`. Returns the paths written.
 */
export async function saveImages(dir: string, images: tf.Tensor4D, prefix = 'image_'): Promise<string[]> {
  const [b, h, w, c] = images.shape;
  checkDims(`saveImages(${dir})`, h, w, c);
  const bytes = await tensorToImageBytes(images);
  fs.mkdirSync(dir, { recursive: true });
  const size = h * w * c;
  const paths: string[] = [];
  for (let i = 0; i < b; i++) {
    const p = path.join(dir, `${prefix}${String(i).padStart(4, '0')}.png`);
    savePng(p, bytes.subarray(i * size, (i + 1) * size), h, w, c);
    paths.push(p);
  }
  return paths;
}
