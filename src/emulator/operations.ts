// google.longrunning operations. The clients' LRO pollers call GetOperation on the same host:port, so
// every LRO the emulator hands out is kept here and answers from its resource's current state.
import { randomUUID } from 'node:crypto'
import { notFound } from './rpc-error.ts'
import type { Operation } from './types.ts'

export type OperationResult = { response: object } | { error: { code: number, message: string } }

export class OperationStore {
  #operations = new Map<string, Operation>()
  /** Open operations by the name of the resource whose progress they report (RunJob → its execution). */
  #openByResource = new Map<string, string>()
  #timers = new Set<NodeJS.Timeout>()

  /** An operation whose work is already done: CreateJob, DeleteJob, CancelExecution, … */
  completed (parent: string, typeUrl: string, resource: object): Operation {
    const packed = { '@type': typeUrl, ...resource }
    return this.#store({ name: operationName(parent), done: true, metadata: packed, response: packed })
  }

  /**
   * An operation that stays open for `ms`, then completes with the resource as its response: CreateJob's, while
   * Cloud Run reconciles the new job. 0 completes it at once.
   */
  completedAfter (parent: string, typeUrl: string, resource: { name: string }, ms: number): Operation {
    if (ms <= 0) return this.completed(parent, typeUrl, resource)
    const operation = this.open(parent, typeUrl, resource)
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      this.refresh(typeUrl, resource, { response: resource })
    }, ms)
    this.#timers.add(timer)
    return operation
  }

  /** Stops the timers of operations that complete later; they stay open. */
  close (): void {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
  }

  /** An operation that stays open until `refresh` gives it a result. */
  open (parent: string, typeUrl: string, resource: { name: string }): Operation {
    const operation = this.#store({ name: operationName(parent), done: false, metadata: { '@type': typeUrl, ...resource } })
    this.#openByResource.set(resource.name, operation.name)
    return operation
  }

  /** Mirrors the resource's latest state into its open operation's metadata; a result closes it. */
  refresh (typeUrl: string, resource: { name: string }, result?: OperationResult): void {
    const name = this.#openByResource.get(resource.name)
    const operation = name && this.#operations.get(name)
    if (!operation) return
    operation.metadata = { '@type': typeUrl, ...structuredClone(resource) }
    if (!result) return
    operation.done = true
    if ('error' in result) operation.error = result.error
    else operation.response = { '@type': typeUrl, ...structuredClone(result.response) }
    this.#openByResource.delete(resource.name)
  }

  get (name: string): Operation {
    const operation = this.#operations.get(name)
    if (!operation) throw notFound(`Operation '${name}' not found.`)
    return structuredClone(operation)
  }

  list (parent: string): Operation[] {
    return [...this.#operations.values()]
      .filter(operation => operation.name.startsWith(`${parent}/operations/`))
      .map(operation => structuredClone(operation))
  }

  delete (name: string): void {
    if (!this.#operations.delete(name)) throw notFound(`Operation '${name}' not found.`)
  }

  #store (operation: Operation): Operation {
    this.#operations.set(operation.name, operation)
    return structuredClone(operation)
  }
}

function operationName (parent: string): string {
  return `${parent}/operations/${randomUUID()}`
}
