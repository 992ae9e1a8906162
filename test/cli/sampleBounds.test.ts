/** sample: every number of the command line is bounded before the backend starts or anything loads. */
import { spawnSync } from 'child_process';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tfjs-diffusion.js');

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, 'sample', '--backend', 'wasm', ...args], { encoding: 'utf8', cwd: ROOT });
}

describe('sample CLI: bounds before work', () => {
  it('refuses --n, --steps, --guidance and image counts out of range, naming the flag', () => {
    const run = (args: string[]): { status: number | null; stderr: string } => cli(['--pipeline', 'checkpoints/mnist-latent', '--out', '/tmp/never.png', ...args]);
    const cases: Array<[string[], RegExp]> = [
      [['--n', '100000'], /--n must be an integer in \[1, 4096\], got 100000/],
      [['--guidance', '1e300'], /--guidance must be a guidance scale in \[0, 50\]/],
      [['--steps', '0'], /--steps must be an integer in \[1, 100000\], got 0/],
      [['--n', '400'], /14 rows x --n 400 = 5600 images: at most 4096 per call/], // rows from the manifest's prompts
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(message);
    }
  });
});
