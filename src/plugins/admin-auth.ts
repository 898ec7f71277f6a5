// Admin authentication as onRequest hooks, so an unauthenticated caller is refused before any
// body is read or parsed. A caller is an admin by a bearer token from
// PUSHPOOL_ADMIN_TOKENS, or by a Google ID token for PUSHPOOL_AUDIENCE whose verified email is in
// PUSHPOOL_ADMIN_PRINCIPALS. Reconcile also admits Cloud Scheduler's principal. 401 means "who are
// you?" (no, unknown or invalid credentials); 403 means "we know who you are, and you may not".
// With nothing configured, the admin routes are closed rather than open.
import fp from 'fastify-plugin'
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { HttpError } from '../errors.ts'
import { makeBearerCheck } from '../auth/bearer.ts'
import { GoogleCertsUnavailable, GoogleIdTokenVerifier, InvalidIdToken } from '../auth/google-id-token.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Admits an admin token, or a Google ID token of an admin principal. */
    requireAdmin: onRequestAsyncHookHandler
    /** Admits what requireAdmin admits, and Cloud Scheduler's principal (POST /v1/reconcile). */
    requireReconcileCaller: onRequestAsyncHookHandler
    /** Admits what requireAdmin admits, and the Cloud Tasks invoker's principal (POST /v1/timers/fire). */
    requireTimerCaller: onRequestAsyncHookHandler
    /** Admits what requireAdmin admits, and the execution-end push subscription's principal (POST /v1/executions/ended). */
    requireExecutionEventsCaller: onRequestAsyncHookHandler
  }
}

/**
 * Principals as emails, lower-cased. IAM's member syntax (`user:`, `serviceAccount:`) is accepted
 * too, since that is how operators usually have them at hand.
 */
function principalSet (principals: ReadonlyArray<string | null>): ReadonlySet<string> {
  return new Set(principals.filter(p => p !== null).map(p => p.replace(/^(user|serviceAccount):/i, '').toLowerCase()))
}

function bearerCredential (authorization: string | undefined): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1] ?? null
}

export default fp(async fastify => {
  const { config } = fastify
  const isAdminToken = makeBearerCheck(config.adminTokens)
  const idTokens = config.audience === null
    ? null
    : new GoogleIdTokenVerifier({ certsUrl: config.googleCertsUrl, audience: config.audience })
  if (idTokens === null && (config.adminPrincipals.length > 0 || config.schedulerPrincipal !== null || config.tasksInvoker !== null ||
    config.executionEventsPrincipal !== null)) {
    fastify.log.warn('A principal (PUSHPOOL_ADMIN_PRINCIPALS, _SCHEDULER_PRINCIPAL, _TASKS_INVOKER or _EXECUTION_EVENTS_PRINCIPAL) is set but PUSHPOOL_AUDIENCE is not: Google ID tokens are refused')
  }

  const admitting = (allowed: ReadonlySet<string>): onRequestAsyncHookHandler => async function (request: FastifyRequest) {
    if (isAdminToken(request.headers.authorization)) return
    const credential = bearerCredential(request.headers.authorization)
    if (credential === null || idTokens === null || !GoogleIdTokenVerifier.looksLikeToken(credential)) {
      throw new HttpError('ADMIN_UNAUTHORIZED')
    }
    let identity
    try {
      identity = await idTokens.verify(credential)
    } catch (err) {
      if (err instanceof InvalidIdToken) {
        request.log.info({ reason: err.message }, 'ID token refused')
        throw new HttpError('ADMIN_UNAUTHORIZED')
      }
      if (err instanceof GoogleCertsUnavailable) {
        request.log.error({ err }, 'cannot verify ID tokens')
        throw new HttpError('ADMIN_AUTH_UNAVAILABLE', undefined, { 'retry-after': '10' })
      }
      throw err
    }
    if (identity.email === null || !identity.emailVerified) {
      throw new HttpError('ADMIN_FORBIDDEN', 'The ID token carries no verified email, so it names no principal that could be allowed')
    }
    if (!allowed.has(identity.email)) {
      request.log.info({ principal: identity.email }, 'principal not allowed')
      throw new HttpError('ADMIN_FORBIDDEN')
    }
    request.log.info({ principal: identity.email }, 'authenticated by ID token')
  }

  fastify.decorate('requireAdmin', admitting(principalSet(config.adminPrincipals)))
  fastify.decorate('requireReconcileCaller', admitting(principalSet([...config.adminPrincipals, config.schedulerPrincipal])))
  fastify.decorate('requireTimerCaller', admitting(principalSet([...config.adminPrincipals, config.tasksInvoker])))
  fastify.decorate('requireExecutionEventsCaller', admitting(principalSet([...config.adminPrincipals, config.executionEventsPrincipal])))
}, { name: 'admin-auth', dependencies: ['config'] })
