// Runs a wasm32-wasip1 program (a cargo test binary) under Node.js's WASI:
// `node tests/wasi_runner.mjs prog.wasm args...`, as cargo's target runner.
// The whole file system is preopened, so absolute paths work as natively.
import { readFile } from 'node:fs/promises';
import process from 'node:process';
import { WASI } from 'node:wasi';

const [program, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [program, ...args],
  env: process.env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
// Exit at once: letting Node tear down a module that grew a large memory
// crashed Node 20 (SIGSEGV) after every test had passed.
process.exit(wasi.start(instance));
