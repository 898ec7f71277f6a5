// The peers for measuring pushpool's own cost, each in its own process so neither its CPU nor the
// load generator's counts as pushpool's: the Prefect stand-in (answers from memory) and the Cloud
// Run emulator (`src/emulator/main.ts`, zero latency, executions held running).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnChild, type Child } from './children.ts'
import { HttpClient } from './http.ts'
import { REPO, TMP } from './pushpool-process.ts'
import type { StandInSeed } from '../src/devstack/prefect-standin.ts'

export interface LoopbackPeers {
  prefectApiUrl: string
  cloudRunEndpoint: string
  standInPid: number
  emulatorPid: number
  /** Creates flow runs in the stand-in, Scheduled now (or at `at`). */
  createFlowRuns (count: number, at?: Date): Promise<string[]>
  stateCounts (): Promise<Record<string, number>>
  /** Requests the stand-in has answered, by route. */
  prefectCalls (): Promise<Record<string, number>>
  stop (): Promise<void>
}

/** `prefectLatencyMs`: the stand-in answers the Prefect API that much later, as a remote server would. */
export async function startLoopbackPeers (seed: StandInSeed, options: { prefectLatencyMs?: number } = {}): Promise<LoopbackPeers> {
  const seedFile = join(TMP, 'standin-seed.json')
  writeFileSync(seedFile, JSON.stringify(seed))
  const children: Child[] = []
  try {
    children.push(await spawnChild(process.execPath, [join(REPO, 'src', 'devstack', 'prefect-standin.ts'), seedFile, String(options.prefectLatencyMs ?? 0)], { cwd: REPO, logFile: join(TMP, 'standin.log') }))
    children.push(await spawnChild(process.execPath, [join(REPO, 'src', 'emulator', 'main.ts'), '--port', '0', '--executions', 'hold'], { cwd: REPO, logFile: join(TMP, 'emulator.log') }))
  } catch (err) {
    await Promise.all(children.map(c => c.stop()))
    throw err
  }
  const [standIn, emulator] = children
  const apiUrl = standIn.info.apiUrl as string
  const control = new HttpClient(apiUrl.replace(/\/api$/, ''), 4)
  return {
    prefectApiUrl: apiUrl,
    cloudRunEndpoint: emulator.info.endpoint,
    standInPid: standIn.pid,
    emulatorPid: emulator.pid,
    async createFlowRuns (count, at) {
      const reply = await control.send('POST', '/api/_bench/flow_runs', { 'content-type': 'application/json' },
        JSON.stringify({ count, ...(at !== undefined ? { scheduled_at: at.toISOString() } : {}) }))
      return JSON.parse(reply.body) as string[]
    },
    async stateCounts () {
      return JSON.parse((await control.send('GET', '/api/_bench/states')).body)
    },
    async prefectCalls () {
      return JSON.parse((await control.send('GET', '/api/_bench/calls')).body)
    },
    async stop () {
      control.close()
      await Promise.all(children.map(c => c.stop()))
    }
  }
}
