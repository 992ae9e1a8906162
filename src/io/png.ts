/**
 * PNG reading and writing (pngjs), plus conversions between image tensors in
 * [-1, 1] and uint8 pixels.
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

export interface DecodedImage {
  /** H*W*C uint8, row-major HWC. */
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
  /** 1 (grayscale) or 3 (RGB). */
  readonly channels: number;
}

// helpers

function checkDims(where: string, h: number, w: number, c: number): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h <= 0 || w <= 0) {
    throw new Error(`${where}: height and width must be positive integers, received ${h}x${w}`);
  }
  if (c !== 1 && c !== 3) throw new Error(`${where}: channels must be 1 or 3, received ${c}`);
}

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

/** Pixels of a tensor in [-1, 1]: round((x + 1) * 127.5) clipped to [0, 255], same element order. */
export async function tensorToImageBytes(x: tf.Tensor3D | tf.Tensor4D): Promise<Uint8Array> {
  const bytes = tf.tidy(() => x.toFloat().add(1).mul(127.5).round().clipByValue(0, 255).toInt());
  try {
    return Uint8Array.from(await bytes.data());
  } finally {
    bytes.dispose();
  }
}

/** Loads a PNG as a float32 [H, W, C] tensor in [-1, 1] (x / 127.5 - 1). */
export function loadPngTensor(filePath: string): tf.Tensor3D {
  const img = loadPng(filePath);
  const f = new Float32Array(img.data.length);
  for (let i = 0; i < f.length; i++) f[i] = img.data[i] / 127.5 - 1;
  return tf.tensor3d(f, [img.height, img.width, img.channels], 'float32');
}

export interface GridOptions {
  /** Images per row (default ceil(sqrt(B))). */
  readonly cols?: number;
  /** Pixels between cells and around the border (default 2). */
  readonly padding?: number;
  /** Byte value of the padding (default 0, black, as torchvision's make_grid). */
  readonly padValue?: number;
  readonly rowLabels?: never;
}

/**
 * Lays out B images (uint8 [B, H, W, C]) in a grid, row-major, with `padding`
 * pixels between cells and around the border:
 *   gridHeight = rows*(H + padding) + padding, rows = ceil(B / cols)
 * Empty trailing cells are left at padValue.
 */
export function makeGrid(
  pixels: Uint8Array, count: number, height: number, width: number, channels: number, options: GridOptions = {},
): DecodedImage {
  checkDims('makeGrid', height, width, channels);
  const cols = options.cols ?? Math.max(1, Math.ceil(Math.sqrt(count)));
  const padding = options.padding ?? 2;
  const padValue = options.padValue ?? 0;
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`makeGrid: cols must be a positive integer, received ${cols}`);
  if (!Number.isInteger(padding) || padding < 0) throw new Error(`makeGrid: padding must be a non-negative integer, received ${padding}`);
  if (pixels.length !== count * height * width * channels) {
    throw new Error(`makeGrid: ${pixels.length} bytes for ${count}x${height}x${width}x${channels}`);
  }
  const rows = Math.max(1, Math.ceil(count / cols));
  const gh = rows * (height + padding) + padding;
  const gw = cols * (width + padding) + padding;
  const data = new Uint8Array(gh * gw * channels).fill(padValue);
  const rowBytes = width * channels;
  for (let b = 0; b < count; b++) {
    const y0 = padding + Math.floor(b / cols) * (height + padding);
    const x0 = padding + (b % cols) * (width + padding);
    for (let y = 0; y < height; y++) {
      const src = (b * height + y) * rowBytes;
      data.set(pixels.subarray(src, src + rowBytes), ((y0 + y) * gw + x0) * channels);
    }
  }
  return { data, height: gh, width: gw, channels };
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
