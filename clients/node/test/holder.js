'use strict';
// A lease holder in a process of its own, driven through stdin, so that a
// test can pause it (SIGSTOP: its heartbeat stops too, as in a GC pause or
// a frozen VM) and then ask it to write.
//
//   node holder.js DRIVER RESOURCE TTL-MS TABLE
//
// Prints "token N" when it holds the lease; then for each line on stdin:
// "write N" makes a fenced INSERT and prints "written N" or "lost: REASON";
// "exit" releases and exits.

const readline = require('node:readline');
const lockctl = require('..');
const { drivers } = require('./drivers');

const [driver, resource, ttl, table] = process.argv.slice(2);
const d = drivers[driver];

async function main() {
  const db = d.open();
  const lease = await lockctl.acquireLease(db, resource, { owner: 'paused-holder', ttl: Number(ttl) });
  console.log(`token ${lease.token}`);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [cmd, n] = line.split(' ');
    if (cmd === 'exit') break;
    try {
      await lease.fenced(db, (tx) => tx.query(`INSERT INTO ${table} (token, n) VALUES ($1::text::bigint, $2::text::int)`,
        [lease.token.toString(), n]));
      console.log(`written ${n}`);
    } catch (e) {
      if (!(e instanceof lockctl.LeaseLostError)) throw e;
      console.log(`lost: ${e.reason}`);
    }
  }
  await lease.release();
  await d.close(db);
}

// stdin stays open after the last line read: exit explicitly.
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
