// Requests that arrive while the server drains get a 503 in the error schema, with Retry-After,
// rather than Fastify's own body: the contract holds even during shutdown. A webhook refused here
// is not lost — Prefect treats any reply as delivered, and reconcile picks the run up.
import fp from 'fastify-plugin'
import { HttpError } from '../errors.ts'

export default fp(async fastify => {
  let closing = false
  fastify.addHook('preClose', async () => { closing = true })
  fastify.addHook('onRequest', async (_request, reply) => {
    if (!closing) return
    void reply.header('connection', 'close')
    throw new HttpError('OVERLOADED', 'pushpool is shutting down: retry after the Retry-After delay', { 'retry-after': '5' })
  })
}, { name: 'shutdown' })
