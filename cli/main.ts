/**
 * artifact-store: the command-line client of the registry's HTTP API. See `artifact-store --help`.
 * Exit statuses: 0 success, 1 failure (including server problems), 2 invalid usage, 3 verification mismatch.
 */
import { ApiError, CommandError, EXIT_FAILURE, EXIT_MISMATCH, EXIT_USAGE, UsageError, VerificationError } from './errors';
import { runEvents, runExtend, runHold, runLs, runRelease, runShow } from './commands/operator';
import { runPull } from './commands/pull';
import { runPush } from './commands/push';
import { runVerify } from './commands/verify';

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  push: runPush,
  pull: runPull,
  verify: runVerify,
  ls: runLs,
  show: runShow,
  hold: runHold,
  release: runRelease,
  extend: runExtend,
  events: runEvents,
};

const HELP = `usage: artifact-store COMMAND [arguments] [options]

Commands:
  push DIR          upload a directory tree into a new package over tus, resumable
  pull ID DIR       download a finalized package and verify every byte, resumable
  verify DIR        check a pulled directory against its manifest, offline
  ls                list packages
  show ID           print a package, its retention state and its files
  hold ID           apply a retention hold
  release ID HOLD   release a hold
  extend ID         move the expiry of a package later
  events            print the event log; --follow keeps waiting for new events

The server is --url or $ARTIFACT_STORE_URL (default http://127.0.0.1:3000), the token --token or
$ARTIFACT_STORE_TOKEN. Run artifact-store COMMAND --help for a command's options.

Exit status: 0 success, 1 failure (the server's problem detail is printed), 2 invalid usage,
3 verification mismatch (bytes that differ from their manifest).`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return command === undefined ? EXIT_USAGE : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`error: unknown command ${JSON.stringify(command)}\n\n${HELP}`);
    return EXIT_USAGE;
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\nRun artifact-store ${command} --help for its usage.`);
      return EXIT_USAGE;
    }
    if (error instanceof ApiError) {
      console.error(error.describe());
      return EXIT_FAILURE;
    }
    if (error instanceof VerificationError) {
      console.error(`verification failed: ${error.message}`);
      return EXIT_MISMATCH;
    }
    if (error instanceof CommandError) {
      console.error(`error: ${error.message}`);
      return EXIT_FAILURE;
    }
    printUnexpectedError(error);
    return EXIT_FAILURE;
  }
}

/** Prints an unexpected error as one line; ARTIFACT_STORE_DEBUG=1 prints its stack trace instead. */
function printUnexpectedError(error: unknown): void {
  if (process.env.ARTIFACT_STORE_DEBUG) console.error(error);
  else console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
}

// A library may throw from a callback outside any awaited promise, as tus-js-client 4.3.1 does for a
// resume offset past the end of the file. Such an error ends the command the same way.
const exitOnStrayError = (error: unknown) => {
  printUnexpectedError(error);
  process.exit(EXIT_FAILURE);
};
process.on('uncaughtException', exitOnStrayError);
process.on('unhandledRejection', exitOnStrayError);

// Exit at once: idle keep-alive connections of fetch and tus-js-client would otherwise hold the process
// open for a few seconds. Node.js writes stdout and stderr synchronously to files, pipes and terminals
// on Linux, so no output is lost.
process.exit(await main(process.argv.slice(2)));
