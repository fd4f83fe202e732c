// Runs a Python script on the real MicroPython interpreter (WebAssembly build).
// Usage: node mp_run.mjs <script.py> [<host dir>=<device dir> ...]
// Each host dir (or file) is copied into the interpreter's filesystem; /lib is on sys.path.
// Exit code 0 when the script ran to the end, 1 on an uncaught Python exception.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript/micropython.mjs";

const [script, ...mounts] = process.argv.slice(2);
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
  linebuffer: true,
  heapsize: 1024 * 1024,
});

function mkdirs(path) {
  let cur = "";
  for (const part of path.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch { /* exists */ }
  }
}

function copyTree(src, dst) {
  mkdirs(dst);
  for (const name of readdirSync(src)) {
    if (name === "__pycache__" || name === "node_modules") continue;
    const s = join(src, name);
    if (statSync(s).isDirectory()) copyTree(s, dst + "/" + name);
    else if (name.endsWith(".py") || name.endsWith(".json") || name.endsWith(".mpy")) mp.FS.writeFile(dst + "/" + name, readFileSync(s));
  }
}

for (const m of mounts) {
  const [src, dst] = m.split("=");
  if (statSync(src).isDirectory()) copyTree(src, dst);
  else {
    mkdirs(dst.slice(0, dst.lastIndexOf("/")));
    mp.FS.writeFile(dst, readFileSync(src));
  }
}
mkdirs("/lib");
try {
  mp.runPython("import sys\nsys.path.append('/lib')\n" + readFileSync(script, "utf8"));
} catch (err) {
  process.stderr.write(String(err && err.message ? err.message : err) + "\n");
  process.exit(1);
}
