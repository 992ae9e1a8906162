#!/usr/bin/env node
// In a source checkout, runs the TypeScript sources through tsx (always current);
// in an installed package (no src/), runs the compiled dist/.
const path = require('path');
const fs = require('fs');
const root = path.join(__dirname, '..');
let cli;
if (fs.existsSync(path.join(root, 'src', 'cli', 'main.ts'))) {
  require('tsx/cjs');
  cli = require(path.join(root, 'src', 'cli', 'main.ts'));
} else {
  cli = require(path.join(root, 'dist', 'src', 'cli', 'main.js'));
}
cli.main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
