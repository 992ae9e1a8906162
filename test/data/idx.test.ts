import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { parseIdx, readIdx, readIdxImages, readIdxLabels, loadIdxDataset } from '../../src/data/idx';

/** An IDX buffer written byte by byte: magic (2 zero bytes, dtype, rank), big-endian dims, data. */
function idxBytes(dtype: number, dims: number[], data: number[]): Uint8Array {
  const header = [0, 0, dtype, dims.length];
  for (const d of dims) header.push((d >>> 24) & 255, (d >>> 16) & 255, (d >>> 8) & 255, d & 255);
  return Uint8Array.from([...header, ...data]);
}

const IMAGES = idxBytes(0x08, [2, 2, 3], [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
const LABELS = idxBytes(0x08, [2], [7, 3]);

describe('parseIdx', () => {
  it('parses a rank-3 image buffer', () => {
    // Hand-checked header: 00 00 08 03 | 00 00 00 02 | 00 00 00 02 | 00 00 00 03
    expect(Array.from(IMAGES.subarray(0, 16))).toEqual([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]);
    const a = parseIdx(IMAGES, 'mem', 3);
    expect(a.dims).toEqual([2, 2, 3]);
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
  });

  it('parses a rank-1 label buffer and large dims', () => {
    expect(Array.from(parseIdx(LABELS, 'mem', 1).data)).toEqual([7, 3]);
    const big = idxBytes(0x08, [70000], new Array<number>(70000).fill(1));
    expect(parseIdx(big, 'mem', 1).dims).toEqual([70000]);
  });

  it('rejects a wrong dtype byte, naming expected and found magic', () => {
    const bad = idxBytes(0x0d, [2], [7, 3]); // 0x0D = float
    expect(() => parseIdx(bad, 'labels.idx', 1)).toThrow(/labels\.idx: bad magic number, expected 0x00000801.*found 0x00000d01/);
    expect(() => parseIdx(bad, 'x')).toThrow(/found 0x00000d01/);
  });

  it('rejects nonzero leading bytes and a label file read as images', () => {
    const bad = Uint8Array.from(LABELS);
    bad[0] = 1;
    expect(() => parseIdx(bad, 'f', 1)).toThrow(/bad magic number.*found 0x01000801/);
    expect(() => parseIdx(LABELS, 'lab', 3)).toThrow(/expected 0x00000803 \(unsigned-byte images\), found 0x00000801/);
  });

  it('rejects a truncated or over-long file with the expected size', () => {
    expect(() => parseIdx(IMAGES.subarray(0, IMAGES.length - 1), 'img', 3))
      .toThrow(/img: size 27 bytes does not match the header: expected 16 \(header\) \+ 2\*2\*3 \(data\) = 28 bytes/);
    const long = Uint8Array.from([...IMAGES, 0]);
    expect(() => parseIdx(long, 'img', 3)).toThrow(/size 29 bytes.*= 28 bytes/);
  });

  it('rejects buffers shorter than the magic number or the header', () => {
    expect(() => parseIdx(Uint8Array.from([0, 0]), 'tiny')).toThrow(/tiny: 2 bytes is shorter than the 4-byte magic/);
    expect(() => parseIdx(IMAGES.subarray(0, 10), 'hdr', 3)).toThrow(/hdr: 10 bytes is shorter than the 16-byte header/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 8, 0]), 'r0')).toThrow(/r0: rank 0/);
  });
});

describe('readIdx from files', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idx-'));
    fs.writeFileSync(path.join(dir, 'img-idx3-ubyte'), IMAGES);
    fs.writeFileSync(path.join(dir, 'img-idx3-ubyte.gz'), zlib.gzipSync(IMAGES));
    fs.writeFileSync(path.join(dir, 'gz-without-extension'), zlib.gzipSync(LABELS));
    fs.writeFileSync(path.join(dir, 'lab-idx1-ubyte'), LABELS);
    fs.writeFileSync(path.join(dir, 'broken.gz'), Uint8Array.from([0x1f, 0x8b, 1, 2, 3]));
    fs.writeFileSync(path.join(dir, 'lab3-idx1-ubyte'), idxBytes(8, [3], [1, 2, 3]));
    fs.writeFileSync(path.join(dir, 'badlab-idx1-ubyte'), idxBytes(8, [2], [1, 12]));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads plain and gzipped files identically', () => {
    const plain = readIdxImages(path.join(dir, 'img-idx3-ubyte'));
    const gz = readIdxImages(path.join(dir, 'img-idx3-ubyte.gz'));
    expect([gz.count, gz.height, gz.width]).toEqual([2, 2, 3]);
    expect(Array.from(gz.pixels)).toEqual(Array.from(plain.pixels));
    expect(Array.from(readIdx(path.join(dir, 'gz-without-extension'), 1).data)).toEqual([7, 3]);
    expect(readIdxLabels(path.join(dir, 'lab-idx1-ubyte'))).toEqual(Int32Array.from([7, 3]));
  });

  it('names the file in errors', () => {
    const p = path.join(dir, 'lab-idx1-ubyte');
    expect(() => readIdxImages(p)).toThrow(p);
    expect(() => readIdx(path.join(dir, 'broken.gz'))).toThrow(/broken\.gz: could not gunzip/);
  });

  it('builds a dataset and checks the image/label counts agree', () => {
    const d = loadIdxDataset({
      name: 't', split: 'train', imagesPath: path.join(dir, 'img-idx3-ubyte'), labelsPath: path.join(dir, 'lab-idx1-ubyte'),
      classNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'],
    });
    expect([d.count, d.height, d.width, d.channels]).toEqual([2, 2, 3, 1]);
    expect(Array.from(d.labels ?? [])).toEqual([7, 3]);
    const one = loadIdxDataset({
      name: 't', split: 'train', imagesPath: path.join(dir, 'img-idx3-ubyte'), labelsPath: path.join(dir, 'lab-idx1-ubyte'),
      classNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], limit: 1,
    });
    expect(Array.from(one.images)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(() => loadIdxDataset({
      name: 't', split: 'train', imagesPath: path.join(dir, 'img-idx3-ubyte'), labelsPath: path.join(dir, 'lab3-idx1-ubyte'),
      classNames: ['a', 'b', 'c', 'd'],
    })).toThrow(/holds 2 images but .*lab3-idx1-ubyte holds 3 labels/);
    expect(() => loadIdxDataset({
      name: 't', split: 'test', imagesPath: path.join(dir, 'img-idx3-ubyte'), labelsPath: path.join(dir, 'badlab-idx1-ubyte'),
      classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    })).toThrow(/label 12 at index 1 .*outside \[0, 10\)/);
  });
});
