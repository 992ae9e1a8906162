/**
 * The tfjs-diffusion command line. Each command lives in its own file and only
 * parses arguments and calls the library.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { trainCommand } from './train';
import { sampleCommand } from './sample';
import { inspectCommand } from './inspect';
import { trainClipCommand } from './trainClip';
import { evalCommand } from './eval';
import { fidCommand } from './fid';
import { trainClassifierCommand } from './trainClassifier';
import { trainAutoencoderCommand } from './trainAutoencoder';

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('tfjs-diffusion')
    .command(trainCommand)
    .command(sampleCommand)
    .command(evalCommand)
    .command(fidCommand)
    .command(trainClassifierCommand)
    .command(trainClipCommand)
    .command(trainAutoencoderCommand)
    .command(inspectCommand)
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n`); // usage errors: show help, then the message
      throw new Error(msg);
    })
    .help()
    .parseAsync();
}

if (require.main === module) {
  main(hideBin(process.argv)).catch((e: unknown) => {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
