// Sends webhooks for distinct flow runs with a fixed number in flight, and tallies the replies.
import type { PushpoolProcess } from './pushpool-process.ts'

export interface LoadResult {
  wallMs: number
  launched: number
  /** reply → count, e.g. "202 launched", "202 retrying", "503". */
  replies: Record<string, number>
}

export async function sendWebhooks (pushpool: PushpoolProcess, flowRunIds: string[], concurrency: number): Promise<LoadResult> {
  const replies: Record<string, number> = {}
  let next = 0
  let launched = 0
  const started = performance.now()
  const lane = async (): Promise<void> => {
    while (next < flowRunIds.length) {
      const id = flowRunIds[next++]
      let label: string
      try {
        const { status, body } = await pushpool.webhook(id)
        label = `${status} ${body?.state ?? body?.code ?? ''}`.trim()
        if (status === 202 && body?.state === 'launched') launched++
      } catch (err) {
        label = `error ${(err as Error).message.slice(0, 60)}`
      }
      replies[label] = (replies[label] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, flowRunIds.length) }, lane))
  return { wallMs: performance.now() - started, launched, replies }
}
