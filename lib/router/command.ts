/** `saga serve --config FILE [--port P] [--host H]`: the gateway until SIGINT or SIGTERM, then a graceful drain. */
import type { Command } from 'commander';
import { cliInteger } from '../util/cli_numbers';
import { loadGatewayConfig } from './config';
import { startGateway } from './index';

interface ServeCliOptions {
  config: string;
  port?: string;
  host?: string;
}

export function addServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'the program-aware gateway in front of OpenAI-compatible engines (vLLM, SGLang, llama.cpp, saga engine): session affinity, ' +
        'work stealing and Agent Fair Share across the fleet (README: "saga serve" for the config file)',
    )
    .requiredOption('--config <FILE>', 'gateway config (JSON): engines, tenants, policy, admission, timeouts, limits')
    .option('--port <P>', "TCP port, over the config's listen.port (0: any free one)")
    .option('--host <ADDR>', "address to listen on, over the config's listen.host")
    .action(async (opts: ServeCliOptions) => {
      const config = loadGatewayConfig(opts.config);
      const port = opts.port === undefined ? undefined : cliInteger('--port', opts.port, 0, 65535);
      const gateway = await startGateway(config, { ...(port === undefined ? {} : { port }), ...(opts.host === undefined ? {} : { host: opts.host }) });
      const up = gateway.engines.filter((e) => e.up).length;
      // One line a launcher can wait for.
      console.log(`saga serve: listening on ${gateway.url} (policy ${config.policy}, ${config.engines.length} engines, ${up} up)`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      console.log('saga serve: draining calls in flight');
      await gateway.close();
    });
}
