// A Pub/Sub push subscription as the emulator plays it (https://cloud.google.com/pubsub/docs/push):
// each message is POSTed as {message: {attributes, data (base64), messageId, message_id, publishTime,
// publish_time}, subscription} with Content-Type application/json and, when the subscription has a
// service account, `Authorization: Bearer <ID token>` for it, its audience defaulting to the push URL
// (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions). 102, 200, 201, 202 and 204
// acknowledge; any other answer, or none within the acknowledgement deadline, is retried with
// exponential backoff (Pub/Sub's push backoff runs from 100 ms to 60 s) until acknowledged.
import { randomInt } from 'node:crypto'
import { send, type OutgoingRequest } from './outbound-http.ts'

export interface PushConfig {
  /** The push endpoint */
  url: string
  /** Service account whose ID token authenticates each push; none: no Authorization header */
  serviceAccountEmail?: string
  /** The token's audience; default: the push endpoint URL */
  audience?: string
  /** Backoff between attempts of one message (defaults 100 ms and 60 s) */
  minBackoffMs?: number
  maxBackoffMs?: number
  /** How long a push may take to be acknowledged (default 10 s, Pub/Sub's default ack deadline) */
  ackDeadlineMs?: number
}

export interface PushEnvelope {
  message: {
    attributes: Record<string, string>
    data: string
    messageId: string
    message_id: string
    publishTime: string
    publish_time: string
  }
  subscription: string
}

export interface PushDelivery {
  url: string
  headers: Record<string, string>
  body: PushEnvelope
  deliveryTime: string
  /** The endpoint's status, once it answered */
  status?: number
  error?: string
  acknowledged: boolean
}

interface Pending {
  envelope: PushEnvelope
  key: string
  attempts: number
  timer?: NodeJS.Timeout
}

const ACK_STATUSES = new Set([102, 200, 201, 202, 204])
const USER_AGENT = 'APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)'

export class PushSubscription {
  readonly #config: PushConfig
  readonly #mintIdToken: (email: string, audience: string) => string
  #deliveries: Array<PushDelivery & { key: string }> = []
  #pending = new Set<Pending>()
  #waiters: Array<{ key: string, resolve: (delivery: PushDelivery) => void }> = []
  #closing = new AbortController()
  #nextMessageId = BigInt(randomInt(1e9)) * 10_000_000n

  constructor (config: PushConfig, mintIdToken: (email: string, audience: string) => string) {
    this.#config = config
    this.#mintIdToken = mintIdToken
  }

  /** Publishes one message to the subscription's topic; `key` names it for waitForAck. */
  publish (subscription: string, data: Buffer, attributes: Record<string, string>, key: string): void {
    if (this.#closing.signal.aborted) return
    const messageId = String(++this.#nextMessageId)
    const publishTime = new Date().toISOString()
    const envelope: PushEnvelope = {
      message: { attributes, data: data.toString('base64'), messageId, message_id: messageId, publishTime, publish_time: publishTime },
      subscription
    }
    const pending: Pending = { envelope, key, attempts: 0 }
    this.#pending.add(pending)
    void this.#attempt(pending)
  }

  deliveries (): PushDelivery[] {
    return this.#deliveries.map(withoutKey)
  }

  /** Resolves with the first acknowledged push of the message published under `key`. */
  waitForAck (key: string): Promise<PushDelivery> {
    const acked = this.#deliveries.find(delivery => delivery.key === key && delivery.acknowledged)
    if (acked) return Promise.resolve(withoutKey(acked))
    return new Promise(resolve => this.#waiters.push({ key, resolve }))
  }

  close (): void {
    this.#closing.abort()
    for (const pending of this.#pending) clearTimeout(pending.timer)
    this.#pending.clear()
  }

  async #attempt (pending: Pending): Promise<void> {
    pending.attempts++
    const { serviceAccountEmail, audience, url } = this.#config
    // A fresh token per attempt, as a retried push carries one minted for that attempt.
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': USER_AGENT,
      ...(serviceAccountEmail ? { Authorization: `Bearer ${this.#mintIdToken(serviceAccountEmail, audience || url)}` } : {})
    }
    const request: OutgoingRequest = { url, method: 'POST', headers, body: Buffer.from(JSON.stringify(pending.envelope)) }
    const delivery = { key: pending.key, url, headers, body: pending.envelope, deliveryTime: new Date().toISOString(), acknowledged: false }
    this.#deliveries.push(delivery)
    const result = await send(request, this.#config.ackDeadlineMs ?? 10_000, this.#closing.signal)
    if (this.#closing.signal.aborted) return
    if ('status' in result) {
      Object.assign(delivery, { status: result.status, acknowledged: ACK_STATUSES.has(result.status) })
    } else {
      Object.assign(delivery, { error: result.error })
    }
    if (delivery.acknowledged) {
      this.#pending.delete(pending)
      for (const waiter of this.#waiters.filter(w => w.key === pending.key)) waiter.resolve(withoutKey(delivery))
      this.#waiters = this.#waiters.filter(w => w.key !== pending.key)
      return
    }
    const min = this.#config.minBackoffMs ?? 100
    const wait = Math.min(min * 2 ** (pending.attempts - 1), this.#config.maxBackoffMs ?? 60_000)
    pending.timer = setTimeout(() => void this.#attempt(pending), wait)
  }
}

function withoutKey ({ key: _key, ...delivery }: PushDelivery & { key: string }): PushDelivery {
  return structuredClone(delivery)
}
