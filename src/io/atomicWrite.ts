/**
 * Crash-safe file replacement.
 *
 * The bytes go to a temporary file in the target's own directory (so the final
 * rename never crosses a file system), which is fsynced and then renamed over the
 * target; the directory is fsynced afterwards where the platform allows it, so the
 * rename itself is durable. POSIX rename is atomic: a reader, or a process restarted
 * after a crash or a power cut, sees either the complete old file or the complete
 * new one, never a half-written file.
 *
 * On an error before the rename the temporary file is removed and the old target is
 * untouched. A process killed between writing and renaming can leave a
 * `.<name>.tmp-*` file behind; it is never mistaken for the target.
 */
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';

/** Distinguishes temp files of concurrent writes in one process (the pid separates processes). */
let tempCounter = 0;

/** The temporary file name used for `target` (a hidden sibling; exported for tests). */
export function tempPathFor(target: string): string {
  tempCounter += 1;
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}-${tempCounter}`);
}

/**
 * Atomically replaces (or creates) `target` with `bytes`. The directory must exist.
 * Strings are written as UTF-8.
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array | string): Promise<void> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const tmp = tempPathFor(target);
  let renamed = false;
  try {
    // 'wx': fail rather than clobber if the temp name somehow exists.
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      let written = 0;
      while (written < data.byteLength) {
        const { bytesWritten } = await fh.write(data, written, data.byteLength - written);
        if (bytesWritten <= 0) throw new Error(`${target}: write made no progress (${written} of ${data.byteLength} bytes)`);
        written += bytesWritten;
      }
      await fh.sync(); // the data is on disk before the name points at it
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, target);
    renamed = true;
  } finally {
    if (!renamed) await fsp.rm(tmp, { force: true });
  }
  await syncDirectory(path.dirname(target));
}

/** fsyncs a directory so a rename in it survives a power cut. Some platforms (Windows) cannot; that is not an error. */
async function syncDirectory(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof fsp.open>> | null = null;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF' && code !== 'EACCES') throw e;
  } finally {
    if (fh) await fh.close();
  }
}

/**
 * The synchronous form of writeFileAtomic (temp file + fsync + rename), for
 * small files written where the event loop may not turn (e.g. from a training
 * loop's callbacks) or from synchronous APIs.
 */
export function writeFileAtomicSync(target: string, bytes: Uint8Array | string): void {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const tmp = tempPathFor(target);
  let renamed = false;
  try {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
    renamed = true;
  } finally {
    if (!renamed) fs.rmSync(tmp, { force: true });
  }
  syncDirectorySync(path.dirname(target));
}

/** The synchronous syncDirectory. */
function syncDirectorySync(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF' && code !== 'EACCES') throw e;
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
