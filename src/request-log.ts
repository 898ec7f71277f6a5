// One log line per request, when it is answered, in place of Fastify's two (received, completed):
// a webhook already logs its dispatch, Cloud Run logs every request on its own, and each line is
// a synchronous write on the dispatch path. The line names the request, since no earlier one does.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

export class OneLinePerRequest extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const fields = { req: { method: request.method, url: request.url }, res: reply, responseTime: reply.elapsedTime }
    if (error !== null && error !== undefined) reply.log.error({ ...fields, err: error }, 'request errored')
    else reply.log.info(fields, 'request completed')
  }
}
