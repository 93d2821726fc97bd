// Interoperability check of a running berty-node with js-libp2p.
//
// Usage: node interop.mjs <node multiaddr ending in /p2p/<peer id>>
//
// Two js-libp2p peers run in this process:
// - A connects to the node, pings it, reads what identify reported about it, reserves a slot on
//   its circuit relay (by listening on `<node>/p2p-circuit`) and serves the node's Kademlia
//   protocol, so the node adds A's relayed address to its routing table.
// - B (a Kademlia client) asks the node's DHT for A (FIND_NODE, network only) and must get A's
//   relayed address back, then dials A through the relay and runs an echo protocol and a ping
//   over that relayed (limited) connection.
//
// Prints one JSON object on stdout ({"ok": true, ...} or {"ok": false, "step", "error"}), logs
// progress on stderr, exits 0 only on success. Every step is bounded by a timeout and the whole
// run by OVERALL_TIMEOUT_MS.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify, identifyPush } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

/** The node's DHT protocol (src/p2p/behaviour.rs, KAD_PROTOCOL). */
const KAD_PROTOCOL = '/berty-node/kad/1.0.0'
/** A protocol of this script only: the listener sends back what it reads. */
const ECHO_PROTOCOL = '/berty-node-interop/echo/1.0.0'
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const OVERALL_TIMEOUT_MS = 45_000
const STEP_TIMEOUT_MS = 15_000
const DHT_ATTEMPT_TIMEOUT_MS = 5_000

let step = 'start'
const peers = []

// rust-libp2p's ping handler keeps one inbound ping stream per connection and resets the older
// one when another arrives (js-libp2p's connection monitor pings too), so a reset ping is
// tried again, twice at most; anything else fails the step.
async function pingOnce (peer, addr) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await peer.services.ping.ping(addr, { signal: signal() })
    } catch (err) {
      if (attempt >= 3 || err?.name !== 'StreamResetError') {
        throw err
      }
      log(`ping reset (attempt ${attempt}), trying again`)
    }
  }
}

function log (message) {
  process.stderr.write(`[interop +${Math.round(performance.now())}ms] ${message}\n`)
}

function finish (result, code) {
  process.stdout.write(JSON.stringify(result) + '\n')
  // Stop the peers, but never let a slow stop hold the exit.
  const stops = Promise.allSettled(peers.map(async p => p.stop()))
  const bound = new Promise(resolve => setTimeout(resolve, 2_000).unref())
  Promise.race([stops, bound]).finally(() => process.exit(code))
}

function fail (error) {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  log(`FAILED at ${step}: ${message}`)
  finish({ ok: false, step, error: message }, 1)
}

setTimeout(() => fail(new Error(`overall timeout of ${OVERALL_TIMEOUT_MS} ms`)), OVERALL_TIMEOUT_MS).unref()
process.on('unhandledRejection', fail)

function signal (ms = STEP_TIMEOUT_MS) {
  return AbortSignal.timeout(ms)
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `check` until it returns something other than undefined, or throws after `ms`. */
async function until (what, check, ms = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined) {
      return value
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    }
    await sleep(50)
  }
}

function concat (chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

async function readAll (source) {
  const chunks = []
  for await (const chunk of source) {
    chunks.push(chunk.subarray())
  }
  return concat(chunks)
}

function sameBytes (a, b) {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i])
}

function newPeer (listen, dht) {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: STEP_TIMEOUT_MS })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      identifyPush: identifyPush(),
      ping: ping(),
      dht: kadDHT({
        protocol: KAD_PROTOCOL,
        // Loopback addresses are the only ones in this test: keep them.
        peerInfoMapper: passthroughMapper,
        ...dht
      })
    }
  })
}

