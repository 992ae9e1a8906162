/**
 * safetensors: the checkpoint format shared with PyTorch / diffusers
 * (https://github.com/huggingface/safetensors, "Format" section of its README).
 *
 *   [8 bytes]  N, unsigned little-endian 64-bit: the header length
 *   [N bytes]  UTF-8 JSON object:
 *                { "<name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] },
 *                  ...,
 *                  "__metadata__": { "<key>": "<string value>" } }      (optional)
 *   [rest]     the data section: raw little-endian, row-major tensor bytes;
 *              data_offsets are relative to its start.
 *
 * Loading validates the whole layout before touching any data and evaluates nothing
 * (the header is JSON, never code). Like the reference implementation it requires the
 * tensors to tile the data section exactly: no overlaps, no gaps, no trailing bytes.
 * Unknown fields inside a tensor entry are ignored (as the reference does).
 *
 * Dtypes. Read and written: F32, F16, BF16, I32, I64, U8. In memory every float dtype
 * is a Float32Array (F16 and BF16 widen exactly), I32 and I64 are Int32Array, U8 is
 * Uint8Array. I64 is read into int32: a value outside [-2^31, 2^31) is an error that
 * names the tensor and the index (TF.js has no int64; ids and step counters fit).
 * The `dtype` field always says how the tensor is (or will be) stored in the file.
 * Writing F16/BF16 rounds float32 to nearest, ties to even, with subnormals,
 * +-inf and NaN handled; values beyond the F16 range become +-inf, as in numpy.
 *
 * Writing follows the reference: the header is padded with spaces to a multiple of 8
 * bytes and tensors are laid out by decreasing element size (so each one is aligned
 * to its own element size), in insertion order otherwise.
 */
import * as tf from '@tensorflow/tfjs';

// ---------------------------------------------------------------- types

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';
export type SafeFloatDType = 'F32' | 'F16' | 'BF16';
export type SafeIntDType = 'I32' | 'I64';

/** One tensor in memory. `dtype` is the on-disk dtype; `data` is row-major, length prod(shape). */
export type SafeTensor =
  | { dtype: SafeFloatDType; shape: number[]; data: Float32Array }
  | { dtype: SafeIntDType; shape: number[]; data: Int32Array }
  | { dtype: 'U8'; shape: number[]; data: Uint8Array };

