// The dispatch ledger as a decorator; closed after the last request has drained.
import fp from 'fastify-plugin'
import { openStore } from '../store/open.ts'
import type { Store } from '../store/store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

export default fp(async fastify => {
  const store = await openStore(fastify.config.storeUrl)
  fastify.decorate('store', store)
  fastify.addHook('onClose', async () => { await store.close() })
}, { name: 'store', dependencies: ['config'] })
