#!/usr/bin/env node
'use strict';
require('../dist/lib/cli.js').main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    // One clear line, never a stack trace, for errors SAGA raises on purpose.
    if (err && typeof err.code === 'string' && err.code.startsWith('ERR_SAGA_')) {
      console.error(`saga: ${err.message} (${err.code})`);
    } else {
      console.error(`saga: ${err && err.stack ? err.stack : err}`);
    }
    process.exitCode = 1;
  },
);
