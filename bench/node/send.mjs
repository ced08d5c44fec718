// The Node baseline a skilled user writes without Clarion: the `web-push` package, 64 sends in flight.
//
//   node bench/node/send.mjs JOB.json
//
// Run by bench.baselines.node_web_push in its own process. Every message goes through
// webpush.sendNotification (its aes128gcm encryption) over one keep-alive agent
// allowing `in_flight` sockets, with `in_flight` sends awaited at a time. Prints one JSON line:
// messages, failed, wall_s and cpu_s (process.cpuUsage: every thread, over the sending alone).
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const webpush = require('web-push');

// web-push takes only an https.Agent. The local push service speaks plain HTTP/1.1, as it does to
// Clarion, so this agent opens plain TCP connections: the same wire for both, and no TLS cost that
// Clarion's run does not pay either.
class PlainKeepAliveAgent extends https.Agent {
  createConnection(options) {
    return net.createConnection({ host: options.host, port: options.port });
  }
}

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const inFlight = job.in_flight;
const agent = new PlainKeepAliveAgent({ keepAlive: true, maxSockets: inFlight });
// 12 h, as Clarion signs: within the 24 h that RFC 8292 §2 allows a VAPID JWT.
const expiration = Math.floor(Date.now() / 1000) + 12 * 3600;
// Signed once per push-service origin and reused, as the Python baseline and Clarion do: given
// `vapidDetails`, web-push would sign a new JWT (ES256) for every message.
const vapidByOrigin = new Map();
function authorization(endpoint) {
  const origin = new URL(endpoint).origin;
  if (!vapidByOrigin.has(origin)) {
    const headers = webpush.getVapidHeaders(
      origin, job.subject, job.vapid_public_key, job.vapid_private_key, 'aes128gcm', expiration,
    );
    vapidByOrigin.set(origin, headers.Authorization);
  }
  return vapidByOrigin.get(origin);
}

let next = 0;
let failed = 0;
async function sender() {
  while (next < job.subscriptions.length) {
    const subscription = job.subscriptions[next++];
    try {
      const headers = { Authorization: authorization(subscription.endpoint) };
      await webpush.sendNotification(subscription, job.payload, { TTL: job.ttl_s, agent, headers });
    } catch (error) {
      failed += 1;
      if (failed === 1) console.error(`first failure: ${error}`);
    }
  }
}

const started = process.hrtime.bigint();
const cpuStarted = process.cpuUsage();
await Promise.all(Array.from({ length: inFlight }, sender));
const cpu = process.cpuUsage(cpuStarted);
const wallS = Number(process.hrtime.bigint() - started) / 1e9;
agent.destroy();
console.log(JSON.stringify({
  messages: job.subscriptions.length, failed, wall_s: wallS, cpu_s: (cpu.user + cpu.system) / 1e6,
}));
