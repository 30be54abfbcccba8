// Runs a wasm32-wasip1 program (a cargo test binary) under Node.js's WASI:
// `node tests/wasi_runner.mjs prog.wasm args...`, as cargo's target runner.
// The whole file system is preopened, so absolute paths work as natively.
//
// Node 20 sometimes crashes (SIGSEGV) after the program has finished and
// every test passed (seen in the exp suite while its sweeps held about half
// a GiB of wasm memory; they now go a batch at a time). So the program runs
// in a child process that reports its exit code on fd 3 as it exits (at
// proc_exit, or when _start returns); this parent exits with that code. A
// child that a signal killed without reporting one is run again, at most
// twice more, saying so. A failing test reports its code (a panic traps,
// and Node exits 1 without a signal), so it is never rerun.
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
  const imports = wasi.getImportObject();
  const wasiImports = imports.wasi_snapshot_preview1;
  const procExit = wasiImports.proc_exit;
  wasiImports.proc_exit = (code) => {
    writeSync(3, `${code}\n`);
    return procExit(code);
  };
  const module = await WebAssembly.compile(await readFile(program));
  const instance = await WebAssembly.instantiate(module, imports);
  const code = wasi.start(instance);
  writeSync(3, `${code}\n`);
  process.exit(code);
} else {
  const run = (attempt) => {
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
      if (signal && attempt < 3) {
        console.error(`wasi_runner: a crash of node itself; running it again (attempt ${attempt + 1} of 3)`);
        run(attempt + 1);
      } else {
        process.exit(1);
      }
    });
  };
  run(1);
}
