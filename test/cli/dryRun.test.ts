/**
 * --dry-run (train, train-autoencoder): the run is checked (folder rules, a resume's
 * batch and seed), the resolved config and the measured memory of a step are printed,
 * and nothing is trained or written.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');
const DATA = path.join(ROOT, 'test', 'fixtures', 'data', 'tiny-shapes'); // six 16x16 RGB PNGs

const TRAIN = ['train', '--backend', 'wasm', '--dataset', 'image-folder', '--data-dir', DATA, '--model', 'tiny', '--base-channels', '8',
  '--channel-mults', '1,2', '--attention-res', '8', '--timesteps', '100', '--steps', '2', '--batch', '2', '--log-every', '1',
  '--val-every', '0', '--sample-every', '0', '--checkpoint-every', '2', '--grid-steps', '2', '--workers', '1'];

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file below `dir` with its bytes (base64), or null when it does not exist. */
function snapshot(dir: string): Record<string, string> | null {
  if (!fs.existsSync(dir)) return null;
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) out[f] = fs.readFileSync(p).toString('base64');
  }
  return out;
}

describe('--dry-run', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-dryrun-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('train: prints the resolved config and the memory of a step, writes nothing', () => {
    const out = path.join(tmp, 'new');
    const r = cli([...TRAIN, '--out', out, '--dry-run']);
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/dry run: would start a new run in .*new; resolved config:/);
    const json = r.stderr.slice(r.stderr.indexOf('{\n'), r.stderr.indexOf('\n}\n') + 2);
    const resolved = JSON.parse(json) as { family: string; loop: { steps: number; batchSize: number }; weights: { kind: string } };
    expect([resolved.family, resolved.loop.steps, resolved.loop.batchSize, resolved.weights.kind]).toEqual(['diffusion', 2, 2, 'unet']);
    expect(r.stderr).toMatch(/memory \(wasm\): a step at micro-batch 2 needs about [\d.]+ MB of tensor memory/);
    expect(r.stderr).toMatch(/dry run: nothing trained, nothing written/);
    expect(fs.existsSync(out)).toBe(false);
  }, 120000);

  it('train: on a run, refused without --resume like a real run; with --resume checked against the saved batch, the folder untouched', () => {
    const out = path.join(tmp, 'run');
    const trained = cli([...TRAIN, '--out', out]);
    expect(trained.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')).family).toBe('diffusion'); // the resolved config beside the run
    const before = snapshot(out);

    const refused = cli([...TRAIN, '--out', out, '--dry-run']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/holds a run .*pass --resume to continue it, or --overwrite/);

    const resumed = cli([...TRAIN.map((a, i, all) => (all[i - 1] === '--steps' ? '4' : a)), '--out', out, '--resume', '--dry-run']);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(/dry run: would resume the run in .*run;/);

    const otherBatch = cli([...TRAIN.map((a, i, all) => (all[i - 1] === '--batch' ? '3' : a)), '--out', out, '--resume', '--dry-run']);
    expect(otherBatch.status).toBe(1);
    expect(otherBatch.stderr).toMatch(/saved with batch 2 \/ seed 0, resumed with batch 3 \/ seed 0: resume needs the same values/);
    expect(snapshot(out)).toEqual(before);
  }, 180000);

  it('train-autoencoder with 2 workers: the memory of each worker\'s slice, nothing written', () => {
    const out = path.join(tmp, 'ae');
    const r = cli(['train-autoencoder', '--backend', 'wasm', '--dataset', 'image-folder', '--data-dir', DATA, '--base-channels', '8',
      '--channel-mults', '1,2', '--steps', '2', '--batch', '4', '--workers', '2', '--out', out, '--dry-run']);
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/"family": "autoencoder"/);
    expect(r.stderr).toMatch(/memory \(wasm\): a step at micro-batch 2 needs .* \(each of 2 workers\)/);
    expect(fs.existsSync(out)).toBe(false);
  }, 120000);
});
