/**
 * Through the CLI: a run folder is never destroyed without being asked. A new run into a
 * folder holding one is refused (offering --resume and --overwrite) with the folder left
 * as it was; --resume with no state is refused; --overwrite starts over cleanly; a torn
 * last metrics line and stale temporary files do not block a resume.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');
const DATA = path.join(ROOT, 'test', 'fixtures', 'data', 'tiny-shapes'); // six 16x16 RGB PNGs

function train(out: string, extra: string[] = [], steps = 4): { status: number | null; stderr: string } {
  const args = [CLI, 'train', '--backend', 'wasm', '--dataset', 'image-folder', '--data-dir', DATA, '--conditioning', 'class',
    '--model', 'tiny', '--base-channels', '8', '--channel-mults', '1,2', '--attention-res', '8', '--timesteps', '100',
    '--steps', String(steps), '--batch', '2', '--lr', '0.002', '--warmup', '1', '--log-every', '1', '--val-every', '0', '--checkpoint-every', '2',
    '--sample-every', '0', '--grid-steps', '2', '--seed', '3', '--out', out, ...extra];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

const snapshot = (dir: string): Record<string, string> =>
  Object.fromEntries(fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile()).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));

describe('train CLI: run folders', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-runs-'));
  const run = path.join(tmp, 'run');

  beforeAll(() => {
    const first = train(run);
    expect(first.stderr).not.toMatch(/^error/m);
    expect(first.status).toBe(0);
  });

  it('refuses a new run into a folder holding one, naming it and offering --resume / --overwrite, and changes nothing', () => {
    const before = snapshot(run);
    const again = train(run);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/holds a run \(state\.safetensors, model\.safetensors, metrics\.jsonl, loss\.png, run\.json\): pass --resume to continue it, or --overwrite to start over/);
    expect(snapshot(run)).toEqual(before);
  });

  it('refuses --resume where there is no state (a mistyped --out), and --resume with --overwrite', () => {
    const typo = train(path.join(tmp, 'rnu'), ['--resume']);
    expect(typo.status).not.toBe(0);
    expect(typo.stderr).toMatch(/rnu: no state\.safetensors to resume from .*drop --resume to start a new run there/);
    const both = train(run, ['--resume', '--overwrite']);
    expect(both.status).not.toBe(0);
    expect(both.stderr).toMatch(/--resume and --overwrite contradict each other/);
  });

  it('a run that never reached a checkpoint (metrics only) is replaced, not resumed; weights without a state need --overwrite', () => {
    const early = path.join(tmp, 'early');
    fs.mkdirSync(early);
    fs.writeFileSync(path.join(early, 'metrics.jsonl'), '{"step":1,"loss":1}\n');
    const resumed = train(early, ['--resume']);
    expect(resumed.status).not.toBe(0);
    expect(resumed.stderr).toMatch(/early: no state\.safetensors to resume from/);
    const again = train(early);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/replacing metrics\.jsonl of a run that never reached a checkpoint/);
    expect(fs.existsSync(path.join(early, 'state.safetensors'))).toBe(true);

    const torn = path.join(tmp, 'torn-state'); // weights written, killed during the first state write
    fs.mkdirSync(torn);
    fs.copyFileSync(path.join(run, 'model.safetensors'), path.join(torn, 'model.safetensors'));
    for (const flags of [[], ['--resume']]) {
      const r = train(torn, flags);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/holds model\.safetensors but no state\.safetensors to resume from .*pass --overwrite/);
    }
  });

  it('resumes past a torn last metrics line (dropped with a warning) and removes stale temporary files', () => {
    const metrics = path.join(run, 'metrics.jsonl');
    fs.appendFileSync(metrics, '{"step":5,"lo');
    const stale = path.join(run, `.state.safetensors.tmp-${process.pid}-1-0`);
    fs.writeFileSync(stale, 'half a state');
    const r = train(run, ['--resume'], 6);
    expect(r.stderr).not.toMatch(/^error/m);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/metrics\.jsonl: line 5 is torn .*: dropped/);
    expect(fs.existsSync(stale)).toBe(false);
    const steps = fs.readFileSync(metrics, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('--overwrite starts the run over: the same seed gives the first run\'s losses again, nothing of the old run left', () => {
    const fresh = path.join(tmp, 'fresh');
    expect(train(fresh).status).toBe(0);
    const losses = (dir: string): number[][] => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number }).map((r) => [r.step, r.loss]);
    const reference = losses(fresh);
    const marker = path.join(run, 'samples', 'from-the-old-run.png');
    fs.writeFileSync(marker, 'old grid');
    const over = train(run, ['--overwrite']);
    expect(over.status).toBe(0);
    expect(over.stderr).toMatch(/--overwrite: removed the earlier run's state\.safetensors, model\.safetensors, metrics\.jsonl, loss\.png, run\.json, samples/);
    expect(fs.existsSync(marker)).toBe(false); // the old run's grids went with it
    expect(losses(run)).toEqual(reference);
  });
});
