/**
 * safetensors reader/writer.
 *
 * Reference data: test/fixtures/safetensors/*.safetensors, written by hand with
 * struct + json + numpy by test/fixtures/safetensors/make_fixtures.py (see its
 * docstring for every tensor's values; numpy's float16 cast is the rounding
 * reference, bfloat16 bits were cross-checked against torch when generated).
 * The other direction (our files read by numpy) runs when python3 + numpy exist.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { expectTensors, float16BitsToFloat32, float32BitsToBfloat16Bits, float32BitsToFloat16Bits, fromTfTensors, MAX_HEADER_BYTES, parseSafetensors, SafeTensor, serializeSafetensors, toTfTensors } from '../../src/io/safetensors';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../src/io/safetensorsFile';
import { Rng } from '../../src/backend/random';
import { useBackend } from '../helpers';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'safetensors');
let dir: string;

beforeAll(async () => {
  await useBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Element-wise identity that treats NaN == NaN and distinguishes -0 from 0. */
function expectSameValues(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) throw new Error(`index ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Raw bytes of a tensor as stored in a file (from the validated header). */
async function rawBytes(file: string, name: string): Promise<Uint8Array> {
  const h = await readSafetensorsHeader(file);
  const info = h.tensors.get(name);
  if (!info) throw new Error(`no ${name}`);
  const bytes = fs.readFileSync(file);
  return new Uint8Array(bytes.subarray(h.dataStart + info.dataOffsets[0], h.dataStart + info.dataOffsets[1]));
}

function u16(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.slice().buffer);
}

function get(file: { tensors: Map<string, SafeTensor> }, name: string): SafeTensor {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`no tensor ${name}`);
  return t;
}

// ---------------------------------------------------------------- fixtures written by numpy

describe('reading files written by numpy (fixtures)', () => {
  it('reads every dtype with exact values, shapes and metadata', async () => {
    const f = await readSafetensors(path.join(FIXTURES, 'dtypes.safetensors'));
    expect(f.metadata).toEqual({ format: 'pt', note: 'unicode \u2713 \u00fc' });
    expect([...f.tensors.keys()]).toEqual(['u8_odd', 'f32', 'f32_inf_nan', 'f16', 'f16_nan', 'bf16', 'i32', 'i64', 'u8', 'scalar', 'empty']);
    const f32 = get(f, 'f32');
    expect([f32.dtype, f32.shape]).toEqual(['F32', [2, 3]]);
    // Math.fround: the float32 values numpy stored.
    expectSameValues(f32.data, [0, -0, 1.5, -2.25, Math.fround(1e-45), Math.fround(3.4028235e38)]);
    expectSameValues(get(f, 'f32_inf_nan').data, [Infinity, -Infinity, NaN]);
    const f16 = get(f, 'f16');
    expect([f16.dtype, f16.shape, f16.data instanceof Float32Array]).toEqual(['F16', [2, 5], true]);
    expectSameValues(f16.data, [0, -0, 1, -2.5, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, Infinity, -Infinity]);
    expectSameValues(get(f, 'f16_nan').data, [NaN]);
    const bf16 = get(f, 'bf16');
    expect(bf16.dtype).toBe('BF16');
    expectSameValues(bf16.data, [1, -3.5, 2 ** -133, Math.fround(3.3895314e38)]);
    const i32 = get(f, 'i32');
    expect([i32.dtype, i32.shape, i32.data instanceof Int32Array]).toEqual(['I32', [3, 2], true]);
    expectSameValues(i32.data, [-2147483648, 2147483647, -1, 0, 1, 123456789]);
    const i64 = get(f, 'i64');
    expect([i64.dtype, i64.shape, i64.data instanceof Int32Array]).toEqual(['I64', [4], true]);
    expectSameValues(i64.data, [-2147483648, 2147483647, -1, 42]);
    const u8 = get(f, 'u8');
    expect([u8.dtype, u8.shape, u8.data instanceof Uint8Array]).toEqual(['U8', [2, 2, 2], true]);
    expectSameValues(u8.data, [0, 1, 2, 3, 127, 128, 254, 255]);
    expectSameValues(get(f, 'u8_odd').data, [0, 128, 255]);
    expect(get(f, 'scalar')).toEqual({ dtype: 'F32', shape: [], data: new Float32Array([7.25]) });
    expect(get(f, 'empty')).toEqual({ dtype: 'F32', shape: [0, 3], data: new Float32Array(0) });
  });

  it('header-only read agrees with the full read', async () => {
    const file = path.join(FIXTURES, 'dtypes.safetensors');
    const h = await readSafetensorsHeader(file);
    const f = await readSafetensors(file);
    expect([...h.tensors.keys()]).toEqual([...f.tensors.keys()]);
    expect(h.tensors.get('f16')).toEqual({ dtype: 'F16', shape: [2, 5], dataOffsets: [39, 59] });
    expect(h.metadata).toEqual(f.metadata);
    expect(h.dataStart % 8).toBe(0);
  });

  it('float16 and bfloat16 decode like numpy widening, and encode bit-identically to numpy rounding', async () => {
    const file = path.join(FIXTURES, 'rounding.safetensors');
    const f = await readSafetensors(file);
    // decode
    expectSameValues(get(f, 'f16_numpy').data, get(f, 'f16_widened').data);
    expectSameValues(get(f, 'bf16_numpy').data, get(f, 'bf16_widened').data);
    // encode: our round-to-nearest-even vs numpy's, bit for bit
    for (const [src, ref, enc] of [
      ['f16_source', 'f16_numpy', float32BitsToFloat16Bits],
      ['bf16_source', 'bf16_numpy', float32BitsToBfloat16Bits],
    ] as const) {
      const source = get(f, src).data as Float32Array;
      const bits32 = new Uint32Array(source.buffer, source.byteOffset, source.length);
      const expected = u16(await rawBytes(file, ref));
      expect(source.length).toBeGreaterThan(500);
      for (let i = 0; i < source.length; i++) {
        const ours = enc(bits32[i]);
        if (ours !== expected[i]) throw new Error(`${src}[${i}] = ${source[i]}: ours 0x${ours.toString(16)}, numpy 0x${expected[i].toString(16)}`);
      }
    }
  });

  it('I64 outside int32 is refused, naming the file, tensor and value', async () => {
    const file = path.join(FIXTURES, 'i64_out_of_range.safetensors');
    await expect(readSafetensors(file)).rejects.toThrow(`${file}: tensor 'big' (I64) value 2147483648 at flat index 1 does not fit in int32`);
  });
});

// ---------------------------------------------------------------- half-precision conversion

describe('float16 / bfloat16 conversion', () => {
  it('every float16 value survives decode -> encode exactly (all 65536 bit patterns)', () => {
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    for (let h = 0; h < 65536; h++) {
      f[0] = float16BitsToFloat32(h);
      const back = float32BitsToFloat16Bits(bits[0]);
      const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN16) expect(Number.isNaN(f[0]) && (back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true);
      else if (back !== h) throw new Error(`0x${h.toString(16)} -> ${f[0]} -> 0x${back.toString(16)}`);
    }
  });

  it('closed-form cases: ties to even, subnormals, overflow', () => {
    const bitsOf = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];
    const toHalf = (x: number): number => float16BitsToFloat32(float32BitsToFloat16Bits(bitsOf(x)));
    expect(toHalf(1 + 2 ** -11)).toBe(1); // tie -> even mantissa 0
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9); // tie -> even mantissa 2
    expect(toHalf(65519)).toBe(65504);
    expect(toHalf(65520)).toBe(Infinity); // tie between 65504 (odd) and 2^16 -> inf
    expect(toHalf(2 ** -25)).toBe(0); // tie -> 0
    expect(toHalf(1.5 * 2 ** -25)).toBe(2 ** -24);
    expect(toHalf(2.5 * 2 ** -24)).toBe(2 * 2 ** -24);
    expect(Object.is(toHalf(-1e-9), -0)).toBe(true);
    expect(toHalf(2 ** -14 - 2 ** -25)).toBe(2 ** -14); // rounds up from subnormal into the smallest normal
    const toBf16 = (x: number): number => new Float32Array(new Uint32Array([float32BitsToBfloat16Bits(bitsOf(x)) << 16]).buffer)[0];
    expect(toBf16(1 + 2 ** -8)).toBe(1);
    expect(toBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(toBf16(3.4028234663852886e38)).toBe(Infinity);
    expect(Number.isNaN(toBf16(NaN))).toBe(true);
  });
});

// ---------------------------------------------------------------- round trips

function randomFloats(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * 2 ** (rng.int(20) - 10);
  return a;
}

describe('write -> read round trip', () => {
  const tensors = (): Map<string, SafeTensor> =>
    new Map<string, SafeTensor>([
      ['u8', { dtype: 'U8', shape: [3], data: new Uint8Array([0, 7, 255]) }],
      ['conv.weight', { dtype: 'F32', shape: [3, 3, 2, 4], data: randomFloats(72, 1) }],
      ['special', { dtype: 'F32', shape: [5], data: new Float32Array([NaN, Infinity, -Infinity, -0, 1e-45]) }],
      ['half', { dtype: 'F16', shape: [2, 2], data: new Float32Array([1, -2, 0.5, 65504]) }],
      ['brain', { dtype: 'BF16', shape: [2], data: new Float32Array([1, -3.5]) }],
      ['ids', { dtype: 'I32', shape: [2, 2], data: new Int32Array([-5, 0, 2 ** 31 - 1, -(2 ** 31)]) }],
      ['long', { dtype: 'I64', shape: [3], data: new Int32Array([-1, 2 ** 31 - 1, -(2 ** 31)]) }],
      ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([3]) }],
      ['empty', { dtype: 'I32', shape: [2, 0], data: new Int32Array(0) }],
    ]);

  it('is exact for every dtype, keeps metadata, pads the header and aligns every tensor', () => {
    const input = tensors();
    const bytes = serializeSafetensors(input, { kind: 'test', json: '{"a": [1, 2]}' });
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLen % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
    expect(/ *$/.exec(headerText)?.[0].length ?? 0).toBeLessThan(8); // padded with spaces only
    expect(JSON.parse(headerText).__metadata__).toEqual({ kind: 'test', json: '{"a": [1, 2]}' });
    const out = parseSafetensors(bytes, 'mem');
    expect(out.metadata).toEqual({ kind: 'test', json: '{"a": [1, 2]}' });
    for (const [name, t] of input) {
      const r = get(out, name);
      expect([name, r.dtype, r.shape]).toEqual([name, t.dtype, t.shape]);
      expectSameValues(r.data, t.data);
    }
    // Every tensor starts at a multiple of its element size (absolute file offset).
    const h = JSON.parse(headerText) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    const size: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };
    for (const [name, e] of Object.entries(h)) {
      if (name !== '__metadata__') expect((8 + headerLen + e.data_offsets[0]) % size[e.dtype]).toBe(0);
    }
  });

  it("storage 'float16' stores float tensors as F16 within half precision; ints untouched", () => {
    const input = tensors();
    const out = parseSafetensors(serializeSafetensors(input, {}, { storage: 'float16' }), 'mem');
    const w = get(out, 'conv.weight');
    expect(w.dtype).toBe('F16');
    const ref = get({ tensors: input }, 'conv.weight').data;
    for (let i = 0; i < ref.length; i++) {
      // Normal-range half: relative error <= 2^-11 (half an ulp).
      expect(Math.abs(w.data[i] - ref[i])).toBeLessThanOrEqual(Math.abs(ref[i]) * 2 ** -11);
    }
    expect(get(out, 'brain').dtype).toBe('F16');
    expect(get(out, 'ids').dtype).toBe('I32');
    expect(get(out, 'long').dtype).toBe('I64');
    expectSameValues(get(out, 'special').data, [NaN, Infinity, -Infinity, -0, 0]);
    // 'float32' widens half tensors
    expect(get(parseSafetensors(serializeSafetensors(input, {}, { storage: 'float32' }), 'mem'), 'half').dtype).toBe('F32');
  });

  it('an empty file (no tensors, no metadata) round-trips', () => {
    const out = parseSafetensors(serializeSafetensors(new Map()), 'mem');
    expect(out.tensors.size).toBe(0);
    expect(out.metadata).toEqual({});
  });

  it('writeSafetensors writes atomically to disk and reads back', async () => {
    const file = path.join(dir, 'rt.safetensors');
    await writeSafetensors(file, tensors(), { a: 'b' });
    const out = await readSafetensors(file);
    expect(out.tensors.size).toBe(9);
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('refuses inconsistent tensors on write', () => {
    const bad = (t: SafeTensor): (() => Uint8Array) => () => serializeSafetensors(new Map([['w', t]]));
    expect(bad({ dtype: 'F32', shape: [2, 2], data: new Float32Array(3) })).toThrow("tensor 'w': shape [2, 2] needs 4 values, got 3");
    expect(bad({ dtype: 'I32', shape: [2], data: new Float32Array(2) as unknown as Int32Array })).toThrow(
      "tensor 'w': dtype I32 needs a Int32Array, got Float32Array",
    );
    expect(bad({ dtype: 'F32', shape: [-1], data: new Float32Array(0) })).toThrow('non-negative integers');
    expect(() => serializeSafetensors(new Map(), { n: 3 as unknown as string })).toThrow("metadata 'n' must be a string");
  });
});

// ---------------------------------------------------------------- corrupt files

/** A file from a header object and a data section of `dataBytes` bytes. */
function build(header: unknown, dataBytes: number, opts: { rawHeader?: Uint8Array; lengthOverride?: bigint } = {}): Uint8Array {
  const json = opts.rawHeader ?? new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, opts.lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

const entry = (dtype: string, shape: number[], begin: number, end: number): Record<string, unknown> => ({ dtype, shape, data_offsets: [begin, end] });

describe('corrupt files are refused with the file name and the problem', () => {
  const valid = serializeSafetensors(
    new Map<string, SafeTensor>([
      ['down.0.weight', { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }],
      ['down.0.bias', { dtype: 'F32', shape: [2], data: new Float32Array([5, 6]) }],
    ]),
  );
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty file', new Uint8Array(0), 'file is 0 bytes, too small for the 8-byte header length'],
    ['5-byte file', new Uint8Array(5), 'file is 5 bytes, too small'],
    ['truncated in the data', valid.subarray(0, valid.length - 5), "tensor 'down.0.bias': data_offsets [16, 24] exceed the data section (19 bytes)"],
    ['truncated in the header', valid.subarray(0, 40), 'header length 136 exceeds the 32 bytes after the length prefix (truncated file?)'],
    ['header length 0', build({}, 0, { lengthOverride: BigInt(0) }), 'header length is 0'],
    ['header length too big', build({}, 0, { lengthOverride: BigInt(2) ** BigInt(40) }), `header length 1099511627776 exceeds the ${MAX_HEADER_BYTES}-byte limit`],
    ['header length past the end', build({}, 0, { lengthOverride: BigInt(1000) }), 'header length 1000 exceeds the 2 bytes after the length prefix'],
    ['non-JSON header', build(null, 0, { rawHeader: new TextEncoder().encode('{"a": [1, 2') }), 'header is not valid JSON'],
    ['non-UTF-8 header', build(null, 0, { rawHeader: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), 'header is not valid UTF-8'],
    ['header is an array', build([1, 2], 0), 'header must be a JSON object, got an array'],
    ['overlapping offsets', build({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }, 12), "tensors 'a' [0, 8] and 'b' [4, 12] overlap"],
    ['offsets out of range', build({ 'down.0.weight': entry('F32', [25], 0, 100) }, 64), "tensor 'down.0.weight': data_offsets [0, 100] exceed the data section (64 bytes)"],
    ['begin > end', build({ a: entry('F32', [0], 8, 4) }, 8), "tensor 'a': data_offsets [8, 4] have begin > end"],
    ['unknown dtype', build({ a: entry('Q4', [2], 0, 2) }, 2), "tensor 'a': unknown dtype 'Q4' (supported: F32, F16, BF16, I32, I64, U8)"],
    ['unsupported dtype', build({ a: entry('F64', [1], 0, 8) }, 8), "tensor 'a': unsupported dtype 'F64'"],
    ['wrong byte size', build({ a: entry('F32', [2, 3], 0, 20) }, 20), "tensor 'a': data_offsets [0, 20] hold 20 bytes but F32 [2, 3] needs 24"],
    ['gap', build({ a: entry('U8', [2], 0, 2), b: entry('U8', [2], 4, 6) }, 6), "gap of 2 bytes in the data section before tensor 'b'"],
    ['trailing bytes', build({ a: entry('U8', [2], 0, 2) }, 5), 'data section is 5 bytes but the tensors cover 2 bytes'],
    ['negative shape', build({ a: entry('U8', [-2], 0, 0) }, 0), "tensor 'a': shape must be an array of non-negative integers, got [-2]"],
    ['fractional shape', build({ a: entry('U8', [1.5], 0, 0) }, 0), 'shape must be an array of non-negative integers, got [1.5]'],
    ['missing data_offsets', build({ a: { dtype: 'U8', shape: [1] } }, 1), "tensor 'a': data_offsets must be [begin, end]"],
    ['entry not an object', build({ a: 3 }, 0), "tensor 'a': entry must be an object"],
    ['non-string metadata', build({ __metadata__: { step: 3 } }, 0), "__metadata__ 'step' must be a string, got number"],
  ];

  it.each(cases)('%s', async (label, bytes, message) => {
    const file = path.join(dir, `${label.replace(/\W+/g, '_')}.safetensors`);
    fs.writeFileSync(file, bytes);
    const refusal = async (read: () => Promise<unknown>): Promise<string> => {
      try {
        await read();
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error(`${label}: accepted`);
    };
    for (const msg of [
      await refusal(() => readSafetensors(file)),
      // The header-only reader refuses the same files (it only skips value-level I64 checks).
      await refusal(() => readSafetensorsHeader(file)),
    ]) {
      expect(msg.startsWith(`${file}: `)).toBe(true);
      expect(msg).toContain(message);
    }
    const inMemory = await refusal(async () => parseSafetensors(bytes, 'buffer.safetensors'));
    expect(inMemory.startsWith('buffer.safetensors: ')).toBe(true);
    expect(inMemory).toContain(message);
  });

  it('the unmodified file is accepted (so the cases above test the corruption, not the base)', () => {
    expect(parseSafetensors(valid, 'ok').tensors.size).toBe(2);
  });

  it('a missing file names the path', async () => {
    const file = path.join(dir, 'nope.safetensors');
    await expect(readSafetensors(file)).rejects.toThrow(`${file}: cannot read`);
    await expect(readSafetensorsHeader(file)).rejects.toThrow(`${file}: cannot read`);
  });
});

describe('expectTensors', () => {
  const tensors = new Map([
    ['a', { shape: [2, 3] }],
    ['b', { shape: [4] }],
  ]);
  it('passes when names and shapes match', () => {
    expect(() => expectTensors('f.safetensors', tensors, { a: [2, 3], b: [4] })).not.toThrow();
  });
  it('reports missing names, wrong shapes and unexpected names together', () => {
    expect(() => expectTensors('f.safetensors', tensors, { a: [3, 2], c: [1], d: [] })).toThrow(
      "f.safetensors: missing 2 tensor(s): 'c', 'd'; tensor 'a': expected shape [3, 2], got [2, 3]; unexpected 1 tensor(s): 'b'",
    );
  });
  it('allowExtra ignores extra names', () => {
    expect(() => expectTensors('f.safetensors', tensors, { a: [2, 3] }, { allowExtra: true })).not.toThrow();
    expect(() => expectTensors('f.safetensors', tensors, { a: [2] }, { allowExtra: true })).toThrow("tensor 'a': expected shape [2], got [2, 3]");
  });
});

// ---------------------------------------------------------------- tf helpers

describe('tf helpers', () => {
  it('toTfTensors / fromTfTensors round-trip without leaking tensors', async () => {
    const before = tf.memory().numTensors;
    const input = new Map<string, SafeTensor>([
      ['w', { dtype: 'F16', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }],
      ['i', { dtype: 'I64', shape: [2], data: new Int32Array([-1, 5]) }],
      ['u', { dtype: 'U8', shape: [2], data: new Uint8Array([200, 3]) }],
    ]);
    const tfs = toTfTensors(input);
    expect([...tfs].map(([n, t]) => [n, t.dtype, t.shape])).toEqual([
      ['w', 'float32', [2, 2]],
      ['i', 'int32', [2]],
      ['u', 'int32', [2]],
    ]);
    const back = await fromTfTensors(tfs);
    tfs.forEach((t) => t.dispose());
    expect(back.get('w')).toEqual({ dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) });
    expect(back.get('i')).toEqual({ dtype: 'I32', shape: [2], data: new Int32Array([-1, 5]) });
    expect(back.get('u')).toEqual({ dtype: 'I32', shape: [2], data: new Int32Array([200, 3]) });
    const b = tf.tensor([true, false], [2], 'bool');
    expect((await fromTfTensors(new Map([['b', b]]))).get('b')).toEqual({ dtype: 'U8', shape: [2], data: new Uint8Array([1, 0]) });
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

// ---------------------------------------------------------------- numpy reads our files

const numpyCheck = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
const hasNumpy = numpyCheck.status === 0;

/** Parses a safetensors file with struct + json + numpy and checks it against the expectations passed as JSON. */
const PYTHON_READER = `
import json, struct, sys
import numpy as np
path, expected = sys.argv[1], json.load(open(sys.argv[2]))
raw = open(path, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert n % 8 == 0, 'header not padded to 8'
header = json.loads(raw[8:8 + n].decode('utf-8'))
assert raw[8:8 + n].decode('utf-8').rstrip(' ') == raw[8:8 + n].decode('utf-8').strip(), 'padding must be trailing spaces'
data = raw[8 + n:]
meta = header.pop('__metadata__', {})
assert meta == expected['metadata'], (meta, expected['metadata'])
np_dtype = {'F32': '<f4', 'F16': '<f2', 'I32': '<i4', 'I64': '<i8', 'U8': 'u1', 'BF16': '<u2'}
for name, e in expected['tensors'].items():
    h = header[name]
    assert h['dtype'] == e['dtype'] and h['shape'] == e['shape'], (name, h, e)
    b, en = h['data_offsets']
    a = np.frombuffer(data[b:en], dtype=np_dtype[h['dtype']]).reshape(h['shape'])
    src = np.array(e['source'], dtype=np.float64)
    if h['dtype'] == 'F16':
        # our bits must equal numpy's own float32 -> float16 cast
        want = src.astype(np.float32).astype(np.float16)
        assert np.array_equal(a.view(np.uint16), want.reshape(h['shape']).view(np.uint16)), name
    elif h['dtype'] == 'BF16':
        f = src.astype(np.float32).view(np.uint32).astype(np.uint64)
        want = ((f + 0x7FFF + ((f >> 16) & 1)) >> 16).astype(np.uint16)
        assert np.array_equal(a, want.reshape(h['shape'])), name
    else:
        assert np.array_equal(a, src.astype(a.dtype).reshape(h['shape'])), (name, a, src)
ends = sorted(h['data_offsets'][1] for h in header.values())
assert len(data) == (ends[-1] if ends else 0), 'data section length'
print('ok', len(expected['tensors']))
`;

describe(hasNumpy ? 'numpy reads files we write' : 'numpy reads files we write (SKIPPED: python3 with numpy not available)', () => {
  (hasNumpy ? it : it.skip)('F32, F16, BF16, I32, I64, U8 and metadata match numpy', async () => {
    const f32 = randomFloats(60, 7);
    const f16Source = randomFloats(200, 8);
    f16Source.set([65519, 65520, 2 ** -25, 1.5 * 2 ** -25, 1e-8, 1 + 2 ** -11], 0);
    const bf16Source = randomFloats(100, 9);
    const tensors = new Map<string, SafeTensor>([
      ['f32', { dtype: 'F32', shape: [3, 4, 5], data: f32 }],
      ['f16', { dtype: 'F16', shape: [200], data: f16Source }],
      ['bf16', { dtype: 'BF16', shape: [10, 10], data: bf16Source }],
      ['i32', { dtype: 'I32', shape: [2, 2], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0, -7]) }],
      ['i64', { dtype: 'I64', shape: [3], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, -1]) }],
      ['u8', { dtype: 'U8', shape: [3], data: new Uint8Array([1, 128, 255]) }],
      ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([0.25]) }],
    ]);
    const metadata = { kind: 'unet', config: JSON.stringify({ channels: [32, 64], note: 'ü' }) };
    const file = path.join(dir, 'for_numpy.safetensors');
    await writeSafetensors(file, tensors, metadata);
    const expected = {
      metadata,
      tensors: Object.fromEntries([...tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, source: Array.from(t.data) }])),
    };
    const expectedFile = path.join(dir, 'expected.json');
    fs.writeFileSync(expectedFile, JSON.stringify(expected));
    const r = spawnSync('python3', ['-c', PYTHON_READER, file, expectedFile], { encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) throw new Error(`python check failed:\n${r.stdout}\n${r.stderr}`);
    expect(r.stdout.trim()).toBe('ok 7');
  });
});
