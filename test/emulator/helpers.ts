// Shared setup for the emulator tests: an emulator plus the REAL Google clients pointed at it.
import { v2 } from '@google-cloud/run'
import { SecretManagerServiceClient } from '@google-cloud/secret-manager'
import type { Test } from 'tap'
import { emulatorClientOptions, startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.ts'

export const PARENT = 'projects/p/locations/us-central1'

export interface Rig {
  emu: Emulator
  jobs: InstanceType<typeof v2.JobsClient>
  executions: InstanceType<typeof v2.ExecutionsClient>
  secrets: SecretManagerServiceClient
}

export async function rig (t: Test, options: EmulatorOptions = {}): Promise<Rig> {
  const emu = await startEmulator(options)
  const clientOptions = { ...emulatorClientOptions(emu.endpoint), projectId: 'p' }
  const r: Rig = {
    emu,
    jobs: new v2.JobsClient(clientOptions),
    executions: new v2.ExecutionsClient(clientOptions),
    secrets: new SecretManagerServiceClient(clientOptions)
  }
  t.teardown(async () => {
    await Promise.all([r.jobs.close(), r.executions.close(), r.secrets.close()])
    await emu.close()
  })
  return r
}

export interface ContainerSpec {
  image?: string
  command?: string[]
  args?: string[]
  env?: Array<{ name: string, value?: string, valueSource?: { secretKeyRef: { secret: string, version: string } } }>
}

/** Creates a one-container job and returns its full name. */
export async function createJob (r: Rig, jobId: string, container: ContainerSpec = {}, extra: { timeout?: string } = {}): Promise<string> {
  const seconds = extra.timeout ? Number.parseInt(extra.timeout) : undefined
  await r.jobs.createJob({
    parent: PARENT,
    jobId,
    job: {
      template: {
        template: {
          maxRetries: 0,
          ...(seconds ? { timeout: { seconds } } : {}),
          containers: [{ image: 'us-docker.pkg.dev/p/r/img:1', ...container }]
        }
      }
    }
  })
  return `${PARENT}/jobs/${jobId}`
}

/** A command that runs inline JavaScript with this very node binary (children get no inherited PATH tricks). */
export function nodeCommand (script: string): string[] {
  return [process.execPath, '-e', script]
}

export function errorCode (error: unknown): number | undefined {
  return (error as { code?: number }).code
}
