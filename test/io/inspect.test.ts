/** `inspect` (src/cli/inspect.ts): the report text, pipeline folders, and bad files. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inspectCommand, inspectReport } from '../../src/cli/inspect';
import { SafeTensor } from '../../src/io/safetensors';
import { writeSafetensors } from '../../src/io/safetensorsFile';
import { writePipelineManifest } from '../../src/io/pipeline';

let dir: string;
let file: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inspect-'));
  file = path.join(dir, 'unet.safetensors');
  await writeSafetensors(
    file,
    new Map<string, SafeTensor>([
      ['conv_in.weight', { dtype: 'F32', shape: [3, 3, 1, 32], data: new Float32Array(288) }],
      ['conv_in.bias', { dtype: 'F32', shape: [32], data: new Float32Array(32) }],
      ['time_embed.linear_1.weight', { dtype: 'F16', shape: [32, 1000], data: new Float32Array(32000) }],
      ['position_ids', { dtype: 'I64', shape: [1, 77], data: new Int32Array(77) }],
    ]),
    { format_version: '1', kind: 'unet', config: JSON.stringify({ baseChannels: 32, channelMults: [1, 2] }), step: '10' },
  );
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('inspectReport', () => {
  it('lists every tensor with dtype, shape and count, the total, and pretty-printed config', async () => {
    const report = await inspectReport(file);
    const lines = report.split('\n');
    expect(lines[0]).toBe(`file: ${file}`);
    // 288 + 32 + 32000 + 77 = 32397 parameters; data 288*4 + 32*4 + 32000*2 + 77*8 = 65896 bytes
    expect(lines[1]).toMatch(/^tensors: 4 \(I64: 1, F32: 2, F16: 1\), parameters: 32,397, data: 64\.4 KiB, header: \d+ B$/);
    const row = (name: string): string[] => (lines.find((l) => l.trim().startsWith(`${name} `)) ?? '').trim().split(/\s{2,}/);
    expect(row('conv_in.weight')).toEqual(['conv_in.weight', 'F32', '[3, 3, 1, 32]', '288']);
    expect(row('time_embed.linear_1.weight')).toEqual(['time_embed.linear_1.weight', 'F16', '[32, 1000]', '32,000']);
    expect(row('position_ids')).toEqual(['position_ids', 'I64', '[1, 77]', '77']);
    expect(lines).toContain('  kind: unet');
    expect(lines).toContain('  step: 10');
    expect(report).toContain('  config:\n    {\n      "baseChannels": 32,\n      "channelMults": [\n        1,\n        2\n      ]\n    }');
  });

  it('a bad file is an error naming the file and the problem', async () => {
    const bad = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(bad, fs.readFileSync(file).subarray(0, 600));
    await expect(inspectReport(bad)).rejects.toThrow(`${bad}: `);
    await expect(inspectReport(bad)).rejects.toThrow('exceed the data section');
    await expect(inspectReport(path.join(dir, 'missing.safetensors'))).rejects.toThrow('missing.safetensors: cannot read');
  });

  it('a pipeline folder prints the manifest then each part', async () => {
    const folder = path.join(dir, 'pipe');
    fs.mkdirSync(folder);
    fs.copyFileSync(file, path.join(folder, 'unet.safetensors'));
    await writePipelineManifest(folder, { design: 'pixel', parts: { unet: { file: 'unet.safetensors', kind: 'unet' } }, defaults: { steps: 20 } });
    const report = await inspectReport(folder);
    expect(report).toContain(`pipeline: ${path.join(folder, 'pipeline.json')}\n  design: pixel`);
    expect(report).toContain('  part unet: unet.safetensors (unet)');
    expect(report).toContain(`file: ${path.join(folder, 'unet.safetensors')}`);
  });

  it('the yargs command prints the report', async () => {
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await inspectCommand.handler({ file, _: ['inspect'], $0: 'tfjs-diffusion' });
      expect(String(write.mock.calls[0][0])).toBe(`${await inspectReport(file)}\n`);
    } finally {
      write.mockRestore();
    }
    expect(inspectCommand.command).toBe('inspect <file>');
  });
});
