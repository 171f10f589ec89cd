import { pino, type Logger, type DestinationStream } from 'pino';

/** Every place a secret could sit in a log record; pino replaces them before writing. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'opts.password',
  'options.password',
  'body.Opts.password',
  '*.*.password',
  '*.*.*.password',
  'credentials',
  '*.credentials',
];

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A readable one-line format for terminals, without pulling in pino-pretty. */
export function prettyLine(record: Record<string, unknown>): string {
  const { level, time, msg, pid: _pid, hostname: _hostname, ...rest } = record;
  const stamp = new Date(typeof time === 'number' ? time : Date.now()).toISOString().slice(11, 23);
  const fields = Object.entries(rest)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${stamp} ${(LEVELS[Number(level)] ?? String(level)).padEnd(5)} ${String(msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

function prettyStream(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string) {
      try {
        out.write(prettyLine(JSON.parse(line) as Record<string, unknown>));
      } catch {
        out.write(line);
      }
    },
  };
}

export function createLogger(options: {
  verbose: boolean;
  format: 'json' | 'pretty';
  destination?: NodeJS.WritableStream;
}): Logger {
  const out = options.destination ?? process.stdout;
  const settings = {
    level: options.verbose ? 'debug' : 'info',
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '********' },
  };
  return options.format === 'pretty'
    ? pino(settings, prettyStream(out))
    : pino(settings, out as DestinationStream);
}
