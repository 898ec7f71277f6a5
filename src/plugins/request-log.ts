// One log line per request, when it is answered, in place of Fastify's two (received, completed):
// a webhook already logs its dispatch, Cloud Run logs every request on its own, and each line is
// a synchronous write on the dispatch path.
import fp from 'fastify-plugin'

export default fp(async fastify => {
  fastify.addHook('onResponse', async (request, reply) => {
    request.log.info({
      req: { method: request.method, url: request.url },
      res: { statusCode: reply.statusCode },
      responseTime: reply.elapsedTime
    }, 'request completed')
  })
}, { name: 'request-log' })
