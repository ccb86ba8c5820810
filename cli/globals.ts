/**
 * The global options' help, shared by \`gpuctl --help\` and the completion scripts (a leaf: it imports nothing
 * of the command line).
 * @module
 */
import { LOG_LEVELS } from "../config/schema.ts";

export const GLOBAL_OPTIONS = `Global options:
  --config FILE       configuration file (JSONC); env GPUCTL_CONFIG; default /etc/gpuctl/config.jsonc
  --log-level LEVEL   ${LOG_LEVELS.join(", ")}: overrides the config's logLevel; without a logFile, the
                      command then logs to stderr (gpuctl serve always does)
  --log-format FORMAT text or json: how logs go to stderr (default: json unless stderr is a terminal)
  --debug             print stack traces on errors (also GPUCTL_DEBUG=1)
  -h, --help          this help; 'gpuctl <command> --help' for a command's
  -v, --version       print the version
`;
