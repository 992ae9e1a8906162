/** Pipeline folders: manifest round trip and every refusal, each naming pipeline.json and the problem. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pipelinePartPath, readPipelineManifest, writePipelineManifest } from '../../src/io/pipeline';
import { LIBRARY_ID, PipelineManifestInput } from '../../src/io/pipelineManifest';
import { SafeTensor } from '../../src/io/safetensors';
import { writeSafetensors } from '../../src/io/safetensorsFile';
import { version } from '../../package.json';

let root: string;
let dir: string;

const part = (kind: string): Map<string, SafeTensor> => new Map([[`${kind}.w`, { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]]);

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pipeline-'));
  dir = path.join(root, 'mnist-latent');
  fs.mkdirSync(path.join(dir, 'parts'), { recursive: true });
  await writeSafetensors(path.join(dir, 'unet.safetensors'), part('unet'), { kind: 'unet' });
  await writeSafetensors(path.join(dir, 'parts', 'vae.safetensors'), part('vae'), { kind: 'autoencoder' });
  await writeSafetensors(path.join(dir, 'text.safetensors'), part('text'), {}); // no kind metadata: not checked
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const input = (): PipelineManifestInput => ({
  design: 'latent',
  parts: {
    unet: { file: 'unet.safetensors', kind: 'unet', description: 'eps-prediction UNet on 4x7x7 latents' },
    vae: { file: 'parts/vae.safetensors', kind: 'autoencoder' },
    text_encoder: { file: 'text.safetensors', kind: 'text-encoder' },
  },
  defaults: { steps: 50, guidanceScale: 3, sampler: 'ddim' },
});

const manifestPath = (): string => path.join(dir, 'pipeline.json');

function writeRaw(manifest: unknown): void {
  fs.writeFileSync(manifestPath(), JSON.stringify(manifest));
}

describe('pipeline manifest', () => {
  it('writes (filling format_version and library) and reads back the same manifest', async () => {
    const written = await writePipelineManifest(dir, input());
    expect(LIBRARY_ID).toBe(`tfjs-diffusion@${version}`);
    expect(written).toEqual({ format_version: 1, library: LIBRARY_ID, ...input() });
    expect(JSON.parse(fs.readFileSync(manifestPath(), 'utf8'))).toEqual(written);
    expect(await readPipelineManifest(dir)).toEqual(written);
    expect(pipelinePartPath(dir, written, 'vae')).toBe(path.resolve(dir, 'parts', 'vae.safetensors'));
    expect(() => pipelinePartPath(dir, written, 'prior')).toThrow(`${manifestPath()}: no part 'prior' (parts: unet, vae, text_encoder)`);
    expect(() => pipelinePartPath(dir, written, 'constructor')).toThrow("no part 'constructor'");
    expect(fs.readdirSync(dir).sort()).toEqual(['parts', 'pipeline.json', 'text.safetensors', 'unet.safetensors']);
  });

  it('refuses to write a manifest naming a missing part', async () => {
    const bad = input();
    bad.parts.unet.file = 'unet-final.safetensors';
    await expect(writePipelineManifest(dir, bad)).rejects.toThrow(`${manifestPath()}: part 'unet': file 'unet-final.safetensors' does not exist`);
    expect(fs.existsSync(manifestPath())).toBe(false);
  });

  const base = (): Record<string, unknown> => ({ format_version: 1, library: 'x', ...input() });
  const withPart = (file: string, kind = 'unet'): Record<string, unknown> => ({ ...base(), parts: { unet: { file, kind } } });

  const cases: Array<[string, () => unknown | Promise<unknown>, string]> = [
    ['missing manifest', () => undefined, 'cannot read the pipeline manifest'],
    ['non-JSON', () => fs.writeFileSync(manifestPath(), '{"design": '), 'not valid JSON'],
    ['unknown format_version', () => writeRaw({ ...base(), format_version: 2 }), 'unknown format_version 2 (this library reads 1)'],
    ['unknown design', () => writeRaw({ ...base(), design: 'gan' }), 'unknown design "gan" (expected one of pixel, latent, cascade, unclip)'],
    ['unknown field', () => writeRaw({ ...base(), default: {} }), "unknown field(s) 'default'"],
    ['no parts', () => writeRaw({ ...base(), parts: {} }), "'parts' must be a non-empty object"],
    ['part without kind', () => writeRaw({ ...base(), parts: { unet: { file: 'unet.safetensors' } } }), "part 'unet': 'kind' must be a non-empty string"],
    ['.. escape', () => writeRaw(withPart('../outside.safetensors')), "part 'unet': file '../outside.safetensors' escapes the pipeline folder"],
    ['nested .. escape', () => writeRaw(withPart('parts/../../x.safetensors')), 'escapes the pipeline folder'],
    ['absolute path', () => writeRaw(withPart('/etc/passwd')), "file '/etc/passwd' must be relative to the folder"],
    ['the folder itself', () => writeRaw(withPart('.')), "file '.' escapes the pipeline folder"],
    [
      'symlink escape',
      () => {
        fs.writeFileSync(path.join(root, 'outside.safetensors'), fs.readFileSync(path.join(dir, 'unet.safetensors')));
        fs.symlinkSync(path.join(root, 'outside.safetensors'), path.join(dir, 'link.safetensors'));
        writeRaw(withPart('link.safetensors'));
      },
      "file 'link.safetensors' resolves (via a symlink) outside the pipeline folder",
    ],
    ['missing part file', () => writeRaw(withPart('nope.safetensors')), "file 'nope.safetensors' does not exist"],
    [
      'corrupt part file',
      () => {
        fs.writeFileSync(path.join(dir, 'bad.safetensors'), new Uint8Array(4));
        writeRaw(withPart('bad.safetensors'));
      },
      "bad.safetensors: file is 4 bytes, too small",
    ],
    ['kind mismatch', () => writeRaw(withPart('unet.safetensors', 'prior')), "manifest says kind 'prior' but unet.safetensors says 'unet'"],
  ];

  it.each(cases)('refuses: %s', async (_label, setup, message) => {
    await setup();
    const err = await readPipelineManifest(dir).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(err).not.toBeNull();
    expect(err?.startsWith(`${manifestPath()}: `)).toBe(true);
    expect(err).toContain(message);
  });

  it('the unmodified manifest is accepted (so the cases above test the change, not the base)', async () => {
    writeRaw(base());
    await expect(readPipelineManifest(dir)).resolves.toMatchObject({ design: 'latent' });
  });
});
