import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openMetricsLog, readMetricsFile, removeStaleTempFiles } from '../../src/train/runFolder';
import { tempPathFor } from '../../src/io/atomicWrite';

interface Row { step: number; loss: number }

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'run-folder-'));
}

describe('metrics log', () => {
  it('a resumed run keeps the rows up to its step, a fresh one starts empty; appends one line per row', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    fs.writeFileSync(file, [1, 2, 3, 4].map((s) => JSON.stringify({ step: s, loss: 1 / s }) + '\n').join(''));
    const resumed = openMetricsLog<Row>(file, 2, true);
    expect(resumed.resumedRows.map((r) => r.step)).toEqual([1, 2]);
    resumed.append({ step: 3, loss: 0.5 });
    expect(resumed.read().map((r) => [r.step, r.loss])).toEqual([[1, 1], [2, 0.5], [3, 0.5]]);
    expect(resumed.read(2)).toHaveLength(2);
    const fresh = openMetricsLog<Row>(file, 0, false);
    expect(fresh.resumedRows).toEqual([]);
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });

  it('drops a torn last line (a kill mid-append) with a warning naming the file, so the resume goes on', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    fs.writeFileSync(file, `${JSON.stringify({ step: 1, loss: 1 })}\n{"step":2,"lo`);
    const warnings: string[] = [];
    const log = openMetricsLog<Row>(file, 5, true, (m) => warnings.push(m));
    expect(log.resumedRows.map((r) => r.step)).toEqual([1]);
    expect(warnings).toEqual([`${file}: line 2 is torn (a kill during its write?): dropped`]);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${JSON.stringify({ step: 1, loss: 1 })}\n`); // rewritten without it
  });

  it('refuses a bad line that is not the last one, and a row without a step, naming the file and line', () => {
    const file = path.join(tmpDir(), 'metrics.jsonl');
    fs.writeFileSync(file, `{"step":1}\nnot json\n{"step":3}\n`);
    expect(() => readMetricsFile<Row>(file)).toThrow(`${file}: line 2 is not JSON`);
    fs.writeFileSync(file, `{"step":1}\n{"loss":3}\n`);
    expect(() => readMetricsFile<Row>(file)).toThrow(`${file}: line 2 has no numeric 'step'`);
  });
});

describe('removeStaleTempFiles', () => {
  it('deletes the temporary files of interrupted atomic writes, and nothing else', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'state.safetensors');
    fs.writeFileSync(target, 'state');
    const stale = tempPathFor(target); // the name an atomic write of it uses
    fs.writeFileSync(stale, 'half a state');
    fs.writeFileSync(path.join(dir, '.hidden-but-mine'), 'keep');
    fs.writeFileSync(path.join(dir, 'notes.tmp-1-2-3'), 'keep: not hidden');
    const lines: string[] = [];
    expect(removeStaleTempFiles(dir, (l) => lines.push(l))).toEqual([path.basename(stale)]);
    expect(fs.readdirSync(dir).sort()).toEqual(['.hidden-but-mine', 'notes.tmp-1-2-3', 'state.safetensors']);
    expect(lines[0]).toMatch(/removed 1 temporary file\(s\) of interrupted writes/);
    expect(removeStaleTempFiles(path.join(dir, 'missing'))).toEqual([]);
  });
});
