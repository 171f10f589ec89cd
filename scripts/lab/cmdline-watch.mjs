// Watch every process's command line for a secret until killed.
// usage: node cmdline-watch.mjs PATTERN_FILE OUT_FILE
// The secret is read from a file so that it is not in this process's own command line.
// Processes named `docker` (the CLI the scenario itself runs with -o password=...) are ignored.
import fs from 'node:fs';
const [patFile, outFile] = process.argv.slice(2);
const secret = fs.readFileSync(patFile, 'utf8');
const seen = new Set();
fs.writeFileSync(outFile, '');
let scans = 0;
function scan() {
  scans++;
  let pids;
  try { pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)); } catch { return; }
  for (const pid of pids) {
    let cmd;
    try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1'); } catch { continue; }
    if (!cmd.includes(secret)) continue;
    let comm = '';
    try { comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { /* gone */ }
    if (comm === 'docker') continue;
    const key = `${pid}:${comm}`;
    if (seen.has(key)) continue;
    seen.add(key);
    fs.appendFileSync(outFile, `pid ${pid} comm ${comm}: ${cmd.split('\0').join(' ').split(secret).join('<PASSWORD>')}\n`);
  }
}
const t = setInterval(scan, 2);
process.on('SIGTERM', () => { clearInterval(t); console.log(`cmdline-watch: ${scans} scans, ${seen.size} hits`); process.exit(0); });
