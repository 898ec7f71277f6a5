import { status } from '@grpc/grpc-js'

/** An error the emulator answers a call with: a gRPC status code and the message the client sees. */
export class RpcError extends Error {
  readonly code: number
  /** google.rpc error details (ErrorInfo, …) in JSON form, for the REST error body */
  readonly details?: object[]

  constructor (code: number, message: string, details?: object[]) {
    super(message)
    this.name = 'RpcError'
    this.code = code
    if (details) this.details = details
  }
}

export const invalidArgument = (message: string): RpcError => new RpcError(status.INVALID_ARGUMENT, message)
export const notFound = (message: string): RpcError => new RpcError(status.NOT_FOUND, message)
export const alreadyExists = (message: string): RpcError => new RpcError(status.ALREADY_EXISTS, message)
export const failedPrecondition = (message: string): RpcError => new RpcError(status.FAILED_PRECONDITION, message)
export const resourceExhausted = (message: string): RpcError => new RpcError(status.RESOURCE_EXHAUSTED, message)
export const unimplemented = (message: string): RpcError => new RpcError(status.UNIMPLEMENTED, message)
export const unauthenticated = (message: string): RpcError => new RpcError(status.UNAUTHENTICATED, message)
export const permissionDenied = (message: string, details?: object[]): RpcError => new RpcError(status.PERMISSION_DENIED, message, details)
