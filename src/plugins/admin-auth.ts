// Admin authentication as a preHandler: a bearer token from PUSHPOOL_ADMIN_TOKENS. With no tokens
// configured, the admin routes are closed rather than open.
import fp from 'fastify-plugin'
import type { preHandlerAsyncHookHandler } from 'fastify'
import { HttpError } from '../errors.ts'
import { makeBearerCheck } from '../auth/bearer.ts'

declare module 'fastify' {
  interface FastifyInstance {
    requireAdmin: preHandlerAsyncHookHandler
  }
}

export default fp(async fastify => {
  const isAdminToken = makeBearerCheck(fastify.config.adminTokens)
  fastify.decorate('requireAdmin', async function (request) {
    if (!isAdminToken(request.headers.authorization)) throw new HttpError('ADMIN_UNAUTHORIZED')
  } satisfies preHandlerAsyncHookHandler)
}, { name: 'admin-auth', dependencies: ['config'] })
