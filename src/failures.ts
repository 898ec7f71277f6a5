// The two kinds of failure a dispatch can meet, named as types rather than flags (after BullMQ's
// UnrecoverableError / RateLimitError): the dispatcher decides what to do by `instanceof`, never
// by inspecting a boolean on a generic Error.

/**
 * Something that may succeed if tried again later: a GCP or Prefect outage, a quota, a timeout.
 * `retryAt`: when a retry can first succeed, if the cause says (a quota's rest); else the caller's
 * own retry delay applies.
 */
export class RetryLater extends Error {
  readonly retryAt: Date | null
  constructor (message: string, options?: { cause?: unknown, retryAt?: Date }) {
    super(message, options)
    this.name = new.target.name
    this.retryAt = options?.retryAt ?? null
  }
}

/**
 * Something that will fail the same way however often it is tried: a template that cannot render,
 * a credential that is refused, an argument Cloud Run rejects. The flow run is crashed with
 * `message`, so it must say what is wrong and how to fix it, and must never contain a secret.
 */
export class NeverRetry extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A work pool's job template, or the job variables fed into it, cannot be rendered. */
export class TemplateError extends NeverRetry {
  /** Dotted path of the offending field, e.g. `variables.cpu` or `job_configuration.job_body`. */
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.field = field
  }
}

/** The stored credentials record is missing, malformed or refused. */
export class CredentialsError extends NeverRetry {}
