/**
 * A wasmPaths prefix where the binaries are not (src/backend/browserBackend.ts).
 * Its own file: the wasm module remembers a failed init (and its paths) for the
 * rest of the process, so nothing after this could start wasm.
 */
import path = require('path');
import os = require('os');

it('a wasmPaths prefix without the binaries fails, naming where it looked', async () => {
  const missing = path.join(os.tmpdir(), 'tfjs-diffusion-no-wasm-here') + path.sep;
  // tfjs and the emscripten glue warn on a failed init; silence them (the glue binds console.warn when loaded).
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    const { initBrowserBackend } = await import('../../src/backend/browserBackend');
    await expect(initBrowserBackend('wasm', { wasmPaths: missing })).rejects.toThrow(
      "backend 'wasm' failed to initialise (tf.setBackend returned false; the console has tfjs's warning). " +
        `Its .wasm binaries were looked up under '${missing}'; serve tfjs-backend-wasm.wasm, ` +
        'tfjs-backend-wasm-simd.wasm and tfjs-backend-wasm-threaded-simd.wasm from node_modules/@tensorflow/tfjs-backend-wasm/dist/ there',
    );
    expect(warn.mock.calls.map((c) => String(c[0]))).toContain('Initialization of backend wasm failed');
  } finally {
    warn.mockRestore();
  }
});
