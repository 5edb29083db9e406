/**
 * The `saga` command. Subcommands arrive with their issues; `info` reports the native backend, `replay`
 * replays a trace's blocks under eviction policies (lib/replay/command.ts).
 */
import { Command, CommanderError } from 'commander';
import { nativeBackend } from './native';
import { KvCache } from './kv';
import { addReplayCommand } from './replay/command';

function info(json: boolean): void {
  const native = nativeBackend();
  const probe = native.addon.probeCuda();
  const report = {
    backend: native.backend,
    reason: native.reason,
    addon: native.file,
    cuda: probe,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  // A tiny pool round-trip proves the addon works, not just that it loaded.
  const kv = new KvCache({ deviceCapacity: 16 });
  const ids = new Int32Array(4);
  kv.allocate(new BigUint64Array([1n, 2n, 3n, 4n]), new Int32Array(4), new Int32Array([0, 1, 2, 3]), ids);
  kv.release(ids, new Float64Array(4));
  const hit = kv.lookup(new BigUint64Array([1n, 2n, 3n, 4n]), new Int32Array(4));
  console.log(`backend   ${report.backend} (${report.reason})`);
  console.log(`addon     ${report.addon}`);
  console.log(`cuda      ${probe.available ? `${probe.devices} device(s), ${probe.deviceName}` : `unavailable: ${probe.reason}`}`);
  console.log(`self-test ${hit === 4 ? 'ok' : `FAILED (lookup found ${hit} of 4 blocks)`}`);
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('saga')
    .description('Program-level scheduling for LLM agent workloads')
    .exitOverride()
    .showHelpAfterError();
  program
    .command('info')
    .description('show which native backend (cpu or cuda) is in use and why')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => info(opts.json === true));
  addReplayCommand(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
}