async function main () {
  const target = process.argv[2]
  if (target === undefined) {
    throw new Error('usage: node interop.mjs <node multiaddr with /p2p/<peer id>>')
  }
  const nodeAddr = multiaddr(target)
  const nodePeerIdText = nodeAddr.getPeerId()
  if (nodePeerIdText == null) {
    throw new Error(`${target} does not end in /p2p/<peer id>`)
  }
  const relayListen = nodeAddr.encapsulate('/p2p-circuit')

  step = 'start peer A (relay reservation on the node)'
  // Listening on <node>/p2p-circuit connects to the node and makes a reservation; start()
  // returns once the reservation is made (or throws).
  const echoed = []
  const a = await newPeer([relayListen.toString()], { clientMode: false })
  peers.push(a)
  await a.handle(ECHO_PROTOCOL, ({ stream, connection }) => {
    echoed.push({
      remote_peer: connection.remotePeer.toString(),
      remote_addr: connection.remoteAddr.toString(),
      limited: connection.limits != null
    })
    stream.sink(stream.source).catch(err => log(`echo handler: ${err}`))
  }, { runOnLimitedConnection: true })
  log(`A is ${a.peerId}`)
  const relayedAddrs = await until('a relayed listen address on A', () => {
    const addrs = a.getMultiaddrs().map(String).filter(s => s.includes('/p2p-circuit'))
    return addrs.length > 0 ? addrs : undefined
  })
  log(`A listens at ${relayedAddrs.join(', ')}`)
  const nodeConn = a.getConnections().find(c => c.remotePeer.toString() === nodePeerIdText)
  if (nodeConn === undefined) {
    throw new Error('A holds no connection with the node after its reservation')
  }
  const nodePeerId = nodeConn.remotePeer
  log(`A protocols: ${a.getProtocols().join(' ')}; A dht mode: ${a.services.dht.getMode()}`)

  step = 'A pings the node'
  const pingRtts = []
  for (let i = 0; i < 3; i++) {
    pingRtts.push(await pingOnce(a, nodeAddr))
  }
  log(`ping RTTs ${pingRtts.join(', ')} ms`)

  step = 'identify: what the node told A about itself'
  const nodeInfo = await until('identify of the node on A', async () => {
    const peer = await a.peerStore.get(nodePeerId).catch(() => undefined)
    if (peer === undefined) {
      return undefined
    }
    const agent = peer.metadata.get('AgentVersion')
    return agent !== undefined && peer.protocols.length > 0 ? { peer, agent } : undefined
  })
  const nodeAgent = new TextDecoder().decode(nodeInfo.agent)
  const nodeProtocols = [...nodeInfo.peer.protocols].sort()
  log(`node agent ${nodeAgent}`)

  step = 'start peer B (DHT client) and connect it to the node'
  const b = await newPeer([], { clientMode: true })
  peers.push(b)
  log(`B is ${b.peerId}`)
  await b.dial(nodeAddr, { signal: signal() })

  step = 'B asks the node\'s DHT for A (FIND_NODE)'
  let dhtAttempts = 0
  let lastResponse = 'none'
  let lastError = 'none'
  const found = await until('the node\'s DHT to return A', async () => {
    dhtAttempts++
    try {
      for await (const event of b.services.dht.findPeer(a.peerId, {
        useCache: false,
        signal: signal(DHT_ATTEMPT_TIMEOUT_MS)
      })) {
        if (event.name === 'PEER_RESPONSE') {
          lastResponse = `${event.messageName} from ${event.from}: closer [${event.closer
            .map(p => `${p.id} ${p.multiaddrs.join(' ')}`).join('; ')}]`
        }
        if (event.name === 'FINAL_PEER' && event.peer.id.equals(a.peerId)) {
          return {
            from: event.from.toString(),
            addrs: event.peer.multiaddrs.map(String)
          }
        }
      }
    } catch (err) {
      lastError = `${err.name}: ${err.message}`
      log(`findPeer attempt ${dhtAttempts}: ${lastError}; last answer: ${lastResponse}`)
      await sleep(200)
    }
    return undefined
  }, 20_000).catch(err => {
    throw new Error(`${err.message} (${dhtAttempts} attempts; last error: ${lastError}; last answer: ${lastResponse})`)
  })
  log(`DHT: ${found.from} returned A at ${found.addrs.join(', ')}`)

  step = 'B dials A through the node\'s relay'
  const circuitAddr = nodeAddr.encapsulate(`/p2p-circuit/p2p/${a.peerId}`)
  const relayed = await b.dial(circuitAddr, { signal: signal() })
  const relayedInfo = {
    dialed: circuitAddr.toString(),
    remote_peer: relayed.remotePeer.toString(),
    remote_addr: relayed.remoteAddr.toString(),
    limited: relayed.limits != null,
    limit_seconds: relayed.limits?.seconds ?? null,
    limit_bytes: relayed.limits?.bytes?.toString() ?? null
  }
  log(`relayed connection ${JSON.stringify(relayedInfo)}`)

  step = 'B echoes through the relayed connection'
  const payload = crypto.getRandomValues(new Uint8Array(1024))
  const echoStream = await relayed.newStream(ECHO_PROTOCOL, {
    runOnLimitedConnection: true,
    signal: signal()
  })
  const [, echoBack] = await Promise.all([
    echoStream.sink([payload]),
    readAll(echoStream.source)
  ])
  await echoStream.close()

  step = 'B pings A through the relayed connection'
  const pingData = crypto.getRandomValues(new Uint8Array(32))
  const pingStream = await relayed.newStream(PING_PROTOCOL, {
    runOnLimitedConnection: true,
    signal: signal()
  })
  const pingStart = performance.now()
  const [, pong] = await Promise.all([
    pingStream.sink([pingData]),
    readAll(pingStream.source)
  ])
  const relayedPingMs = performance.now() - pingStart
  await pingStream.close()

  step = 'report'
  finish({
    ok: true,
    node_peer_id: nodePeerId.toString(),
    a_peer_id: a.peerId.toString(),
    b_peer_id: b.peerId.toString(),
    ping_rtts_ms: pingRtts,
    node_agent_version: nodeAgent,
    node_protocols: nodeProtocols,
    relay_reservation_addrs: relayedAddrs,
    dht_find_peer: { ...found, attempts: dhtAttempts },
    relayed_connection: relayedInfo,
    echo: {
      bytes_sent: payload.byteLength,
      bytes_received: echoBack.byteLength,
      matches: sameBytes(payload, echoBack),
      seen_by_a: echoed
    },
    relayed_ping: {
      matches: sameBytes(pingData, pong),
      rtt_ms: Math.round(relayedPingMs * 1000) / 1000
    }
  }, 0)
}

main().catch(fail)
