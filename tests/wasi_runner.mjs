// Runs a wasm32-wasip1 program (a cargo test binary) under Node.js's WASI:
// `node tests/wasi_runner.mjs prog.wasm args...`, as cargo's target runner.
// The whole file system is preopened, so absolute paths work as natively.
//
// Node 20 sometimes crashes (SIGSEGV) while tearing down a module that grew
// a large memory, after the program has finished and every test passed. So
// the program runs in a child process that reports its exit code on fd 3
// before exiting; this parent exits with that code, and fails only when the
// child died without reporting one.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { writeSync } from 'node:fs';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';

const [program, ...args] = process.argv.slice(2);

if (process.env.XENT_WASI_CHILD === '1') {
  const wasi = new WASI({
    version: 'preview1',
    args: [program, ...args],
    env: process.env,
    preopens: { '/': '/' },
    returnOnExit: true,
  });
  const module = await WebAssembly.compile(await readFile(program));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  const code = wasi.start(instance);
  writeSync(3, `${code}\n`);
  process.exit(code);
} else {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), program, ...args], {
    env: { ...process.env, XENT_WASI_CHILD: '1' },
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  let reported = '';
  child.stdio[3].on('data', (d) => { reported += d; });
  child.on('close', (status, signal) => {
    const code = Number.parseInt(reported, 10);
    if (Number.isInteger(code)) {
      if (signal) console.error(`wasi_runner: node crashed (${signal}) after the program exited with ${code}`);
      process.exit(code);
    }
    console.error(`wasi_runner: the program ended without an exit code (status ${status}, signal ${signal})`);
    process.exit(1);
  });
}
