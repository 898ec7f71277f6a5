// What happens to a call before and after its real effect: counting, per-method rate limits, and
// injected faults (errors, latency). Every gRPC method of the emulator goes through CallPolicy.invoke.
import { setTimeout as sleep } from 'node:timers/promises'
import { resourceExhausted, RpcError } from './rpc-error.ts'

export interface FaultRule {
  /** gRPC method name, e.g. 'RunJob', 'CreateJob', 'GetExecution', 'AccessSecretVersion', or '*' */
  method: string
  /** gRPC status code to answer with (e.g. 14 UNAVAILABLE, 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED) */
  code?: number
  message?: string
  /** How many calls it applies to (default: unlimited) */
  times?: number
  /** 0..1 chance per call (default 1) */
  probability?: number
  /** Added delay (fixed or uniform range) */
  latencyMs?: number | [number, number]
  /** Perform the real effect first (e.g. create the execution), THEN answer with the error */
  afterEffect?: boolean
}

const WINDOW_MS = 60_000

interface RateLimit {
  perMinute: number
  admittedAt: number[]
}

export class CallPolicy {
  #counts = new Map<string, number>()
  #rules: Array<{ rule: FaultRule, remaining: number }> = []
  #rateLimits = new Map<string, RateLimit>()

  addFault (rule: FaultRule): void {
    this.#rules.push({ rule, remaining: rule.times ?? Infinity })
  }

  clearFaults (): void {
    this.#rules = []
  }

  setRateLimit (method: string, perMinute: number | null): void {
    if (perMinute === null) this.#rateLimits.delete(method)
    else this.#rateLimits.set(method, { perMinute, admittedAt: [] })
  }

  calls (): Record<string, number> {
    return Object.fromEntries(this.#counts)
  }

  resetCalls (): void {
    this.#counts.clear()
  }

  async invoke<T> (method: string, service: string, effect: () => T | Promise<T>): Promise<T> {
    this.#counts.set(method, (this.#counts.get(method) ?? 0) + 1)
    this.#admit(method, service)
    const { latencyMs, fault } = this.#draw(method)
    if (latencyMs > 0) await sleep(latencyMs)
    if (fault && !fault.afterEffect) throw faultError(fault)
    const result = await effect()
    if (fault) throw faultError(fault)
    return result
  }

  /** Sliding-window quota; rejected calls do not use up the quota, as with Google's per-minute limits. */
  #admit (method: string, service: string): void {
    const limit = this.#rateLimits.get(method)
    if (!limit) return
    const now = Date.now()
    limit.admittedAt = limit.admittedAt.filter(t => now - t < WINDOW_MS)
    if (limit.admittedAt.length >= limit.perMinute) {
      throw resourceExhausted(`Quota exceeded for quota metric '${method} requests' and limit ` +
        `'${method} requests per minute per region' of service '${service}'.`)
    }
    limit.admittedAt.push(now)
  }

  /** Rules that fire on this call add their latency; the first one with a code decides the error. */
  #draw (method: string): { latencyMs: number, fault?: FaultRule } {
    let latencyMs = 0
    let fault: FaultRule | undefined
    for (const armed of this.#rules) {
      const { rule } = armed
      if (rule.method !== '*' && rule.method !== method) continue
      if (armed.remaining <= 0) continue
      if (rule.probability !== undefined && Math.random() >= rule.probability) continue
      if (rule.code !== undefined && fault) continue
      armed.remaining--
      latencyMs += pickLatency(rule.latencyMs)
      if (rule.code !== undefined) fault = rule
    }
    this.#rules = this.#rules.filter(armed => armed.remaining > 0)
    return { latencyMs, fault }
  }
}

function pickLatency (latency: FaultRule['latencyMs']): number {
  if (latency === undefined) return 0
  if (typeof latency === 'number') return latency
  const [min, max] = latency
  return min + Math.random() * (max - min)
}

function faultError (rule: FaultRule): RpcError {
  return new RpcError(rule.code ?? 0, rule.message ?? `Injected fault for ${rule.method}`)
}
