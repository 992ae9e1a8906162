import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadImageFolder, parseCaptionsJsonl } from '../../src/data/imageFolder';
import { loadDataset } from '../../src/data/load';
import { savePng } from '../../src/io/png';

/** A 2x3 RGB image whose bytes are v, v+1, ... */
const rgb = (v: number): Uint8Array => Uint8Array.from({ length: 18 }, (_, i) => v + i);

describe('image folder', () => {
  let root: string;
  const folder = (name: string, files: Record<string, [Uint8Array, number, number, number]>, captions?: string): string => {
    const dir = path.join(root, name);
    fs.mkdirSync(dir);
    for (const [f, [px, h, w, c]] of Object.entries(files)) savePng(path.join(dir, f), px, h, w, c);
    if (captions !== undefined) fs.writeFileSync(path.join(dir, 'captions.jsonl'), captions);
    return dir;
  };
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgfolder-'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('loads images in captions.jsonl order with captions and labels', () => {
    const dir = folder('shapes', { 'a.png': [rgb(0), 2, 3, 3], 'b.png': [rgb(100), 2, 3, 3], 'unlisted.png': [rgb(7), 2, 3, 3] },
      '{"file": "b.png", "caption": "a blue square", "label": 1}\n\n{"file": "a.png", "caption": "a red circle", "label": 0}\n');
    const d = loadImageFolder(dir, { classNames: ['circle', 'square'] });
    expect([d.name, d.split, d.count, d.height, d.width, d.channels]).toEqual(['shapes', 'train', 2, 2, 3, 3]);
    expect(Array.from(d.images)).toEqual([...rgb(100), ...rgb(0)]);
    expect(d.captions).toEqual(['a blue square', 'a red circle']);
    expect(Array.from(d.labels!)).toEqual([1, 0]);
    expect(d.classNames).toEqual(['circle', 'square']);
    const limited = loadDataset('image-folder', 'test', { dataDir: dir, limit: 1 });
    expect([limited.split, limited.count, limited.captions]).toEqual(['test', 1, ['a blue square']]);
  });

  it('without captions.jsonl loads every PNG in name order, unlabelled', () => {
    const gray = (v: number): Uint8Array => new Uint8Array(4).fill(v);
    const dir = folder('plain', { 'z.png': [gray(9), 2, 2, 1], 'm.png': [gray(5), 2, 2, 1] });
    const d = loadImageFolder(dir);
    expect([d.count, d.channels, d.captions, d.labels]).toEqual([2, 1, null, null]);
    expect(Array.from(d.images)).toEqual([5, 5, 5, 5, 9, 9, 9, 9]);
  });

  it('names the odd file when sizes or channels differ', () => {
    const dir = folder('mixed', { 'a.png': [rgb(0), 2, 3, 3], 'b.png': [new Uint8Array(6), 2, 3, 1] },
      '{"file": "a.png", "caption": "x"}\n{"file": "b.png", "caption": "y"}\n');
    expect(() => loadImageFolder(dir)).toThrow(/b\.png is 2x3x1 \(HxWxC\), expected 2x3x3 like a\.png/);
    const dir2 = folder('sizes', { 'a.png': [rgb(0), 2, 3, 3], 'b.png': [rgb(0), 3, 2, 3] });
    expect(() => loadImageFolder(dir2)).toThrow(/b\.png is 3x2x3/);
  });

  it('reports bad caption lines with line numbers', () => {
    const src = 'captions.jsonl';
    expect(() => parseCaptionsJsonl('{"file": "a.png", "caption": "ok"}\n{"file": "b.png", caption: "no quotes"}', src))
      .toThrow(/captions\.jsonl line 2: invalid JSON/);
    expect(() => parseCaptionsJsonl('\n\n[1, 2]', src)).toThrow(/line 3: expected an object/);
    expect(() => parseCaptionsJsonl('{"caption": "x"}', src)).toThrow(/line 1: "file" must be a non-empty string, found undefined/);
    expect(() => parseCaptionsJsonl('{"file": "a.png", "caption": 3}', src)).toThrow(/line 1: "caption" must be a string, found 3/);
    expect(() => parseCaptionsJsonl('{"file": "a.png", "caption": "x", "label": 1.5}', src)).toThrow(/"label" must be a non-negative integer, found 1.5/);
    expect(() => parseCaptionsJsonl('{"file": "a.png", "caption": "x", "label": 1}\n{"file": "b.png", "caption": "y"}', src))
      .toThrow(/line 2: "label" is given on some lines but not others/);
    expect(() => parseCaptionsJsonl('{"file": "a.png", "caption": "x"}\n{"file": "b.png", "caption": "y", "label": 0}', src))
      .toThrow(/line 2: "label" is given on some lines/);
  });

  it('reports missing files, empty folders and labels outside classNames', () => {
    const dir = folder('missing', { 'a.png': [rgb(0), 2, 3, 3] }, '{"file": "a.png", "caption": "x"}\n{"file": "gone.png", "caption": "y"}\n');
    expect(() => loadImageFolder(dir)).toThrow(/gone\.png listed in captions\.jsonl does not exist/);
    expect(() => loadImageFolder(folder('empty', {}))).toThrow(/no images/);
    expect(() => loadImageFolder(path.join(root, 'absent'))).toThrow(/does not exist/);
    const lab = folder('labels', { 'a.png': [rgb(0), 2, 3, 3] }, '{"file": "a.png", "caption": "x", "label": 2}\n');
    expect(() => loadImageFolder(lab, { classNames: ['p', 'q'] })).toThrow(/label 2 at index 0 is outside \[0, 2\)/);
    expect(() => loadDataset('image-folder', 'train')).toThrow(/needs a data folder/);
  });

  it('loads the committed tiny-shapes fixture', () => {
    const d = loadImageFolder(path.join(__dirname, '..', 'fixtures', 'data', 'tiny-shapes'), { classNames: ['circle', 'square', 'triangle'] });
    expect([d.name, d.count, d.height, d.width, d.channels]).toEqual(['tiny-shapes', 6, 16, 16, 3]);
    expect(d.captions![0]).toBe('a red circle');
    expect(Array.from(d.labels!)).toEqual([0, 1, 2, 0, 1, 2]);
    const pixel = (i: number, y: number, x: number): number[] => Array.from(d.images.subarray(((i * 16 + y) * 16 + x) * 3, ((i * 16 + y) * 16 + x) * 3 + 3));
    expect(pixel(0, 8, 8)).toEqual([220, 30, 30]); // centre of the red circle
    expect(pixel(3, 8, 8)).toEqual([30, 60, 220]); // centre of the blue circle
    expect(pixel(0, 0, 0)).toEqual([255, 255, 255]); // white corner
    expect(pixel(1, 3, 3)).toEqual([220, 30, 30]); // the square fills its corner region, the circle does not
    expect(pixel(0, 3, 3)).toEqual([255, 255, 255]);
  });
});
