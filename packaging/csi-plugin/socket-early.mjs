// Loaded with `node --import` ahead of netvol when the plugin's EARLY_SOCKET setting is true.
//
// dockerd waits about 12 s after starting a managed plugin for its socket, then stops it
// (and, when restoring plugins at its own start, leaves it disabled for good). netvol binds
// its socket only after loading all its modules, which under heavy emulation (the qemu lab)
// takes longer than that. This listens on the plugin's socket before anything else loads; a
// connection that arrives meanwhile waits in the listen backlog (so dockerd's check passes)
// and is then relayed, in this same process, to the socket netvol really serves.
import fs from 'node:fs';
import net from 'node:net';

const outer = process.env.NETVOL_OUTER_SOCKET;
const inner = process.env.NETVOL_INNER_SOCKET;
const GIVE_UP_MS = 120_000;

if (outer && inner) {
  try { fs.unlinkSync(outer); } catch { /* none left */ }
  const relay = net.createServer({ pauseOnConnect: true }, (client) => {
    const started = Date.now();
    let upstream;
    const attempt = () => {
      if (client.destroyed) return;
      upstream = net.connect(inner);
      upstream.once('connect', () => {
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once('error', () => {
        upstream.destroy();
        if (Date.now() - started > GIVE_UP_MS) client.destroy();
        else setTimeout(attempt, 100);
      });
    };
    client.once('close', () => upstream && upstream.destroy());
    attempt();
  });
  relay.on('error', (error) => {
    process.stderr.write(`socket-early: cannot listen on ${outer}: ${error.message}\n`);
  });
  relay.listen(outer);
}
