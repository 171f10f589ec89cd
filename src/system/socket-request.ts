import { request } from 'node:http';

/** No reply within the time given; the request was abandoned. */
export class SocketTimeoutError extends Error {
  override name = 'SocketTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs / 1000} s`);
  }
}

export interface SocketReply {
  readonly status: number;
  readonly text: string;
}

/**
 * One HTTP request over a Unix socket, its whole reply as text. Rejects with the socket's own
 * error (its `code`: ENOENT, ECONNREFUSED, EACCES...) or a SocketTimeoutError; callers turn
 * those into messages that say what to check.
 */
export function socketRequest(
  socketPath: string,
  path: string,
  options: { method?: string; body?: string; timeoutMs: number },
): Promise<SocketReply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: options.method ?? 'GET', timeout: options.timeoutMs }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new SocketTimeoutError(options.timeoutMs)));
    req.on('error', reject);
    req.end(options.body);
  });
}
