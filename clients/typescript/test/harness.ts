/**
 * The test harness (`npm test`): starts ONE live Personae server for the whole run
 * (`python -m personae serve` on a free port, SQLite in a temporary data directory,
 * webhooks allowed to reach 127.0.0.1, answers of 16 tokens by default), runs every
 * compiled test file with `node --test` against it, then stops the server's whole
 * process group and removes its data. Arguments keep the test files whose name contains
 * one of them (`npm test -- chat`).
 *
 * The test files learn where the server is from `PERSONAE_TEST_*` variables, and create
 * their accounts through the CLI (test/live.ts).
 *
 *   PERSONAE_PYTHON  the interpreter that has `personae` installed
 *                    (default: ../../.venv/bin/python from the package)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url)); // build-test/test
const packageRoot = resolve(here, "../..");
const python = resolve(packageRoot, process.env["PERSONAE_PYTHON"] || "../../.venv/bin/python");
const STARTUP_TIMEOUT_MS = 90_000;

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function serverEnv(dataDir: string, port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PERSONAE_DATA_DIR: dataDir,
    PERSONAE_PORT: String(port),
    PERSONAE_WEBHOOK_ALLOW_PRIVATE: "true",
    // Short answers by default (the README's samples pass no max_tokens): the embedded
    // model runs on the CPU, and the tests check the SDK, not the prose.
    PERSONAE_CHAT_MAX_TOKENS: "16",
  };
  // SQLite in the data directory and the in-process queue: nothing outside this run.
  delete env["PERSONAE_DATABASE_URL"];
  delete env["PERSONAE_REDIS_URL"];
  return env;
}

async function waitUntilServing(base: string, server: ChildProcess, logPath: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`the server exited (${server.exitCode ?? server.signalCode}):\n${readFileSync(logPath, "utf8")}`);
    }
    try {
      const response = await fetch(`${base}/health`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `the server did not answer /health within ${STARTUP_TIMEOUT_MS} ms:\n${readFileSync(logPath, "utf8")}`,
  );
}

/** The command line of a process (Linux), or null when it is gone. */
function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return null;
  }
}

/** The descendants of `pid` (Linux: read from /proc; elsewhere none are known). */
function descendants(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/**
 * Stops the server: TERM to its process group, KILL after 30 s; then KILL to whatever it
 * started in a session of its own (the engine, which also dies with its parent) if that
 * is still there. Nothing of the run is left behind.
 */
async function stop(server: ChildProcess): Promise<void> {
  const pid = server.pid;
  if (pid === undefined || server.exitCode !== null || server.signalCode !== null) return;
  const family = descendants(pid).map((child) => ({ pid: child, command: commandLine(child) }));
  const exited = new Promise<void>((r) => server.once("exit", () => r()));
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is gone already
    }
  };
  signalGroup("SIGTERM");
  const killed = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((r) => setTimeout(() => r(true), 30_000)),
  ]);
  if (killed) signalGroup("SIGKILL");
  await exited;
  signalGroup("SIGKILL"); // any child of the group that outlived its parent
  for (const child of family) {
    // Only the very process seen before (a pid may have been handed out again since).
    if (child.command === null || commandLine(child.pid) !== child.command) continue;
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // exited with the server, as it should
    }
  }
}

function testFiles(): string[] {
  const only = process.argv.slice(2);
  const all = readdirSync(here)
    .filter((name) => name.endsWith(".test.js") || name.endsWith(".test.cjs"))
    .sort()
    .map((name) => join(here, name));
  return only.length ? all.filter((file) => only.some((pattern) => file.includes(pattern))) : all;
}

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), "personae-ts-"));
  const logPath = join(dataDir, "server.log");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = serverEnv(dataDir, port);
  const log = openSync(logPath, "a");
  // Its own process group (detached), so that stopping it stops its engine process too.
  const server = spawn(python, ["-m", "personae", "serve"], { env, stdio: ["ignore", log, log], detached: true });
  closeSync(log);
  const spawnFailed = new Promise<never>((_, reject) =>
    server.once("error", (error) =>
      reject(
        new Error(`cannot start ${python} (${error.message}): set PERSONAE_PYTHON to a Python with personae installed`),
      ),
    ),
  );
  const onSignal = (signal: NodeJS.Signals): void => {
    void stop(server).finally(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    const started = Date.now();
    await Promise.race([waitUntilServing(base, server, logPath), spawnFailed]);
    console.log(
      `# personae server at ${base} (pid ${server.pid}, up in ${Date.now() - started} ms, data in ${dataDir})`,
    );
    const files = testFiles();
    const tests = spawn(process.execPath, ["--test", "--test-reporter=spec", ...files], {
      stdio: "inherit",
      env: {
        ...env,
        PERSONAE_TEST_BASE_URL: base,
        PERSONAE_TEST_PYTHON: python,
        PERSONAE_TEST_DATA_DIR: dataDir,
      },
    });
    const code = await new Promise<number>((r) => tests.once("exit", (c, signal) => r(c ?? (signal ? 1 : 0))));
    if (code !== 0) {
      console.log(`# server log (${logPath}), last lines:`);
      console.log(readFileSync(logPath, "utf8").split("\n").slice(-60).join("\n"));
    }
    return code;
  } finally {
    await stop(server);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
