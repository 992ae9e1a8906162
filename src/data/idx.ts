/**
 * IDX file parser (the format of MNIST and Fashion-MNIST; LeCun et al.,
 * http://yann.lecun.com/exdb/mnist/ "FILE FORMATS FOR THE MNIST DATABASE").
 *
 * Layout, all integers big-endian:
 *   bytes 0-1   zero
 *   byte  2     dtype code; only 0x08 (unsigned byte) is supported here
 *   byte  3     number of dimensions (3 for images [N, H, W], 1 for labels [N])
 *   then        one uint32 per dimension
 *   then        prod(dims) data bytes, row-major
 * so the magic number is 0x00000803 for image files and 0x00000801 for label
 * files. The file must be exactly 4 + 4*ndim + prod(dims) bytes long.
 *
 * Files ending in `.gz` (or starting with the gzip magic 1f 8b) are inflated
 * with zlib first.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { ImageDataset, validateDataset } from './dataset';

export interface IdxArray {
  /** Dimensions from the header, e.g. [60000, 28, 28]. */
  readonly dims: readonly number[];
  /** prod(dims) unsigned bytes, row-major (a view into the file buffer). */
  readonly data: Uint8Array;
}

const UBYTE = 0x08;

function hex32(v: number): string {
  return '0x' + (v >>> 0).toString(16).padStart(8, '0');
}

/**
 * Parses an in-memory IDX buffer. `source` names the file in error messages;
 * `expectedRank` (1 = labels, 3 = images) checks the magic number.
 */
export function parseIdx(bytes: Uint8Array, source: string, expectedRank?: number): IdxArray {
  if (bytes.length < 4) {
    throw new Error(`IDX file ${source}: ${bytes.length} bytes is shorter than the 4-byte magic number`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const ndim = bytes[3];
  const expectedMagic = expectedRank === undefined ? null : (UBYTE << 8) | expectedRank;
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== UBYTE || (expectedMagic !== null && magic !== expectedMagic)) {
    const want = expectedMagic !== null
      ? `${hex32(expectedMagic)} (unsigned-byte ${expectedRank === 3 ? 'images' : expectedRank === 1 ? 'labels' : `rank-${expectedRank}`})`
      : '0x000008NN (two zero bytes, dtype byte 0x08 = unsigned byte, then the rank)';
    throw new Error(`IDX file ${source}: bad magic number, expected ${want}, found ${hex32(magic)}`);
  }
  if (ndim === 0) throw new Error(`IDX file ${source}: rank 0 in the magic number ${hex32(magic)}, expected at least 1`);
  const headerSize = 4 + 4 * ndim;
  if (bytes.length < headerSize) {
    throw new Error(`IDX file ${source}: ${bytes.length} bytes is shorter than the ${headerSize}-byte header of a rank-${ndim} array`);
  }
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    size *= d;
  }
  const expectedLength = headerSize + size;
  if (bytes.length !== expectedLength) {
    throw new Error(`IDX file ${source}: size ${bytes.length} bytes does not match the header: expected ` +
      `${headerSize} (header) + ${dims.join('*')} (data) = ${expectedLength} bytes`);
  }
  return { dims, data: bytes.subarray(headerSize) };
}

/** Reads a file, inflating it when it is gzip-compressed. */
export function readMaybeGzip(path: string): Uint8Array {
  const raw = fs.readFileSync(path);
  const isGzip = path.endsWith('.gz') || (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b);
  if (!isGzip) return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  try {
    const out = zlib.gunzipSync(raw);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    throw new Error(`IDX file ${path}: could not gunzip (${(e as Error).message})`);
  }
}

/** Reads and parses an IDX file (plain or .gz). */
export function readIdx(path: string, expectedRank?: number): IdxArray {
  return parseIdx(readMaybeGzip(path), path, expectedRank);
}

/** Reads an unsigned-byte image file (magic 0x00000803): pixels [N, H, W]. */
export function readIdxImages(path: string): { count: number; height: number; width: number; pixels: Uint8Array } {
  const { dims, data } = readIdx(path, 3);
  return { count: dims[0], height: dims[1], width: dims[2], pixels: data };
}

/** Reads an unsigned-byte label file (magic 0x00000801) as int32. */
export function readIdxLabels(path: string): Int32Array {
  const { data } = readIdx(path, 1);
  return Int32Array.from(data);
}

/**
 * Builds an ImageDataset from an IDX image file and its label file (MNIST
 * layout: images [N, H, W] uint8, labels [N] uint8). With `limit`, only the
 * first `limit` images are kept (copied, so the full file buffer can be freed).
 */
export function loadIdxDataset(args: {
  name: string;
  split: 'train' | 'test';
  imagesPath: string;
  labelsPath: string;
  classNames: readonly string[];
  limit?: number;
}): ImageDataset {
  const { name, split, imagesPath, labelsPath, classNames, limit } = args;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new Error(`${name}: limit must be a non-negative integer, received ${limit}`);
  }
  const images = readIdxImages(imagesPath);
  const labels = readIdxLabels(labelsPath);
  if (labels.length !== images.count) {
    throw new Error(`${name} ${split}: ${imagesPath} holds ${images.count} images but ${labelsPath} holds ${labels.length} labels`);
  }
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= classNames.length) {
      throw new Error(`${name} ${split}: label ${labels[i]} at index ${i} of ${labelsPath} is outside [0, ${classNames.length})`);
    }
  }
  const n = limit === undefined ? images.count : Math.min(limit, images.count);
  const size = images.height * images.width;
  return validateDataset({
    name,
    split,
    images: images.pixels.slice(0, n * size),
    count: n,
    height: images.height,
    width: images.width,
    channels: 1,
    labels: labels.slice(0, n),
    classNames,
    captions: null,
  });
}
