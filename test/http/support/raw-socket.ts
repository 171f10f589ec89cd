import { createConnection, type Socket } from 'node:net';

/** A client connection that records what the server sent and when the server closed it. */
export interface RawClient {
  readonly socket: Socket;
  /** Everything received so far, as text. */
  received(): string;
  /** Resolves when the connection is closed, with the milliseconds it stayed open. */
  readonly closed: Promise<number>;
  isClosed(): boolean;
}

export function connect(path: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const opened = Date.now();
    const socket = createConnection(path);
    let text = '';
    let isClosed = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    // Writes racing a server that closes are expected here; the test looks at `closed`.
    socket.on('error', () => undefined);
    const closed = new Promise<number>((done) =>
      socket.once('close', () => {
        isClosed = true;
        done(Date.now() - opened);
      }),
    );
    socket.once('connect', () => resolve({ socket, received: () => text, closed, isClosed: () => isClosed }));
    socket.once('error', reject);
  });
}

/** A POST as dockerd sends it: JSON and a newline, no Content-Type. */
export function post(path: string, body: unknown): string {
  const bytes = Buffer.from(`${JSON.stringify(body)}\n`);
  return `POST ${path} HTTP/1.1\r\nHost: plugin\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: ${bytes.length}\r\n\r\n${bytes.toString()}`;
}

/** Resolves once `received()` holds `count` complete HTTP replies (each with a Content-Length body). */
export async function replies(client: RawClient, count: number, timeoutMs = 5000): Promise<string[]> {
  const started = Date.now();
  for (;;) {
    const parsed = parseReplies(client.received());
    if (parsed.length >= count) return parsed;
    if (Date.now() - started > timeoutMs) throw new Error(`only ${parsed.length} of ${count} replies after ${timeoutMs} ms: ${client.received()}`);
    if (client.isClosed()) throw new Error(`connection closed after ${parsed.length} of ${count} replies: ${client.received()}`);
    await sleep(10);
  }
}

function parseReplies(text: string): string[] {
  const found: string[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return found;
    const length = Number(/content-length: *(\d+)/i.exec(rest.slice(0, end))?.[1] ?? 0);
    if (rest.length < end + 4 + length) return found;
    found.push(rest.slice(0, end + 4 + length));
    rest = rest.slice(end + 4 + length);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
