import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomicWrite';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-'));
});

afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

const listDir = (): string[] => fs.readdirSync(dir).sort();

describe('writeFileAtomic', () => {
  it('creates a file, then replaces it, leaving no temp file', async () => {
    const target = path.join(dir, 'a.bin');
    await writeFileAtomic(target, new Uint8Array([1, 2, 3]));
    expect([...fs.readFileSync(target)]).toEqual([1, 2, 3]);
    await writeFileAtomic(target, 'héllo');
    expect(fs.readFileSync(target, 'utf8')).toBe('héllo');
    await writeFileAtomic(target, new Uint8Array(0));
    expect(fs.readFileSync(target).length).toBe(0);
    expect(listDir()).toEqual(['a.bin']);
  });

  it('writes a subarray view exactly (byteOffset respected)', async () => {
    const target = path.join(dir, 'view.bin');
    const big = new Uint8Array([9, 9, 1, 2, 3, 9]);
    await writeFileAtomic(target, big.subarray(2, 5));
    expect([...fs.readFileSync(target)]).toEqual([1, 2, 3]);
  });

  it('a write failing half-way leaves the old file intact and no temp file', async () => {
    const target = path.join(dir, 'model.safetensors');
    fs.writeFileSync(target, 'old contents');
    // Fault injection: the first write() call writes half the bytes for real, then fails like a full disk.
    const probe = await fs.promises.open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    fs.rmSync(path.join(dir, 'probe'));
    const realWrite = proto.write;
    jest.spyOn(proto, 'write').mockImplementation(async function (this: unknown, ...args: unknown[]) {
      const [buf, offset, length] = args as [Uint8Array, number, number];
      await realWrite.call(this, buf, offset, Math.floor(length / 2));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    await expect(writeFileAtomic(target, new Uint8Array(4096).fill(7))).rejects.toThrow('ENOSPC');
    expect(fs.readFileSync(target, 'utf8')).toBe('old contents');
    expect(listDir()).toEqual(['model.safetensors']);
  });

  it('a failing rename leaves the old file intact and no temp file', async () => {
    const target = path.join(dir, 'x.json');
    fs.writeFileSync(target, '{"old": true}');
    jest.spyOn(fs.promises, 'rename').mockRejectedValue(Object.assign(new Error('EIO: rename failed'), { code: 'EIO' }));
    await expect(writeFileAtomic(target, '{"new": true}')).rejects.toThrow('EIO');
    expect(fs.readFileSync(target, 'utf8')).toBe('{"old": true}');
    expect(listDir()).toEqual(['x.json']);
  });

  it('a missing directory is an error, not a silent mkdir', async () => {
    await expect(writeFileAtomic(path.join(dir, 'no', 'such', 'f.bin'), 'x')).rejects.toThrow('ENOENT');
  });

  (process.platform === 'win32' ? it.skip : it)('a real OS-level write failure (file size limit, EFBIG) leaves the old file intact and no temp file', () => {
    // A child process with `ulimit -f 8` (8 blocks) cannot write 1 MiB: the kernel stops the
    // write part-way (Node ignores SIGXFSZ, so write() fails with EFBIG).
    const target = path.join(dir, 'big.bin');
    fs.writeFileSync(target, 'old');
    const tsx = path.join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');
    const src = path.join(__dirname, '..', '..', 'src', 'io', 'atomicWrite');
    const script =
      `import { writeFileAtomic } from ${JSON.stringify(src)};` +
      `writeFileAtomic(${JSON.stringify(target)}, new Uint8Array(1 << 20)).then(` +
      `() => { console.log('ok'); }, (e) => { console.log('error', e.code); });`;
    const r = spawnSync('bash', ['-c', `ulimit -f 8 && exec "$0" -e "$1"`, tsx, script], { encoding: 'utf8', timeout: 60000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('error EFBIG');
    expect(fs.readFileSync(target, 'utf8')).toBe('old');
    expect(listDir()).toEqual(['big.bin']);
  });
});

describe('writeFileAtomicSync', () => {
  it('creates, then replaces a file (bytes or UTF-8 text), leaving no temp file', () => {
    const target = path.join(dir, 'budget.json');
    writeFileAtomicSync(target, new Uint8Array([1, 2, 3]));
    expect([...fs.readFileSync(target)]).toEqual([1, 2, 3]);
    writeFileAtomicSync(target, 'héllo');
    expect(fs.readFileSync(target, 'utf8')).toBe('héllo');
    expect(listDir()).toEqual(['budget.json']);
  });

  it('a failing rename leaves the target intact and no temp file; a missing directory is an error', () => {
    // The target is a non-empty directory: renaming a file onto it fails (EISDIR / ENOTEMPTY), after the temp file is written.
    const target = path.join(dir, 'x.json');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'old');
    expect(() => writeFileAtomicSync(target, '{"new": true}')).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(fs.readFileSync(path.join(target, 'keep'), 'utf8')).toBe('old');
    expect(listDir()).toEqual(['x.json']);
    expect(() => writeFileAtomicSync(path.join(dir, 'no', 'such', 'f.json'), 'x')).toThrow('ENOENT');
  });
});
