/**
 * End to end through the CLI: a training run killed with SIGKILL mid-way and
 * resumed with --resume reproduces the per-step losses of an uninterrupted run
 * exactly (same backend), and the run folder samples as a pipeline.
 */
import { spawn, spawnSync, ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');
const DATA = path.join(ROOT, 'test', 'fixtures', 'data', 'tiny-shapes'); // six 16x16 RGB PNGs

function trainArgs(out: string, extra: string[] = []): string[] {
  return [CLI, 'train', '--backend', 'wasm', '--dataset', 'image-folder', '--data-dir', DATA, '--conditioning', 'class',
    '--model', 'tiny', '--base-channels', '8', '--channel-mults', '1,2', '--attention-res', '8', '--timesteps', '100',
    '--steps', '8', '--batch', '2', '--lr', '0.002', '--warmup', '2', '--log-every', '1', '--val-every', '0', '--checkpoint-every', '2',
    '--sample-every', '0', '--grid-steps', '2', '--seed', '7', '--out', out, ...extra];
}

function losses(out: string): Array<[number, number]> {
  return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss: number }).map((r) => [r.step, r.loss]);
}

function waitForStep(out: string, step: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const file = path.join(out, 'metrics.jsonl');
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      const done = fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').some((l) => l.startsWith(`{"step":${step},`));
      if (done || child.exitCode !== null || Date.now() - start > timeoutMs) {
        clearInterval(poll);
        if (done) resolve();
        else reject(new Error(`run did not reach step ${step} (exit ${child.exitCode})`));
      }
    }, 20);
  });
}

describe('train CLI: kill and resume', () => {
  it('reproduces the uninterrupted losses after SIGKILL + --resume, and samples from the run folder', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-cli-'));
    const full = path.join(tmp, 'full');
    const a = spawnSync(process.execPath, trainArgs(full), { encoding: 'utf8' });
    expect(a.stderr).not.toMatch(/^error/m);
    expect(a.status).toBe(0);
    const reference = losses(full);
    expect(reference.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    const killed = path.join(tmp, 'killed');
    const child = spawn(process.execPath, trainArgs(killed), { stdio: 'ignore' });
    await waitForStep(killed, 5, child, 90000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const b = spawnSync(process.execPath, trainArgs(killed, ['--resume']), { encoding: 'utf8' });
    expect(b.status).toBe(0);
    expect(b.stderr).toMatch(/resumed from .*state\.safetensors at step (4|6)/);
    expect(losses(killed)).toEqual(reference);

    const grid = path.join(tmp, 'grid.png');
    const c = spawnSync(process.execPath, [CLI, 'sample', '--backend', 'wasm', '--pipeline', killed, '--label', '0,2', '--n', '2', '--steps', '3', '--out', grid], { encoding: 'utf8' });
    expect(c.stderr).not.toMatch(/^error/m);
    expect(c.status).toBe(0);
    expect(c.stdout).toMatch(/wrote .*grid\.png: 2 images/);
    expect(fs.statSync(grid).size).toBeGreaterThan(100);

    const bad = spawnSync(process.execPath, [CLI, 'sample', '--backend', 'wasm', '--pipeline', killed, '--label', 'green-star'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--label 'green-star' is not a class of this model; classes: 0=0, 1=1/);
  }, 300000);

  it('SIGTERM ends a run like Ctrl-C: the step finishes, a checkpoint is written, exit 0', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-cli-term-'));
    const out = path.join(tmp, 'run');
    const args = trainArgs(out).map((a, i, all) => (all[i - 1] === '--steps' ? '400' : all[i - 1] === '--checkpoint-every' ? '400' : a));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitForStep(out, 3, child, 90000);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(stderr).toMatch(/SIGTERM: finishing this step and writing a checkpoint/);
    expect(stderr).toMatch(/stopped at step \d+ \(checkpoint written\)/);
    expect(code).toBe(0);
    expect(fs.existsSync(path.join(out, 'state.safetensors'))).toBe(true);
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 300000);
});
