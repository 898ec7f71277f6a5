// The one table of error codes pushpool answers with (after fastify core's lib/errors.js). Every
// HTTP error carries a stable `code` from here; tests assert on the code, never on the wording.
// openapi.yaml's `Error` schema lists the same codes.

export interface ErrorSpec {
  readonly statusCode: number
  readonly message: string
}

export const ERRORS = {
  WEBHOOK_UNAUTHORIZED: {
    statusCode: 401,
    message: 'Missing or unknown webhook secret: send "Authorization: Bearer <secret>" with one of PUSHPOOL_WEBHOOK_SECRETS'
  },
  WEBHOOK_UNSUPPORTED_MEDIA_TYPE: {
    statusCode: 415,
    message: 'The webhook body must be JSON: set the "Content-Type: application/json" header in the Webhook block'
  },
  WEBHOOK_BODY_TOO_LARGE: {
    statusCode: 413,
    message: 'The webhook body is larger than 64 KiB: send only the event fields of the payload template'
  },
  WEBHOOK_INVALID_JSON: {
    statusCode: 400,
    message: 'The webhook body is not valid JSON: check the automation\'s payload template'
  },
  WEBHOOK_INVALID_PAYLOAD: {
    statusCode: 400,
    message: 'The webhook payload must be a JSON object with "resource_id": "prefect.flow-run.<uuid>"'
  },
  WEBHOOK_FOREIGN_RESOURCE: {
    statusCode: 400,
    message: 'The webhook resource is not a flow run: "resource_id" must look like "prefect.flow-run.<uuid>"'
  },
  ADMIN_UNAUTHORIZED: {
    statusCode: 401,
    message: 'Missing or invalid credentials: send "Authorization: Bearer <token>" with an admin token or a Google ID token'
  },
  ADMIN_FORBIDDEN: {
    statusCode: 403,
    message: 'These credentials are valid but not allowed here: add the principal to PUSHPOOL_ADMIN_PRINCIPALS'
  },
  ADMIN_AUTH_UNAVAILABLE: {
    statusCode: 503,
    message: 'Google ID tokens cannot be verified right now (Google\'s certificates are unreachable): retry later, or use an admin token'
  },
  DISPATCH_NOT_FOUND: {
    statusCode: 404,
    message: 'No dispatch has this id: list dispatches with GET /v1/dispatches'
  },
  DISPATCH_NOT_CANCELLABLE: {
    statusCode: 409,
    message: 'The flow run has already ended, so there is nothing to cancel'
  },
  DISPATCH_NOT_REDRIVABLE: {
    statusCode: 409,
    message: 'Only a waiting or stuck dispatch can be redriven (deferred, retrying, received, claimed, launching); retry a finished run from Prefect instead'
  },
  DISPATCH_BUSY: {
    statusCode: 409,
    message: 'Another drive owns this dispatch right now (see its lease): look again once it has moved on'
  },
  PUSH_INVALID_MESSAGE: {
    statusCode: 400,
    message: 'The push is not a Pub/Sub message carrying a Cloud Run job log entry: check the push subscription\'s topic and the log sink\'s filter'
  },
  INVALID_QUERY: {
    statusCode: 400,
    message: 'The query string is invalid'
  },
  INVALID_CURSOR: {
    statusCode: 400,
    message: 'The cursor is invalid: pass the next_cursor of a previous page unchanged'
  },
  ROUTE_NOT_FOUND: {
    statusCode: 404,
    message: 'No such route: see GET /openapi.yaml'
  },
  METHOD_NOT_ALLOWED: {
    statusCode: 405,
    message: 'This method is not allowed on this route: see GET /openapi.yaml'
  },
  BAD_REQUEST: {
    statusCode: 400,
    message: 'The request is malformed'
  },
  REQUEST_TIMEOUT: {
    statusCode: 408,
    message: 'The request did not arrive in time: send it whole, without pausing'
  },
  HEADERS_TOO_LARGE: {
    statusCode: 431,
    message: 'The request headers are too large: send fewer or smaller headers'
  },
  PREFECT_UNAVAILABLE: {
    statusCode: 503,
    message: 'The Prefect API is unreachable or failing: the run will be picked up by reconcile once Prefect answers'
  },
  STORE_UNAVAILABLE: {
    statusCode: 503,
    message: 'The dispatch ledger\'s database cannot be reached right now: retry after the Retry-After delay; nothing was lost'
  },
  PREFECT_UNAUTHORIZED: {
    statusCode: 503,
    message: 'The Prefect API refused pushpool\'s credentials: set PREFECT_API_AUTH_STRING (user:password of a self-hosted server) or PREFECT_API_KEY (Prefect Cloud) to what the server accepts; the run will be picked up by reconcile once it does'
  },
  OVERLOADED: {
    statusCode: 503,
    message: 'pushpool is busy or shutting down: retry after the Retry-After delay'
  },
  NOT_READY: {
    statusCode: 503,
    message: 'pushpool is not ready'
  },
  INTERNAL: {
    statusCode: 500,
    message: 'Internal error: the dispatch record keeps what was done; see the logs for this request id'
  }
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS

/** An error that becomes an HTTP reply `{code, message}` with the table's status. */
export class HttpError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly headers: Record<string, string>

  /** `detail` replaces the table's message when the case calls for a more specific one. */
  constructor (code: ErrorCode, detail?: string, headers: Record<string, string> = {}) {
    super(detail ?? ERRORS[code].message)
    this.name = 'HttpError'
    this.code = code
    this.statusCode = ERRORS[code].statusCode
    this.headers = headers
  }
}