/** A tensor's header entry (no data). `dataOffsets` are relative to the data section. */
export interface SafeTensorInfo {
  dtype: SafeDType;
  shape: number[];
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** Entries in data-offset order. */
  tensors: Map<string, SafeTensorInfo>;
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

export interface SafetensorsFile {
  /** Tensors in data-offset order. */
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

export interface SerializeOptions {
  /**
   * Storage dtype for every float tensor: 'float32' writes F32, 'float16' writes F16
   * (half the size; ~3 significant digits, range +-65504). Default: each tensor's own dtype.
   */
  storage?: 'float32' | 'float16';
}

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<SafeDType, number>> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };

/** Dtypes the reference knows that this reader refuses, so the error can say "unsupported" rather than "unknown". */
const KNOWN_UNSUPPORTED = ['BOOL', 'I8', 'I16', 'U16', 'U32', 'U64', 'F64', 'F8_E5M2', 'F8_E4M3'];

/** The reference implementation's bound: headers above 100 MB are refused before parsing. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

// ---------------------------------------------------------------- float16 / bfloat16

/**
 * float32 bits -> float16 bits, round to nearest, ties to even (IEEE 754 default;
 * the same result as numpy's `astype(np.float16)`). Handles subnormals, overflow to
 * inf, +-0, +-inf, and NaN (kept NaN, with the top payload bits).
 */
export function float32BitsToFloat16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00; // +-inf
    const payload = mant >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 1 : payload); // NaN stays NaN (as numpy does)
  }
  if (exp >= 143) return sign | 0x7c00; // |x| >= 2^16: beyond F16 even after rounding
  if (exp <= 112) {
    // |x| < 2^-14: F16 subnormal (value h * 2^-24) or zero.
    if (exp < 102) return sign; // |x| < 2^-25: rounds to zero (2^-25 itself is a tie to the even 0)
    const m = mant | 0x800000; // 24-bit significand, x = m * 2^(exp - 150)
    const shift = 126 - exp; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h += 1; // may carry into the smallest normal: still correct
    return sign | h;
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits.
  let h = ((exp - 112) << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1; // a carry can round up to inf: correct
  return sign | h;
}

let f16Table: Float32Array | null = null;

/** All 65536 float16 values as float32 (exact), built once. */
function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** float16 bits -> float32 value (exact). */
export function float16BitsToFloat32(h: number): number {
  return float16Table()[h & 0xffff];
}

/** float32 bits -> bfloat16 bits (the top 16 bits), round to nearest, ties to even; NaN stays NaN. */
export function float32BitsToBfloat16Bits(f: number): number {
  if ((f & 0x7fffffff) > 0x7f800000) return ((f >>> 16) & 0xffff) | 0x40; // NaN: force a quiet payload bit
  const lsb = (f >>> 16) & 1;
  return ((f + 0x7fff + lsb) >>> 16) & 0xffff; // can round up to inf: correct
}

// ---------------------------------------------------------------- helpers

function isLittleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function assertLittleEndianHost(): void {
  if (!isLittleEndianHost()) throw new Error('safetensors: big-endian hosts are not supported (data is little-endian)');
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSafeDType(s: string): s is SafeDType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A fresh, aligned copy of `len` bytes at `offset` (source offsets need not be aligned). */
function copyBytes(bytes: Uint8Array, offset: number, len: number): ArrayBuffer {
  const out = new Uint8Array(len);
  out.set(bytes.subarray(offset, offset + len));
  return out.buffer;
}

// ---------------------------------------------------------------- header validation

/**
 * Validates a header (the decoded JSON) against a data section of `dataLength` bytes.
 * Everything is checked here; every failure names `source` and the problem.
 */
function validateHeader(header: unknown, dataLength: number, source: string): { tensors: Map<string, SafeTensorInfo>; metadata: Record<string, string> } {
  if (!isPlainObject(header)) {
    throw new Error(`${source}: header must be a JSON object, got ${Array.isArray(header) ? 'an array' : String(header === null ? 'null' : typeof header)}`);
  }
  const metadata: Record<string, string> = {};
  const entries: Array<[string, SafeTensorInfo]> = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (value === null) continue; // the reference reads `null` as "no metadata"
      if (!isPlainObject(value)) throw new Error(`${source}: __metadata__ must be an object of string values`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${source}: __metadata__ '${k}' must be a string, got ${v === null ? 'null' : typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push([name, validateEntry(name, value, dataLength, source)]);
  }
  // The tensors must tile [0, dataLength) exactly, as the reference requires.
  entries.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let end = 0;
  let prev: [string, SafeTensorInfo] | null = null;
  for (const e of entries) {
    const [begin, stop] = e[1].dataOffsets;
    if (begin < end && prev) {
      throw new Error(
        `${source}: tensors '${prev[0]}' [${prev[1].dataOffsets.join(', ')}] and '${e[0]}' [${begin}, ${stop}] overlap`,
      );
    }
    if (begin > end) throw new Error(`${source}: gap of ${begin - end} bytes in the data section before tensor '${e[0]}' (offset ${end} to ${begin})`);
    end = stop;
    prev = e;
  }
  if (end !== dataLength) {
    throw new Error(`${source}: data section is ${dataLength} bytes but the tensors cover ${end} bytes (trailing data or a corrupt header)`);
  }
  return { tensors: new Map(entries), metadata };
}

function validateEntry(name: string, value: unknown, dataLength: number, source: string): SafeTensorInfo {
  const what = `${source}: tensor '${name}'`;
  if (!isPlainObject(value)) throw new Error(`${what}: entry must be an object {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw new Error(`${what}: dtype must be a string, got ${JSON.stringify(dtype) ?? 'nothing'}`);
  if (!isSafeDType(dtype)) {
    const supported = Object.keys(DTYPE_SIZE).join(', ');
    const kind = KNOWN_UNSUPPORTED.includes(dtype) ? 'unsupported' : 'unknown';
    throw new Error(`${what}: ${kind} dtype '${dtype}' (supported: ${supported})`);
  }
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${what}: shape must be an array of non-negative integers, got ${JSON.stringify(shape) ?? 'nothing'}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o): o is number => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new Error(`${what}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets) ?? 'nothing'}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new Error(`${what}: data_offsets [${begin}, ${end}] have begin > end`);
  if (end > dataLength) throw new Error(`${what}: data_offsets [${begin}, ${end}] exceed the data section (${dataLength} bytes)`);
  const need = product(shape) * DTYPE_SIZE[dtype];
  if (end - begin !== need) {
    throw new Error(`${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${fmtShape(shape)} needs ${need}`);
  }
  return { dtype, shape: [...shape], dataOffsets: [begin, end] };
}

/** Reads and checks the 8-byte length prefix; returns the header length. */
function headerLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new Error(`${source}: file is ${fileSize} bytes, too small for the 8-byte header length (not a safetensors file, or truncated)`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === BigInt(0)) throw new Error(`${source}: header length is 0`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`${source}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  if (n > BigInt(fileSize - 8)) {
    throw new Error(`${source}: header length ${n} exceeds the ${fileSize - 8} bytes after the length prefix (truncated file?)`);
  }
  return Number(n);
}

function decodeHeaderJson(headerBytes: Uint8Array, source: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new Error(`${source}: header is not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: header is not valid JSON (${(e as Error).message})`);
  }
}

// ---------------------------------------------------------------- decoding

function decodeTensor(name: string, info: SafeTensorInfo, bytes: Uint8Array, dataStart: number, source: string): SafeTensor {
  const [begin, end] = info.dataOffsets;
  const offset = dataStart + begin;
  const len = end - begin;
  const count = product(info.shape);
  const shape = [...info.shape];
  switch (info.dtype) {
    case 'F32':
      return { dtype: 'F32', shape, data: new Float32Array(copyBytes(bytes, offset, len)) };
    case 'F16': {
      const bits = new Uint16Array(copyBytes(bytes, offset, len));
      const table = float16Table();
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = table[bits[i]];
      return { dtype: 'F16', shape, data };
    }
    case 'BF16': {
      const bits = new Uint16Array(copyBytes(bytes, offset, len));
      const wide = new Uint32Array(count);
      for (let i = 0; i < count; i++) wide[i] = bits[i] << 16;
      return { dtype: 'BF16', shape, data: new Float32Array(wide.buffer) };
    }
    case 'I32':
      return { dtype: 'I32', shape, data: new Int32Array(copyBytes(bytes, offset, len)) };
    case 'I64': {
      const words = new Int32Array(copyBytes(bytes, offset, len)); // [lo, hi] pairs
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const lo = words[2 * i];
        const hi = words[2 * i + 1];
        if (hi !== lo >> 31) {
          const value = new BigInt64Array(words.buffer, 8 * i, 1)[0];
          throw new Error(`${source}: tensor '${name}' (I64) value ${value} at flat index ${i} does not fit in int32 (I64 is read as int32)`);
        }
        data[i] = lo;
      }
      return { dtype: 'I64', shape, data };
    }
    case 'U8':
      return { dtype: 'U8', shape, data: bytes.slice(offset, offset + len) };
  }
}

// ---------------------------------------------------------------- reading

/**
 * Validates the header of a file of `fileSize` bytes from its first bytes: `prefix` holds
 * at least the 8 length bytes; returns the header length N when `prefix` is shorter than
 * 8 + N (read that many and call again), else the parsed header.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileSize: number, sourceName: string): SafetensorsHeader | { needBytes: number } {
  const n = headerLength(prefix.subarray(0, 8), fileSize, sourceName);
  if (prefix.byteLength < 8 + n) return { needBytes: 8 + n };
  const json = decodeHeaderJson(prefix.subarray(8, 8 + n), sourceName);
  const { tensors, metadata } = validateHeader(json, fileSize - 8 - n, sourceName);
  return { tensors, metadata, dataStart: 8 + n };
}

/**
 * Parses a whole safetensors file held in memory. Synchronous; validates everything
 * first. `sourceName` (usually the path) starts every error message.
 */
export function parseSafetensors(bytes: Uint8Array, sourceName: string): SafetensorsFile {
  assertLittleEndianHost();
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, sourceName);
  const json = decodeHeaderJson(bytes.subarray(8, 8 + n), sourceName);
  const dataStart = 8 + n;
  const { tensors: infos, metadata } = validateHeader(json, bytes.byteLength - dataStart, sourceName);
  const tensors = new Map<string, SafeTensor>();
  for (const [name, info] of infos) tensors.set(name, decodeTensor(name, info, bytes, dataStart, sourceName));
  return { tensors, metadata };
}

/**
 * Checks that `tensors` holds every expected name with the expected shape, and (unless
 * `allowExtra`) nothing else. One error lists every problem, naming `file`.
 */
export function expectTensors(
  file: string,
  tensors: ReadonlyMap<string, { readonly shape: readonly number[] }>,
  expected: Readonly<Record<string, readonly number[]>>,
  options: { allowExtra?: boolean } = {},
): void {
  const problems: string[] = [];
  const missing = Object.keys(expected).filter((n) => !tensors.has(n));
  if (missing.length > 0) problems.push(`missing ${missing.length} tensor(s): ${listNames(missing)}`);
  for (const [name, shape] of Object.entries(expected)) {
    const t = tensors.get(name);
    if (t && !(t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]))) {
      problems.push(`tensor '${name}': expected shape ${fmtShape(shape)}, got ${fmtShape(t.shape)}`);
    }
  }
  if (!options.allowExtra) {
    const extra = [...tensors.keys()].filter((n) => !Object.prototype.hasOwnProperty.call(expected, n));
    if (extra.length > 0) problems.push(`unexpected ${extra.length} tensor(s): ${listNames(extra)}`);
  }
  if (problems.length > 0) throw new Error(`${file}: ${problems.join('; ')}`);
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 8).map((n) => `'${n}'`).join(', ');
  return names.length > 8 ? `${shown}, ... (${names.length - 8} more)` : shown;
}

// ---------------------------------------------------------------- writing

/** Checks a tensor before writing: name, dtype vs array type, length vs shape. */
function validateForWrite(name: string, t: SafeTensor): void {
  const what = `tensor '${name}'`;
  if (name.length === 0 || name === METADATA_KEY) throw new Error(`${what}: invalid tensor name`);
  if (!isSafeDType(t.dtype)) throw new Error(`${what}: unknown dtype '${String(t.dtype)}'`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`${what}: shape ${fmtShape(t.shape)} must hold non-negative integers`);
  const wantArray = t.dtype === 'U8' ? Uint8Array : t.dtype === 'I32' || t.dtype === 'I64' ? Int32Array : Float32Array;
  if (!(t.data instanceof wantArray)) {
    throw new Error(`${what}: dtype ${t.dtype} needs a ${wantArray.name}, got ${(t.data as object).constructor.name}`);
  }
  if (t.data.length !== product(t.shape)) {
    throw new Error(`${what}: shape ${fmtShape(t.shape)} needs ${product(t.shape)} values, got ${t.data.length}`);
  }
}

function storedDType(t: SafeTensor, storage: SerializeOptions['storage']): SafeDType {
  if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') {
    if (storage === 'float16') return 'F16';
    if (storage === 'float32') return 'F32';
  }
  return t.dtype;
}

/** Writes `t` as `dtype` into `out` (a view of exactly its byte range). */
function encodeTensor(t: SafeTensor, dtype: SafeDType, out: Uint8Array): void {
  const count = t.data.length;
  switch (dtype) {
    case 'F32':
    case 'I32':
    case 'U8':
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      return;
    case 'F16':
    case 'BF16': {
      const src = t.data as Float32Array;
      const bits32 = new Uint32Array(src.buffer, src.byteOffset, count);
      const bits = new Uint16Array(count);
      const convert = dtype === 'F16' ? float32BitsToFloat16Bits : float32BitsToBfloat16Bits;
      for (let i = 0; i < count; i++) bits[i] = convert(bits32[i]);
      out.set(new Uint8Array(bits.buffer));
      return;
    }
    case 'I64': {
      const src = t.data as Int32Array;
      const words = new Int32Array(2 * count);
      for (let i = 0; i < count; i++) {
        words[2 * i] = src[i];
        words[2 * i + 1] = src[i] >> 31; // sign extension
      }
      out.set(new Uint8Array(words.buffer));
      return;
    }
  }
}

/** Encodes tensors and string metadata as safetensors bytes. */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, SafeTensor>,
  metadata: Readonly<Record<string, string>> = {},
  options: SerializeOptions = {},
): Uint8Array {
  assertLittleEndianHost();
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`metadata '${k}' must be a string, got ${typeof v}`);
  }
  const plan: Array<{ name: string; t: SafeTensor; dtype: SafeDType }> = [];
  for (const [name, t] of tensors) {
    validateForWrite(name, t);
    plan.push({ name, t, dtype: storedDType(t, options.storage) });
  }
  // Larger elements first (stable): every tensor starts at a multiple of its element size.
  plan.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype]);

  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  let offset = 0;
  const ranges: Array<[number, number]> = [];
  for (const { name, t, dtype } of plan) {
    const len = t.data.length * DTYPE_SIZE[dtype];
    ranges.push([offset, offset + len]);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + len] };
    offset += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded); // spaces, as the reference pads
  const dataStart = 8 + padded;
  plan.forEach(({ t, dtype }, i) => encodeTensor(t, dtype, out.subarray(dataStart + ranges[i][0], dataStart + ranges[i][1])));
  return out;
}

// ---------------------------------------------------------------- tf helpers

/**
 * Creates tf tensors (the caller owns and disposes them): float dtypes -> float32,
 * I32/I64 -> int32, U8 -> int32 (TF.js has no uint8 dtype).
 */
export function toTfTensors(tensors: ReadonlyMap<string, SafeTensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  try {
    for (const [name, t] of tensors) {
      if (t.dtype === 'U8') out.set(name, tf.tensor(Int32Array.from(t.data), t.shape, 'int32'));
      else if (t.dtype === 'I32' || t.dtype === 'I64') out.set(name, tf.tensor(t.data, t.shape, 'int32'));
      else out.set(name, tf.tensor(t.data, t.shape, 'float32'));
    }
  } catch (e) {
    out.forEach((t) => t.dispose());
    throw e;
  }
  return out;
}

/**
 * Downloads tf tensors (with `await data()`) into SafeTensors: float32 -> F32,
 * int32 -> I32, bool -> U8. Other tf dtypes are refused. Does not dispose the inputs.
 */
export async function fromTfTensors(tensors: ReadonlyMap<string, tf.Tensor>): Promise<Map<string, SafeTensor>> {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    const shape = [...t.shape];
    if (t.dtype === 'float32') out.set(name, { dtype: 'F32', shape, data: Float32Array.from(await t.data<'float32'>()) });
    else if (t.dtype === 'int32') out.set(name, { dtype: 'I32', shape, data: Int32Array.from(await t.data<'int32'>()) });
    else if (t.dtype === 'bool') out.set(name, { dtype: 'U8', shape, data: Uint8Array.from(await t.data<'bool'>()) });
    else throw new Error(`tensor '${name}': tf dtype '${t.dtype}' cannot be stored in safetensors here (float32, int32, bool)`);
  }
  return out;
}
