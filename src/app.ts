// The application as a Fastify plugin: services first (each a named fastify-plugin decorator),
// then the routes, registered explicitly so the start-up order is visible here.
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from './config.ts'
import { componentSchemas } from './openapi.ts'
import configPlugin from './plugins/config.ts'
import errorsPlugin from './plugins/errors.ts'
import shutdownPlugin from './plugins/shutdown.ts'
import storePlugin from './plugins/store.ts'
import metricsPlugin from './plugins/metrics.ts'
import metricsRoutes from './routes/metrics.ts'
import dispatcherPlugin from './plugins/dispatcher.ts'
import adminAuthPlugin from './plugins/admin-auth.ts'
import healthRoutes from './routes/health.ts'
import webhookRoutes from './routes/webhooks.ts'
import adminRoutes from './routes/admin.ts'
import operationRoutes from './routes/operations.ts'
import timerRoutes from './routes/timers.ts'
import executionEventRoutes from './routes/execution-events.ts'

export interface AppOptions {
  config: Config
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered, as `METHOD /path`, so the contract test can hold them to openapi.yaml. */
    routeTable: string[]
  }
}

const app: FastifyPluginAsync<AppOptions> = async (fastify, { config }) => {
  for (const schema of componentSchemas()) fastify.addSchema(schema)
  const routeTable: string[] = []
  fastify.decorate('routeTable', routeTable)
  fastify.addHook('onRoute', route => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routeTable.push(`${method} ${route.url}`)
  })
  await fastify.register(configPlugin, { config })
  await fastify.register(errorsPlugin)
  await fastify.register(shutdownPlugin)
  await fastify.register(storePlugin)
  await fastify.register(metricsPlugin)
  await fastify.register(dispatcherPlugin)
  await fastify.register(adminAuthPlugin)
  await fastify.register(healthRoutes)
  await fastify.register(webhookRoutes)
  await fastify.register(adminRoutes)
  await fastify.register(operationRoutes)
  await fastify.register(timerRoutes)
  await fastify.register(executionEventRoutes)
  await fastify.register(metricsRoutes)
}

export default app
