/**
 * Images as bytes (runs anywhere): tensors in [-1, 1] to uint8 pixels, a grid of a
 * batch, RGBA for a canvas's ImageData, and PNG bytes (fast-png, pure JS).
 *
 * Channel convention: pixels are HWC uint8 with C = 1 (grayscale) or 3 (RGB).
 */
import * as tf from '@tensorflow/tfjs';
import { encode } from 'fast-png';

export interface DecodedImage {
  /** H*W*C uint8, row-major HWC. */
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
  /** 1 (grayscale) or 3 (RGB). */
  readonly channels: number;
}

// helpers

export function checkDims(where: string, h: number, w: number, c: number): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h <= 0 || w <= 0) {
    throw new Error(`${where}: height and width must be positive integers, received ${h}x${w}`);
  }
  if (c !== 1 && c !== 3) throw new Error(`${where}: channels must be 1 or 3, received ${c}`);
}

// ---------------------------------------------------------------- tensors

/** Pixels of a tensor in [-1, 1]: round((x + 1) * 127.5) clipped to [0, 255], same element order. */
export async function tensorToImageBytes(x: tf.Tensor3D | tf.Tensor4D): Promise<Uint8Array> {
  const bytes = tf.tidy(() => x.toFloat().add(1).mul(127.5).round().clipByValue(0, 255).toInt());
  try {
    return Uint8Array.from(await bytes.data());
  } finally {
    bytes.dispose();
  }
}

// ---------------------------------------------------------------- grids

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

// ---------------------------------------------------------------- RGBA and PNG

/** HWC pixels (C = 1 or 3) as RGBA with alpha 255, for `new ImageData(rgba, width, height)`. */
export function toRgba(pixels: Uint8Array, height: number, width: number, channels: number): Uint8ClampedArray {
  checkDims('toRgba', height, width, channels);
  if (pixels.length !== height * width * channels) throw new Error(`toRgba: ${pixels.length} bytes for ${height}x${width}x${channels}, expected ${height * width * channels}`);
  const out = new Uint8ClampedArray(height * width * 4);
  for (let p = 0; p < height * width; p++) {
    const r = pixels[p * channels];
    out[4 * p] = r;
    out[4 * p + 1] = channels === 3 ? pixels[p * channels + 1] : r;
    out[4 * p + 2] = channels === 3 ? pixels[p * channels + 2] : r;
    out[4 * p + 3] = 255;
  }
  return out;
}

/**
 * PNG bytes of HWC uint8 pixels (C = 1 gray or 3 RGB), from pure JS (fast-png): for a
 * download link in a page. (Node's files are written by io/png.ts.)
 */
export function encodePngBytes(pixels: Uint8Array, height: number, width: number, channels: number): Uint8Array {
  checkDims('encodePngBytes', height, width, channels);
  if (pixels.length !== height * width * channels) {
    throw new Error(`encodePngBytes: ${pixels.length} bytes for ${height}x${width}x${channels}, expected ${height * width * channels}`);
  }
  return encode({ width, height, data: pixels, channels, depth: 8 });
}
